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
    """Train a SegFormer cell on a dataset folder with SegFormer's recipe (or a preset), tracked in MLflow.

    Empty values take the recipe's (the preset's, then config_file's) value; the recipe is checked before
    anything is read or built (segopt_core/train/config.py: TrainConfig holds each field's range).

    Args:
        data_dir: Dataset folder: ADE20K, Cityscapes, or images/ + masks/ + classes.txt.
        cell: Cell to train, e.g. b0-512-ade20k (or bX-RES-dataset); empty: tiny or init says what.
        tiny: Train the tiny test cell instead of a real one. Default: False.
        preset: Named recipe: default (mmseg's SegFormer schedule) or quick; empty: default.
        config_file: Recipe YAML (fields of TrainConfig, may name a `preset:`); empty: none.
        iters: Budget in iterations (>= 2); empty: the recipe's (160k for default).
        epochs: Budget in epochs instead of iterations; empty: iterations.
        init: 'scratch' or a checkpoint to start from. Default: scratch.
        pretrained_encoder: ImageNet MiT weights (NVlabs mit_bX.pth) for the encoder; empty: none.
        out_dir: Output folder; empty: <work_dir>/train/<cell>[-<crop>].
        resume: Continue the run in out_dir from state/latest.pt. Default: False.
        val_every: Validate every N iterations (or epochs); empty: a tenth of the budget.
        crop: Training crop size (32..4096); empty: the cell's.
        lr: Base learning rate (the head gets x head_lr_mult); empty: the recipe's (6e-5).
        batch_size: Images per iteration (1..4096); empty: the recipe's (2).
        device: cpu or cuda; empty: cpu.
        amp: Mixed precision: bf16, or fp16 (CUDA only); empty: none.
        seed: Seed of the init, the data order and the augmentation; empty: 0.
        track: Track params, curves and the best model in MLflow. Default: True.
    """
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
