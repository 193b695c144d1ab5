"""Process lifecycle: child processes never outlive their parent, SIGTERM/SIGINT stop a run in seconds, one
file lock, and whose temp folder is whose (`owner_tag`, `abandoned`).

`die_with_parent()` (Linux: prctl PR_SET_PDEATHSIG) makes the kernel send SIGTERM to a child when the
process (precisely: the thread) that started it dies, even by SIGKILL; `tied_command` applies it to a
command line before exec. `install_stop_handlers` replaces the default SIGTERM/SIGINT behaviour of a
long run with: one line on stderr, the registered clean-ups (bounded in time), every child process
terminated, exit 128 + signal number.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

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


def start_measuring_process(parent_pid: int, cpus: Sequence[int]) -> None:
    """Initializer of the measuring process: exit with the parent, run on `cpus` (its main thread's set).

    A process inherits the CPU set of the thread that starts it, and runtimes may pin their threads to
    cores (OpenVINO's CPU plugin can, on Linux): a measuring process started from such a thread would run
    on fewer cores than the run was given.
    """
    exit_with_parent(parent_pid)
    with contextlib.suppress(AttributeError, OSError):  # no sched_setaffinity off Linux
        os.sched_setaffinity(0, cpus)


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


class LockTimeout(TimeoutError):
    """`file_lock` waited `timeout_s` and another holder still had the lock."""


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike[str],
    timeout_s: float | None = None,
    poll_s: float = 0.1,
    on_busy: Callable[[], None] | None = None,
) -> Iterator[int]:
    """Hold an exclusive lock on `path` (fcntl.flock; a folder, or a file created if missing) while the block
    runs, and yield its descriptor. The kernel drops it when this process dies: no dead holder blocks.

    The lock is on an open file of its own, so it excludes other processes and other holders in this one
    alike. Waits for the holder forever, or raises LockTimeout after `timeout_s`; `on_busy()` is called
    once, before waiting, when another holder has it. segopt's one file lock (device, samples, server start,
    compiled packages, MLflow's SQLite).
    """
    if not os.path.isdir(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_RDONLY if os.path.isdir(path) else os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, timeout_s, poll_s, on_busy)
        yield fd
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _acquire(fd: int, timeout_s: float | None, poll_s: float, on_busy: Callable[[], None] | None) -> None:
    """flock(LOCK_EX) on fd: at once, else (after on_busy) blocking or polling until timeout_s."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        if on_busy is not None:
            on_busy()
    if timeout_s is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(f"{timeout_s} s") from None
            time.sleep(poll_s)


def host_tag() -> str:
    """A short stable hash of this machine's name: what temp folders on shared storage are keyed by."""
    import hashlib
    import platform

    return hashlib.sha256(platform.node().encode()).hexdigest()[:6]


def owner_tag() -> str:
    """'<host hash>-<pid>' of this process: lets a clean-up tell a dead writer's temp folder from a live one
    (and another machine's, which it cannot check, from this one's)."""
    return f"{host_tag()}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists on this machine (also one owned by another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


# The owner tag at the end of a temp folder's name, e.g. `.tmp-<name>-3fa2c1-12345[-<8 hex>]`.
_OWNED = re.compile(r"-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)(?:-[0-9a-f]{8})?$")


def abandoned(folder: Path, older_than_s: float = 86400.0) -> bool:
    """True when nobody can still be writing a temp folder named with `owner_tag()`: its process ran on this
    machine and is gone, or it is older than `older_than_s` (another machine's, which cannot be checked, one
    without a tag, or one whose pid was reused). A folder removed meanwhile is not (someone cleaned it)."""
    owner = _OWNED.search(folder.name)
    if owner is not None and owner["host"] == host_tag() and not pid_alive(int(owner["pid"])):
        return True
    try:
        return time.time() - folder.stat().st_mtime > older_than_s
    except OSError:
        return False
