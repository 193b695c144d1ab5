"""summary.md: tables from the result rows (per checkpoint accuracy/speed; per batch size latency/memory)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from segopt_core.atomic import write_text_atomic
from segopt_core.benchmark.contention import describe_quality
from segopt_core.reports.recommend import accuracy_label, recommendations

TRACKING_HEADING = "## Tracking"
SUSPECT = "⚠"  # marks a figure measured under contention or with an absurd spread
SEPARATE = "†"  # marks a speedup whose reference was measured in a separate run


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


def _suspect(row: Any) -> bool:
    return str(row.get("quality")) == "suspect"


def _plain(row: pd.Series) -> dict[str, Any]:
    """A row as a dict with None for missing values (pd.NA has no truth value)."""
    return {k: None if v is pd.NA or (isinstance(v, float) and v != v) else v for k, v in row.items()}


def _marked(value: Any, row: Any, digits: int = 2) -> str:
    """A timing figure, followed by ⚠ when its row is not to be quoted as fact."""
    text = _fmt(value, digits)
    return f"{text} {SUSPECT}" if _suspect(row) and text != "–" else text


def _speedup(row: Any) -> str:
    """'3.10×', with † when the reference ran separately and ⚠ when the row is suspect."""
    value = row.get("speedup_vs_torch_fp32")
    if value is None or value is pd.NA:
        return "–"
    basis = SEPARATE if str(row.get("speedup_basis")) == "separate" else ""
    return f"{float(value):.2f}×{basis}" + (f" {SUSPECT}" if _suspect(row) else "")


def _label(cell: Any, checkpoint: Any, frame: pd.DataFrame) -> str:
    """The cell name, plus the file name when the cell has several checkpoints."""
    several = frame[frame["cell"] == cell]["checkpoint"].nunique() > 1
    return f"{cell} — `{Path(str(checkpoint)).name}`" if several else str(cell)


def _per_checkpoint(frame: pd.DataFrame):
    """(heading, rows) per checkpoint, named by its cell (and file when a cell has several checkpoints)."""
    ok = _ok(frame)
    per_cell = ok.groupby("cell")["checkpoint"].nunique()
    for (cell, checkpoint), group in ok.groupby(["cell", "checkpoint"], sort=True):
        yield (f"{cell} — `{Path(checkpoint).name}`" if per_cell[cell] > 1 else cell), group


def _pct(value: Any) -> Any:
    return None if value is None or value is pd.NA else f"{100 * float(value):.1f} %"


def recommendation_section(frame: pd.DataFrame) -> str:
    """Per checkpoint and batch size: the fastest variant that passed the accuracy gate, with its figures."""
    recs = recommendations(frame)
    if recs.empty:
        return "_No variant passed the accuracy gate: nothing to recommend._"
    rows = []
    for _, r in recs.iterrows():
        accuracy = f"{accuracy_label(r['accuracy_measure'])} {_pct(r['miou_ratio'])}"
        rows.append([_label(r["cell"], r["checkpoint"], frame), r["batch_size"], f"`{r['variant']}`",
                     _speedup(r), accuracy, _marked(r["latency_ms_median"], r), r["model_size_mb"],
                     f"`{r['artifact']}`"])  # fmt: skip
    headers = ["cell", "batch", "ship", "speedup vs torch fp32", "accuracy vs fp32", "p50 ms", "size MiB"]
    return table([*headers, "artifact"], rows) + "\n\n" + _legend(recs)


def _legend(rows: pd.DataFrame) -> str:
    """What ⚠ and † mean, only when the table uses them."""
    notes = [
        "Fastest variant (median latency) that passed the accuracy gate.",
        f"{SEPARATE}: speedup from a torch fp32 run measured separately (not in the same rounds).",
    ]
    if any(_suspect(r) for _, r in rows.iterrows()):
        notes.append(
            f"{SUSPECT}: measured while the machine was busy or with an absurd spread; see "
            "*Measurements to distrust*, and re-run on a quiet machine before quoting it."
        )
    return " ".join(notes)


def accuracy_speed_tables(frame: pd.DataFrame) -> str:
    """Per checkpoint: accuracy, gate and speed of each variant at the smallest batch size, vs torch fp32,
    with its build time (compiling included) apart from the time a fresh process needs to answer."""
    parts = []
    for heading, group in _per_checkpoint(frame):
        smallest = group["batch_size"].min()
        rows = []
        for _, r in group[group["batch_size"] == smallest].sort_values(["backend", "precision"]).iterrows():
            best = group[group["variant"] == r["variant"]]["throughput_ips"].max()
            accuracy = r["miou"] if r["eval_mode"] == "labels" else r["pixel_agreement"]
            verdict = "–" if r["accepted"] is pd.NA else ("accepted" if r["accepted"] else "**rejected**")
            variant = f"{r['variant']} (reused)" if r["reused"] is True else r["variant"]
            rows.append(
                [variant, r["precision"], accuracy, _pct(r["miou_ratio"]), verdict,
                 _marked(r["throughput_ips"], r), _speedup(r), best, r["artifact_build_seconds"],
                 _ready_ms(r)]
            )  # fmt: skip
        mode = group["eval_mode"].iloc[0]
        metric = {"labels": "mIoU", "agreement": "pixel agreement"}.get(mode, "accuracy")
        measure = group["accuracy_measure"].dropna()
        gated = accuracy_label(measure.iloc[0] if len(measure) else None) + " (gated)"
        headers = ["variant", "precision", metric, gated, "gate", f"img/s (bs={smallest})"]
        headers += ["speedup vs torch fp32", "best img/s (any bs)", "build s", "load + 1st call ms"]
        parts.append(f"### {heading}\n\n" + table(headers, rows))
    return "\n\n".join(parts) or "_No successful variant._"


def _ready_ms(row: pd.Series) -> float | None:
    """Load time plus the first call: how long a fresh process waits for its first result."""
    if pd.isna(row["load_ms"]) or pd.isna(row["first_call_ms"]):
        return None
    return round(float(row["load_ms"]) + float(row["first_call_ms"]), 1)


def batch_tables(frame: pd.DataFrame) -> str:
    """Per checkpoint and batch size: latency percentiles, throughput, memory and size of each variant."""
    parts = []
    for heading, group in _per_checkpoint(frame):
        rows = [
            [r["variant"], r["batch_size"], _marked(r["latency_ms_median"], r), r["latency_ms_p90"],
             r["latency_ms_p99"], _marked(r["throughput_ips"], r), r["other_cpu_cores"], r["peak_rss_mb"],
             r["model_size_mb"]]
            for _, r in group.sort_values(["batch_size", "variant"]).iterrows()
        ]  # fmt: skip
        headers = ["variant", "batch", "p50 ms", "p90 ms", "p99 ms", "img/s", "others' CPU (cores)"]
        headers += ["peak RSS MiB", "size MiB"]
        parts.append(f"### {heading}\n\n" + table(headers, rows))
    return "\n\n".join(parts) or "_No successful variant._"


def distrust_list(frame: pd.DataFrame) -> str:
    """Rows whose timings are suspect (contention, spread), with the figures that make them so."""
    ok = _ok(frame)
    bad = [_plain(r) for _, r in ok.iterrows() if _suspect(r)]
    if not bad:
        return "_None: no row was measured under contention or with an absurd spread._"
    lines = []
    for r in bad:
        again = " (measured twice, still suspect)" if (r.get("measure_attempts") or 1) > 1 else ""
        lines.append(f"- {SUSPECT} {r['cell']} · `{r['variant']}` · batch {r['batch_size']}: "
                     f"{describe_quality(r)}{again}")  # fmt: skip
    head = (f"{len(bad)} of {len(ok)} rows were measured while other processes used the CPU or with p99 > "
            "5× p50. Their latencies, throughputs and separate-run speedups are marked ⚠ above.")  # fmt: skip
    return head + "\n\n" + "\n".join(lines)


def problems_table(frame: pd.DataFrame) -> str:
    """Failed and skipped variants with their reasons (one line per variant)."""
    bad = frame[frame["status"] != "ok"].drop_duplicates(["checkpoint", "variant", "status", "error"])
    if bad.empty:
        return "_None._"
    rows = [[r["cell"], r["variant"], r["status"], r["checkpoint"], r["error"]] for _, r in bad.iterrows()]
    return table(["cell", "variant", "status", "checkpoint", "reason"], rows)


def regressions_table(comparison: pd.DataFrame, frame: pd.DataFrame | None = None) -> str:
    """Nightly comparison with the history; regressions in bold, ⚠ when measured on a busy machine."""
    if comparison.empty:
        return "_Nothing to compare._"
    suspect = set()
    if frame is not None:
        keys = ["cell", "variant", "batch_size"]
        bad = _ok(frame)[_ok(frame)["quality"].fillna("") == "suspect"]
        suspect = {tuple(k) for k in bad[keys].itertuples(index=False)}
    rows = []
    for _, r in comparison.iterrows():
        change = None if pd.isna(r["latency_change"]) else f"{100 * r['latency_change']:+.1f} %"
        flag = "**REGRESSION**" if r["regression"] else ("no baseline" if not r["baseline_runs"] else "ok")
        if (r["cell"], r["variant"], r["batch_size"]) in suspect:
            flag += f" {SUSPECT} busy machine"
        rows.append([r["cell"], r["variant"], r["batch_size"], r["baseline_runs"], r["baseline_latency_ms"],
                     r["latency_ms_median"], change, flag])  # fmt: skip
    headers = ["cell", "variant", "batch", "baseline runs", "baseline p50 ms", "p50 ms", "change", "verdict"]
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
        sections.append("## Comparison with previous runs\n\n" + regressions_table(comparison, frame))
    sections.insert(1, "## Recommendation\n\n" + recommendation_section(frame))
    sections.append("## Accuracy and speed per checkpoint\n\n" + accuracy_speed_tables(frame))
    sections.append("## Latency, throughput and memory per batch size\n\n" + batch_tables(frame))
    sections.append("## Measurements to distrust\n\n" + distrust_list(frame))
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


def artifact_markdown(summary: str, report_dir: str | Path, plots: Sequence[Path] = ()) -> str:
    """summary.md for a UI that cannot resolve relative paths (Prefect): plots inlined as PNG data URIs
    and a link to the report folder under the title."""
    for plot in plots:
        if Path(plot).is_file():
            uri = "data:image/png;base64," + base64.b64encode(Path(plot).read_bytes()).decode()
            summary = summary.replace(f"]({Path(plot).name})", f"]({uri})")
    folder = Path(report_dir).resolve()
    link = f"- Report folder: [{folder}]({folder.as_uri()}) (summary.md, results.parquet, plots)"
    title, _, rest = summary.partition("\n\n")
    return f"{title}\n\n{link}\n{rest}"


def results_table(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The results as a few named columns (one row per cell, variant and batch size) for a table view."""
    out = []
    for _, r in frame.sort_values(["cell", "batch_size", "latency_ms_median"], na_position="last").iterrows():
        row = _plain(r)
        measure = accuracy_label(row["accuracy_measure"]) if row["accuracy_measure"] else "accuracy vs fp32"
        accuracy = f"{measure} {_pct(row['miou_ratio'])}" if row["miou_ratio"] is not None else "–"
        gate = {True: "accepted", False: "rejected"}.get(row["accepted"], "–")
        status = row["status"] if row["status"] == "ok" else f"{row['status']}: {row['error']}"
        out.append({
            "cell": row["cell"], "variant": row["variant"], "batch": row["batch_size"],
            "p50 ms": _marked(row["latency_ms_median"], r), "img/s": _marked(row["throughput_ips"], r),
            "speedup vs torch fp32": _speedup(r), "accuracy vs fp32": accuracy, "gate": gate,
            "status": status,
        })  # fmt: skip
    return out
