"""Where mapped tasks run: a thread pool (default) or a Dask cluster via prefect-dask; and future settling."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from prefect import allow_failure
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.parameters import TASK_RUNNERS
from segopt_core.errors import OptionError
from segopt_core.settings import load_settings

Item = TypeVar("Item")


def make_task_runner(
    kind: str = "threads", dask_address: str | None = None, workers: int | None = None
) -> TaskRunner:
    """`threads`: a local thread pool; `dask`: the cluster at `dask_address`, or a local one on loopback."""
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind != "dask":
        raise OptionError(f"unknown task runner {kind!r}; valid: {', '.join(TASK_RUNNERS)}")
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    # one in-process worker (no second process importing torch), real TCP comms on loopback only. No Bokeh
    # dashboard, but the scheduler's HTTP server still answers on 127.0.0.1:8787 (a free port when taken):
    # /health, /metrics (Prometheus) and the plain /info pages (docs/orchestration.md says so).
    cluster = {"n_workers": 1, "threads_per_worker": workers or 2, "processes": False}
    cluster |= {"protocol": "tcp", "host": "127.0.0.1", "dashboard_address": None}
    return DaskTaskRunner(cluster_kwargs=cluster)


def runner_from_env() -> TaskRunner:
    """The task runner of SegoptSettings: SEGOPT_TASK_RUNNER / SEGOPT_DASK_ADDRESS (deployments set these)."""
    settings = load_settings()
    return make_task_runner(settings.task_runner, settings.dask_address)


def _describe(state: Any) -> str:
    error = state.result(raise_on_failure=False)
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return state.message or f"task ended in state {state.name}"


def settle(futures: Iterable[PrefectFuture]) -> list[tuple[Any, str | None]]:
    """Wait for every future; (result, None) when it completed, (None, error text) when it did not."""
    outcomes = []
    for future in futures:
        future.wait()
        state = future.state
        outcomes.append((future.result(), None) if state.is_completed() else (None, _describe(state)))
    return outcomes


def queued_per_key(
    submit: Callable[[Item, list], PrefectFuture], items: Sequence[Item], key: Callable[[Item], str]
) -> list[PrefectFuture]:
    """Submit one task per item so that items sharing a key run one after another.

    `submit(item, wait_for)` must pass `wait_for` to `Task.submit`. A queued task stays Pending in the
    Prefect UI until the one before it on its key (e.g. its device) has ended, instead of showing as
    Running while it waits for the device; it runs even when that one failed.
    """
    last: dict[str, PrefectFuture] = {}
    futures = []
    for item in items:
        before = last.get(key(item))
        future = submit(item, [allow_failure(before)] if before is not None else [])
        last[key(item)] = future
        futures.append(future)
    return futures
