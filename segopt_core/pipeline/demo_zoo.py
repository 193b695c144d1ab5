"""Where optimize-all looks when no checkpoint is named: the B0 `segopt demo` trained, else the work
folder's zoo (written as the tiny demo zoo when asked and empty)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def is_empty(paths: Sequence[str | Path]) -> bool:
    """True when none of the paths exists or holds any file."""
    try:
        return not any(Path(p).is_file() or (Path(p).is_dir() and any(Path(p).iterdir())) for p in paths)
    except OSError:  # e.g. permission denied: not known to be empty; discovery reports the folder
        return False


def ensure_demo_zoo(folder: str | Path) -> bool:
    """Write the tiny demo zoo (`segopt zoo init DIR --tiny`) into an empty folder; True when written."""
    from segopt_core.checkpoints import init_zoo

    if not is_empty([folder]):
        return False
    init_zoo(Path(folder), tiny=True)
    return True


def demo_model(work_dir: str | Path) -> Path | None:
    """The B0 that `segopt demo` trained under work_dir (its best export, else latest); None when absent."""
    for out in sorted((Path(work_dir) / "checkpoints").glob("b0-demo-*"), reverse=True):
        for export in ("best", "latest"):
            if (out / export / "config.json").is_file():
                return out / export
    return None


def default_sources(work_dir: str | Path) -> tuple[list[str], str | None]:
    """(paths, data_dir) for optimize-all without paths: the demo's trained B0 and its synthetic labelled
    set when `segopt demo` ran (a real model: its variants' accuracy means something), else the zoo."""
    model = demo_model(work_dir)
    if model is None:
        return [str(Path(work_dir) / "zoo")], None
    data = Path(work_dir) / "data" / "synth-ade20k"
    return [str(model)], str(data) if data.is_dir() else None
