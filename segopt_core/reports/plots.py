"""PNG plots of a results DataFrame: speedup per variant, latency vs batch size, accuracy vs speed."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from segopt_core.pipeline.cache import write_bytes_atomic


def _figure(width: float = 7.0, height: float = 4.0):
    # matplotlib.figure.Figure without pyplot: no global state, safe in worker threads, Agg on save
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return write_bytes_atomic(path, buffer.getvalue())


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["status"] == "ok") & frame["throughput_ips"].notna()]


def speedup_plot(frame: pd.DataFrame, path: Path) -> Path:
    """Bars: speedup vs torch fp32 of each model/variant at the smallest batch size."""
    ok = _ok(frame)
    ok = ok[ok["batch_size"] == ok["batch_size"].min()]
    fig = _figure(7, 1.5 + 0.3 * max(len(ok), 1))
    ax = fig.add_subplot()
    labels = [f"{m} · {v}" for m, v in zip(ok["model"], ok["variant"], strict=True)]
    ax.barh(labels, ok["speedup_vs_torch_fp32"].fillna(0).astype(float))
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    bs = "–" if ok.empty else int(ok["batch_size"].min())
    ax.set_xlabel(f"speedup vs torch fp32 (throughput, batch size {bs})")
    return _save(fig, path)


def latency_plot(frame: pd.DataFrame, path: Path) -> Path:
    """Lines: median latency per image vs batch size, one line per model/variant."""
    fig = _figure()
    ax = fig.add_subplot()
    for (model, variant), group in _ok(frame).groupby(["model", "variant"], sort=True):
        group = group.sort_values("batch_size")
        per_image = group["latency_ms_median"].astype(float) / group["batch_size"].astype(float)
        ax.plot(group["batch_size"].astype(int), per_image, marker="o", label=f"{model} · {variant}")
    ax.set_xlabel("batch size")
    ax.set_ylabel("median latency per image (ms)")
    if ax.has_data():
        ax.legend(fontsize="small")
    return _save(fig, path)


def accuracy_speed_plot(frame: pd.DataFrame, path: Path) -> Path:
    """Scatter: accuracy ratio vs fp32 against best throughput, one point per model/variant."""
    fig = _figure()
    ax = fig.add_subplot()
    ok = _ok(frame)
    for (model, variant), group in ok[ok["miou_ratio"].notna()].groupby(["model", "variant"], sort=True):
        ax.scatter(group["throughput_ips"].max(), group["miou_ratio"].iloc[0], label=f"{model} · {variant}")
    ax.set_xlabel("best throughput (images/s)")
    ax.set_ylabel("accuracy ratio vs torch fp32")
    if ax.has_data():
        ax.legend(fontsize="small")
    return _save(fig, path)


def write_plots(frame: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """All plots of a results DataFrame into out_dir; returns their paths."""
    out = Path(out_dir)
    return [
        speedup_plot(frame, out / "speedup.png"),
        latency_plot(frame, out / "latency_vs_batch.png"),
        accuracy_speed_plot(frame, out / "accuracy_vs_speed.png"),
    ]
