"""Prefect flow `train`: recipe -> tracked training run -> an HF folder that `segopt discover` matches."""

from __future__ import annotations

from prefect import flow

from flows.naming import run_options
from segopt_core.settings import load_settings
from segopt_tracking.store import probe_tracking
from tasks.train import prepare_config, train_model


def default_out_dir(cell: str | None, tiny: bool, crop: int | None) -> str:
    """<work_dir>/train/<cell>[-<crop>]: stable, so a re-run with resume=True continues it."""
    name = "tiny" if tiny else (cell or "from-checkpoint")
    return str(load_settings().work_dir / "train" / (f"{name}-{crop}" if crop else name))


@flow(name="train", **run_options(), log_prints=True)
def train_flow(
    data_dir: str,
    cell: str | None = None,
    tiny: bool = False,
    preset: str | None = None,
    config_file: str | None = None,
    iters: int | None = None,
    epochs: int | None = None,
    init: str = "scratch",
    pretrained_encoder: str | None = None,
    out_dir: str | None = None,
    resume: bool = False,
    val_every: int | None = None,
    crop: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    amp: str | None = None,
    seed: int | None = None,
    track: bool = True,
) -> dict:
    """Train a SegFormer cell on a dataset folder with SegFormer's recipe (or a preset), tracked in MLflow."""
    overrides = {"iters": iters, "epochs": epochs, "val_interval": val_every, "crop_size": crop, "lr": lr,
                 "batch_size": batch_size, "device": device, "amp": amp, "seed": seed}  # fmt: skip
    if track:
        probe_tracking()  # a dead tracking server: one line now, not minutes of MLflow retries
    config = prepare_config(config_file, preset, overrides)
    out = out_dir or default_out_dir(cell, tiny, crop)
    result = train_model(data_dir, cell, tiny, config, out, init, pretrained_encoder, resume, track)
    return {
        "cell": result.cell,
        "model_dir": str(result.model_dir),
        "iterations": result.iterations,
        "best_miou": result.best_miou,
        "final_loss": result.final_loss,
        "seconds": round(result.seconds, 1),
    }
