"""Prefect tasks: one benchmark at a time per device (global concurrency limit), and the limit itself."""

from __future__ import annotations

from prefect import task
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

from segopt_core.benchmark import device_lock
from segopt_core.pipeline.stages import benchmark_record_isolated
from segopt_core.variants import VariantSpec


@task(name="ensure-device-limit", task_run_name="ensure-device-limit {name}")
def ensure_device_limit(name: str) -> str:
    """Create (or reset to 1 slot) the global concurrency limit; Prefect never blocks on a missing one."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    return name


@task(name="benchmark-variant", task_run_name="benchmark {record[variant]} · {spec.name}")
def benchmark_variant(
    record: dict, spec: VariantSpec, batch_sizes: list[int], warmup: int, iters: int, device_key: str
) -> dict:
    """The record with benchmark rows; holds the device's slot so no other benchmark runs meanwhile.

    The Prefect limit covers every run on one Prefect server (Dask workers included); the file lock also
    covers runs on this machine that use different servers (e.g. two ad hoc runs in ephemeral mode).
    The measurement runs in its own process (see `benchmark_record_isolated`).
    """
    device = (record.get("options") or {}).get("device", "cpu")
    with concurrency(device_key, occupy=1, strict=True), device_lock(device):
        return benchmark_record_isolated(record, spec, batch_sizes, warmup, iters)
