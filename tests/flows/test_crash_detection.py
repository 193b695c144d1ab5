"""A flow run whose process is SIGKILLed ends Crashed, by Prefect's own heartbeats and automation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


def test_segopt_flows_set_up_the_crash_automation_once(prefect_harness):
    from prefect.automations import Automation

    from flows.crash_detection import AUTOMATION, CRASH_AFTER_S, ensure_crash_detection

    ensure_crash_detection()  # created here or by an earlier flow's on_running hook
    assert ensure_crash_detection() is False  # never a second one
    automation = Automation.read(name=AUTOMATION)
    trigger, (action,) = automation.trigger, automation.actions
    assert trigger.posture == "Proactive" and trigger.within.total_seconds() == CRASH_AFTER_S
    assert trigger.after == {"prefect.flow-run.heartbeat"} and action.state.value == "CRASHED"


@pytest.mark.slow
def test_a_killed_flow_run_is_marked_crashed(prefect_harness, tmp_path):
    """SIGKILL leaves no chance to report: the missing heartbeats make the server mark the run Crashed."""
    from prefect.settings import get_current_settings

    from flows.crash_detection import HEARTBEAT_ENV, crash_automation

    quick = crash_automation(crash_after_s=10)  # segopt's window is CRASH_AFTER_S: too long for a test
    quick.name = "segopt test: crash quickly"
    quick.create()
    script = tmp_path / "sleeper.py"
    script.write_text(
        "import time\nfrom prefect import flow\n\n"
        "@flow(name='segopt-test-sleeper')\ndef sleeper():\n    time.sleep(600)\n\nsleeper()\n"
    )
    env = {**os.environ, **HEARTBEAT_ENV, "PREFECT_API_URL": get_current_settings().api.url}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        run = _wait_for_run(lambda run: run.state.is_running(), 120)
        time.sleep(8)  # its first heartbeat, sent as the run starts, reaches the server (the next is 30 s on)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        run = _wait_for_run(lambda run: run.state.type.value == "CRASHED", 90, run.id)
    finally:
        if proc.poll() is None:
            proc.kill()
        quick.delete()  # it would crash the live runs of later tests that send heartbeats
    assert run.state.type.value == "CRASHED" and "heartbeat" in (run.state.message or "")


def _wait_for_run(done, timeout_s: float, run_id=None):
    """The sleeper's flow run once `done(run)` holds (polling the API), else fail after timeout_s."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            if run_id is not None:
                runs = [client.read_flow_run(run_id)]
            else:
                runs = client.read_flow_runs(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=["segopt-test-sleeper"]))
                )
        for run in runs:
            if run.state is not None and done(run):
                return run
        time.sleep(1)
    pytest.fail(f"no flow run reached the expected state within {timeout_s} s: {[r.state for r in runs]}")


def test_the_cli_environment_is_valid_prefect_settings():
    """CLI_ENV reaches Prefect's settings (and the temporary servers it starts) as the intended values."""
    from flows.crash_detection import CLI_ENV, HEARTBEAT_S

    code = ("from prefect.settings import get_current_settings as s; c = s()\n"
            "print(c.flows.heartbeat_frequency, c.server.events.expired_bucket_buffer.days)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **CLI_ENV}, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(HEARTBEAT_S), "7"]
