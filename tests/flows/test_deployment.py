"""End to end as a user types it: Prefect server on loopback, work pool, `prefect deploy` from prefect.yaml,
`prefect deployment run`, a process worker (--run-once), the report on disk; then the server is stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"prefect server at {url} not healthy after {timeout_s} s")


def prefect(*args: str, env: dict, timeout: float = 180) -> str:
    result = subprocess.run(
        [PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def flow_run_states(api: str) -> list[str]:
    request = urllib.request.Request(
        f"{api}/flow_runs/filter", data=b"{}", headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return [run["state_type"] for run in json.load(response)]


def test_deploy_run_and_worker(tmp_path, tiny_checkpoint):
    tiny_checkpoint(tmp_path / "zoo" / "tiny.safetensors", seed=0)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_API_URL": api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PWD": str(REPO),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "OMP_NUM_THREADS": "1"}  # fmt: skip
    # the worker runs this checkout (prefect.yaml's pull step); make its packages importable from anywhere
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_healthy(api, server)
        prefect("work-pool", "create", "segopt-pool", "--type", "process", env=env)
        prefect("--no-prompt", "deploy", "-n", "optimize-all", env=env)
        params = {"paths": [str(tmp_path / "zoo")], "work_dir": str(tmp_path / "work"),
                  "report_dir": str(tmp_path / "reports"), "variants": ["torch-fp32", "onnxruntime-fp32"],
                  "batch_sizes": [1], "warmup": 1, "iters": 3, "limit": 1}  # fmt: skip
        prefect("deployment", "run", "optimize-all/optimize-all", "--params", json.dumps(params), env=env)
        prefect("worker", "start", "--pool", "segopt-pool", "--run-once", env=env, timeout=480)
        assert flow_run_states(api) == ["COMPLETED"]
        summaries = list((tmp_path / "reports").glob("*-optimize-all-*/summary.md"))
        assert len(summaries) == 1 and "| onnxruntime-fp32 | fp32 |" in summaries[0].read_text()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()
