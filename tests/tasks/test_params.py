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
    DemoParams,
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
    with pytest.raises(ValueError, match="unknown parameter 'batch_size'; valid: cells, variants"):
        OptimizeAllParams.from_flow(batch_size=[1])  # a misspelt parameter is refused, not ignored


FLOWS = {"optimize-all": OptimizeAllParams, "nightly-benchmark": NightlyParams, "demo": DemoParams}


def _flows() -> dict:
    from flows.demo import demo
    from flows.nightly import nightly_benchmark
    from flows.optimize_all import optimize_all
    from flows.train import train_flow
    from flows.video import video_flow

    return {f.name: f for f in (optimize_all, nightly_benchmark, demo, train_flow, video_flow)}


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_the_flows_take_their_parameters_and_defaults_from_the_params_object(name):
    signature = inspect.signature(_flows()[name].fn).parameters
    params = FLOWS[name]
    assert set(signature) == set(params.model_fields)
    defaults = params()
    for field, parameter in signature.items():
        given = list(parameter.default) if isinstance(parameter.default, tuple) else parameter.default
        assert given == getattr(defaults, field), field


def test_a_flow_whose_default_differs_from_the_model_is_refused_at_import():
    from flows.parameters import described_by

    def optimize_all(**kwargs):  # the model's fields, one default off
        pass

    fields = {name: field.get_default(call_default_factory=True) for name, field in
              OptimizeAllParams.model_fields.items()}  # fmt: skip
    fields["limit"] = 9
    optimize_all.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=v) for n, v in fields.items()]
    )
    with pytest.raises(TypeError, match=r"optimize_all\(limit=9\): the default is 8"):
        described_by(OptimizeAllParams)(optimize_all)


@pytest.mark.parametrize("name", ["optimize-all", "nightly-benchmark", "demo", "train", "video"])
def test_the_run_form_shows_a_description_and_a_visible_default_for_every_parameter(name):
    """Prefect's parameter schema of the flow (what `prefect deploy` sends and the UI's run form draws):
    `batch_sizes`, `cells` and `variants` showed blank or 'Property is type "None"' (issue #24, item 8)."""
    schema = _flows()[name].parameters.model_dump_for_openapi()
    for field, prop in schema["properties"].items():
        assert len(prop.get("description") or "") > 10, (name, field)
    if name in ("optimize-all", "nightly-benchmark"):
        props = schema["properties"]
        assert props["batch_sizes"]["default"] == [1, 4, 8] and props["batch_sizes"]["type"] == "array"
        assert "Default: 1,4,8." in props["batch_sizes"]["description"]
        for field in ("cells", "variants"):  # an empty list (all), not null: no "type None" alternative
            assert props[field]["default"] == [] and props[field]["type"] == "array", props[field]
            assert "empty:" in props[field]["description"]


def test_deployment_parameters_are_valid_params():
    deployments = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    OptimizeAllParams(**deployments["optimize-all"]["parameters"])
    NightlyParams(**deployments["nightly"]["parameters"])


def test_the_cli_defaults_are_the_params_defaults():
    from segopt_cli.main import app

    result = CliRunner().invoke(app, ["optimize-all", "--help"], env={"COLUMNS": "200"})
    assert "1,4,8" in result.output and "0.97" in result.output
