"""One benchmark per device at a time: Prefect concurrency-key names and a file lock for the CLI path."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


class DeviceBusy(RuntimeError):
    """Another benchmark holds the device lock."""


def device_concurrency_key(device: str) -> str:
    """Name of the per-device concurrency limit, e.g. 'segopt-benchmark-cpu', 'segopt-benchmark-cuda-0'."""
    match = _DEVICE.match(device.strip().lower())
    if match is None:
        raise ValueError(f"device {device!r} is not 'cpu', 'cuda' or 'cuda:N'")
    kind, index = match.groups()
    if kind == "cpu":
        return "segopt-benchmark-cpu"
    return f"segopt-benchmark-cuda-{index or 0}"


def default_lock_dir() -> Path:
    """Folder of the device lock files: SegoptSettings.lock_dir ($SEGOPT_LOCK_DIR) or <tmp>/segopt-locks."""
    from segopt_core.settings import load_settings

    return load_settings().device_lock_dir


@contextlib.contextmanager
def device_lock(
    device: str,
    lock_dir: str | Path | None = None,
    timeout_s: float | None = None,
    poll_s: float = 0.1,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold the exclusive benchmark lock of `device` (fcntl.flock) while the block runs; yields the lock file.

    Waits for a current holder (forever when timeout_s is None); raises DeviceBusy after timeout_s. The
    lock is per open file, so it excludes other processes and other holders in this process alike; the
    kernel releases it if the holder dies. `on_wait(message)` is called once when the lock is busy, with
    the holder's pid (from the lock file), so a waiting benchmark can say whom it waits for.
    """
    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{device_concurrency_key(device)}.lock"
    with open(path, "a+") as handle:
        _acquire(handle, path, timeout_s, poll_s, on_wait)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_holder(path: str | Path) -> str:
    """The pid written in a lock file by its current (or last) holder, or 'unknown'."""
    try:
        return Path(path).read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def _acquire(
    handle, path: Path, timeout_s: float | None, poll_s: float, on_wait: Callable[[str], None] | None = None
) -> None:
    """Take the flock on handle, polling until timeout_s (None: wait forever)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if on_wait is not None:
                on_wait(f"waiting for the device: another benchmark (pid {lock_holder(path)}) holds {path}")
                on_wait = None
            if deadline is not None and time.monotonic() >= deadline:
                holder = lock_holder(path)
                raise DeviceBusy(
                    f"{path}: another benchmark (pid {holder}) is using this device; wait for it to finish "
                    f"or raise the timeout ({timeout_s} s)"
                ) from None
            time.sleep(poll_s)
