"""Atomic file writes: a temp file in the same folder, then os.replace, so readers never see half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_file(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temp path beside `path`, then rename it into place; nothing is left on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
