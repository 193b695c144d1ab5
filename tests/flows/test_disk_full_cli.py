"""A real full disk (a small tmpfs) under `segopt optimize` and `segopt optimize-all`: a meaningful exit
code, one line naming the path and "no space left", no traceback, nothing half written (no `.tmp-*`, no
0-byte file). The `segopt video` case is tests/core/video/test_disk_full.py."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.disk import fill, tmpfs

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from segopt_cli.main import main; main()"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tmpfs")]


def _segopt(tmp: Path, args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(tmp / "prefect"),
           "SEGOPT_LOCK_DIR": str(tmp / "locks"), "SEGOPT_WORK_DIR": str(tmp / "work"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(CLI + args, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout_s)


def _nothing_half_written(disk: Path) -> None:
    left = [p for p in disk.rglob("*") if p.name.startswith(".tmp") or ".tmp" in p.suffixes]
    assert not left, left
    assert not [p for p in disk.rglob("*") if p.is_file() and p.stat().st_size == 0]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_optimize_on_a_full_disk_says_so_in_one_line(tmp_path, tiny_checkpoint, backend):
    checkpoint = tiny_checkpoint(tmp_path / "a.safetensors")
    with tmpfs(tmp_path / f"disk-{uuid.uuid4().hex[:6]}", "1m") as disk:
        fill(disk, 40)  # less than either artifact (torch ~140 KB, ONNX ~300 KB)
        store = disk / "artifacts"
        args = ["optimize", str(checkpoint), "--backend", backend, "--out", str(store)]
        done = _segopt(tmp_path, args, 120)
        assert done.returncode == 1, done.stderr  # failed work, not bad input
        assert "Traceback" not in done.stderr + done.stdout
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(store) in lines[0] and "no space left" in lines[0], done.stderr
        _nothing_half_written(disk)


def test_optimize_all_on_a_full_disk_says_so_in_one_line_and_leaves_no_half_report(tmp_path, tiny_checkpoint):
    tiny_checkpoint(tmp_path / "zoo" / "a.safetensors")
    with tmpfs(tmp_path / f"disk-{uuid.uuid4().hex[:6]}", "2m") as disk:
        fill(disk, 120)  # room for the evaluation samples, not for an artifact nor the report
        reports = disk / "reports"
        args = ["optimize-all", str(tmp_path / "zoo"), "--variants", "torch-fp32,onnxruntime-fp32",
                "--batch-sizes", "1", "--warmup", "0", "--iters", "1", "--limit", "1",
                "--work-dir", str(disk / "work"), "--report-dir", str(reports)]  # fmt: skip
        done = _segopt(tmp_path, args, 240)
        assert done.returncode == 1, done.stderr[-3000:]  # failed work, not bad input
        assert "Traceback" not in done.stderr + done.stdout
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and str(reports) in errors[0] and "no space left" in errors[0], errors
        _nothing_half_written(disk)
        assert not [r for r in reports.glob("*-optimize-all-*") if not (r / "summary.md").is_file()]
