"""summary.md: tables from the result rows (per model accuracy/speed; per batch size latency/memory)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from segopt_core.atomic import write_text_atomic

TRACKING_HEADING = "## Tracking"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def _per_model(frame: pd.DataFrame):
    """(heading, rows) per checkpoint, named by its cell (and file when a cell has several checkpoints)."""
    ok = _ok(frame)
    per_cell = ok.groupby("model")["checkpoint"].nunique()
    for (model, checkpoint), group in ok.groupby(["model", "checkpoint"], sort=True):
        yield (f"{model} — `{Path(checkpoint).name}`" if per_cell[model] > 1 else model), group


def _pct(value: Any) -> Any:
    return None if value is None or value is pd.NA else f"{100 * float(value):.1f} %"


def accuracy_speed_tables(frame: pd.DataFrame) -> str:
    """Per model: accuracy, gate and speed of each variant at the smallest batch size, vs torch fp32."""
    parts = []
    for model, group in _per_model(frame):
        smallest = group["batch_size"].min()
        rows = []
        for _, r in group[group["batch_size"] == smallest].sort_values(["backend", "precision"]).iterrows():
            best = group[group["variant"] == r["variant"]]["throughput_ips"].max()
            accuracy = r["miou"] if r["eval_mode"] == "labels" else r["pixel_agreement"]
            verdict = "–" if r["accepted"] is pd.NA else ("accepted" if r["accepted"] else "**rejected**")
            variant = f"{r['variant']} (reused)" if r["reused"] is True else r["variant"]
            rows.append(
                [variant, r["precision"], accuracy, _pct(r["miou_ratio"]), verdict, r["throughput_ips"],
                 r["speedup_vs_torch_fp32"], best]
            )  # fmt: skip
        mode = group["eval_mode"].iloc[0]
        metric = {"labels": "mIoU", "agreement": "pixel agreement"}.get(mode, "accuracy")
        headers = ["variant", "precision", metric, "ratio vs fp32", "gate", f"img/s (bs={smallest})"]
        headers += ["speedup vs torch fp32", "best img/s (any bs)"]
        parts.append(f"### {model}\n\n" + table(headers, rows))
    return "\n\n".join(parts) or "_No successful variant._"


def batch_tables(frame: pd.DataFrame) -> str:
    """Per model and batch size: latency percentiles, throughput, memory and model size of each variant."""
    parts = []
    for model, group in _per_model(frame):
        rows = [
            [r["variant"], r["batch_size"], r["latency_ms_median"], r["latency_ms_p90"], r["latency_ms_p99"],
             r["throughput_ips"], r["peak_rss_mb"], r["model_size_mb"]]
            for _, r in group.sort_values(["batch_size", "variant"]).iterrows()
        ]  # fmt: skip
        headers = ["variant", "batch", "p50 ms", "p90 ms", "p99 ms", "img/s", "peak RSS MiB", "size MiB"]
        parts.append(f"### {model}\n\n" + table(headers, rows))
    return "\n\n".join(parts) or "_No successful variant._"


def problems_table(frame: pd.DataFrame) -> str:
    """Failed and skipped variants with their reasons (one line per variant)."""
    bad = frame[frame["status"] != "ok"].drop_duplicates(["checkpoint", "variant", "status", "error"])
    if bad.empty:
        return "_None._"
    rows = [[r["model"], r["variant"], r["status"], r["checkpoint"], r["error"]] for _, r in bad.iterrows()]
    return table(["model", "variant", "status", "checkpoint", "reason"], rows)


def regressions_table(comparison: pd.DataFrame) -> str:
    """Nightly comparison with the history; regressions in bold."""
    if comparison.empty:
        return "_Nothing to compare._"
    rows = []
    for _, r in comparison.iterrows():
        change = None if pd.isna(r["latency_change"]) else f"{100 * r['latency_change']:+.1f} %"
        flag = "**REGRESSION**" if r["regression"] else ("no baseline" if not r["baseline_runs"] else "ok")
        rows.append([r["model"], r["variant"], r["batch_size"], r["baseline_runs"], r["baseline_latency_ms"],
                     r["latency_ms_median"], change, flag])  # fmt: skip
    headers = ["model", "variant", "batch", "baseline runs", "baseline p50 ms", "p50 ms", "change", "verdict"]
    return table(headers, rows)


def header(meta: Mapping[str, Any], frame: pd.DataFrame) -> str:
    """Title and run facts."""
    counts = frame.drop_duplicates(["checkpoint", "variant"])["status"].value_counts().to_dict()
    reused = int(frame.drop_duplicates(["checkpoint", "variant"])["reused"].fillna(False).sum())
    facts = [
        f"- Run: `{meta.get('run_id', '')}` · flow `{meta.get('flow', '')}` · Prefect flow run "
        f"`{meta.get('flow_run_id') or '–'}`",
        f"- Machine: {meta.get('machine', '–')}",
        f"- Variants: {', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'}"
        f" ({reused} reused from the result cache)",
    ]
    facts += [f"- {line}" for line in meta.get("notes", [])]
    return f"# segopt {meta.get('flow', 'report')} — {meta.get('run_id', '')}\n\n" + "\n".join(facts)


def render_summary(
    frame: pd.DataFrame,
    meta: Mapping[str, Any],
    plots: Sequence[Path] = (),
    comparison: pd.DataFrame | None = None,
    tracking_note: str = "MLflow: pending.",
) -> str:
    """The whole summary.md; the tracking section is last so it can be rewritten after logging."""
    sections = [header(meta, frame)]
    if comparison is not None:
        sections.append("## Comparison with previous runs\n\n" + regressions_table(comparison))
    sections.append("## Accuracy and speed per model\n\n" + accuracy_speed_tables(frame))
    sections.append("## Latency, throughput and memory per batch size\n\n" + batch_tables(frame))
    sections.append("## Failed and skipped variants\n\n" + problems_table(frame))
    if plots:
        sections.append("## Plots\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots))
    sections.append(f"{TRACKING_HEADING}\n\n{tracking_note}")
    return "\n\n".join(sections) + "\n"


def set_tracking_note(summary: str | Path, note: str) -> Path:
    """Rewrite the tracking section (the last one) of a summary.md."""
    path = Path(summary)
    text = path.read_text()
    head = text[: text.index(TRACKING_HEADING)] if TRACKING_HEADING in text else text.rstrip() + "\n\n"
    return write_text_atomic(path, f"{head}{TRACKING_HEADING}\n\n{note}\n")
