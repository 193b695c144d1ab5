"""`segopt discover` and `segopt zoo init`: find and match checkpoints, write a random-init zoo."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from segopt_cli.common import fail, split_list
from segopt_core.atomic import check_target_path

zoo_app = typer.Typer(
    help="A random-init checkpoint zoo for demos and tests (no downloads).", no_args_is_help=True
)


def discover_command(
    paths: list[Path] = typer.Argument(..., help="Files and folders to scan (recursively)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Find SegFormer checkpoints, match each to its cell (weights first, names second), explain rejects."""
    from segopt_core.checkpoints import discover

    missing = [str(p) for p in paths if not p.exists()]
    if len(missing) == len(paths):
        fail(f"no such file or folder: {', '.join(missing)}")
    report = discover(paths, progress=not as_json)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    root = paths[0] if len(paths) == 1 and paths[0].is_dir() else None
    typer.echo(report.table(root))


@zoo_app.command("init")
def zoo_init(
    out_dir: Path = typer.Argument(..., help="Folder to write the checkpoints into."),
    cells: list[str] = typer.Option(
        None, "--cells", help="Cells or name patterns (repeat or comma-separate); default all."
    ),
    fmt: str = typer.Option("hf", "--format", help="hf | safetensors | nvlabs (alias mmseg) | mmseg1"),
    tiny: bool = typer.Option(
        False, "--tiny", help="Tiny custom stand-ins (64x64, 8-16 channels) instead of full size."
    ),
    seed: int = typer.Option(0, help="Random-init seed."),
    overwrite: bool = typer.Option(False, help="Replace checkpoints of the same name already there."),
) -> None:
    """Write random-init checkpoints named like the official releases, so every flow runs without weights."""
    from segopt_core.checkpoints import CheckpointError, init_zoo

    check_target_path(out_dir, folder=True)
    try:
        written = init_zoo(out_dir, split_list(cells), fmt, tiny=tiny, seed=seed, progress=True,
                           overwrite=overwrite)  # fmt: skip
    except (KeyError, CheckpointError) as exc:
        fail(str(exc).strip("'\""))
    for path in written:
        typer.echo(str(path))


@zoo_app.command("convert")
def zoo_convert(
    src: Path = typer.Argument(..., help="A checkpoint of any supported format."),
    out: Path = typer.Argument(..., help="Output file (or folder for --format hf)."),
    fmt: str = typer.Option("hf", "--format", help="hf | safetensors | nvlabs (alias mmseg) | mmseg1"),
    cell: str = typer.Option(None, help="Insist on this cell (checked against the weights)."),
    overwrite: bool = typer.Option(False, help="Replace OUT when it exists."),
) -> None:
    """Convert a checkpoint to another format (e.g. an NVlabs .pth to an HF folder)."""
    from segopt_core.checkpoints import CheckpointError, convert_checkpoint

    if not src.exists():
        fail(f"no such file or folder: {src}")
    check_target_path(out)
    try:
        written = convert_checkpoint(src, out, fmt, cell=cell, overwrite=overwrite)
    except (KeyError, CheckpointError) as exc:
        fail(str(exc).strip("'\""))
    typer.echo(str(written))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("discover")(discover_command)
    app.add_typer(zoo_app, name="zoo")
