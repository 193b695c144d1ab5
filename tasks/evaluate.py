"""Prefect tasks: sample images for label-free checks, and one variant's accuracy."""

from __future__ import annotations

from prefect import task

from segopt_core.pipeline import stages
from segopt_core.pipeline.record import VariantRecord
from segopt_core.pipeline.stages import EvalSource, check_data, evaluate_record, remember
from segopt_core.variants import CellSpec


@task(name="prepare-samples", task_run_name="prepare-samples")
def prepare_samples(
    work_dir: str, specs: list[CellSpec], data_dir: str | None, limit: int | None
) -> EvalSource:
    """The evaluation source: the labelled data dir when given (checked now, before anything is built:
    a bad dataset raises DatasetError naming the file), else synthetic sample images."""
    if data_dir:
        check_data(data_dir, limit)
        return EvalSource(data_dir=data_dir, limit=limit)
    return EvalSource(
        samples_dir=stages.prepare_samples(work_dir, specs, count=max(limit or 4, 4)), limit=limit
    )


@task(name="evaluate-variant", task_run_name="evaluate {record.variant} · {spec.name}")
def evaluate_variant(
    record: VariantRecord, spec: CellSpec, source: EvalSource, cache_root: str
) -> VariantRecord:
    """The record with its accuracy, stored in the result cache once complete."""
    return remember(evaluate_record(record, spec, source), cache_root)
