"""`segopt data ...` (synthetic datasets and videos, dataset checks) and `segopt evaluate`."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import typer

from segopt_cli.common import check_positive, fail, fail_on, parse_size
from segopt_core.atomic import check_target_path

data_app = typer.Typer(
    help="Datasets: synthetic data in real layouts, synthetic videos, checks.", no_args_is_help=True
)


@data_app.command("synth")
def synth_command(
    out: Path = typer.Option(..., "--out", help="Folder to create (must not exist or be empty)."),
    layout: str = typer.Option("ade20k", help="ade20k | cityscapes | folder"),
    n_train: int = typer.Option(40, help="Training images."),
    n_val: int = typer.Option(10, help="Validation images."),
    size: str = typer.Option("128x128", help="Image size HxW."),
    seed: int = typer.Option(0, help="Random seed (same seed, same files)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    """Write a synthetic street-scene dataset in a real dataset layout."""
    from segopt_core.data.synth import SYNTH_CLASSES, synth_dataset

    start = time.perf_counter()
    hw = parse_size(size, "--size")
    check_target_path(out, folder=True)
    try:
        root = synth_dataset(out, layout, n_train, n_val, hw, seed, overwrite, progress=True)
    except (ValueError, OSError) as err:
        fail_on(err)
    typer.echo(
        f"wrote {n_train} train + {n_val} val {layout} images ({size}, seed {seed}) to {root} "
        f"in {time.perf_counter() - start:.1f} s; classes: {', '.join(SYNTH_CLASSES)}"
    )


@data_app.command("synth-video")
def synth_video_command(
    out: Path = typer.Option(..., "--out", help="Video file to write (.mp4); masks go to <stem>_masks/."),
    frames: int = typer.Option(48, help="Number of frames."),
    fps: float = typer.Option(12.0, help="Frames per second."),
    size: str = typer.Option("128x128", help="Frame size HxW."),
    seed: int = typer.Option(0, help="Random seed."),
    scene_cut_at: int = typer.Option(-1, help="Frame of the scene cut; -1 = middle, 0 = no cut."),
    pan: int = typer.Option(0, help="Camera pan in pixels per frame (negative pans left)."),
    label_space: str = typer.Option(
        "ade20k", help="Mask label space: ade20k | cityscapes | folder (train ids)."
    ),
    overwrite: bool = typer.Option(False, help="Replace the video (and its masks) when they exist."),
) -> None:
    """Write a short synthetic video with moving, occluding objects and per-frame ground-truth masks."""
    from segopt_core.data.synth import MAX_SIDE
    from segopt_core.data.video_synth import synth_video

    cut, hw = None if scene_cut_at == 0 else scene_cut_at, parse_size(size, "--size")
    if max(hw) > MAX_SIDE:
        fail(f"--size {size}: too large; use at most {MAX_SIDE} pixels a side")
    if frames < 2 or fps <= 0:
        fail(f"--frames {frames} --fps {fps:g}: need at least 2 frames and a positive frame rate")
    if not -1 <= scene_cut_at < frames:
        fail(f"--scene-cut-at {scene_cut_at}: must be -1 (middle), 0 (no cut) or a frame before {frames}")
    check_target_path(out)
    if out.exists() and not overwrite:
        fail(f"{out} exists; pass --overwrite to replace it")
    try:
        video = synth_video(out, frames, hw, fps, seed, cut, pan, label_space)
    except (ValueError, RuntimeError, OSError) as err:
        fail_on(err)
    typer.echo(
        f"wrote {video.path} ({video.n_frames} frames, {video.fps:g} fps, {video.size[0]}x{video.size[1]}, "
        f"scene cut at {video.scene_cut_at}) and masks in {video.masks_dir}"
    )


@data_app.command("info")
def info_command(
    data: Path = typer.Option(..., "--data", help="Dataset folder."),
    split: str = typer.Option("val", help="train | val"),
    layout: str = typer.Option("auto", help="auto | ade20k | cityscapes | folder"),
    check: bool = typer.Option(False, help="Read every file and report the bad ones (slower)."),
) -> None:
    """Show a dataset's layout, split size and classes; with --check, validate every file."""
    from tqdm.auto import tqdm

    from segopt_core.data.datasets import open_dataset

    try:
        dataset = open_dataset(data, split, layout, strict=not check)
    except ValueError as err:
        fail(str(err))
    typer.echo(
        f"{dataset.root}: layout {dataset.layout}, split {split}, {len(dataset)} pairs, "
        f"{dataset.num_classes} classes"
    )
    if check:
        readable = sum(1 for _ in tqdm(dataset, total=len(dataset), desc="check", unit="img"))
        typer.echo(f"{readable} readable, {len(dataset.skipped)} skipped")
        for path, reason in dataset.skipped:
            typer.echo(f"  {path}: {reason}")
        if dataset.skipped:
            raise typer.Exit(code=1)


def _load(checkpoint: Path, cell: str | None):
    """(spec, predictor) of a checkpoint through segopt_core.checkpoints.load_checkpoint."""
    from segopt_core.checkpoints import load_checkpoint
    from segopt_core.predictor import TorchPredictor

    loaded = load_checkpoint(checkpoint, cell=cell)
    return loaded, TorchPredictor(loaded.model)


def _print_human(result: dict) -> None:
    protocol = result["protocol"]
    typer.echo(
        f"{protocol['cell']} on {protocol['layout']}/{protocol['split']} ({result['n_images']} images, "
        f"mode {protocol['mode']}, test scale {protocol['test_scale']}, {result['seconds']:.1f} s)"
    )
    typer.echo(f"(%) mIoU {_pct(result['mIoU'])}  aAcc {_pct(result['aAcc'])}  mAcc {_pct(result['mAcc'])}")
    labelled = {n for n, acc in result["per_class_acc"].items() if acc is not None}
    present = {n: v for n, v in result["per_class_iou"].items() if n in labelled}
    typer.echo(f"IoU (%) of the {len(present)} classes present in the ground truth:")
    for name, value in sorted(present.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {name:<20} {_pct(value)}")
    if result["n_skipped"]:
        typer.echo(f"skipped {result['n_skipped']} files (see --json for the reasons)")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def evaluate_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint file or HF folder."),
    data: Path = typer.Option(..., "--data", help="Dataset folder (ADE20K, Cityscapes or images/+masks/)."),
    split: str = typer.Option("val", help="train | val"),
    mode: str | None = typer.Option(None, help="whole | slide (default: the cell's own)."),
    limit: int | None = typer.Option(None, help="Evaluate only the first N images."),
    cell: str | None = typer.Option(None, help="Matrix cell name when the checkpoint does not say."),
    layout: str = typer.Option("auto", help="auto | ade20k | cityscapes | folder"),
    batch_size: int = typer.Option(1, help="Images per predictor batch (same-size images only)."),
    test_scale: str | None = typer.Option(
        None, help="Override the cell's test scale LONGxSHORT (non-standard)."
    ),
    strict: bool = typer.Option(True, help="--no-strict skips (and counts) bad files instead of failing."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    out: Path | None = typer.Option(None, "--out", help="Also write the JSON result to this file."),
) -> None:
    """mIoU of a checkpoint on a dataset split with mmseg's whole/slide protocol."""
    from segopt_core.atomic import write_json_atomic
    from segopt_core.data.datasets import open_dataset
    from segopt_core.evaluation import evaluate

    check_positive(limit, "--limit")
    check_positive(batch_size, "--batch-size")
    if out is not None:
        check_target_path(out)
    try:
        dataset = open_dataset(data, split, layout, strict=strict)
        loaded, predictor = _load(checkpoint, cell)
        spec = (
            loaded.spec
            if test_scale is None
            else replace(loaded.spec, test_scale=parse_size(test_scale, "--test-scale"))
        )
        result = evaluate(
            predictor, dataset, spec, mode, limit, progress=True, batch_size=batch_size
        ).to_dict()
    except KeyError as err:  # an unknown cell or mode: the message lists the valid ones
        fail(str(err).strip("'\""))
    except (ValueError, OSError) as err:
        fail_on(err)
    result["checkpoint"] = {
        "path": str(checkpoint),
        "format": getattr(loaded, "format", None),
        "sha256": getattr(loaded, "sha256", None),
    }
    result["data"] = str(data)
    if out is not None:
        write_json_atomic(out, result)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print_human(result)


def register(app: typer.Typer) -> None:
    """Add `segopt data ...` and `segopt evaluate` to the app."""
    app.add_typer(data_app, name="data")
    app.command("evaluate")(evaluate_command)
