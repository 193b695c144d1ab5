"""Recovery from killed runs: a dead benchmark's Prefect slot is reclaimed, finished work is not redone."""

from __future__ import annotations

import time
from dataclasses import replace

from segopt_core.pipeline.record import VariantRecord


def _record(**fields) -> VariantRecord:
    """A torch-fp32 record of a made-up checkpoint."""
    identity = {"checkpoint": "a.safetensors", "checkpoint_sha256": "abc", "cell": "tiny-64-ade20k"}
    return VariantRecord(**identity, backend="torch", precision="fp32", variant="torch-fp32", **fields)


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
    monkeypatch.setattr(
        bench,
        "benchmark_record_isolated",
        lambda r, *a: measured.append(r) or replace(r, bench_rows=[{"m": 1}]),
    )
    name = "segopt-test-stale-slot"
    _hold_slot(name)

    @flow
    def rerun() -> VariantRecord:
        record = _record(options={"device": "cpu"})
        return bench.benchmark_variant(record, tiny_cell("ade20k", 64), [1], 1, 1, name)

    start = time.monotonic()
    assert rerun().bench_rows == [{"m": 1}]
    assert time.monotonic() - start < 60 and len(measured) == 1
    assert _active_slots(name) == 0  # released after the measurement


def test_reclaim_leaves_a_free_limit_alone(prefect_harness):
    import logging

    from tasks.benchmark import reclaim_stale_slots

    name = "segopt-test-free-slot"
    _hold_slot(name, slots=0)
    assert reclaim_stale_slots(name, logging.getLogger("test")) == 0


def test_a_finished_benchmark_is_cached_at_once_and_reused(prefect_harness, tmp_path, monkeypatch):
    """Killed after this benchmark finished (before evaluation): the re-run does not measure it again."""
    from prefect import flow

    import tasks.benchmark as bench
    from segopt_core.variants import tiny_cell

    monkeypatch.setenv("SEGOPT_LOCK_DIR", str(tmp_path / "locks"))
    measured = []
    monkeypatch.setattr(
        bench,
        "benchmark_record_isolated",
        lambda r, *a: measured.append(1) or replace(r, bench_rows=[{"x": 1}]),
    )
    artifact = tmp_path / "artifacts" / "a"
    artifact.mkdir(parents=True)
    record = _record(status="ok", cache_key="k1", artifact=str(artifact))
    cache = str(tmp_path / "results")

    @flow
    def run(record: VariantRecord) -> VariantRecord:
        return bench.benchmark_variant(
            record, tiny_cell("ade20k", 64), [1], 1, 1, "segopt-test-resume", cache
        )

    bench.ensure_device_limit.fn("segopt-test-resume")
    first = run(record)
    second = run(record)
    assert len(measured) == 1 and second.bench_rows == first.bench_rows and second.reused
    rebuilt = tmp_path / "artifacts" / "b"
    rebuilt.mkdir()
    run(replace(record, artifact=str(rebuilt)))  # measured on another artifact: not reused
    assert len(measured) == 2


def test_temp_folders_of_dead_builds_are_cleaned_live_ones_kept(tmp_path):
    import subprocess
    import sys

    from segopt_core.backends import ArtifactStore
    from segopt_core.lifecycle import owner_tag

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host = owner_tag().split("-")[0]
    folder = tmp_path / "abc123"
    gone = folder / f".tmp-torch-fp32-{host}-{dead.stdout.strip()}-0123abcd"
    live = folder / f".tmp-onnxruntime-fp32-{owner_tag()}-89abcdef"
    for path in (gone, live):
        path.mkdir(parents=True)
    assert ArtifactStore(tmp_path).clean_temp() == 1
    assert not gone.exists() and live.exists()
