"""The logger a task writes to: Prefect's run logger inside a run, a plain logger outside (`task.fn()`)."""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.exceptions import MissingContextError


def run_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger in a flow or task run; `segopt.<name>` when called outside one."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(f"segopt.{name}")
