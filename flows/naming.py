"""One name per flow run: `<UTC time>-<flow>-<flow-run id prefix>`, shared by the Prefect flow run, the
report folder (`reports/<run-id>/`) and the MLflow parent run. Light on purpose: every flow imports it."""

from __future__ import annotations

import datetime as dt
import re

from prefect.runtime import flow_run

RUN_ID = re.compile(r"\d{8}T\d{6}Z-[a-z0-9-]+-[0-9a-z]{1,8}")


def new_run_id(flow_name: str | None = None) -> str:
    """Run id: UTC time + flow name + the Prefect flow-run id prefix (unique per run, sortable).

    Also every flow's `flow_run_name` (no random "blue-tarsier" names), so one id names the run everywhere.
    """
    suffix = (flow_run.get_id() or "local")[:8]
    flow_name = flow_name or flow_run.get_flow_name() or "flow"
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{flow_name}-{suffix}"


def run_options() -> dict:
    """What every segopt `@flow` takes: runs named by their run id, and Prefect's crash detection."""
    from flows.crash_detection import crash_detection_hook

    return {"flow_run_name": new_run_id, "on_running": [crash_detection_hook]}


def current_run_id(flow_name: str) -> str:
    """The flow run's name when `flow_run_name=new_run_id` set it, else a new run id."""
    name = flow_run.get_name() or ""
    return name if RUN_ID.fullmatch(name) else new_run_id(flow_name)
