"""Atomic writes: a temp file (or folder) beside the target, then os.replace; readers never see half of it."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _default_file_mode() -> int:
    """0o666 minus the umask: the mode open() gives a new file (mkstemp's own 0o600 hides reports)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()  # read once at import: os.umask is process-wide, not thread-safe

NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    """True for an error that means the disk (or the quota) is full: an OSError with ENOSPC/EDQUOT, or a
    library's own error carrying the OS message (safetensors, ONNX and PyArrow wrap it)."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        return True
    text = str(exc)
    return any(os.strerror(code) in text for code in NO_SPACE_ERRNOS)


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


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically, so readers never see half a file."""
    return atomic_file(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, payload: Any, sort_keys: bool = False) -> Path:
    """Write JSON atomically (indented; values JSON cannot hold are written as strings)."""
    return write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=sort_keys, default=str) + "\n")


def atomic_folder(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on an empty temp folder beside `path`, then swap it in for any previous folder.

    Readers see the old folder or the complete new one, never a half-written one; nothing is left on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = tmp.with_suffix(".old")
    try:
        write(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path
