"""Append-only result history, one Parquet file per run under date partitions, and regression checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from segopt_core.atomic import atomic_file
from segopt_core.reports.schema import COLUMN_NAMES, frame_to_table, rows_to_frame, upgrade_table

HISTORY_KEY = ("cell", "checkpoint_sha256", "variant", "batch_size", "machine_id")


def write_parquet_atomic(table: pa.Table, path: Path) -> Path:
    """Write a Parquet file atomically, so readers never see a partial file."""
    return atomic_file(path, lambda tmp: pq.write_table(table, tmp))


def reused(frame: pd.DataFrame) -> pd.Series:
    """True for rows copied from the result cache of an earlier run (not a new measurement)."""
    return frame["reused"].fillna(False).astype(bool)


def append_history(frame: pd.DataFrame, history_root: str | Path, run_id: str, when: dt.date) -> Path | None:
    """Add one run's own measurements as `history_root/date=YYYY-MM-DD/<run_id>.parquet`.

    Rows reused from the result cache are left out: their measurement is already in the history under the
    run that made it, and a copy would count twice in the baseline. None when nothing was measured.
    Never rewrites other runs.
    """
    path = Path(history_root) / f"date={when.isoformat()}" / f"{run_id}.parquet"
    if path.exists():
        raise FileExistsError(f"{path}: run {run_id} is already in the history (it is append-only)")
    measured = frame[~reused(frame)]
    return write_parquet_atomic(frame_to_table(measured), path) if len(measured) else None


def read_history(history_root: str | Path) -> pd.DataFrame:
    """Every run in the history as one DataFrame; files of an earlier layout are read in today's
    (`upgrade_table`), so a renamed column keeps its baseline; files that are no result table are skipped."""
    tables = []
    for path in sorted(Path(history_root).glob("date=*/*.parquet")):
        table = upgrade_table(pq.read_table(path))
        if table is not None:
            tables.append(table)
    if not tables:
        return rows_to_frame([])
    return pa.concat_tables(tables).to_pandas(types_mapper=pd.ArrowDtype)[list(COLUMN_NAMES)]


def compare_with_history(
    current: pd.DataFrame, history: pd.DataFrame, window: int = 5, threshold: float = 0.10
) -> pd.DataFrame:
    """Each ok row of `current` against the median of the last `window` earlier ok runs of the same key.

    The key is (model, checkpoint, variant, batch size, machine). A row regresses when its median latency is
    more than `threshold` above the baseline median (throughput is reported alongside). Only measurements
    count: rows reused from the result cache (copies of an earlier run's) are ignored on both sides.
    """
    ok = lambda f: f[(f["status"] == "ok") & ~reused(f)]  # noqa: E731
    earlier = ok(history)
    earlier = earlier[~earlier["run_id"].isin(current["run_id"].unique())]
    out = []
    for _, row in ok(current).iterrows():
        same = earlier
        for col in HISTORY_KEY:
            same = same[same[col] == row[col]]
        same = same.sort_values("date").drop_duplicates("run_id", keep="last").tail(window)
        base_lat = float(same["latency_ms_median"].median()) if len(same) else None
        base_tp = float(same["throughput_ips"].median()) if len(same) else None
        change = row["latency_ms_median"] / base_lat - 1.0 if base_lat else None
        out.append(
            {
                **{col: row[col] for col in HISTORY_KEY},
                "baseline_runs": len(same),
                "baseline_latency_ms": base_lat,
                "latency_ms_median": float(row["latency_ms_median"]),
                "latency_change": None if change is None else round(change, 4),
                "baseline_throughput_ips": base_tp,
                "throughput_ips": float(row["throughput_ips"]),
                "regression": bool(change is not None and change > threshold),
            }
        )
    columns = [*HISTORY_KEY, "baseline_runs", "baseline_latency_ms", "latency_ms_median", "latency_change"]
    columns += ["baseline_throughput_ips", "throughput_ips", "regression"]
    return pd.DataFrame(out, columns=columns)
