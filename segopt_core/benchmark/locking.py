"""One benchmark per device at a time: Prefect concurrency-key names and the per-device file lock."""

from __future__ import annotations

import contextlib
import os
import re
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
    """Hold the exclusive benchmark lock of `device` (`segopt_core.lifecycle.file_lock`) while the block runs.

    Yields the lock file. Waits for a current holder (forever when timeout_s is None); raises DeviceBusy
    after timeout_s. The kernel releases the lock if its holder dies. The holder writes its pid into the
    lock file; `on_wait(message)` is called once when the lock is busy, naming that pid, so a waiting
    benchmark can say whom it waits for.
    """
    from segopt_core.lifecycle import LockTimeout, file_lock

    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{device_concurrency_key(device)}.lock"

    def say_busy() -> None:
        if on_wait is not None:
            on_wait(f"waiting for the device: another benchmark (pid {lock_holder(path)}) holds {path}")

    try:
        with file_lock(path, timeout_s, poll_s, on_busy=say_busy) as fd:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield path
    except LockTimeout:
        raise DeviceBusy(
            f"{path}: another benchmark (pid {lock_holder(path)}) is using this device; wait for it to "
            f"finish or raise the timeout ({timeout_s} s)"
        ) from None


def lock_holder(path: str | Path) -> str:
    """The pid written by a lock file's current (or last) holder, or 'unknown'."""
    try:
        return Path(path).read_text().strip() or "unknown"
    except OSError:
        return "unknown"
