"""PNG plots of a results DataFrame, each answering one question at a glance.

- speedup.png: which variant is fastest against torch fp32 (bars per cell, sorted, labelled);
- latency_vs_batch.png: how the latency of one call grows with the batch size (at the measured sizes only);
- accuracy_vs_speed.png: what each variant trades (accuracy ratio vs speedup, Pareto front labelled).

One encoding everywhere: the colour is the backend, the marker the precision, a hollow marker (dashed line,
paler bar) a folded decode head. One panel per cell, legends outside the axes, log axes when values span
more than 20x.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd

from segopt_core.atomic import write_bytes_atomic
from segopt_core.reports.figures import speedup
from segopt_core.reports.recommend import accuracy_label

LOG_SPAN = 20.0  # a log axis once the largest value is more than 20x the smallest
DPI = 144  # sharp on a laptop screen at 100 % zoom; still small enough to inline in the Prefect artifact
FONTS = {"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 10}
# Tableau colours, one per backend; a backend not listed takes the next free one
BACKEND_COLOURS = {
    "torch": "#4e79a7",
    "torch-compile": "#f28e2b",
    "onnxruntime": "#59a14f",
    "openvino": "#b07aa1",
    "tensorrt": "#e15759",
}
SPARE_COLOURS = ("#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac")
PRECISION_MARKERS = {"fp32": "o", "fp16": "s", "bf16": "D", "int8-dynamic": "^", "int8-static": "v"}
SPARE_MARKERS = "P*Xhp<>8d"


@contextlib.contextmanager
def _fonts():
    from matplotlib import rc_context

    with rc_context(FONTS):
        yield


def _figure(width: float, height: float):
    # matplotlib.figure.Figure without pyplot: no global state, safe in worker threads, Agg on save
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")  # tight: no cut labels or legends
    return write_bytes_atomic(path, buffer.getvalue())


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["status"] == "ok") & frame["throughput_ips"].notna()]


def backend_colours(backends) -> dict[str, str]:
    """A colour per backend: the fixed ones, then spare colours in name order."""
    others = sorted(set(backends) - set(BACKEND_COLOURS))
    return BACKEND_COLOURS | {b: SPARE_COLOURS[i % len(SPARE_COLOURS)] for i, b in enumerate(others)}


def precision_markers(precisions) -> dict[str, str]:
    """A marker per precision: the fixed ones, then spare markers in name order."""
    others = sorted(set(precisions) - set(PRECISION_MARKERS))
    return PRECISION_MARKERS | {p: SPARE_MARKERS[i % len(SPARE_MARKERS)] for i, p in enumerate(others)}


def variant_styles(rows: pd.DataFrame) -> dict[str, dict]:
    """Per variant: colour (its backend), marker (its precision), filled (False: folded decode head)."""
    colours = backend_colours(rows["backend"].dropna())
    markers = precision_markers(rows["precision"].dropna())
    styles = {}
    for _, r in rows.drop_duplicates("variant").iterrows():
        folded = "folded" in str(r["variant"])
        styles[r["variant"]] = {"color": colours[r["backend"]], "marker": markers[r["precision"]],
                                "filled": not folded}  # fmt: skip
    return styles


def _marker_kwargs(style: dict) -> dict:
    """Scatter/plot marker arguments: hollow (white inside) for a folded decode head."""
    face = style["color"] if style["filled"] else "white"
    return {"marker": style["marker"], "markeredgecolor": style["color"], "markerfacecolor": face}


def _log_if_wide(values, set_scale) -> None:
    positive = [float(v) for v in values if v is not None and not pd.isna(v) and float(v) > 0]
    if positive and max(positive) / min(positive) > LOG_SPAN:
        set_scale("log")


def _legend_outside(fig, axes, extra: list | None = None) -> None:
    """One legend for all panels (same style per variant everywhere), right of the axes, never over data."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    for handle in extra or []:
        handles.setdefault(handle.get_label(), handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right upper")


def _encoding_handles(rows: pd.DataFrame) -> list:
    """Legend entries that explain the encoding: backend colours, precision markers, hollow = folded."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=c, linewidth=6, label=b)
        for b, c in backend_colours(rows["backend"].dropna()).items()
        if b in set(rows["backend"])
    ]
    handles += [
        Line2D([], [], color="dimgrey", marker=m, linestyle="", label=p)
        for p, m in precision_markers(rows["precision"].dropna()).items()
        if p in set(rows["precision"])
    ]
    if rows["variant"].astype(str).str.contains("folded").any():
        handles.append(
            Line2D(
                [],
                [],
                color="dimgrey",
                marker="o",
                markerfacecolor="white",
                linestyle="",
                label="hollow: decode head folded",
            )
        )
    return handles  # fmt: skip


def _cells(ok: pd.DataFrame) -> list[str]:
    return sorted(ok["cell"].dropna().unique().tolist()) or [""]


def speedup_plot(frame: pd.DataFrame, path: Path) -> Path:
    """speedup.png (`speedup_figure`)."""
    with _fonts():
        return _save(speedup_figure(frame), path)


def speedup_figure(frame: pd.DataFrame):
    """Bars per cell: speedup vs torch fp32 of each variant at the smallest batch size, sorted, labelled;
    hatched (and said in the caption) only when some bar was measured on a busy machine."""
    from matplotlib.patches import Patch

    ok = _ok(frame)
    ok = ok[ok["batch_size"] == ok["batch_size"].min()] if not ok.empty else ok
    cells = _cells(ok)
    styles = variant_styles(ok)
    heights = [max(len(ok[ok["cell"] == c]), 1) for c in cells]
    any_suspect = bool((ok["quality"].fillna("") == "suspect").any())
    with _fonts():
        fig = _figure(10, 1.2 + sum(0.36 * h + 0.8 for h in heights))
        axes = fig.subplots(len(cells), 1, squeeze=False, height_ratios=heights)[:, 0]
        for ax, cell in zip(axes, cells, strict=True):
            rows = ok[ok["cell"] == cell].sort_values("speedup_vs_torch_fp32", na_position="first")
            values = rows["speedup_vs_torch_fp32"].astype(float).fillna(0.0).tolist()
            suspect = (rows["quality"].fillna("") == "suspect").tolist()
            labels = [f"{v} ⚠" if s else v for v, s in zip(rows["variant"], suspect, strict=True)]
            colours = [styles[v]["color"] for v in rows["variant"]]
            bars = ax.barh(labels, values, color=colours, edgecolor=colours)
            for bar, variant, flagged in zip(bars, rows["variant"], suspect, strict=True):
                bar.set_alpha(1.0 if styles[variant]["filled"] else 0.5)
                bar.set_hatch("//" if flagged else "")
            ax.bar_label(bars, labels=[speedup(v) for v in values], padding=3)
            _log_if_wide(values, ax.set_xscale)
            ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
            ax.margins(x=0.15)
            ax.set_title(cell or "results", loc="left")
        backends = [Patch(color=c, label=b) for b, c in backend_colours(ok["backend"].dropna()).items()
                    if b in set(ok["backend"])]  # fmt: skip
        if ok["variant"].astype(str).str.contains("folded").any():
            backends.append(Patch(color="grey", alpha=0.5, label="paler: decode head folded"))
        if any_suspect:
            backends.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="⚠ measured busy"))
        _legend_outside(fig, [], backends)
        bs = "–" if ok.empty else int(ok["batch_size"].min())
        busy = " (hatched ⚠: measured while the machine was busy)" if any_suspect else ""
        axes[-1].set_xlabel(f"speedup vs torch fp32 at batch size {bs}{busy}")
        return fig


def _batch_axis(ax, sizes: list[int]) -> None:
    """Ticks at the measured batch sizes only (log2 spacing when they span 8x or more)."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    if sizes and max(sizes) / min(sizes) >= 8:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())


def latency_plot(frame: pd.DataFrame, path: Path) -> Path:
    """latency_vs_batch.png (`latency_figure`)."""
    with _fonts():
        return _save(latency_figure(frame), path)


def latency_figure(frame: pd.DataFrame):
    """Lines per cell: median latency of one call (the whole batch, as every table) vs batch size."""
    ok = _ok(frame)
    cells = _cells(ok)
    styles = variant_styles(ok)
    with _fonts():
        fig = _figure(11, max(0.8 + 3.6 * len(cells), 0.3 * ok["variant"].nunique()))
        axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
        for ax, cell in zip(axes, cells, strict=True):
            per_cell = ok[ok["cell"] == cell]
            for variant, group in per_cell.groupby("variant", sort=True):
                group = group.sort_values("batch_size")
                style = styles[variant]
                ax.plot(group["batch_size"].astype(int), group["latency_ms_median"].astype(float),
                        color=style["color"], linestyle="-" if style["filled"] else "--", label=variant,
                        markersize=7, **_marker_kwargs(style))  # fmt: skip
            _log_if_wide(per_cell["latency_ms_median"].tolist(), ax.set_yscale)
            _batch_axis(ax, sorted(int(b) for b in per_cell["batch_size"].dropna().unique()))
            ax.set_title(cell or "results", loc="left")
            ax.set_ylabel("median ms per call")
            ax.grid(True, alpha=0.3)
        _legend_outside(fig, axes)
        axes[-1].set_xlabel("batch size (images per call; ticks at the measured sizes)")
        return fig


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (speed, accuracy) points no other point beats on both, sorted by speed."""
    front = [p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)]
    return sorted(set(front))


def accuracy_speed_plot(frame: pd.DataFrame, path: Path, gate: float | None = None) -> Path:
    """accuracy_vs_speed.png (`accuracy_speed_figure`)."""
    with _fonts():
        return _save(accuracy_speed_figure(frame, gate), path)


def accuracy_speed_figure(frame: pd.DataFrame, gate: float | None = None):
    """Per cell: accuracy ratio vs fp32 against speedup at the smallest batch, Pareto front (labelled) and
    gate line."""
    ok = _ok(frame)
    ok = ok[ok["miou_ratio"].notna()]
    small = ok[ok["batch_size"] == ok["batch_size"].min()] if not ok.empty else ok
    cells = _cells(small)
    styles = variant_styles(small)
    with _fonts():
        fig = _figure(11, max(0.8 + 4.0 * len(cells), 0.3 * len(_encoding_handles(small)) + 1))
        axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
        for ax, cell in zip(axes, cells, strict=True):
            rows = small[small["cell"] == cell]
            x = rows["speedup_vs_torch_fp32"].astype(float).fillna(rows["throughput_ips"].astype(float))
            points = list(zip(x.tolist(), rows["miou_ratio"].astype(float).tolist(), strict=True))
            for (speed, accuracy), variant in zip(points, rows["variant"], strict=True):
                kwargs = _marker_kwargs(styles[variant])
                ax.plot([speed], [accuracy], linestyle="", markersize=9, zorder=3, **kwargs)
            _label_front(ax, points, rows["variant"].tolist())
            if gate is not None:
                ax.axhline(gate, color="red", linestyle="--", linewidth=1, label=f"accuracy gate {gate:g}")
            _log_if_wide(x.tolist(), ax.set_xscale)
            measure = rows["accuracy_measure"].dropna()
            ax.set_ylabel(accuracy_label(measure.iloc[0] if len(measure) else None))
            ax.set_title(cell or "results", loc="left")
            ax.grid(True, alpha=0.3)
        _legend_outside(fig, axes, _encoding_handles(small))
        axes[-1].set_xlabel("speedup vs torch fp32 (smallest batch size); labelled: the Pareto front")
        return fig


def _label_front(ax, points: list[tuple[float, float]], variants: list[str]) -> None:
    """The Pareto front as a step line, each of its points circled and named: the names stack down and to
    the left of their points (the front's points are the fast, accurate corner), inside the axes."""
    front = pareto_front(points)
    if len(front) > 1:
        ax.step(*zip(*front, strict=True), where="pre", color="black", linewidth=1.2, zorder=2,
                label="Pareto front")  # fmt: skip
    for i, point in enumerate(front):
        names = sorted({v for p, v in zip(points, variants, strict=True) if p == point})
        ax.scatter(*point, s=220, facecolors="none", edgecolors="black", zorder=4)
        line = {"arrowstyle": "-", "color": "grey", "linewidth": 0.6}
        ax.annotate(", ".join(names), point, xytext=(-14, -18 * (i + 1)), textcoords="offset points",
                    ha="right", va="top", fontsize=9, arrowprops=line)  # fmt: skip


def write_plots(frame: pd.DataFrame, out_dir: str | Path, gate: float | None = None) -> list[Path]:
    """All plots of a results DataFrame into out_dir; returns their paths."""
    out = Path(out_dir)
    return [
        speedup_plot(frame, out / "speedup.png"),
        latency_plot(frame, out / "latency_vs_batch.png"),
        accuracy_speed_plot(frame, out / "accuracy_vs_speed.png", gate),
    ]
