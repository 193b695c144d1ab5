"""`segopt optimize-all` as a user runs it: SIGTERM to its process group, then a re-run that resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from segopt_cli.main import main; main()"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and prctl are Linux"),
]


FAST = ["--variants", "torch-fp32,onnxruntime-fp32", "--batch-sizes", "1", "--warmup", "1", "--iters", "5",
        "--limit", "1"]  # fmt: skip


def _optimize_all(tmp: Path, log: Path, options: list[str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(tmp / "prefect"),
           "SEGOPT_LOCK_DIR": str(tmp / "locks"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    options = options or ["--variants", "torch-fp32,onnxruntime-fp32,torch-fp32-folded", "--batch-sizes", "1",
                          "--warmup", "1", "--iters", "50", "--limit", "1"]  # fmt: skip
    args = ["optimize-all", str(tmp / "zoo"), *options,
            "--work-dir", str(tmp / "work"), "--report-dir", str(tmp / "reports")]  # fmt: skip
    with open(log, "w") as out:
        return subprocess.Popen(CLI + args, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _wait_for(log: Path, text: str, count: int, proc: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while log.read_text().count(text) < count:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


def _survivors(tmp: Path, group: list[int]) -> list[str]:
    """Live processes of a run: its process group's, or any whose command line or PREFECT_HOME names tmp."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            mine = proc.pid in group or str(tmp) in " ".join(proc.info["cmdline"] or [])
            mine = mine or str(tmp) in proc.environ().get("PREFECT_HOME", "")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if mine:
            found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])[:200]}")
    return found


def _no_survivors(tmp: Path, group: list[int], within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while (left := _survivors(tmp, group)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, left


def test_sigterm_to_the_group_stops_at_once_and_the_rerun_redoes_only_unfinished_work(
    tmp_path, tiny_checkpoint
):
    tiny_checkpoint(tmp_path / "zoo" / "a.safetensors")
    log = tmp_path / "run1.log"
    run = _optimize_all(tmp_path, log, FAST)
    _wait_for(log, "benchmarking ", 2, run)  # the first benchmark finished (and is cached), the second runs
    group = [run.pid] + [p.pid for p in psutil.Process(run.pid).children(recursive=True)]
    start = time.monotonic()
    os.killpg(run.pid, signal.SIGTERM)
    assert run.wait(timeout=30) == 128 + signal.SIGTERM
    assert time.monotonic() - start < 15
    time.sleep(1)
    assert not [pid for pid in group if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert "Traceback" not in log.read_text()

    log2 = tmp_path / "run2.log"
    rerun = _optimize_all(tmp_path, log2, FAST)
    assert rerun.wait(timeout=400) == 0, log2.read_text()[-3000:]
    text = log2.read_text()
    assert text.count("reusing the benchmark") >= 1 and "Traceback" not in text
    assert text.count("benchmarking ") == 2 - text.count("reusing the benchmark")
    assert not list((tmp_path / "work" / "artifacts").glob("*/.tmp-*"))
    from segopt_core.reports import read_results

    report = next((tmp_path / "reports").glob("*-optimize-all-*"))
    frame = read_results(report)
    assert len(frame) == 2 and frame["variant"].is_unique and (frame["status"] == "ok").all()


def _count(tmp: Path, pattern: str) -> int:
    return len(list(tmp.glob(pattern)))


# (signal, stage, what on disk or in the log says the run is there). The log no longer says when a task
# finished (tasks/logs.py drops "Finished in state Completed()"), so the later stages are told by their files.
CHAIN = [
    (signal.SIGTERM, "discover", lambda tmp, log: "Beginning flow run" in log),
    (signal.SIGKILL, "build", lambda tmp, log: _count(tmp, "work/artifacts/*/.tmp-*") > 0),  # half-built
    (signal.SIGKILL, "evaluate", lambda tmp, log: _count(tmp, "work/results/*.benchmark.json") == 2),
    (signal.SIGTERM, "report", lambda tmp, log: _count(tmp, "reports/.tmp-*") > 0),  # half-written
]


def _wait_until(tmp: Path, log: Path, reached, proc: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not reached(tmp, log.read_text()):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.01)


def test_killed_at_every_stage_each_rerun_starts_and_the_last_finishes_with_every_row_once(
    tmp_path, tiny_checkpoint
):
    """One chain of runs on one work dir, each killed at the next stage, then a run that finishes.

    A chain costs one partial run per stage (~15 s on 2 cores) instead of a kill plus a full re-run per case,
    and every re-run also proves that the run before it left nothing that blocks or corrupts the next.
    SIGKILL (nothing of ours runs on the way out) goes where work is half written: a build's `.tmp-*` folder,
    an evaluation's result file. SIGTERM (our handler stops children and releases the device slot) goes where
    the run starts (discover, the temporary Prefect server just up) and ends (report: files and the MLflow
    database being written). SIGTERM at benchmark is the test above.
    """
    tiny_checkpoint(tmp_path / "zoo" / "a.safetensors")
    logs = []
    for number, (sig, stage, reached) in enumerate(CHAIN, 1):
        log = tmp_path / f"run{number}-{stage}.log"
        logs.append(log)
        started = time.monotonic()
        run = _optimize_all(tmp_path, log, FAST)
        _wait_for(log, "Beginning flow run", 1, run, timeout_s=90)  # no slot, lock or server left blocks it
        assert time.monotonic() - started < 90
        _wait_until(tmp_path, log, reached, run)
        group = [run.pid] + [p.pid for p in psutil.Process(run.pid).children(recursive=True)]
        os.killpg(run.pid, sig)
        expected = -signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM
        assert run.wait(timeout=30) == expected, (stage, log.read_text()[-3000:])
        _no_survivors(tmp_path, group)
        if sig == signal.SIGTERM:
            assert "Traceback" not in log.read_text(), stage

    log = tmp_path / "final.log"
    logs.append(log)
    run = _optimize_all(tmp_path, log, FAST)
    assert run.wait(timeout=240) == 0, log.read_text()[-3000:]
    _no_survivors(tmp_path, [run.pid])
    assert "Traceback" not in log.read_text()
    # each benchmark ran once over the whole chain: a finished measurement is never redone
    for variant in ("torch-fp32", "onnxruntime-fp32"):
        assert sum(f.read_text().count(f"benchmarking {variant} ") for f in logs) == 1, variant
    assert not list((tmp_path / "work").rglob(".tmp-*"))
    assert not [f for f in (tmp_path / "work" / "results").iterdir() if f.stat().st_size == 0]
    from segopt_core.reports import read_results

    reports = sorted((tmp_path / "reports").glob("[!.]*-optimize-all-*"))
    assert all((r / "results.parquet").is_file() and (r / "summary.md").is_file() for r in reports)  # no half
    assert not list((tmp_path / "reports").glob(".tmp-*"))  # the killed report's temp folder was removed
    frame = read_results(reports[-1])
    assert sorted(frame["variant"]) == ["onnxruntime-fp32", "torch-fp32"]
    assert (frame["status"] == "ok").all() and frame["reused"].all()  # evaluated before the report was killed


def test_two_concurrent_runs_on_one_work_dir_both_finish_with_a_complete_report(tmp_path, tiny_checkpoint):
    """Same work dir, result cache, fresh Prefect home (its device slot) and MLflow store: neither waits
    forever, neither's report or tracking is lost (both once raced on creating those two databases)."""
    from segopt_core.reports import read_results

    tiny_checkpoint(tmp_path / "zoo" / "a.safetensors")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    runs = [_optimize_all(tmp_path, log, FAST) for log in logs]
    try:
        for run, log in zip(runs, logs, strict=True):
            assert run.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        for run in runs:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
    for log in logs:  # no server migration race on the fresh Prefect database, no MLflow table race
        assert not any(bad in log.read_text() for bad in ("Traceback", "ERROR", "tracking failed")), log
    reports = sorted((tmp_path / "reports").glob("*-optimize-all-*"))
    assert len(reports) == 2
    for report in reports:
        frame = read_results(report)
        assert sorted(frame["variant"]) == ["onnxruntime-fp32", "torch-fp32"], report
        assert (frame["status"] == "ok").all(), frame[["variant", "status", "error"]]
    _no_survivors(tmp_path, [run.pid for run in runs])
