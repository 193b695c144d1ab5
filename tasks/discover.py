"""Prefect tasks: find checkpoints, plan the variant jobs, split them into cached and to-do."""

from __future__ import annotations

from dataclasses import replace

from prefect import get_run_logger, task

from segopt_core.pipeline.cache import ResultCache
from segopt_core.pipeline.discovery import find_checkpoints
from segopt_core.pipeline.jobs import CheckpointRef, VariantJob
from segopt_core.pipeline.record import VariantRecord


@task(name="discover-checkpoints", task_run_name="discover-checkpoints")
def discover_checkpoints(
    paths: list[str], cells: list[str] | None = None
) -> tuple[list[CheckpointRef], list[dict[str, str]]]:
    """Accepted checkpoints matched to cells (filtered by `cells`) and rejected files with reasons; a
    checkpoint whose name or config disagrees with its weights is logged as a warning (and noted)."""
    checkpoints, rejected = find_checkpoints(paths, cells)
    log = get_run_logger()
    for checkpoint in checkpoints:
        for conflict in checkpoint.conflicts:
            log.warning(f"{checkpoint.path}: {conflict}")
    return checkpoints, rejected


@task(name="load-cached-results", task_run_name="load-cached-results")
def load_cached_results(
    jobs: list[VariantJob], cache_root: str
) -> tuple[list[VariantRecord], list[VariantJob]]:
    """Records of jobs finished by an earlier run (artifact still present) and the jobs left to do."""
    cache = ResultCache(cache_root)
    done, todo = [], []
    for job in jobs:
        record = cache.get_record(job.key)
        if record is None:
            todo.append(job)
        else:
            done.append(replace(record, reused=True))
    return done, todo
