"""The `train` flow runs under a real Prefect test server and tracks params and curves in MLflow."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    from segopt_core.data import synth_dataset

    return synth_dataset(tmp_path_factory.mktemp("flow-train") / "ade", "ade20k", 4, 2, size=(64, 64), seed=1)


def test_train_flow_tracks_run(prefect_harness, mlflow_uri, synth_data, tmp_path):
    from mlflow import MlflowClient

    from flows.train import train_flow
    from segopt_core.train import read_metadata

    summary = train_flow(
        data_dir=str(synth_data),
        tiny=True,
        iters=4,
        crop=32,
        lr=1e-3,
        val_every=4,
        out_dir=str(tmp_path / "run"),
    )
    assert summary["iterations"] == 4 and summary["cell"] == "tiny-32-ade20k"
    assert read_metadata(summary["model_dir"])["iterations"] == 4

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("segopt-train")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.001" and run.data.params["cell"] == "tiny-32-ade20k"
    assert {"loss", "lr", "val_mIoU"} <= set(run.data.metrics)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [4]
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "best_model")]
    assert "best_model/segopt.json" in artifacts and "best_model/model.safetensors" in artifacts


def test_train_flow_runs_are_named_by_run_id_and_tasks_have_no_random_suffix(
    prefect_harness, synth_data, tmp_path
):
    """Like optimize-all's: `<UTC time>-train-<id prefix>`, not 'blue-tarsier'; `train-model`, not `-78e`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.naming import RUN_ID
    from flows.train import train_flow

    state = train_flow(data_dir=str(synth_data), tiny=True, iters=1, crop=32, out_dir=str(tmp_path / "run"),
                       track=False, return_state=True)  # fmt: skip
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
    assert RUN_ID.fullmatch(run.name) and "-train-" in run.name
    assert sorted(t.name for t in tasks) == ["prepare-config", "train-model"]
