"""Entry point of the `segopt` console script: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from segopt_cli import benchmark, data, demo, discovery, flows, optimize, train, video
from segopt_cli.common import OneLineErrors, offline_defaults

offline_defaults()  # no telemetry, nothing to download

app = typer.Typer(
    name="segopt",
    help="SegFormer checkpoints to production: discover, optimize, verify, benchmark, track.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    cls=OneLineErrors,
)


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error."),
) -> None:
    """SegFormer checkpoints to production: discover, optimize, verify, benchmark, track."""
    from segopt_core.logs import route_library_logging

    route_library_logging(debug)  # libraries' INFO lines and progress bars only with --debug


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


if __name__ == "__main__":
    main()
