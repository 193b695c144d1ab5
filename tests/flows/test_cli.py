"""`segopt optimize-all` / `segopt nightly-benchmark`: registered, documented, arguments validated."""

from __future__ import annotations

from typer.testing import CliRunner

from segopt_cli.main import app

runner = CliRunner()


def test_commands_are_registered_with_their_options():
    result = runner.invoke(app, ["optimize-all", "--help"])
    assert result.exit_code == 0
    for option in ("--cells", "--backends", "--precisions", "--batch-sizes", "--data", "--limit",
                   "--task-runner", "--dask-address", "--work-dir", "--report-dir"):  # fmt: skip
        assert option in result.output
    result = runner.invoke(app, ["nightly-benchmark", "--help"])
    assert (
        result.exit_code == 0 and "--fail-on-regression" in result.output and "--threshold" in result.output
    )


def test_bad_arguments_fail_before_any_flow_runs():
    result = runner.invoke(app, ["optimize-all", "--batch-sizes", "1,x"])
    assert result.exit_code != 0 and "comma-separated integers" in result.output
    result = runner.invoke(app, ["nightly-benchmark", "--task-runner", "ray", "--batch-sizes", "1"])
    assert result.exit_code != 0 and "valid: threads, dask" in result.output
