"""Prefect tasks: one benchmark at a time per device (global concurrency limit), and the limit itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect import get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import concurrency

from segopt_core.benchmark import device_lock
from segopt_core.pipeline.record import VariantRecord
from segopt_core.pipeline.stages import benchmark_record_isolated, recall_stage, remember
from segopt_core.variants import CellSpec

# A holder renews its lease while it measures; a dead holder's lease expires after this long on a
# persistent server (its repossessor frees the slot). Ephemeral servers keep leases in memory and lose them
# with the process, hence `reclaim_stale_slots`.
LEASE_S = 60.0
WAIT_LOG_S = 30.0  # how often a benchmark still waiting for the Prefect slot says so


@task(name="ensure-device-limit", task_run_name="ensure-device-limit {name}")
def ensure_device_limit(name: str) -> str:
    """Create (or reset to 1 slot) the global concurrency limit; Prefect never blocks on a missing one."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    return name


def reclaim_stale_slots(name: str, log) -> int:
    """Free the limit's slots when they are held although no process on this machine benchmarks.

    Call only while holding the device's file lock: every benchmark takes that lock before the slot, and
    the kernel releases it when its holder dies, so a slot still held now was left by a killed run (the
    ephemeral server that granted it died with it, and with it the lease that would have expired). Returns
    the number of slots freed.
    """
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
        if limit.active_slots <= 0:
            return 0
        log.warning(
            f"{name}: {limit.active_slots} slot(s) held by no live benchmark on this machine "
            f"(a killed run left them); reclaiming"
        )
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))
        return limit.active_slots


_held: set[str] = set()  # limits whose slot a benchmark of this process holds now


def release_held_slots() -> None:
    """On SIGTERM/SIGINT: free the slots this process holds (it holds their file locks, so it is the only
    live holder on this machine) instead of leaving them to the next run's reclaim."""
    import logging

    for key in list(_held):
        reclaim_stale_slots(key, logging.getLogger(__name__))


@contextlib.contextmanager
def device_slot(device: str, key: str, log) -> Iterator[None]:
    """Hold the device's file lock, then its Prefect slot (reclaiming a dead run's), saying when it waits."""
    from prefect.concurrency._asyncio import AcquireConcurrencySlotTimeoutError

    with device_lock(device, on_wait=log.info), contextlib.ExitStack() as stack:
        reclaim_stale_slots(key, log)
        while True:
            try:
                stack.enter_context(
                    concurrency(key, strict=True, lease_duration=LEASE_S, timeout_seconds=WAIT_LOG_S)
                )
                break
            except AcquireConcurrencySlotTimeoutError:
                log.info(f"waiting for the device: slot {key} is held by a benchmark on another machine")
        _held.add(key)
        try:
            yield
        finally:
            _held.discard(key)


@task(name="benchmark-variant", task_run_name="benchmark {record.variant} · {spec.name}")
def benchmark_variant(
    record: VariantRecord,
    spec: CellSpec,
    batch_sizes: list[int],
    warmup: int,
    iters: int,
    device_key: str,
    cache_root: str | None = None,
) -> VariantRecord:
    """The record with benchmark rows; holds the device's slot so no other benchmark runs meanwhile.

    The file lock covers every run on this machine (whatever Prefect API it uses) and is taken first; the
    Prefect limit covers runs on one Prefect server (Dask workers included). A slot left by a killed run is
    reclaimed (`reclaim_stale_slots`). The measurement runs in its own process (`benchmark_record_isolated`).
    With `cache_root`, a finished measurement is stored at once and reused by a re-run (resume).
    """
    log = get_run_logger()
    if cache_root and (done := recall_stage(record, cache_root, "benchmark")) is not None:
        log.info(f"{record.variant}: reusing the benchmark an earlier run finished")
        return done
    with device_slot(record.device, device_key, log):
        log.info(f"benchmarking {record.variant} on {record.device} (other benchmarks wait until it ends)")
        result = benchmark_record_isolated(record, spec, batch_sizes, warmup, iters)
    return remember(result, cache_root, stage="benchmark") if cache_root else result
