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


def _optimize_all(tmp: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(tmp / "prefect"),
           "SEGOPT_LOCK_DIR": str(tmp / "locks"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    args = ["optimize-all", str(tmp / "zoo"), "--variants", "torch-fp32,onnxruntime-fp32,torch-fp32-folded",
            "--batch-sizes", "1", "--warmup", "1", "--iters", "50", "--limit", "1",
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


def test_sigterm_to_the_group_stops_at_once_and_the_rerun_redoes_only_unfinished_work(
    tmp_path, tiny_checkpoint
):
    tiny_checkpoint(tmp_path / "zoo" / "a.safetensors")
    log = tmp_path / "run1.log"
    run = _optimize_all(tmp_path, log)
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
    rerun = _optimize_all(tmp_path, log2)
    assert rerun.wait(timeout=400) == 0, log2.read_text()[-3000:]
    text = log2.read_text()
    assert text.count("reusing the benchmark") >= 1 and "Traceback" not in text
    assert text.count("benchmarking ") == 3 - text.count("reusing the benchmark")
    assert not list((tmp_path / "work" / "artifacts").glob("*/.tmp-*"))
    from segopt_core.reports import read_results

    report = next((tmp_path / "reports").glob("*-optimize-all-*"))
    frame = read_results(report)
    assert len(frame) == 3 and frame["variant"].is_unique and (frame["status"] == "ok").all()
