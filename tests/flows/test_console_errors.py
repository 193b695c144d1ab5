"""A flow that fails in a way segopt expects (no variant succeeded, a variant failed verification, a full
disk) shows one line per problem on the console, no traceback; `segopt --debug` keeps the tracebacks."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from segopt_cli.main import main; main()"]


def _emitted(handler, exc: BaseException) -> str:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    record = logging.LogRecord("prefect.task_runs", logging.ERROR, __file__, 1, "failed", None, info)
    handler.emit(record)
    return handler.console.file.getvalue()


def test_the_console_drops_tracebacks_of_domain_errors_only(monkeypatch):
    from prefect.logging.handlers import PrefectConsoleHandler

    from flows.lifecycle import quiet_expected_tracebacks
    from segopt_core.backends.errors import VerificationError
    from segopt_core.errors import RunFailed

    monkeypatch.setattr(PrefectConsoleHandler, "emit", PrefectConsoleHandler.emit)  # restored afterwards
    quiet_expected_tracebacks()
    for exc in (RunFailed("no variant succeeded"), VerificationError("NaN"), OSError(28, "No space left")):
        assert "Traceback" not in _emitted(PrefectConsoleHandler(stream=io.StringIO()), exc), exc
    assert "Traceback" in _emitted(PrefectConsoleHandler(stream=io.StringIO()), KeyError("a bug"))


def test_debug_keeps_the_console_as_prefect_made_it(monkeypatch):
    from prefect.logging.handlers import PrefectConsoleHandler

    from flows import lifecycle

    monkeypatch.setattr(PrefectConsoleHandler, "emit", PrefectConsoleHandler.emit)
    original = PrefectConsoleHandler.emit
    monkeypatch.setattr(lifecycle.lifecycle, "install_stop_handlers", lambda *a, **k: None)
    monkeypatch.setattr(lifecycle.lifecycle, "on_stop", lambda *a, **k: None)
    monkeypatch.setattr(lifecycle, "tie_ephemeral_server", lambda: None)
    monkeypatch.setattr(lifecycle, "keep_stop_handler_in_flows", lambda: None)
    lifecycle.prepare_ad_hoc_run("optimize-all", debug=True)
    assert PrefectConsoleHandler.emit is original
    lifecycle.prepare_ad_hoc_run("optimize-all")
    assert PrefectConsoleHandler.emit is not original


@pytest.mark.slow
def test_a_run_where_no_variant_succeeds_says_so_in_one_line(tmp_path, tiny_checkpoint):
    tiny_checkpoint(tmp_path / "zoo" / "a.safetensors", nan=True)  # every build fails verification
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(tmp_path / "prefect"),
           "SEGOPT_LOCK_DIR": str(tmp_path / "locks"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    args = ["optimize-all", str(tmp_path / "zoo"), "--variants", "torch-fp32,onnxruntime-fp32",
            "--batch-sizes", "1", "--warmup", "0", "--iters", "1", "--limit", "1",
            "--work-dir", str(tmp_path / "work"), "--report-dir", str(tmp_path / "reports")]  # fmt: skip
    done = subprocess.run(CLI + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: optimize-all failed: no variant succeeded; see {errors[0].split('see ')[-1]}"]
    assert "failed verification: output contains NaN" in done.stderr  # each variant's reason, one line each
