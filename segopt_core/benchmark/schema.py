"""The one flat row every benchmark writes: column names, types and meanings, and the Parquet schema."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from segopt_core.errors import SegoptError

# 2: load and quality columns (contended rows flagged); 4 (3 was never released): `cell` (was `model`),
# `_mib` (was `_mb`), the same-round pair (reference/paired latency, speedup), compiled_on_first_use
SCHEMA_VERSION = 4
_MIB = (
    "rss_before",
    "peak_rss",
    "peak_rss_increase",
    "cuda_max_allocated",
    "gpu_mem_used_peak",
    "model_size",
)
# old name -> new name, for files written before a rename
RENAMED_COLUMNS = {"model": "cell", **{f"{name}_mb": f"{name}_mib" for name in _MIB}}
STATUSES = ("ok", "oom", "failed", "skipped")
_ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int64": (int,),
    "float64": (float, int),
    "bool": (bool,),
}


@dataclass(frozen=True)
class Column:
    """One column of a benchmark row: name, Arrow type name and what it means."""

    name: str
    type: str
    doc: str

    def __post_init__(self) -> None:
        if self.type not in _ARROW_TYPES:
            raise ValueError(f"column {self.name!r}: type {self.type!r} is not one of {sorted(_ARROW_TYPES)}")


_RUN = (
    Column("schema_version", "int64", f"Row layout version ({SCHEMA_VERSION})."),
    Column("status", "string", "ok | oom (out of memory at this batch) | failed (crashed) | skipped."),
    Column("error", "string", "Why the row is not ok (exception type: message, or skip reason); '' if ok."),
    Column("variant", "string", "Variant name, e.g. 'torch' or 'onnxruntime-int8-static-segformer-safe'."),
    Column("precision", "string", "fp32 | fp16 | bf16 | int8-dynamic | int8-static (the predictor's own)."),
    Column("device", "string", "'cpu', 'cuda' or 'cuda:N': where the predictor runs."),
    Column("scope", "string", "model (preprocessed tensor in, logits out) | e2e (image file in, mask out)."),
    Column("cell", "string", "Cell name (e.g. 'b0-512-ade20k') or '' when only a shape was given."),
    Column("checkpoint_sha256", "string", "SHA-256 of the source checkpoint, '' if unknown."),
    Column("batch_size", "int64", "Images per timed call."),
    Column("input_h", "int64", "Model input height (model scope) or decoded image height (e2e)."),
    Column("input_w", "int64", "Model input width (model scope) or decoded image width (e2e)."),
    Column("max_batch_ok", "int64", "Largest batch size of this variant's sweep that ran; null if none did."),
)
_TIMING = (
    Column("load_ms", "float64", "Time to load/build the predictor (loader callable), null if none given."),
    Column(
        "first_call_ms",
        "float64",
        "First call at this batch size (lazy init, session or engine set-up), without compiled_on_first_use.",
    ),
    Column(
        "compiled_on_first_use",
        "bool",
        "A torch-compile package had no code for this input size: one was compiled, verified and added to "
        "the artifact during the first call (its time is not in first_call_ms); null if not run.",
    ),
    Column("warmup_iters", "int64", "Warm-up calls made (after the first call)."),
    Column("iters", "int64", "Timed calls the statistics are computed from."),
    Column("latency_ms_median", "float64", "Median latency of one call (whole batch), ms."),
    Column("latency_ms_mean", "float64", "Mean latency of one call, ms."),
    Column("latency_ms_p90", "float64", "90th percentile latency, ms."),
    Column("latency_ms_p99", "float64", "99th percentile latency, ms."),
    Column("latency_ms_min", "float64", "Fastest call, ms."),
    Column("latency_ms_max", "float64", "Slowest call, ms."),
    Column("latency_ms_std", "float64", "Standard deviation of the latency, ms."),
    Column("per_image_ms", "float64", "latency_ms_median / batch_size."),
    Column("throughput_ips", "float64", "Images per second: batch_size / median latency."),
)
_PAIR = (
    Column(
        "reference_latency_ms",
        "float64",
        "torch fp32 eager median latency timed in the same rounds as this variant, ms; null if not paired.",
    ),
    Column("paired_latency_ms", "float64", "This variant's median latency in those rounds, ms."),
    Column("speedup_vs_torch_fp32", "float64", "torch fp32 latency / this variant's: see speedup_basis."),
    Column(
        "speedup_basis",
        "string",
        "same-round (reference_latency_ms / paired_latency_ms) | separate (throughput over the torch fp32 "
        "row's, measured minutes apart); null when there is no torch fp32 row.",
    ),
)
_QUALITY = (
    Column(
        "quality", "string", "ok | suspect (see quality_flags): may the timing be quoted; null if not run."
    ),
    Column(
        "quality_flags",
        "string",
        "Why suspect: contended (others used > 0.5 core), spread (p99 > 5x p50), pair-contended (flows: "
        "the same-round reference pair behind the speedup ran under contention).",
    ),
    Column(
        "measure_attempts", "int64", "Timed loops run: 2 when the first was suspect and was measured again."
    ),
    Column("load_avg_1m_before", "float64", "1-minute load average before this batch size ran."),
    Column("load_avg_1m_after", "float64", "1-minute load average after the timed loop."),
    Column("other_cpu_cores", "float64", "CPU used by other processes during the timed loop, in cores."),
    Column(
        "cpu_steal_cores", "float64", "CPU stolen by the hypervisor during the loop, cores; null if unknown."
    ),
)
_MEMORY = (
    Column("rss_before_mib", "float64", "Process resident set size before this batch size ran, MiB."),
    Column("peak_rss_mib", "float64", "Process RSS high-water mark while this batch size ran, MiB."),
    Column("peak_rss_increase_mib", "float64", "peak_rss_mib - rss_before_mib, MiB."),
    Column("cuda_max_allocated_mib", "float64", "torch.cuda.max_memory_allocated, MiB; null on CPU."),
    Column("gpu_mem_used_peak_mib", "float64", "Peak NVML device memory used (all processes), MiB."),
    Column(
        "model_size_mib",
        "float64",
        "Model files on disk (an artifact's `model_files`, e.g. compiled packages, else every file) "
        "when a path is known, else state-dict bytes, MiB.",
    ),
    Column("param_count", "int64", "Number of parameters, null when unknown (e.g. a serialized engine)."),
)
_MACHINE = (
    Column("hostname", "string", "Machine name."),
    Column("date", "string", "UTC time the row was measured, ISO 8601."),
    Column("cpu_model", "string", "CPU model name from /proc/cpuinfo."),
    Column("cpu_logical_cores", "int64", "Logical CPUs visible to the OS."),
    Column("cpu_affinity_cores", "int64", "CPUs this process may run on (sched_getaffinity)."),
    Column("torch_threads", "int64", "torch.get_num_threads() at measurement time."),
    Column("omp_num_threads", "string", "OMP_NUM_THREADS environment variable, '' if unset."),
    Column("isa_avx2", "bool", "CPU has AVX2."),
    Column("isa_avx512f", "bool", "CPU has AVX-512 F."),
    Column("isa_avx512_vnni", "bool", "CPU has AVX-512 VNNI (int8 dot products)."),
    Column("isa_avx_vnni", "bool", "CPU has AVX-VNNI (256-bit int8 dot products)."),
    Column("isa_avx512_bf16", "bool", "CPU has AVX-512 BF16."),
    Column("isa_amx", "bool", "CPU has AMX tiles (amx_tile)."),
    Column("gpu_name", "string", "CUDA device 0 name, '' without CUDA."),
    Column("gpu_driver", "string", "NVIDIA driver version, '' if unknown."),
    Column("cuda_version", "string", "CUDA version torch was built with, '' for CPU builds."),
    Column("python_version", "string", "Python version."),
    Column("torch_version", "string", "torch version."),
    Column("onnxruntime_version", "string", "onnxruntime(-gpu) version, '' if not installed."),
    Column("tensorrt_version", "string", "TensorRT version, '' if not installed."),
    Column("transformers_version", "string", "transformers version."),
    Column("allocator", "string", "Memory allocator in the process: glibc | tcmalloc | jemalloc | mimalloc."),
    Column("segopt_version", "string", "segopt package version."),
    Column("segopt_commit", "string", "git commit of segopt (+'-dirty'), 'unknown' outside a checkout."),
)

COLUMNS: tuple[Column, ...] = _RUN + _TIMING + _PAIR + _QUALITY + _MEMORY + _MACHINE
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
ADDED_COLUMNS = tuple(c.name for c in _PAIR)  # since version 4; older files read them as null
ROW_SCHEMA = pa.schema(
    [pa.field(c.name, _ARROW_TYPES[c.type], nullable=True) for c in COLUMNS],
    metadata={"segopt_schema_version": str(SCHEMA_VERSION)},
)


class RowSchemaError(SegoptError, ValueError):
    """A benchmark row does not match the documented schema."""


def empty_row() -> dict[str, Any]:
    """A row with every column present and null."""
    row: dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
    row["schema_version"] = SCHEMA_VERSION
    return row


def validate_row(row: Mapping[str, Any]) -> None:
    """Raise RowSchemaError naming the column when the row has extra/missing columns or a wrong type."""
    missing = [n for n in COLUMN_NAMES if n not in row]
    extra = [n for n in row if n not in COLUMN_NAMES]
    if missing or extra:
        raise RowSchemaError(f"row columns differ from the schema: missing {missing}, unexpected {extra}")
    for column in COLUMNS:
        value = row[column.name]
        if value is None:
            continue
        ok = isinstance(value, _PY_TYPES[column.type])
        if column.type in ("int64", "float64") and isinstance(value, bool):
            ok = False
        if not ok:
            raise RowSchemaError(f"column {column.name!r} expects {column.type}, got {value!r}")
    if row["status"] not in STATUSES:
        raise RowSchemaError(f"status {row['status']!r} is not one of {STATUSES}")


def rows_to_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (validated) as an Arrow table with the fixed schema, columns in schema order."""
    rows = list(rows)
    for row in rows:
        validate_row(row)
    data = {name: [row[name] for row in rows] for name in COLUMN_NAMES}
    return pa.Table.from_pydict(data, schema=ROW_SCHEMA)


def write_parquet(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write rows to a Parquet file with the fixed schema; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows_to_table(rows), path)
    return path


def read_parquet(path: str | Path) -> list[dict[str, Any]]:
    """Rows back from a Parquet file written by write_parquet (floats NaN-free, nulls as None); files of
    older layouts read with today's names, columns added since then null."""
    table = add_new_columns(rename_old_columns(pq.read_table(path)))
    if table.schema.remove_metadata() != ROW_SCHEMA.remove_metadata():
        raise RowSchemaError(
            f"{path}: not a segopt benchmark file of schema version {SCHEMA_VERSION}; re-run the benchmark"
        )
    return table.to_pylist()


def rename_old_columns(table: pa.Table) -> pa.Table:
    """The table with columns of an older layout under today's names (`RENAMED_COLUMNS`)."""
    present = set(table.column_names)
    renamed = {old: new for old, new in RENAMED_COLUMNS.items() if old in present and new not in present}
    return table.rename_columns([renamed.get(name, name) for name in table.column_names])


def add_new_columns(table: pa.Table) -> pa.Table:
    """The table with the columns an older layout lacks (`ADDED_COLUMNS`) as nulls, in schema order."""
    missing = [name for name in ADDED_COLUMNS if name not in table.column_names]
    for name in missing:
        column = ROW_SCHEMA.field(name)
        table = table.append_column(column, pa.nulls(table.num_rows, column.type))
    return table.select([n for n in COLUMN_NAMES if n in table.column_names]) if missing else table


def schema_markdown() -> str:
    """The schema as a Markdown table (used by docs/benchmark.md)."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.type} | {c.doc} |" for c in COLUMNS]
    return "\n".join(lines)
