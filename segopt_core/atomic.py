"""Atomic writes: a temp file (or folder) beside the target, then os.replace; readers never see half of it.

One mode policy for everything segopt writes: files get 0o666 and folders 0o777 minus the umask (0644 and
0755 under the usual umask 022), the modes a plain open() / mkdir give, whichever library wrote them
(safetensors writes 0600 and tempfile makes 0700 folders: both are reset before the rename).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _umask()  # read once at import: os.umask is process-wide, not thread-safe
FILE_MODE = 0o666 & ~_UMASK  # what open() gives a new file (mkstemp's own 0o600 would hide reports)
DIR_MODE = 0o777 & ~_UMASK  # what mkdir gives a new folder (mkdtemp's own 0o700 would hide models)

NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    """True for an error that means the disk (or the quota) is full: an OSError with ENOSPC/EDQUOT, or a
    library's own error carrying the OS message (safetensors, ONNX and PyArrow wrap it)."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        return True
    text = str(exc).lower()
    return any(os.strerror(code).lower() in text for code in NO_SPACE_ERRNOS)


def apply_modes(root: str | Path) -> None:
    """Give a written file, or a folder and everything in it, segopt's modes (FILE_MODE / DIR_MODE)."""
    root = Path(root)
    if not root.is_dir():
        os.chmod(root, FILE_MODE)
        return
    os.chmod(root, DIR_MODE)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), DIR_MODE)
        for name in files:
            os.chmod(os.path.join(folder, name), FILE_MODE)


# room the temp names below add to a target's name: "." + name + "." + 8 random chars + ".tmp" (+ ".old")
_TEMP_NAME_EXTRA = 18


def check_target_path(path: str | Path, folder: bool = False) -> None:
    """OptionError when `path` cannot be written here: a name or the whole path longer than the file system
    allows (with room for the temp name an atomic write uses), or a folder that is a file."""
    from segopt_core.errors import OptionError

    path = Path(path).expanduser()
    base = next((p for p in (path, *path.parents) if os.path.exists(p)), Path("/"))  # never raises
    name_max, path_max = _limits(base if os.path.isdir(base) else base.parent)
    for part in path.parts:
        if len(os.fsencode(part)) + _TEMP_NAME_EXTRA > name_max:
            raise OptionError(
                f"{_short(path)}: the name {_short(part, 40)} is {len(os.fsencode(part))} bytes; "
                f"names here may have {name_max - _TEMP_NAME_EXTRA} at most"
            )
    length = len(os.fsencode(os.path.abspath(path))) + _TEMP_NAME_EXTRA
    if length >= path_max:
        raise OptionError(
            f"{_short(path)}: the path is {length - _TEMP_NAME_EXTRA} bytes long (absolute); "
            f"paths here may have {path_max - _TEMP_NAME_EXTRA - 1} at most"
        )
    if folder and os.path.exists(path) and not os.path.isdir(path):
        raise OptionError(f"{path}: a file is there, not a folder; pick another folder")


def _short(text: object, keep: int = 60) -> str:
    """A path for a one-line message: whole when short, else its start and '...'."""
    text = str(text)
    return text if len(text) <= keep else text[:keep] + "..."


def _limits(folder: Path) -> tuple[int, int]:
    """(longest name, longest path) the file system holding `folder` allows."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def _name_too_long(path: Path, exc: OSError) -> OSError:
    """The error of a target whose temp name is too long, naming the target, not the internal temp path."""
    if exc.errno != errno.ENAMETOOLONG:
        return exc
    return OSError(errno.ENAMETOOLONG, "file name too long (use a shorter name or folder)", str(path))


def make_parents(path: Path) -> list[Path]:
    """Create the folders missing above `path`; returns them (outermost first) for a failure to remove."""
    missing = [p for p in reversed(path.parents) if not p.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        remove_empty(missing)
        raise
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed write created, innermost first, where they are still empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except FileNotFoundError:  # never created (mkdir failed before it) or removed already
            continue
        except OSError:  # not empty: someone else wrote there meanwhile
            return


def atomic_file(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temp path beside `path`, then rename it into place; nothing is left on failure
    (neither the temp file nor the folders created for it)."""
    path = Path(path)
    made: list[Path] = []
    try:
        made = make_parents(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        remove_empty(made)
        raise _name_too_long(path, exc) from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        remove_empty(made)
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
    made: list[Path] = []
    try:
        made = make_parents(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        remove_empty(made)
        raise _name_too_long(path, exc) from None
    old = tmp.with_suffix(".old")
    done = False
    try:
        write(tmp)
        apply_modes(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        if not done:
            remove_empty(made)
    return path
