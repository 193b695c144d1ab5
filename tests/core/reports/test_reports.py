"""Reports from result rows: schema, gate and speedups, history and regressions, Markdown, plots."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat

import pandas as pd
import pyarrow as pa
import pytest

from segopt_core.pipeline.cache import ResultCache, cache_key
from segopt_core.pipeline.gate import AccuracyGate
from segopt_core.pipeline.record import VariantRecord
from segopt_core.pipeline.results import records_to_rows
from segopt_core.reports import RegressionPolicy, read_results, set_tracking_note, write_report
from segopt_core.reports.history import (
    append_history,
    compare_with_history,
    read_history,
    write_parquet_atomic,
)
from segopt_core.reports.schema import COLUMN_NAMES, frame_to_table, result_row, rows_to_frame

RUN = {"run_id": "r1", "flow": "optimize-all", "flow_run_id": "", "machine_id": "m1"}


def bench(batch_size: int, latency_ms: float) -> dict:
    return {"status": "ok", "error": "", "batch_size": batch_size, "latency_ms_median": latency_ms,
            "latency_ms_p90": latency_ms * 1.1, "latency_ms_p99": latency_ms * 1.2,
            "throughput_ips": round(1000 * batch_size / latency_ms, 3), "peak_rss_mib": 500.0,
            "model_size_mib": 1.0, "date": "2026-11-23T00:00:00+00:00", "device": "cpu"}  # fmt: skip


def record(
    variant: str, latencies: dict[int, float], accuracy: dict | None, status: str = "ok"
) -> VariantRecord:
    backend, precision = variant.split("-")[0], "-".join(variant.split("-")[1:3]).replace("-folded", "")
    return VariantRecord(
        checkpoint="zoo/a.safetensors", checkpoint_sha256="abc", cell="tiny-64-ade20k",
        backend=backend, precision=precision, variant=variant, options={"backend": backend},
        cache_key=f"k-{variant}", artifact=f"/store/{variant}", status=status,
        error="" if status == "ok" else "VerificationError: NaN",
        bench_rows=[bench(b, lat) for b, lat in latencies.items()], accuracy=accuracy,
    )  # fmt: skip


def labelled(miou: float, per_class: dict[str, float]) -> dict:
    return {"eval_mode": "labels", "eval_images": 4, "miou": miou, "per_class_iou": per_class}


@pytest.fixture
def rows() -> list[dict]:
    records = [
        record("torch-fp32", {1: 10.0, 2: 16.0}, labelled(0.50, {"wall": 0.6, "sky": 0.4})),
        record("onnxruntime-int8-dynamic", {1: 5.0, 2: 8.0}, labelled(0.40, {"wall": 0.5, "sky": 0.3})),
        record("onnxruntime-fp32", {1: 8.0, 2: 12.0}, labelled(0.495, {"wall": 0.6, "sky": 0.39})),
        record("torch-int8-dynamic", {}, None, status="failed"),
    ]
    return records_to_rows(records, RUN, AccuracyGate(0.97))


def by_variant(rows: list[dict], variant: str, batch_size: int | None = 1) -> dict:
    return next(r for r in rows if r["variant"] == variant and r["batch_size"] == batch_size)


def test_rows_have_the_schema_and_one_row_per_variant_and_batch(rows):
    assert all(list(r) == list(COLUMN_NAMES) for r in rows)
    assert len(rows) == 3 * 2 + 1
    with pytest.raises(KeyError, match="unknown result columns"):
        result_row(not_a_column=1)


def test_gate_speedup_and_per_class_deltas(rows):
    ort = by_variant(rows, "onnxruntime-fp32", 2)
    assert ort["speedup_vs_torch_fp32"] == pytest.approx(16.0 / 12.0, rel=1e-3)
    assert ort["miou_ratio"] == pytest.approx(0.99) and ort["accepted"] is True
    assert json.loads(ort["per_class_iou_delta"]) == pytest.approx({"wall": 0.0, "sky": -0.01})
    int8 = by_variant(rows, "onnxruntime-int8-dynamic")
    assert int8["miou_ratio"] == pytest.approx(0.8) and int8["accepted"] is False
    assert "rejected" in int8["gate"]
    failed = by_variant(rows, "torch-int8-dynamic", None)
    assert failed["status"] == "failed" and "NaN" in failed["error"] and failed["accepted"] is None


def test_agreement_mode_gates_on_miou_vs_reference():
    accuracy = {"eval_mode": "agreement", "eval_images": 2, "pixel_agreement": 0.99, "miou_vs_reference": 0.9}
    rows = records_to_rows([record("onnxruntime-fp32", {1: 8.0}, accuracy)], RUN, AccuracyGate(0.97))
    assert rows[0]["miou_ratio"] == pytest.approx(0.9) and rows[0]["accepted"] is False
    assert rows[0]["speedup_vs_torch_fp32"] is None  # no torch fp32 reference in this run


def test_report_files_history_and_tracking_note(rows, tmp_path):
    meta = {**RUN, "machine": "test box", "notes": ["a note"]}
    report = write_report(rows, tmp_path / "reports", meta, tmp_path / "reports" / "history")
    frame = read_results(report.dir)
    assert len(frame) == len(rows) and set(frame["variant"]) >= {"torch-fp32", "onnxruntime-fp32"}
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert report.history == tmp_path / "reports" / "history" / f"date={today}" / "r1.parquet"
    text = report.summary.read_text()
    assert "## Accuracy and speed per checkpoint" in text and "| onnxruntime-fp32 | fp32 |" in text
    assert "**rejected**" in text and "VerificationError: NaN" in text and "a note" in text
    assert [p.read_bytes()[:8] for p in report.plots] == [b"\x89PNG\r\n\x1a\n"] * 3
    set_tracking_note(report.summary, "MLflow: **tracking failed**: boom")
    text = report.summary.read_text()
    assert text.count("## Tracking") == 1 and text.rstrip().endswith("boom")
    with pytest.raises(FileExistsError, match="append-only"):
        write_report(rows, tmp_path / "reports", meta, tmp_path / "reports" / "history")


def test_regression_against_median_of_previous_runs(rows, tmp_path):
    history = tmp_path / "history"
    for i, factor in enumerate([1.0, 1.02, 0.98, 5.0]):  # the 5x run is older than the window of 3
        old = [{**r, "run_id": f"old{i}", "latency_ms_median": (r["latency_ms_median"] or 0) * factor,
                "date": f"2026-11-{20 - i:02d}T00:00:00+00:00"} for r in rows]  # fmt: skip
        append_history(rows_to_frame(old), history, f"old{i}", dt.date(2026, 11, 20 - i))
    slow = [{**r, "run_id": "now", "latency_ms_median": (r["latency_ms_median"] or 0) * 1.5} for r in rows]
    append_history(rows_to_frame(slow), history, "now", dt.date(2026, 11, 23))
    comparison = compare_with_history(rows_to_frame(slow), read_history(history), window=3, threshold=0.10)
    assert len(comparison) == 6 and comparison["regression"].all()
    assert (comparison["baseline_runs"] == 3).all()
    assert comparison["latency_change"].tolist() == pytest.approx([0.5] * 6)
    same = compare_with_history(rows_to_frame(rows), read_history(history), window=3, threshold=0.10)
    assert not same["regression"].any()
    with pytest.raises(ValueError):
        RegressionPolicy(window=0)


def test_result_cache_needs_the_artifact(tmp_path):
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    cache = ResultCache(tmp_path / "results")
    key = cache_key("abc", {"backend": "torch"}, {"batch_sizes": [1]})
    assert key == cache_key("abc", {"backend": "torch"}, {"batch_sizes": [1]})
    assert key != cache_key("abc", {"backend": "torch"}, {"batch_sizes": [1, 2]})
    cache.put(key, artifact, {"status": "ok"})
    assert cache.get(key) == {"status": "ok"}
    artifact.rmdir()
    assert cache.get(key) is None


def test_a_report_removes_only_temp_folders_nobody_writes(rows, tmp_path):
    """A report folder shared between machines: another host's report in progress is never removed."""
    import subprocess
    import sys

    from segopt_core.lifecycle import host_tag, owner_tag

    root = tmp_path / "reports"
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()  # fmt: skip
    other_host = "000000" if host_tag() != "000000" else "ffffff"
    folders = {
        "dead here": root / f".tmp-r0-optimize-all-local-{host_tag()}-{dead_pid}",
        "live here": root / f".tmp-r0-optimize-all-local-{owner_tag()}",
        "other host": root
        / f".tmp-r0-optimize-all-local-{other_host}-{dead_pid}",  # its pid means nothing here
        "old other host": root / f".tmp-r0-optimize-all-local-{other_host}-1",
    }
    for folder in folders.values():
        folder.mkdir(parents=True)
    day_ago = dt.datetime.now().timestamp() - 2 * 86400
    os.utime(folders["old other host"], (day_ago, day_ago))
    write_report(rows, root, {**RUN, "machine": "test box", "notes": []})
    assert {name for name, folder in folders.items() if folder.exists()} == {"live here", "other host"}


def test_speedup_prefers_the_same_round_reference():
    from segopt_core.benchmark.paired import speedup_columns

    paired = {"throughput_ips": 50.0, "reference_latency_ms": 30.0, "paired_latency_ms": 10.0}
    assert speedup_columns(paired, reference_throughput=1.0) == {
        "speedup_vs_torch_fp32": 3.0, "speedup_basis": "same-round"
    }  # fmt: skip
    assert speedup_columns({"throughput_ips": 50.0}, 25.0) == {
        "speedup_vs_torch_fp32": 2.0, "speedup_basis": "separate"
    }  # fmt: skip
    assert speedup_columns({"throughput_ips": 50.0}, None) == {}


def test_recommendation_is_the_fastest_accepted_variant(rows, tmp_path):
    from segopt_core.reports.recommend import recommendations, recommended_by_cell

    rows = [{**r, "quality": "suspect", "quality_flags": "contended", "other_cpu_cores": 1.7}
            if r["variant"] == "onnxruntime-fp32" and r["batch_size"] == 2 else r for r in rows]  # fmt: skip
    recs = recommendations(rows_to_frame(rows))
    # int8 is faster but rejected by the gate: onnxruntime-fp32 wins at both batch sizes
    assert recs[["batch_size", "variant"]].values.tolist() == [[b, "onnxruntime-fp32"] for b in (1, 2)]
    assert recommended_by_cell(rows_to_frame(rows)) == {"tiny-64-ade20k": "onnxruntime-fp32"}
    report = write_report(rows, tmp_path / "reports", {**RUN, "machine": "box"})
    text = report.summary.read_text()
    assert text.index("## Recommendation") < text.index("## Accuracy and speed per checkpoint")
    assert "| `onnxruntime-fp32` |" in text and "| mIoU / fp32 mIoU | size MiB |" in text
    assert "| tiny-64-ade20k | 1 | `onnxruntime-fp32` | 8.00 | 1.25×† | 0.9900 | 1.00 |" in text
    assert "ratio vs fp32" not in text and "mIoU / fp32 mIoU (gated)" in text
    first = text.split("## Recommendation\n\n")[1].splitlines()[0]
    assert first == ("**Ship onnxruntime-fp32 for tiny-64-ade20k at batch 1: 8.00 ms, 1.25× torch fp32, "
                     "mIoU / fp32 mIoU 0.9900.**")  # fmt: skip
    assert "⚠ tiny-64-ade20k · `onnxruntime-fp32` · batch 2: other processes used 1.70 cores" in text


def test_report_files_get_the_usual_mode_not_0600(rows, tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    report = write_report(rows, tmp_path / "reports", {**RUN, "machine": "box"}, tmp_path / "history")
    for path in [report.results, report.summary, *report.plots, report.history]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_plot_colour_is_the_backend_and_marker_the_precision_and_pareto_front():
    from segopt_core.reports.plots import pareto_front, variant_styles

    variants = ["torch-fp32", "torch-bf16", "onnxruntime-fp32", "onnxruntime-fp32-folded",
                "openvino-int8-static", "newbackend-fp32"]  # fmt: skip
    rows = pd.DataFrame({"variant": variants, "backend": [v.split("-")[0] for v in variants],
                         "precision": ["fp32", "bf16", "fp32", "fp32", "int8-static", "fp32"]})  # fmt: skip
    styles = variant_styles(rows)
    assert (
        styles["torch-fp32"]["color"] == styles["torch-bf16"]["color"] != styles["onnxruntime-fp32"]["color"]
    )
    assert (
        styles["torch-fp32"]["marker"]
        == styles["onnxruntime-fp32"]["marker"]
        != styles["torch-bf16"]["marker"]
    )
    assert styles["onnxruntime-fp32"]["filled"] and not styles["onnxruntime-fp32-folded"]["filled"]
    assert len({s["color"] for s in styles.values()}) == 4  # an unlisted backend gets a colour of its own
    points = [(1.0, 1.0), (2.0, 0.99), (1.5, 0.95), (40.0, 0.9), (3.0, 0.8)]
    assert pareto_front(points) == [(1.0, 1.0), (2.0, 0.99), (40.0, 0.9)]


def test_regression_measured_on_a_busy_machine_is_marked(rows):
    from segopt_core.reports.markdown import regressions_table

    frame = rows_to_frame([{**r, "quality": "suspect"} if r["variant"] == "torch-fp32" else r for r in rows])
    comparison = compare_with_history(frame, frame.assign(run_id="old", latency_ms_median=1.0))
    text = regressions_table(comparison, frame)
    assert "| torch-fp32 | 1 | 1 | 1.00 | 10.0 | +900.0 % | **REGRESSION** ⚠ busy machine |" in text
    assert "| onnxruntime-fp32 | 1 | 1 | 1.00 | 8.00 | +700.0 % | **REGRESSION** |" in text


def test_rows_reused_from_the_cache_never_count_twice_in_the_baseline(rows, tmp_path):
    """Three optimize-all runs of one checkpoint (runs 2 and 3 fully reused), then a nightly run."""
    reports, history = tmp_path / "reports", tmp_path / "reports" / "history"
    meta = {**RUN, "machine": "test box", "notes": []}
    write_report(rows, reports, meta, history)
    for run_id in ("r2", "r3"):
        reused = [{**r, "run_id": run_id, "reused": True} for r in rows]
        report = write_report(reused, reports, {**meta, "run_id": run_id}, history)
        assert report.history is None  # no new measurement, nothing for the history
        assert read_results(report.dir)["reused"].all()  # still in the run's own report...
        assert "torch-fp32 (reused)" in report.summary.read_text()  # ...and marked there
    assert set(read_history(history)["run_id"]) == {"r1"}
    nightly = [{**r, "run_id": "n1", "flow": "nightly-benchmark"} for r in rows]
    report = write_report(nightly, reports, {**meta, "run_id": "n1"}, history, RegressionPolicy())
    comparison = pd.read_csv(report.comparison)
    assert len(comparison) == 6 and (comparison["baseline_runs"] == 1).all()


def test_a_history_holding_reused_copies_still_counts_each_measurement_once(rows, tmp_path):
    """Histories written before reused rows were kept out: the copies are ignored by the comparison."""
    history = tmp_path / "history"
    for i, run_id in enumerate(["r1", "r2", "r3"]):
        copies = [{**r, "run_id": run_id, "reused": i > 0} for r in rows]
        write_parquet_atomic(
            frame_to_table(rows_to_frame(copies)), history / "date=2026-11-20" / f"{run_id}.parquet"
        )
    nightly = rows_to_frame([{**r, "run_id": "n1"} for r in rows])
    comparison = compare_with_history(nightly, read_history(history))
    assert (comparison["baseline_runs"] == 1).all()


def test_a_failed_evaluation_makes_failed_rows_that_keep_the_measurements():
    bad = record("onnxruntime-fp32", {1: 8.0}, {"error": "DatasetError: a.png: mask values 200 outside"})
    rows = records_to_rows([bad], RUN, AccuracyGate(0.97))
    assert [r["status"] for r in rows] == ["failed"]
    assert rows[0]["error"].startswith("evaluation failed: DatasetError")
    assert rows[0]["latency_ms_median"] == 8.0


def test_summary_shows_build_time_apart_from_load_and_first_call(rows, tmp_path):
    """A compiled variant's compile time belongs to its build, not to the first call a user waits for."""
    timed = [
        {**r, "artifact_build_seconds": 41.5, "load_ms": 900.0, "first_call_ms": 180.0}
        if r["variant"] == "onnxruntime-fp32" else r
        for r in rows
    ]  # fmt: skip
    text = write_report(timed, tmp_path / "reports", {**RUN, "machine": "box"}).summary.read_text()
    assert "| build s | load + 1st call ms |" in text
    line = next(x for x in text.splitlines() if x.startswith("| onnxruntime-fp32 | fp32 |"))
    assert line.endswith("| 41.5 | 1080 |")


def test_a_history_of_the_layout_before_the_cell_rename_still_gives_nightly_a_baseline(rows, tmp_path):
    """Result schema 2 called the cell `model`: its files are read with the column mapped, not skipped."""
    history = tmp_path / "history"
    old = frame_to_table(rows_to_frame([{**r, "run_id": "old"} for r in rows]))
    old = old.rename_columns(["model" if n == "cell" else n for n in old.column_names])
    old = old.drop_columns(["artifact_build_seconds"])  # a column that schema 2 lacked: read as null
    write_parquet_atomic(old, history / "date=2026-11-20" / "old.parquet")
    write_parquet_atomic(pa.table({"x": [1]}), history / "date=2026-11-20" / "not-results.parquet")
    earlier = read_history(history)
    assert earlier["cell"].dropna().tolist() and earlier["artifact_build_seconds"].isna().all()
    comparison = compare_with_history(rows_to_frame([{**r, "run_id": "n1"} for r in rows]), earlier)
    assert len(comparison) == 6 and (comparison["baseline_runs"] == 1).all()
    assert set(comparison["cell"]) == {r["cell"] for r in rows if r["status"] == "ok"}


def _busy(rows: list[dict], variant: str, batch_size: int) -> list[dict]:
    return [{**r, "quality": "suspect", "quality_flags": "contended", "other_cpu_cores": 1.7}
            if r["variant"] == variant and r["batch_size"] == batch_size else r for r in rows]  # fmt: skip


def test_the_speedup_plot_says_hatched_only_when_a_bar_is(rows):
    """A caption's warning is there exactly when some bar was measured on a busy machine."""
    from segopt_core.reports.plots import speedup_figure

    quiet = speedup_figure(rows_to_frame(rows))
    busy = speedup_figure(rows_to_frame(_busy(rows, "onnxruntime-fp32", 1)))
    assert "hatched" not in quiet.axes[-1].get_xlabel() and "busy" not in quiet.axes[-1].get_xlabel()
    assert "hatched ⚠" in busy.axes[-1].get_xlabel()
    assert not any(bar.get_hatch() for bar in quiet.axes[0].patches)
    assert [bar.get_hatch() for bar in busy.axes[0].patches].count("//") == 1


def test_the_latency_plot_shows_ms_per_call_at_the_measured_batch_sizes_only(rows):
    """Item 4: the y values are the tables' p50 ms per call (not per image); ticks only at 1 and 2."""
    from segopt_core.reports.plots import latency_figure

    frame = rows_to_frame(rows)
    ax = latency_figure(frame).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    torch = frame[(frame["variant"] == "torch-fp32")].sort_values("batch_size")
    assert list(lines["torch-fp32"].get_ydata()) == torch["latency_ms_median"].astype(float).tolist()
    assert list(ax.get_xticks()) == [1, 2]
    assert "per call" in ax.get_ylabel()


def test_summary_figures_are_right_aligned_and_marks_explained_beside_their_tables(rows, tmp_path):
    """Item 12: numbers right-aligned, ratios with 4 digits, no needless decimals, the batch the speedup is
    at in its header, one accuracy label per column, † and ⚠ explained under each table that uses them."""
    text = write_report(_busy(rows, "onnxruntime-fp32", 2), tmp_path / "r", {**RUN, "machine": "box"})
    text = text.summary.read_text()
    accuracy = text.split("## Accuracy and speed per checkpoint")[1].split("## Latency")[0]
    assert "|---|---|---:|---:|---|---:|---:|---:|---:|---:|" in accuracy
    assert "| onnxruntime-fp32 | fp32 | 0.4950 | 0.9900 | accepted | 125 | 1.25×† | 167 |" in accuracy
    assert "speedup vs torch fp32 (bs 1)" in accuracy and accuracy.count("†: speedup from") == 1
    batches = text.split("## Latency, throughput and memory per batch size")[1].split("## Measurements")[0]
    assert "| onnxruntime-fp32 | 2 | 12.0\u00a0⚠ | 13.2 | 14.4 | 167\u00a0⚠ | 1.70 | 500 | 1.00 |" in batches
    assert "⚠: measured while the machine was busy" in batches and "†" not in batches
    assert (
        "mIoU / fp32 mIoU 0.9900" not in text.split("## Accuracy")[0].split("**Ship")[1].split("\n\n", 1)[1]
    )


def test_summary_html_shows_the_plots_inline(rows, tmp_path):
    """MLflow's artifact viewer shows summary.md as text: the HTML page has the plots and the tables."""
    from segopt_core.reports.markdown import summary_html

    report = write_report(rows, tmp_path / "r", {**RUN, "machine": "box"})
    page = summary_html(report.summary.read_text(), report.plots)
    assert page.count('<img src="data:image/png;base64,') == 3 and "<table>" in page
    assert 'style="text-align:right"' in page or "text-align: right" in page


def test_history_with_mb_columns_reads_as_mib(rows, tmp_path):
    """Schema 3 said `peak_rss_mb`/`model_size_mb` for MiB figures: older files map to `_mib` on read."""
    history = tmp_path / "history"
    old = frame_to_table(rows_to_frame([{**r, "run_id": "old"} for r in rows]))
    old = old.rename_columns([n.replace("_mib", "_mb") for n in old.column_names])
    write_parquet_atomic(old, history / "date=2026-11-20" / "old.parquet")
    earlier = read_history(history)
    assert earlier["peak_rss_mib"].dropna().tolist() and earlier["model_size_mib"].dropna().eq(1.0).all()
    comparison = compare_with_history(rows_to_frame([{**r, "run_id": "n1"} for r in rows]), earlier)
    assert (comparison["baseline_runs"] == 1).all()
