"""Which variant to ship: per checkpoint and batch size, the fastest one that passed the accuracy gate.

Used by summary.md (its first section), the MLflow parent run (first line of its description, `recommended`
tags) and the Prefect run log's closing line, so all of them always name the same variant.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from segopt_core.reports.figures import ratio, significant, speedup

# What a result row's miou_ratio measures, by its accuracy_measure (reports never say a bare "ratio")
ACCURACY_LABELS = {
    "miou_ratio": "mIoU / fp32 mIoU",
    "miou_vs_fp32": "mIoU vs fp32 predictions",
}
COLUMNS = (
    "cell", "checkpoint", "batch_size", "variant", "speedup_vs_torch_fp32", "speedup_basis", "miou_ratio",
    "accuracy_measure", "latency_ms_median", "throughput_ips", "model_size_mib", "artifact", "quality",
    "quality_flags", "other_cpu_cores", "cpu_steal_cores", "latency_ms_p99",
)  # fmt: skip


def accuracy_label(measure: object) -> str:
    """Human name of an accuracy measure ('mIoU / fp32 mIoU'); 'accuracy ratio' when unknown."""
    return ACCURACY_LABELS.get(str(measure), "accuracy ratio") if measure is not None else "accuracy ratio"


def recommendations(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, checkpoint, batch size): the fastest gate-passing variant (`COLUMNS`).

    Fastest means the lowest median latency at that batch size (rows measured under contention stay
    eligible but keep their `quality` flag, so readers see it). Checkpoints where nothing passed the gate
    have no row.
    """
    if frame.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    passed = frame[(frame["status"] == "ok") & frame["accepted"].fillna(False).astype(bool)]
    passed = passed[passed["latency_ms_median"].notna()]
    if passed.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    ordered = passed.sort_values(["cell", "checkpoint", "batch_size", "latency_ms_median", "variant"])
    best = ordered.drop_duplicates(["cell", "checkpoint", "batch_size"], keep="first")
    return best[list(COLUMNS)].reset_index(drop=True)


def recommended_by_cell(frame: pd.DataFrame) -> dict[str, str]:
    """{cell: variant} at the smallest batch size measured (the MLflow parent-run tag), first checkpoint."""
    recs = recommendations(frame)
    out: dict[str, str] = {}
    for cell, group in recs.groupby("cell", sort=True):
        out[str(cell)] = str(group.sort_values(["batch_size", "checkpoint"]).iloc[0]["variant"])
    return out


def first_choices(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, checkpoint): the recommendation at the smallest batch size measured."""
    recs = recommendations(frame)
    return recs.sort_values("batch_size").drop_duplicates(["cell", "checkpoint"]).sort_values("cell")


def cell_label(cell: object, checkpoint: object, frame: pd.DataFrame) -> str:
    """The cell name, plus the file name when the cell has several checkpoints."""
    several = frame[frame["cell"] == cell]["checkpoint"].nunique() > 1
    return f"{cell} — `{Path(str(checkpoint)).name}`" if several else str(cell)


def ship_clause(row: pd.Series, frame: pd.DataFrame) -> str:
    """'openvino-bf16 for b0-512-ade20k at batch 1: 3.13 ms, 3.62× torch fp32, mIoU / fp32 mIoU 1.0000'."""
    figures = [f"{significant(row['latency_ms_median'])} ms"]
    if not pd.isna(row["speedup_vs_torch_fp32"]):
        figures.append(f"{speedup(row['speedup_vs_torch_fp32'])} torch fp32")
    if not pd.isna(row["miou_ratio"]):
        figures.append(f"{accuracy_label(row['accuracy_measure'])} {ratio(row['miou_ratio'])}")
    busy = " (⚠ measured while the machine was busy)" if str(row["quality"]) == "suspect" else ""
    where = cell_label(row["cell"], row["checkpoint"], frame)
    return f"{row['variant']} for {where} at batch {int(row['batch_size'])}: {', '.join(figures)}{busy}"


def ship_sentence(frame: pd.DataFrame) -> str | None:
    """'Ship <variant> for <cell> at batch 1: ...' (one clause per checkpoint); None when nothing passed."""
    first = first_choices(frame)
    if first.empty:
        return None
    return "Ship " + "; ship ".join(ship_clause(r, frame) for _, r in first.iterrows()) + "."


def closing_line(frame: pd.DataFrame, summary: Path, mlflow: str, regressions: int | None = None) -> str:
    """The run log's last line: what to ship (nightly: how many rows regressed), the report, MLflow."""
    if regressions is not None:
        verdict = f"{regressions} benchmark row(s) regressed." if regressions else "No regression."
    else:
        verdict = ship_sentence(frame) or "Nothing to ship: no variant passed the accuracy gate."
    return f"{verdict} Report: {Path(summary).resolve()}. MLflow: {mlflow}"
