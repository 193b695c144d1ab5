"""Recovery from killed runs: a dead benchmark's Prefect slot is reclaimed, finished work is not redone."""

from __future__ import annotations

import time


def _hold_slot(name: str, slots: int = 1) -> None:
    """What a run killed while benchmarking leaves behind: the limit's slot taken, no process holding it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=slots))


def _active_slots(name: str) -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


def test_a_dead_holders_slot_is_reclaimed_and_the_benchmark_proceeds(prefect_harness, tmp_path, monkeypatch):
    from prefect import flow

    import tasks.benchmark as bench
    from segopt_core.variants import tiny_cell

    monkeypatch.setenv("SEGOPT_LOCK_DIR", str(tmp_path / "locks"))
    measured = []
    monkeypatch.setattr(bench, "benchmark_record_isolated", lambda r, *a: measured.append(r) or {**r, "m": 1})
    name = "segopt-test-stale-slot"
    _hold_slot(name)

    @flow
    def rerun() -> dict:
        record = {"variant": "torch-fp32", "options": {"device": "cpu"}}
        return bench.benchmark_variant(record, tiny_cell("ade20k", 64), [1], 1, 1, name)

    start = time.monotonic()
    assert rerun()["m"] == 1
    assert time.monotonic() - start < 60 and len(measured) == 1
    assert _active_slots(name) == 0  # released after the measurement


def test_reclaim_leaves_a_free_limit_alone(prefect_harness):
    import logging

    from tasks.benchmark import reclaim_stale_slots

    name = "segopt-test-free-slot"
    _hold_slot(name, slots=0)
    assert reclaim_stale_slots(name, logging.getLogger("test")) == 0
