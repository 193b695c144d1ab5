"""Atomic file writes: a temp file in the same folder, then os.replace, so readers never see half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _default_file_mode() -> int:
    """0o666 minus the umask: the mode open() gives a new file (mkstemp's own 0o600 hides reports)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()  # read once at import: os.umask is process-wide, not thread-safe


def atomic_file(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temp path beside `path`, then rename it into place; nothing is left on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, _FILE_MODE)  # readable by the group like any other file (e.g. 0o644), not 0o600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
