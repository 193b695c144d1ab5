"""Which variant to ship: per checkpoint and batch size, the fastest one that passed the accuracy gate.

Used by summary.md (its first section) and by the MLflow parent run's `recommended.<cell>` tags, so both
always name the same variant.
"""

from __future__ import annotations

import pandas as pd

# What a result row's miou_ratio measures, by its accuracy_measure (reports never say a bare "ratio")
ACCURACY_LABELS = {
    "miou_ratio": "mIoU / fp32 mIoU",
    "miou_vs_fp32": "mIoU vs fp32 predictions",
}
COLUMNS = (
    "cell", "checkpoint", "batch_size", "variant", "speedup_vs_torch_fp32", "speedup_basis", "miou_ratio",
    "accuracy_measure", "latency_ms_median", "throughput_ips", "model_size_mb", "artifact", "quality",
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
