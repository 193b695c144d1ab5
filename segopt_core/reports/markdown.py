"""summary.md: tables from the result rows (per checkpoint accuracy/speed; per batch size latency/memory)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from segopt_core.atomic import write_text_atomic
from segopt_core.benchmark.contention import describe_quality
from segopt_core.reports.figures import DASH, fixed, missing, ratio, significant, speedup
from segopt_core.reports.recommend import accuracy_label, cell_label, recommendations, ship_sentence

TRACKING_HEADING = "## Tracking"
SUSPECT = "⚠"  # marks a figure measured under contention or with an absurd spread
SEPARATE = "†"  # marks a speedup whose reference was measured in a separate run


_NUMERIC = re.compile(r"^[-+]?\d[\d.,]*(×|\s?%)?(†)?(\s⚠)?$")


def _fmt(value: Any) -> str:
    """A cell's text: figures come formatted (`figures`); None/NA is a dash, bools yes/no."""
    if missing(value):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return significant(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table; columns holding only figures (or dashes) are right-aligned."""
    cells = [[_fmt(v) for v in row] for row in rows]
    numeric = [
        bool(cells) and all(row[i] == DASH or _NUMERIC.match(row[i]) for row in cells)
        for i in range(len(headers))
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "".join("---:|" if n else "---|" for n in numeric)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def _suspect(row: Any) -> bool:
    return str(row.get("quality")) == "suspect"


def _plain(row: pd.Series) -> dict[str, Any]:
    """A row as a dict with None for missing values (pd.NA has no truth value)."""
    return {k: None if missing(v) else v for k, v in row.items()}


def _marked(text: str, row: Any) -> str:
    """A timing figure, followed by ⚠ when its row is not to be quoted as fact."""
    return f"{text}\u00a0{SUSPECT}" if _suspect(row) and text != DASH else text  # no-break space


def _speedup(row: Any) -> str:
    """'3.10×', with † when the reference ran separately and ⚠ when the row is suspect."""
    value = row.get("speedup_vs_torch_fp32")
    if missing(value):
        return DASH
    basis = SEPARATE if str(row.get("speedup_basis")) == "separate" else ""
    return _marked(f"{speedup(value)}{basis}", row)


def _per_checkpoint(frame: pd.DataFrame):
    """(heading, rows) per checkpoint, named by its cell (and file when a cell has several checkpoints)."""
    ok = _ok(frame)
    for (cell, checkpoint), group in ok.groupby(["cell", "checkpoint"], sort=True):
        yield cell_label(cell, checkpoint, ok), group


def _accuracy_header(measures: pd.Series) -> tuple[str, bool]:
    """The accuracy column's header, and whether each cell must name its measure (mixed measures)."""
    known = {str(m) for m in measures.dropna() if str(m)}
    if len(known) == 1:
        return accuracy_label(known.pop()), False
    return "accuracy vs fp32", True


def recommendation_section(frame: pd.DataFrame) -> str:
    """The sentence naming the variant to ship, then per checkpoint and batch size the fastest variant that
    passed the accuracy gate, with its figures and, below, where its files are."""
    recs = recommendations(frame)
    if recs.empty:
        return "_No variant passed the accuracy gate: nothing to recommend._"
    header, each = _accuracy_header(recs["accuracy_measure"])
    rows = []
    for _, r in recs.iterrows():
        accuracy = ratio(r["miou_ratio"])
        rows.append([cell_label(r["cell"], r["checkpoint"], frame), int(r["batch_size"]), f"`{r['variant']}`",
                     _marked(significant(r["latency_ms_median"]), r), _speedup(r),
                     f"{accuracy_label(r['accuracy_measure'])} {accuracy}" if each else accuracy,
                     significant(r["model_size_mib"])])  # fmt: skip
    headers = ["cell", "batch", "ship", "p50 ms", "speedup vs torch fp32 (same batch)", header, "size MiB"]
    files = sorted({(str(r["variant"]), str(Path(str(r["artifact"])).resolve())) for _, r in recs.iterrows()})
    where = "\n".join(f"- `{variant}`: `{artifact}`" for variant, artifact in files)
    sentence = ship_sentence(frame) or ""
    legend = _legend(recs, "Fastest variant (median latency per call) that passed the accuracy gate.")
    return f"**{sentence}**\n\n{table(headers, rows)}\n\n{legend}\n\nArtifacts:\n\n{where}"


def _legend(rows: pd.DataFrame, first: str = "", speedups: bool = True) -> str:
    """What ⚠ and † mean, only for the marks the table above uses."""
    notes = [first] if first else []
    if speedups and any(str(r.get("speedup_basis")) == "separate" for _, r in rows.iterrows()):
        notes.append(
            f"{SEPARATE}: speedup from a torch fp32 run measured separately (not in the same rounds)."
        )
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
        smallest = int(group["batch_size"].min())
        shown = group[group["batch_size"] == smallest].sort_values(["backend", "precision"])
        rows = []
        for _, r in shown.iterrows():
            best = group[group["variant"] == r["variant"]]["throughput_ips"].max()
            accuracy = r["miou"] if r["eval_mode"] == "labels" else r["pixel_agreement"]
            verdict = DASH if missing(r["accepted"]) else ("accepted" if r["accepted"] else "**rejected**")
            variant = f"{r['variant']} (reused)" if r["reused"] is True else r["variant"]
            rows.append(
                [variant, r["precision"], ratio(accuracy), ratio(r["miou_ratio"]), verdict,
                 _marked(significant(r["throughput_ips"]), r), _speedup(r), significant(best),
                 significant(r["artifact_build_seconds"]), significant(_ready_ms(r))]
            )  # fmt: skip
        mode = group["eval_mode"].iloc[0]
        metric = {"labels": "mIoU", "agreement": "pixel agreement"}.get(mode, "accuracy")
        gated = _accuracy_header(group["accuracy_measure"])[0] + " (gated)"
        headers = ["variant", "precision", metric, gated, "gate", f"img/s (bs {smallest})"]
        headers += [f"speedup vs torch fp32 (bs {smallest})", "best img/s (any bs)", "build s"]
        headers += ["load + 1st call ms"]
        legend = _legend(shown)
        parts.append(f"### {heading}\n\n" + table(headers, rows) + (f"\n\n{legend}" if legend else ""))
    return "\n\n".join(parts) or "_No successful variant._"


def _ready_ms(row: pd.Series) -> float | None:
    """Load time plus the first call: how long a fresh process waits for its first result."""
    if missing(row["load_ms"]) or missing(row["first_call_ms"]):
        return None
    return float(row["load_ms"]) + float(row["first_call_ms"])


def batch_tables(frame: pd.DataFrame) -> str:
    """Per checkpoint and batch size: latency percentiles, throughput, memory and size of each variant."""
    parts = []
    for heading, group in _per_checkpoint(frame):
        ordered = group.sort_values(["batch_size", "variant"])
        rows = [
            [r["variant"], int(r["batch_size"]), _marked(significant(r["latency_ms_median"]), r),
             significant(r["latency_ms_p90"]), significant(r["latency_ms_p99"]),
             _marked(significant(r["throughput_ips"]), r), fixed(r["other_cpu_cores"], 2),
             fixed(r["peak_rss_mib"], 0), significant(r["model_size_mib"])]
            for _, r in ordered.iterrows()
        ]  # fmt: skip
        headers = ["variant", "batch", "p50 ms", "p90 ms", "p99 ms", "img/s", "others' CPU cores"]
        headers += ["peak RSS MiB", "size MiB"]
        legend = _legend(ordered, speedups=False)
        parts.append(f"### {heading}\n\n" + table(headers, rows) + (f"\n\n{legend}" if legend else ""))
    return "\n\n".join(parts) or "_No successful variant._"


UNITS = (
    "Latencies are milliseconds per call (the whole batch: MLflow `latency_ms_*_bs<N>`); img/s is images "
    "per second (`throughput_ips_bs<N>`); MiB are 2^20 bytes (`*_mib`); accuracy is the ratio to torch fp32 "
    "that the gate compares with its threshold (`miou_ratio`); *others' CPU cores* is the CPU other "
    "processes used while the variant was timed (above 0.5 core the row is marked ⚠)."
)


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
        rows.append([r["cell"], r["variant"], int(r["batch_size"]), int(r["baseline_runs"]),
                     significant(r["baseline_latency_ms"]), significant(r["latency_ms_median"]), change,
                     flag])  # fmt: skip
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
    sections = [header(meta, frame), "## Recommendation\n\n" + recommendation_section(frame)]
    if comparison is not None:
        sections.append("## Comparison with previous runs\n\n" + regressions_table(comparison, frame))
    sections.append(f"## Accuracy and speed per checkpoint\n\n{UNITS}\n\n" + accuracy_speed_tables(frame))
    sections.append("## Latency, throughput and memory per batch size\n\n" + batch_tables(frame))
    sections.append("## Measurements to distrust\n\n" + distrust_list(frame))
    sections.append("## Failed and skipped variants\n\n" + problems_table(frame))
    if plots:
        sections.append("## Plots\n\n" + "\n\n".join(f"![{p.stem}]({p.name})" for p in plots))
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
    summary = _inline_plots(summary, plots)
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
        accuracy = f"{measure} {ratio(row['miou_ratio'])}" if row["miou_ratio"] is not None else DASH
        gate = {True: "accepted", False: "rejected"}.get(row["accepted"], DASH)
        status = row["status"] if row["status"] == "ok" else f"{row['status']}: {row['error']}"
        out.append({
            "cell": row["cell"], "variant": row["variant"], "batch": row["batch_size"],
            "p50 ms": _marked(significant(row["latency_ms_median"]), r),
            "img/s": _marked(significant(row["throughput_ips"]), r),
            "speedup vs torch fp32": _speedup(r), "accuracy vs fp32": accuracy, "gate": gate,
            "status": status,
        })  # fmt: skip
    return out


def summary_html(summary: str, plots: Sequence[Path] = ()) -> str:
    """summary.md as a standalone HTML page with the plots inlined (MLflow's artifact viewer shows HTML
    pages, but shows a Markdown file as text with raw image links)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(_inline_plots(summary, plots))
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;line-height:1.4}"
        "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:2px 8px}"
        "th{background:#f4f4f4}img{max-width:100%}code{font-size:90%}"
    )
    head = f"<head><meta charset='utf-8'><title>segopt summary</title><style>{style}</style></head>"
    return f"<!doctype html><html>{head}<body>{body}</body></html>"


def _inline_plots(summary: str, plots: Sequence[Path]) -> str:
    """The summary with each plot's relative link replaced by a PNG data URI."""
    for plot in plots:
        if Path(plot).is_file():
            uri = "data:image/png;base64," + base64.b64encode(Path(plot).read_bytes()).decode()
            summary = summary.replace(f"]({Path(plot).name})", f"]({uri})")
    return summary
