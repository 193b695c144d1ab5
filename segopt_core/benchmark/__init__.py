"""Trustworthy latency, throughput and memory for any Predictor; flat rows with a machine fingerprint."""

from __future__ import annotations

from segopt_core.benchmark.engine import (
    DEFAULT_BATCH_SIZES,
    SCOPES,
    BenchmarkError,
    benchmark_predictor,
    describe_error,
    is_out_of_memory,
    measure,
    model_size_mib,
    status_rows,
)
from segopt_core.benchmark.fingerprint import detect_allocator, machine_fingerprint
from segopt_core.benchmark.locking import DeviceBusy, device_concurrency_key, device_lock
from segopt_core.benchmark.memory import PeakMemory
from segopt_core.benchmark.paired import (
    Candidate,
    MeasureConfig,
    Measurement,
    Rounds,
    measure_variant,
)
from segopt_core.benchmark.schema import (
    COLUMN_NAMES,
    COLUMNS,
    ROW_SCHEMA,
    RowSchemaError,
    read_parquet,
    rows_to_table,
    schema_markdown,
    validate_row,
    write_parquet,
)
from segopt_core.benchmark.timing import TimingConfig, interleaved_ab, latency_stats

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "DEFAULT_BATCH_SIZES",
    "ROW_SCHEMA",
    "SCOPES",
    "BenchmarkError",
    "Candidate",
    "DeviceBusy",
    "MeasureConfig",
    "Measurement",
    "PeakMemory",
    "Rounds",
    "RowSchemaError",
    "TimingConfig",
    "benchmark_predictor",
    "describe_error",
    "detect_allocator",
    "device_concurrency_key",
    "device_lock",
    "interleaved_ab",
    "is_out_of_memory",
    "latency_stats",
    "machine_fingerprint",
    "measure",
    "measure_variant",
    "model_size_mib",
    "read_parquet",
    "rows_to_table",
    "schema_markdown",
    "status_rows",
    "validate_row",
    "write_parquet",
]
