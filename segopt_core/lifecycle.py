"""Process lifecycle: child processes never outlive their parent, and SIGTERM/SIGINT stop a run in seconds.

`die_with_parent()` (Linux: prctl PR_SET_PDEATHSIG) makes the kernel send SIGTERM to a child when the
process (precisely: the thread) that started it dies, even by SIGKILL; `tied_command` applies it to a
command line before exec. `install_stop_handlers` replaces the default SIGTERM/SIGINT behaviour of a
long run with: one line on stderr, the registered clean-ups (bounded in time), every child process
terminated, exit 128 + signal number.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# Run by `python -c` before the real command: ask for SIGTERM when the parent dies, give up if it already
# died (the race between fork and prctl), then exec the command (the setting survives execve).
_TIED = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)

_cleanups: list[Callable[[], object]] = []
_stopping = threading.Event()


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux; elsewhere a no-op); exit if it is gone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Exit this process within `poll_s` of its parent's death, whichever thread started it.

    For pool workers started from a worker thread, which `die_with_parent` cannot cover: the kernel's
    death signal follows the starting thread, so it would also fire when that thread ends.
    """
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="segopt-parent-watch", daemon=True).start()


def tied_command(args: Sequence[str]) -> list[str]:
    """`[python, ...]` rewritten so the started process gets SIGTERM when this one dies (Linux only).

    Tie only processes started from the main thread: the kernel's "parent" is the starting thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return list(args)
    return [sys.executable, "-c", _TIED, str(os.getpid()), *args[1:]]


def on_stop(cleanup: Callable[[], object]) -> None:
    """Run `cleanup` (in a thread, for at most a few seconds) when a stop signal arrives."""
    if cleanup not in _cleanups:
        _cleanups.append(cleanup)


def install_stop_handlers(what: str = "the run", cleanup_timeout_s: float = 3.0) -> None:
    """SIGTERM/SIGINT end this process within seconds: one line, clean-ups, children stopped, exit 128+N.

    A second signal while stopping exits at once. Only call from the main thread (Python's rule).
    """

    def handler(signum: int, frame: object) -> None:
        if _stopping.is_set():
            os._exit(128 + signum)
        _stopping.set()
        name = signal.Signals(signum).name
        sys.stderr.write(f"segopt: {name}: stopping {what}; finished work is kept, a re-run resumes\n")
        sys.stderr.flush()
        _silence()  # threads still running fail against stopped children: their tracebacks are noise now
        stop_now(signum, cleanup_timeout_s)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def stop_now(signum: int, cleanup_timeout_s: float = 3.0) -> None:
    """Run the clean-ups (bounded), terminate every child process, and exit 128 + signum."""
    worker = threading.Thread(target=_run_cleanups, daemon=True)
    worker.start()
    worker.join(cleanup_timeout_s)
    terminate_children()
    os._exit(128 + signum)


def _silence() -> None:
    import logging

    logging.disable(logging.CRITICAL)
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)


def _run_cleanups() -> None:
    for cleanup in list(_cleanups):
        with contextlib.suppress(Exception):
            cleanup()


def terminate_children(timeout_s: float = 3.0) -> int:
    """SIGTERM every descendant process, SIGKILL those still alive after timeout_s; returns how many."""
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return 0
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=timeout_s)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    return len(children)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on `path` (fcntl.flock; a folder, or a file created if missing) while the block
    runs; other processes wait. The kernel drops it when this process dies: no dead holder blocks."""
    import fcntl

    if not os.path.isdir(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_RDONLY if os.path.isdir(path) else os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
