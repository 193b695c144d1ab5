"""The result row of the orchestration flows: one row per checkpoint × variant × batch size.

A result row is a benchmark row (`segopt_core.benchmark.schema`, every column kept) plus the columns
below: which run and checkpoint it belongs to, how it was built, and how accurate it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pyarrow as pa

from segopt_core.benchmark.schema import COLUMNS as BENCHMARK_COLUMNS
from segopt_core.benchmark.schema import Column, rename_old_columns

# 2: same-round reference, accuracy_measure, stage timings; 4 (3 was never released): `cell` (was `model`),
# MiB columns `_mib` (were `_mb`), `build_wait_seconds`, `build_seconds` without the wait, the benchmark row's
# compiled_on_first_use (older history reads back with the new columns null)
RESULT_SCHEMA_VERSION = 4

_ORCHESTRATION = (
    Column("run_id", "string", "Report id of the flow run (also the folder name under reports/)."),
    Column("flow", "string", "optimize-all | nightly-benchmark."),
    Column("flow_run_id", "string", "Prefect flow-run id, '' outside Prefect."),
    Column("machine_id", "string", "Short hash of the machine (hostname, CPU, GPU): history key."),
    Column("checkpoint", "string", "Path of the source checkpoint."),
    Column("backend", "string", "torch | torch-compile | onnxruntime | tensorrt."),
    Column("options", "string", "The variant's build options as JSON."),
    Column("cache_key", "string", "Result-cache key: checkpoint sha256 + options + measurement settings."),
    Column("artifact", "string", "Path of the optimized artifact, '' when none was built."),
    Column("reused", "bool", "True when this row came from the result cache of an earlier run."),
    Column("started_at", "string", "UTC time this variant's build started (ISO 8601), '' if unknown."),
    Column(
        "finished_at",
        "string",
        "UTC time this variant's evaluation finished (a skipped one: its build), ISO 8601; '' if unknown.",
    ),
    Column(
        "build_seconds",
        "float64",
        "Time this run spent getting the artifact: loading the checkpoint, then building it or checking the "
        "stored one; waiting for other builds excluded (build_wait_seconds), s.",
    ),
    Column(
        "build_wait_seconds",
        "float64",
        "Time the build waited for other builds (one torch build at once), s.",
    ),
    Column("benchmark_seconds", "float64", "Time of the benchmark task (spawned process included), s."),
    Column("eval_seconds", "float64", "Time of the accuracy check, s."),
    Column("artifact_build_seconds", "float64", "Time the artifact took to build, compile and verify, s."),
)
_ACCURACY = (
    Column("eval_mode", "string", "labels (mIoU on a labelled set) | agreement (vs fp32, no labels) | none."),
    Column("eval_images", "int64", "Images the accuracy numbers are computed on."),
    Column("miou", "float64", "mIoU of this variant on the labelled set (labels mode), 0..1."),
    Column("miou_reference", "float64", "mIoU of the torch fp32 model on the same images (labels mode)."),
    Column("miou_ratio", "float64", "The gated accuracy ratio: see accuracy_measure."),
    Column(
        "accuracy_measure",
        "string",
        "What miou_ratio is: miou_ratio (labels: miou / miou_reference) / "
        "miou_vs_fp32 (agreement: mIoU taking fp32's predictions as labels) / ''.",
    ),
    Column("pixel_agreement", "float64", "Fraction of pixels whose class equals the fp32 model's, 0..1."),
    Column("miou_vs_reference", "float64", "mIoU of this variant taking the fp32 predictions as labels."),
    Column("per_class_iou_delta", "string", "JSON {class: IoU - fp32 IoU} (labels mode), '' otherwise."),
    Column("accepted", "bool", "Accuracy gate passed (miou_ratio >= threshold); null when not evaluated."),
    Column("gate", "string", "Why the gate accepted/rejected the variant (threshold and value)."),
)  # the same-round pair and the speedup (reference_latency_ms, ..., speedup_basis) are benchmark columns

COLUMNS: tuple[Column, ...] = (
    (Column("result_schema_version", "int64", f"Result row layout version ({RESULT_SCHEMA_VERSION})."),)
    + _ORCHESTRATION
    + BENCHMARK_COLUMNS
    + _ACCURACY
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
RESULT_SCHEMA = pa.schema(
    [pa.field(c.name, pa.type_for_alias(c.type), nullable=True) for c in COLUMNS],
    metadata={"segopt_result_schema_version": str(RESULT_SCHEMA_VERSION)},
)


def result_row(**values: Any) -> dict[str, Any]:
    """A full result row: every column present, the given values set, the rest null."""
    unknown = sorted(set(values) - set(COLUMN_NAMES))
    if unknown:
        raise KeyError(f"unknown result columns {unknown}; see segopt_core.reports.schema.COLUMNS")
    row: dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
    row["result_schema_version"] = RESULT_SCHEMA_VERSION
    row.update(values)
    return row


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()  # numpy scalars
    return value


def rows_to_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Result rows as a DataFrame with the fixed schema (columns in schema order, Arrow-backed types)."""
    data = {name: [] for name in COLUMN_NAMES}
    for row in rows:
        for name in COLUMN_NAMES:
            data[name].append(_clean(row.get(name)))
    table = pa.Table.from_pydict(data, schema=RESULT_SCHEMA)
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def frame_to_table(frame: pd.DataFrame) -> pa.Table:
    """A results DataFrame back to an Arrow table of the fixed schema."""
    return pa.Table.from_pandas(frame[list(COLUMN_NAMES)], schema=RESULT_SCHEMA, preserve_index=False)


def upgrade_table(table: pa.Table) -> pa.Table | None:
    """A result table of an earlier layout in today's schema (renamed columns mapped, new ones null);
    None when it is not a result table at all (no run, variant or latency columns)."""
    table = rename_old_columns(table)
    if not {"run_id", "variant", "status", "latency_ms_median"} <= set(table.column_names):
        return None
    columns = []
    for field in RESULT_SCHEMA:
        if field.name in table.column_names:
            columns.append(table[field.name].cast(field.type))
        else:
            columns.append(pa.nulls(len(table), field.type))
    return pa.Table.from_arrays(columns, schema=RESULT_SCHEMA)


def schema_markdown() -> str:
    """The result schema's own columns as a Markdown table (benchmark columns: docs/benchmark.md)."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    own = [c for c in COLUMNS if c not in BENCHMARK_COLUMNS]
    lines += [f"| `{c.name}` | {c.type} | {c.doc.replace('|', '/')} |" for c in own]
    return "\n".join(lines)
