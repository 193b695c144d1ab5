"""PNG plots of a results DataFrame: speedup per variant, latency vs batch size, accuracy vs speed.

Readable with several cells and 20+ variants: one panel per cell, legends outside the axes, one colour and
marker per variant (the same in every plot), bars sorted and labelled, log axes when values span > 20x.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from segopt_core.atomic import write_bytes_atomic
from segopt_core.reports.recommend import accuracy_label

LOG_SPAN = 20.0  # a log axis once the largest value is more than 20x the smallest
DPI = 90  # small enough to inline as data URIs in the Prefect artifact, sharp enough to read
_MARKERS = "osD^vP*Xhp<>8d"


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


def variant_styles(variants) -> dict[str, tuple[tuple[float, ...], str]]:
    """A distinct (colour, marker) per variant, stable across plots: tab20 + tab20b colours, no repeats."""
    from matplotlib import colormaps

    colours = [colormaps["tab20"](i) for i in range(20)] + [colormaps["tab20b"](i) for i in range(20)]
    names = sorted(set(variants))
    return {v: (colours[i % len(colours)], _MARKERS[i % len(_MARKERS)]) for i, v in enumerate(names)}


def _log_if_wide(values, set_scale) -> None:
    positive = [float(v) for v in values if v is not None and not pd.isna(v) and float(v) > 0]
    if positive and max(positive) / min(positive) > LOG_SPAN:
        set_scale("log")


def _legend_outside(fig, axes) -> None:
    """One legend for all panels (same style per variant everywhere), right of the axes, never over data."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize="small")


def _cells(ok: pd.DataFrame) -> list[str]:
    return sorted(ok["cell"].dropna().unique().tolist()) or [""]


def speedup_plot(frame: pd.DataFrame, path: Path) -> Path:
    """Bars per cell: speedup vs torch fp32 of each variant at the smallest batch size, sorted, labelled."""
    ok = _ok(frame)
    ok = ok[ok["batch_size"] == ok["batch_size"].min()] if not ok.empty else ok
    cells = _cells(ok)
    styles = variant_styles(ok["variant"])
    heights = [max(len(ok[ok["cell"] == c]), 1) for c in cells]
    fig = _figure(8, 1.0 + sum(0.28 * h + 0.6 for h in heights))
    axes = fig.subplots(len(cells), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, cell in zip(axes, cells, strict=True):
        rows = ok[ok["cell"] == cell].sort_values("speedup_vs_torch_fp32", na_position="first")
        values = rows["speedup_vs_torch_fp32"].astype(float).fillna(0.0).tolist()
        suspect = (rows["quality"].fillna("") == "suspect").tolist()
        labels = [f"{v} ⚠" if s else v for v, s in zip(rows["variant"], suspect, strict=True)]
        bars = ax.barh(labels, values, color=[styles[v][0] for v in rows["variant"]])
        for bar, flagged in zip(bars, suspect, strict=True):
            bar.set_hatch("//" if flagged else "")
        ax.bar_label(bars, labels=[f"{v:.2f}×" for v in values], padding=3, fontsize="small")
        _log_if_wide(values, ax.set_xscale)
        ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.margins(x=0.15)
        ax.set_title(cell or "results", loc="left", fontsize="medium")
        ax.tick_params(axis="y", labelsize="small")
    bs = "–" if ok.empty else int(ok["batch_size"].min())
    axes[-1].set_xlabel(f"speedup vs torch fp32 at batch size {bs} (⚠ hatched: measured on a busy machine)")
    return _save(fig, path)


def latency_plot(frame: pd.DataFrame, path: Path) -> Path:
    """Lines per cell: median latency per image vs batch size, one colour + marker per variant."""
    ok = _ok(frame)
    cells = _cells(ok)
    styles = variant_styles(ok["variant"])
    fig = _figure(10, max(0.5 + 3.2 * len(cells), 0.22 * ok["variant"].nunique()))
    axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
    for ax, cell in zip(axes, cells, strict=True):
        per_cell = ok[ok["cell"] == cell]
        for variant, group in per_cell.groupby("variant", sort=True):
            group = group.sort_values("batch_size")
            per_image = group["latency_ms_median"].astype(float) / group["batch_size"].astype(float)
            colour, marker = styles[variant]
            ax.plot(group["batch_size"].astype(int), per_image, marker=marker, color=colour, label=variant)
        _log_if_wide(per_cell["per_image_ms"].tolist(), ax.set_yscale)
        ax.set_title(cell or "results", loc="left", fontsize="medium")
        ax.set_ylabel("median ms per image")
    _legend_outside(fig, axes)
    axes[-1].set_xlabel("batch size")
    return _save(fig, path)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (speed, accuracy) points no other point beats on both, sorted by speed."""
    front = [p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)]
    return sorted(set(front))


def accuracy_speed_plot(frame: pd.DataFrame, path: Path, gate: float | None = None) -> Path:
    """Per cell: accuracy ratio vs fp32 against speedup at the smallest batch, Pareto front and gate line."""
    ok = _ok(frame)
    ok = ok[ok["miou_ratio"].notna()]
    small = ok[ok["batch_size"] == ok["batch_size"].min()] if not ok.empty else ok
    cells = _cells(small)
    styles = variant_styles(small["variant"])
    fig = _figure(10, max(0.5 + 3.4 * len(cells), 0.22 * small["variant"].nunique() + 0.6))
    axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
    for ax, cell in zip(axes, cells, strict=True):
        rows = small[small["cell"] == cell]
        x = rows["speedup_vs_torch_fp32"].astype(float).fillna(rows["throughput_ips"].astype(float))
        points = list(zip(x.tolist(), rows["miou_ratio"].astype(float).tolist(), strict=True))
        for (speed, accuracy), variant in zip(points, rows["variant"], strict=True):
            colour, marker = styles[variant]
            ax.scatter(speed, accuracy, color=colour, marker=marker, s=45, label=variant, zorder=3)
        front = pareto_front(points)
        if len(front) > 1:
            ax.step(*zip(*front, strict=True), where="pre", color="black", linewidth=1.2, zorder=2,
                    label="Pareto front")  # fmt: skip
        if front:
            ax.scatter(*zip(*front, strict=True), s=160, facecolors="none", edgecolors="black", zorder=4)
        if gate is not None:
            ax.axhline(gate, color="red", linestyle="--", linewidth=1, label=f"accuracy gate {gate:g}")
        _log_if_wide(x.tolist(), ax.set_xscale)
        measure = rows["accuracy_measure"].dropna()
        ax.set_ylabel(accuracy_label(measure.iloc[0] if len(measure) else None))
        ax.set_title(cell or "results", loc="left", fontsize="medium")
    _legend_outside(fig, axes)
    axes[-1].set_xlabel("speedup vs torch fp32 (smallest batch size); circled: Pareto front")
    return _save(fig, path)


def write_plots(frame: pd.DataFrame, out_dir: str | Path, gate: float | None = None) -> list[Path]:
    """All plots of a results DataFrame into out_dir; returns their paths."""
    out = Path(out_dir)
    return [
        speedup_plot(frame, out / "speedup.png"),
        latency_plot(frame, out / "latency_vs_batch.png"),
        accuracy_speed_plot(frame, out / "accuracy_vs_speed.png", gate),
    ]
