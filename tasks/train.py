"""Prefect tasks for training: validate the recipe, then one tracked training run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from segopt_core.train import TrainConfig, TrainResult, cell_for_data, load_config, train, training_spec
from tasks.logs import run_logger


@task(name="prepare-config", task_run_name="prepare-config")
def prepare_config(config_file: str | None, preset: str | None, overrides: dict[str, Any]) -> TrainConfig:
    """The validated recipe: preset, then the YAML file, then explicit overrides."""
    return load_config(config_file, preset_name=preset, **overrides)


@task(name="train-model", task_run_name="train-model")
def train_model(
    data_dir: str,
    cell: str | None,
    tiny: bool,
    config: TrainConfig,
    out_dir: str,
    init: str = "scratch",
    pretrained_encoder: str | None = None,
    resume: bool = False,
    track: bool = True,
) -> TrainResult:
    """Train with MLflow curves (params, loss, lr, validation) and the best model logged as an artifact."""
    spec = cell_for_data(cell, tiny, data_dir)
    name = training_spec(spec, config.crop_size, spec.num_classes).name if spec else Path(init).stem
    tracker = _tracker(config, name, data_dir, init, resume) if track else None
    try:
        result = train(data_dir, spec, config, out_dir, init=init, pretrained_encoder=pretrained_encoder,
                       resume=resume, on_metrics=tracker, progress=True)  # fmt: skip
    except BaseException:
        if tracker is not None:
            tracker.finish(ok=False)
        raise
    if tracker is not None:
        tracker.log_folder(result.model_dir, "best_model" if result.best_dir else "model")
        tracker.finish(ok=True)
        run_logger("train").info("MLflow: %s", tracker.link)
    run_logger("train").info(
        "trained %s: %d iterations, best mIoU %s", result.cell, result.iterations, result.best_miou
    )
    return result


def _tracker(config: TrainConfig, name: str, data_dir: str, init: str, resume: bool):
    from segopt_tracking.train import MlflowTrainLogger

    params = config.to_flat_dict() | {"cell": name, "data_dir": data_dir, "init": init, "resume": resume}
    return MlflowTrainLogger(run_name=f"train {name}", params=params, tags={"segopt.flow": "train"})
