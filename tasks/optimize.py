"""Prefect task: build (or reuse) one variant's artifact."""

from __future__ import annotations

from prefect import task

from segopt_core.pipeline.jobs import VariantJob
from segopt_core.pipeline.record import VariantRecord
from segopt_core.pipeline.stages import EvalSource, build_job


@task(name="build-variant", task_run_name="build {job.options.slug} · {job.checkpoint.spec.name}")
def build_variant(job: VariantJob, store_root: str, calib: EvalSource | None = None) -> VariantRecord:
    """The job's record with its artifact path ('ok') or the reason it cannot run here ('skipped')."""
    return build_job(job, store_root, calib)
