"""optimize-all's view of checkpoint discovery: the checkpoints under some paths as CheckpointRefs, and
a cheap check (before a run starts) that the paths hold something to discover."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from segopt_core.errors import OptionError
from segopt_core.pipeline.jobs import CheckpointRef
from segopt_core.pipeline.selection import matches


def find_checkpoints(
    paths: Sequence[str | Path], cells: Sequence[str] | None = None
) -> tuple[list[CheckpointRef], list[dict[str, str]]]:
    """Accepted checkpoints under paths whose cell matches `cells`, and the rejected ones with reasons."""
    from segopt_core.checkpoints import discover

    report = discover([Path(p) for p in paths])
    accepted = [
        CheckpointRef(str(e.path), e.match.spec, e.sha256, e.format, e.match.conflicts)
        for e in report.accepted
        if matches(e.cell, cells)
    ]
    rejected = [{"path": str(r.path), "reason": str(r.reason)} for r in report.rejected]
    return accepted, rejected


def check_sources(paths: Sequence[str | Path], what: str = "PATHS") -> None:
    """OptionError when a path does not exist or no path holds a weights file (an HF folder holds one too);
    reads names only, so it takes milliseconds where discovery hashes every file."""
    from segopt_core.checkpoints.formats import WEIGHT_SUFFIXES

    missing = [str(p) for p in paths if not os.path.exists(p)]
    if missing:
        raise OptionError(f"{what}: no such file or folder: {', '.join(missing)}")
    for path in map(Path, paths):
        if path.is_file() and path.suffix.lower() in WEIGHT_SUFFIXES:
            return
        for _, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            if any(Path(f).suffix.lower() in WEIGHT_SUFFIXES for f in files if not f.startswith(".")):
                return
    raise OptionError(
        f"{what}: no checkpoint in {', '.join(map(str, paths))} (no {', '.join(WEIGHT_SUFFIXES)} file); "
        "`segopt discover PATH` explains what it finds"
    )


def no_checkpoint_found(
    paths: Sequence[str | Path], rejected: Sequence[dict[str, str]], cells: Sequence[str] | None = None
) -> OptionError:
    """The error of a run whose paths hold no usable checkpoint (of the asked cells): the first reasons."""
    where = ", ".join(map(str, paths)) + (f" for cells {', '.join(cells)}" if cells else "")
    shown = "; ".join(f"{r['path']}: {r['reason']}" for r in rejected[:3])
    more = f" (and {len(rejected) - 3} more)" if len(rejected) > 3 else ""
    return OptionError(f"no usable checkpoint under {where}" + (f": {shown}{more}" if shown else ""))
