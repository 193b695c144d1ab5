"""Entry point of the `segopt` console script: one Typer app, one module per command group."""

from __future__ import annotations

import os

import typer

from segopt_cli import benchmark, data, demo, discovery, flows, optimize, train, video

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline by default, no telemetry

app = typer.Typer(
    name="segopt",
    help="SegFormer checkpoints to production: discover, optimize, verify, benchmark, track.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command()
def version() -> None:
    """Print segopt's version."""
    from segopt_core import __version__

    typer.echo(__version__)


for module in (discovery, data, optimize, benchmark, flows, train, video, demo):
    module.register(app)


def main() -> None:
    """Run the CLI."""
    app()
