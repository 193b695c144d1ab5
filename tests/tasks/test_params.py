"""One parameter object per flow: its defaults are the CLI's, the flows' and the deployments'."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from segopt_core.pipeline.params import (
    NIGHTLY_DEFAULTS,
    OPTIMIZE_ALL_DEFAULTS,
    NightlyParams,
    OptimizeAllParams,
)

REPO = Path(__file__).resolve().parents[2]


def test_defaults_live_in_the_params_objects():
    assert OPTIMIZE_ALL_DEFAULTS.batch_sizes == [1, 4, 8] and OPTIMIZE_ALL_DEFAULTS.min_miou_ratio == 0.97
    assert (OPTIMIZE_ALL_DEFAULTS.warmup, OPTIMIZE_ALL_DEFAULTS.iters, OPTIMIZE_ALL_DEFAULTS.limit) == (
        3,
        20,
        8,
    )
    assert OptimizeAllParams(batch_sizes=None).batch_sizes == [1, 4, 8]  # a flow called with None
    assert (NIGHTLY_DEFAULTS.window, NIGHTLY_DEFAULTS.threshold) == (5, 0.10)
    with pytest.raises(ValueError, match="batch_size"):
        OptimizeAllParams(batch_size=[1])  # a misspelt parameter is refused, not ignored


@pytest.mark.parametrize(
    ("flow_path", "params"), [("optimize_all", OptimizeAllParams), ("nightly", NightlyParams)]
)
def test_the_flows_take_their_parameters_and_defaults_from_the_params_object(flow_path, params):
    module = __import__(f"flows.{flow_path}", fromlist=["x"])
    flow_fn = module.optimize_all if flow_path == "optimize_all" else module.nightly_benchmark
    signature = inspect.signature(flow_fn.fn).parameters
    assert set(signature) == set(params.model_fields)
    defaults = params()
    for name, parameter in signature.items():
        if parameter.default is not None:
            assert parameter.default == getattr(defaults, name), name


def test_deployment_parameters_are_valid_params():
    deployments = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    OptimizeAllParams(**deployments["optimize-all"]["parameters"])
    NightlyParams(**deployments["nightly"]["parameters"])


def test_the_cli_defaults_are_the_params_defaults():
    from segopt_cli.main import app

    result = CliRunner().invoke(app, ["optimize-all", "--help"], env={"COLUMNS": "200"})
    assert "1,4,8" in result.output and "0.97" in result.output
