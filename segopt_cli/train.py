"""`segopt train`: ad hoc SegFormer training runs (the `train` Prefect flow wraps the same core call)."""

from __future__ import annotations

from pathlib import Path

import typer

from segopt_cli.common import fail
from segopt_core.atomic import check_target_path


def _default_out(cell: str | None, tiny: bool, crop: int | None) -> Path:
    from segopt_core.settings import load_settings

    name = "tiny" if tiny else (cell or "from-checkpoint")
    return load_settings().work_dir / "train" / (f"{name}-{crop}" if crop else name)


def train_command(
    data: Path = typer.Option(
        ..., "--data", help="Dataset folder (ADE20K, Cityscapes or images/+masks/ layout)."
    ),
    cell: str | None = typer.Option(
        None, "--cell", help="Cell to train, e.g. b0-512-ade20k (or bX-RES-dataset)."
    ),
    tiny: bool = typer.Option(False, "--tiny", help="Train the tiny test cell instead of a real one."),
    config: Path | None = typer.Option(
        None, "--config", help="Recipe YAML (fields of TrainConfig, `preset:`)."
    ),
    preset: str | None = typer.Option(None, "--preset", help="Named recipe: default (mmseg) or quick."),
    iters: int | None = typer.Option(None, "--iters", help="Budget in iterations."),
    epochs: int | None = typer.Option(None, "--epochs", help="Budget in epochs (intervals count in epochs)."),
    init: str = typer.Option("scratch", "--init", help="'scratch' or a checkpoint path to start from."),
    pretrained_encoder: Path | None = typer.Option(
        None, "--pretrained-encoder", help="ImageNet MiT weights (NVlabs mit_bX.pth) for the encoder."
    ),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default <work_dir>/train/<cell>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from state/latest.pt."),
    val_every: int | None = typer.Option(
        None, "--val-every", help="Validate every N iterations (or epochs)."
    ),
    crop: int | None = typer.Option(None, "--crop", help="Training crop size (default: the cell's)."),
    lr: float | None = typer.Option(None, "--lr", help="Base learning rate (head gets x head_lr_mult)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Images per iteration."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda."),
    amp: str | None = typer.Option(None, "--amp", help="Mixed precision: bf16 or fp16 (CUDA); default none."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for init, data order and augmentation."),
    mlflow: bool = typer.Option(False, "--mlflow", help="Track params and curves in MLflow (tracking URI)."),
) -> None:
    """Train (or fine-tune) a SegFormer with SegFormer's recipe; writes best/ and latest/ HF folders."""
    from segopt_core.train import cell_for_data, load_config, train

    if tiny and cell:
        fail("give --cell NAME or --tiny, not both")
    if not (tiny or cell or init != "scratch"):
        fail("say what to train: --cell NAME, --tiny, or --init CHECKPOINT")
    for flag, path in (("--init", None if init == "scratch" else Path(init)),
                       ("--pretrained-encoder", pretrained_encoder)):  # fmt: skip
        if path is not None and not path.exists():
            fail(f"{flag} {path}: no such file or folder")
    if out is not None:
        check_target_path(out, folder=True)
    overrides = {"iters": iters, "epochs": epochs, "val_interval": val_every, "crop_size": crop, "lr": lr,
                 "batch_size": batch_size, "device": device, "amp": amp, "seed": seed}  # fmt: skip
    try:
        recipe = load_config(config, preset_name=preset, **overrides)
        spec = cell_for_data(cell, tiny, data)
    except KeyError as exc:  # an unknown preset or cell: the message lists the valid names
        fail(str(exc).strip("'\""))
    out_dir = out or _default_out(cell, tiny, crop)
    tracker = _tracker(recipe, spec, data, init, resume) if mlflow else None
    try:  # a domain error ends as one line (exit 2 bad input, 1 failed work: segopt_cli.common.error_line)
        result = train(data, spec, recipe, out_dir, init=init, pretrained_encoder=pretrained_encoder,
                       resume=resume, on_metrics=tracker, progress=True)  # fmt: skip
    except BaseException:
        _finish(tracker, False)
        raise
    if tracker is not None:
        tracker.log_folder(result.model_dir, "best_model" if result.best_dir else "model")
    _finish(tracker, True)
    best = (
        "n/a (no val split)"
        if result.best_miou is None
        else f"{result.best_miou:.4f} @ {result.best_iteration}"
    )
    typer.echo(f"{result.cell}: {result.iterations} iterations in {result.seconds:.0f} s, best mIoU {best}")
    typer.echo(f"model: {result.model_dir}   resume state: {result.state_path}")
    if tracker is not None:
        typer.echo(f"MLflow: {tracker.link}")


def _tracker(recipe, spec, data: Path, init: str, resume: bool):
    from segopt_core.train import training_spec
    from segopt_tracking.train import MlflowTrainLogger

    name = training_spec(spec, recipe.crop_size, spec.num_classes).name if spec else Path(init).stem
    params = recipe.to_flat_dict() | {"cell": name, "data_dir": str(data), "init": init, "resume": resume}
    return MlflowTrainLogger(run_name=f"train {name}", params=params, tags={"segopt.flow": "cli"})


def _finish(tracker, ok: bool) -> None:
    if tracker is not None:
        tracker.finish(ok)


def register(app: typer.Typer) -> None:
    """Add `segopt train`."""
    app.command("train")(train_command)
