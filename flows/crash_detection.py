"""Flow runs whose process died (SIGKILL, the OOM killer, a lost machine) end Crashed, not Running forever.

Prefect's own mechanism (docs: "How to detect and respond to zombie flows"): with
PREFECT_FLOWS_HEARTBEAT_FREQUENCY set, a flow run emits a `prefect.flow-run.heartbeat` event that often, and
a proactive automation on the API server marks a flow run Crashed when neither a heartbeat nor a final
state followed its last heartbeat within `CRASH_AFTER_S`. A persistent server evaluates it continuously, so
a deployment run whose worker was killed is Crashed about `CRASH_AFTER_S` later. An ad hoc run's temporary
server dies with the run, so the window of a killed ad hoc run ends with no server to see it; the next
run's temporary server (same database) evaluates it when it starts, provided it has not swept the expired
window away first: Prefect sweeps windows that ended more than PREFECT_SERVER_EVENTS_EXPIRED_BUCKET_BUFFER
ago (60 s) before its first evaluation, so the CLI gives its temporary servers a week (`CLI_ENV`).

The heartbeat is on in every segopt process (`CLI_ENV`: the CLI sets it before Prefect is imported;
prefect.yaml gives PREFECT_FLOWS_HEARTBEAT_FREQUENCY to deployment runs); every segopt flow creates the
automation when the API it talks to lacks it (`ensure_crash_detection`, a flow `on_running` hook). Nothing
here imports Prefect at import time, so the CLI can read `CLI_ENV` before Prefect reads its settings.
"""

from __future__ import annotations

import logging
from typing import Any

HEARTBEAT_S = 30  # Prefect's minimum interval
CRASH_AFTER_S = 120  # four missed heartbeats: a busy machine delays one, never four
HEARTBEAT_ENV = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S)}
# the CLI's processes and the temporary servers they start: heartbeats, and expired windows kept a week
CLI_ENV = HEARTBEAT_ENV | {"PREFECT_SERVER_EVENTS_EXPIRED_BUCKET_BUFFER": "P7D"}  # ISO 8601: a week
AUTOMATION = "segopt: mark flow runs without heartbeats crashed"
log = logging.getLogger(__name__)


def crash_automation(crash_after_s: float = CRASH_AFTER_S) -> Any:
    """The automation: after a flow run's heartbeat, expect another one or a final state within the
    window; when none comes, change that flow run's state to Crashed (a final state is never changed)."""
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    final = {f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")}
    trigger = EventTrigger(
        after={"prefect.flow-run.heartbeat"},
        expect={"prefect.flow-run.heartbeat", *final},
        match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=crash_after_s),
    )
    message = f"no heartbeat for {crash_after_s:g} s: the flow run's process is gone (segopt)"
    action = ChangeFlowRunState(state=StateType.CRASHED, message=message)
    return Automation(name=AUTOMATION, description=message, trigger=trigger, actions=[action])


def ensure_crash_detection(crash_after_s: float = CRASH_AFTER_S) -> bool:
    """Create the automation on the current Prefect API unless one of that name exists; True if created."""
    from prefect.automations import Automation

    try:
        Automation.read(name=AUTOMATION)
        return False
    except ValueError:  # "Automation with name ... not found"
        crash_automation(crash_after_s).create()
        return True


def crash_detection_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """`on_running` hook of every segopt flow: make sure the API marks dead runs crashed. A failure here
    never fails the run (the run just lacks the safety net), so it is logged and dropped."""
    try:
        if ensure_crash_detection():
            log.info(
                "created the Prefect automation %r (flow runs without heartbeats end Crashed)", AUTOMATION
            )
    except Exception as exc:  # recovery: an API without automations (or events) still runs the flow
        log.warning("crash detection not set up on this Prefect API: %s: %s", type(exc).__name__, exc)
