"""Child processes die with their parent; SIGTERM/SIGINT stop a process in seconds with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="prctl PR_SET_PDEATHSIG is Linux"
)

# A parent that starts a tied child (sleeping 60 s), prints the child's pid, then waits.
PARENT = """
import subprocess, sys, time
from segopt_core.lifecycle import tied_command, install_stop_handlers
install_stop_handlers("the test run")
child = subprocess.Popen(tied_command([sys.executable, "-c", "import time; time.sleep(60)"]))
print(child.pid, flush=True)
time.sleep(60)
"""


def _start_parent() -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    child_pid = int(parent.stdout.readline())
    time.sleep(0.3)  # the tied child has exec'd its command
    return parent, child_pid


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_a_tied_child_dies_when_its_parent_is_killed():
    parent, child = _start_parent()
    assert psutil.Process(child).cmdline()[-1].endswith("time.sleep(60)")
    parent.kill()  # SIGKILL: no handler, no atexit runs
    parent.wait()
    assert _gone_within(child, 5)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_process_and_its_children_with_one_line(sig):
    parent, child = _start_parent()
    start = time.monotonic()
    parent.send_signal(sig)
    _, err = parent.communicate(timeout=15)
    assert parent.returncode == 128 + sig and time.monotonic() - start < 10
    name = signal.Signals(sig).name
    assert err.strip() == f"segopt: {name}: stopping the test run; finished work is kept, a re-run resumes"
    assert _gone_within(child, 5)


def test_file_lock_times_out_says_it_waits_and_is_free_once_released(tmp_path):
    from segopt_core.lifecycle import LockTimeout, file_lock

    path, said = tmp_path / "x.lock", []
    with file_lock(path):
        with pytest.raises(LockTimeout):
            with file_lock(path, timeout_s=0.2, poll_s=0.05, on_busy=lambda: said.append(1)):
                pass
    assert said == [1]
    with file_lock(path, timeout_s=0.2):  # released on exit
        pass
    with file_lock(tmp_path):  # a folder: no lock file left behind
        assert sorted(p.name for p in tmp_path.iterdir()) == ["x.lock"]
