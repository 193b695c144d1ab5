"""Rows round-trip through Parquet with one stable, documented schema."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from segopt_core.benchmark import (
    COLUMN_NAMES,
    ROW_SCHEMA,
    RowSchemaError,
    benchmark_predictor,
    read_parquet,
    status_rows,
    validate_row,
    write_parquet,
)

DOCS = Path(__file__).resolve().parents[3] / "docs" / "benchmark.md"


@pytest.fixture(scope="module")
def rows(sleep_predictor):
    predictor = sleep_predictor(base_s=0.001, oom_from_batch=2)
    ok = benchmark_predictor(predictor, (8, 8), (1, 2), warmup=0, iters=2)
    return ok + status_rows("skipped", "no TensorRT", "tensorrt-fp16", (8, 8), (1,), device="cuda")


def test_parquet_round_trip(rows, tmp_path):
    path = write_parquet(rows, tmp_path / "bench.parquet")
    assert pq.read_schema(path).remove_metadata() == ROW_SCHEMA.remove_metadata()
    assert read_parquet(path) == rows
    assert list(rows[0]) == list(COLUMN_NAMES)


def test_rows_are_flat_rounded_scalars(rows):
    for row in rows:
        for value in row.values():
            assert value is None or isinstance(value, str | int | float | bool)
            if isinstance(value, float):
                assert round(value, 3) == value


def test_validate_rejects_drift(rows):
    with pytest.raises(RowSchemaError, match="unexpected"):
        validate_row({**rows[0], "surprise": 1})
    with pytest.raises(RowSchemaError, match="batch_size"):
        validate_row({**rows[0], "batch_size": "1"})
    with pytest.raises(RowSchemaError, match="status"):
        validate_row({**rows[0], "status": "great"})


def test_docs_describe_every_column():
    text = DOCS.read_text()
    missing = [name for name in COLUMN_NAMES if f"`{name}`" not in text]
    assert not missing, f"docs/benchmark.md does not document {missing}"


def test_files_of_older_layouts_read_with_todays_columns(rows, tmp_path):
    """A version-3 file (no same-round pair; `model` before the rename) reads with today's columns."""
    import pyarrow as pa

    from segopt_core.benchmark.schema import ADDED_COLUMNS

    table = pa.Table.from_pylist(rows, schema=ROW_SCHEMA).drop_columns(list(ADDED_COLUMNS))
    old = table.rename_columns(["model" if n == "cell" else n for n in table.column_names])
    pq.write_table(old, tmp_path / "v3.parquet")
    back = read_parquet(tmp_path / "v3.parquet")
    assert [list(r) for r in back] == [list(COLUMN_NAMES)] * len(rows)
    assert all(r[name] is None for r in back for name in ADDED_COLUMNS)
    assert [r["cell"] for r in back] == [r["cell"] for r in rows]
