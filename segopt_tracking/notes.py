"""The descriptions (`mlflow.note.content`) of segopt's MLflow runs: what a person reads first.

MLflow shows the first lines of a description without expanding it and renders Markdown lists but not
tables, so each description starts with one sentence and lists the figures below it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from segopt_core.reports.figures import fixed, missing, ratio, significant, speedup
from segopt_core.reports.recommend import (
    accuracy_label,
    cell_label,
    first_choices,
    recommendations,
    ship_sentence,
)

METRIC_GLOSSARY = (
    "Metric names carry their unit and batch size: `latency_ms_*_bs<N>` milliseconds per call (the whole "
    "batch of N images), `throughput_ips_bs<N>` images per second, `speedup_vs_torch_fp32_bs<N>` torch "
    "fp32 latency / this variant's, `peak_rss_mib_bs<N>` and `model_size_mib` MiB, `other_cpu_cores_bs<N>` "
    "the CPU other processes used while the variant was timed, in cores (above 0.5 the row is suspect), "
    "`miou_ratio` the accuracy ratio to torch fp32 that the gate compares with its threshold "
    "(param `accuracy_measure` says which), `*_seconds` seconds."
)


def _suspect_line(frame: pd.DataFrame) -> str | None:
    """The busy-machine warning, only when some row was measured so (as the `suspect_rows` metric counts)."""
    suspect = int((frame["quality"].fillna("") == "suspect").sum())
    if not suspect:
        return None
    return (
        f"⚠ {suspect} of {len(frame)} rows were measured while the machine was busy or with an absurd spread "
        "(marked ⚠; see summary.md, *Measurements to distrust*)."
    )


def _p50(rows: pd.DataFrame, batch: int) -> str | None:
    """'3.13 ms at batch 1' (⚠ when its row is suspect), None when not measured."""
    row = rows[rows["batch_size"] == batch]
    if row.empty or missing(row["latency_ms_median"].iloc[0]):
        return None
    flag = " ⚠" if str(row["quality"].iloc[0]) == "suspect" else ""
    return f"{significant(row['latency_ms_median'].iloc[0])} ms at batch {batch}{flag}"


def parent_note(
    frame: pd.DataFrame, meta: dict[str, Any], child_links: dict, report_dir: Path, host: str
) -> str:
    """The parent run's description: the sentence naming the variant to ship, then per cell its figures
    with a link to its run, where the report is, and the busy-machine warning when it applies."""
    lines = [_first_line(frame, meta), ""]
    recs = recommendations(frame)
    for _, r in first_choices(frame).iterrows():
        rows = frame[(frame["checkpoint"] == r["checkpoint"]) & (frame["variant"] == r["variant"])]
        link = child_links.get((r["checkpoint"], r["variant"]), "")
        sizes = sorted(int(b) for b in rows["batch_size"].dropna().unique())
        timings = ", ".join(t for b in sizes if (t := _p50(rows, b)))
        lines.append(f"- {cell_label(r['cell'], r['checkpoint'], frame)}: [{r['variant']}]({link}): "
                     f"p50 {timings}; {significant(r['model_size_mib'])} MiB")  # fmt: skip
    shipped = {(r["cell"], r["checkpoint"]): r["variant"] for _, r in first_choices(frame).iterrows()}
    for _, r in recs.iterrows():
        if shipped.get((r["cell"], r["checkpoint"]), r["variant"]) != r["variant"]:
            lines.append(f"- at batch {int(r['batch_size'])}, {r['cell']}: `{r['variant']}` is faster")
    counts = frame.drop_duplicates(["checkpoint", "variant"])["status"].value_counts()
    lines += ([""] if lines[-1] else []) + [
        "Variants: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + "."
    ]
    lines.append(f"Report: `{report_dir / 'summary.md'}` on host `{host}` (here: Artifacts, `summary.html`).")
    if warning := _suspect_line(frame):
        lines.append(warning)
    return "\n".join(lines)


def _first_line(frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    """One sentence: the variant to ship, or for nightly runs how many rows regressed."""
    params = meta.get("params") or {}
    if meta.get("flow") == "nightly-benchmark":
        threshold = params.get("threshold")
        limit = f" (more than {100 * threshold:g} % slower than their median)" if threshold else ""
        flagged = meta.get("regressions", 0)
        return f"Nightly benchmark: {flagged} of {len(frame)} rows regressed{limit}."
    sentence = ship_sentence(frame)
    if sentence:
        return sentence
    gate = params.get("min_miou_ratio")
    return "Nothing to ship: no variant passed the accuracy gate" + (f" ({gate:g})." if gate else ".")


def child_note(group: pd.DataFrame, host: str, models_logged: bool, recommended: str) -> str:
    """A variant run's description: its verdict in one sentence, its figures per batch size, where its
    model files are and how to get them, and what each metric name means."""
    first = group.iloc[0]
    name = f"**{first['variant']}** for {first['cell']}"
    if first["status"] != "ok":
        return f"{name}: {first['status']} — {first['error'] or 'no reason recorded'}."
    lines = [f"{name}: {_verdict(first)}" + (f" Recommended at {recommended}." if recommended else ""), ""]
    for _, r in group.sort_values("batch_size").iterrows():
        if missing(r["batch_size"]) or missing(r["latency_ms_median"]):
            continue
        figures = [
            f"{significant(r['latency_ms_median'])} ms per call",
            f"{significant(r['throughput_ips'])} img/s",
        ]
        if not missing(r["speedup_vs_torch_fp32"]):
            basis = " (same rounds)" if r["speedup_basis"] == "same-round" else " (separate runs)"
            figures.append(f"{speedup(r['speedup_vs_torch_fp32'])} torch fp32{basis}")
        figures.append(f"others' CPU {fixed(r['other_cpu_cores'], 2)} cores")
        flag = " ⚠ busy machine" if str(r["quality"]) == "suspect" else ""
        lines.append(f"- batch {int(r['batch_size'])}: {', '.join(figures)}{flag}")  # fmt: skip
    lines += ["", _files_line(str(first["artifact"]), host, models_logged), "", METRIC_GLOSSARY]
    return "\n".join(lines)


def _verdict(row: pd.Series) -> str:
    """'accepted by the accuracy gate (mIoU / fp32 mIoU 0.9990; gate 0.97).' or why not evaluated."""
    if missing(row["accepted"]):
        return f"not evaluated ({row['gate'] or 'no accuracy check'})."
    verdict = "accepted by" if row["accepted"] else "rejected by"
    return (
        f"{verdict} the accuracy gate ({accuracy_label(row['accuracy_measure'])} {ratio(row['miou_ratio'])})."
    )


def _files_line(artifact: str, host: str, models_logged: bool) -> str:
    """Where the model files are and how to get them."""
    if not artifact:
        return "No artifact was built."
    folder = Path(artifact).resolve()
    where = f"Model files: `{folder}` on host `{host}` (its `metadata.json` is under Artifacts, *artifact/*)"
    if models_logged:
        return where + "; the files themselves are under Artifacts, *model/*."
    return where + "; `segopt optimize-all --log-models` also uploads them to this run (*model/*)."
