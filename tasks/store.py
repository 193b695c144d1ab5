"""Prefect task: list the stored artifacts nightly-benchmark re-measures."""

from __future__ import annotations

from prefect import task

from segopt_core.pipeline.record import VariantRecord
from segopt_core.pipeline.stored import stored_variants
from segopt_core.variants import CellSpec


@task(name="list-artifacts", task_run_name="list-artifacts")
def list_artifacts(
    store_root: str, cache_root: str, cells: list[str] | None = None, variants: list[str] | None = None
) -> list[tuple[VariantRecord, CellSpec]]:
    """(record, cell spec) of every valid artifact matching the filters."""
    return stored_variants(store_root, cache_root, cells, variants)
