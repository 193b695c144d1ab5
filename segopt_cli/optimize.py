"""`segopt optimize` (build + verify one variant) and `segopt predict` (colour masks from any artifact)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from segopt_cli.common import fail, fail_on


def optimize_command(
    checkpoint: Path = typer.Argument(..., help="SegFormer checkpoint (HF folder, .safetensors, .pth)."),
    backend: str = typer.Option("onnxruntime", help="Backend, e.g. onnxruntime (a wrong one lists all)."),
    precision: str = typer.Option("fp32", help="Precision, e.g. int8-dynamic (a wrong one lists all)."),
    preset: str | None = typer.Option(
        None, help="segformer-safe (ORT INT8: LayerNorm/Softmax/Adds/classifier float)"
    ),
    calib_data: Path | None = typer.Option(None, help="Dataset or image folder for INT8 static calibration."),
    calib_method: str = typer.Option("minmax", help="minmax | entropy | percentile"),
    calib_images: int = typer.Option(32, help="Number of calibration images."),
    fold_decode_head: bool = typer.Option(False, help="Fold the decode head's fuse conv (exact, faster)."),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    cell: str | None = typer.Option(None, help="Cell name when the checkpoint cannot be matched on its own."),
    out: Path | None = typer.Option(None, help="Artifact store root (default: $SEGOPT_WORK_DIR/artifacts)."),
    force: bool = typer.Option(False, help="Rebuild even when a valid artifact exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the artifact metadata as JSON."),
) -> None:
    """Build one optimized variant of a checkpoint, verify it against fp32 and print its artifact folder."""
    from segopt_core.atomic import check_target_path, is_disk_full
    from segopt_core.backends import (
        ArtifactStore,
        BackendUnavailable,
        CalibrationError,
        CalibrationOptions,
        VariantOptions,
    )
    from segopt_core.backends.calibration import load_calibration_images
    from segopt_core.checkpoints import load_checkpoint
    from segopt_core.settings import load_settings

    store_root = out or load_settings().artifacts_dir
    check_target_path(store_root, folder=True)
    try:
        calibration = CalibrationOptions(calib_method, calib_images) if precision == "int8-static" else None
        options = VariantOptions(backend, precision, fold_decode_head, calibration, preset, device)
        loaded = load_checkpoint(checkpoint, cell)
        images = None
        if calibration is not None:
            if calib_data is None:
                raise CalibrationError("int8-static needs --calib-data DIR (a dataset or image folder)")
            images = load_calibration_images(calib_data, loaded.spec, calib_images)
        store = ArtifactStore(store_root)
        artifact = store.get_or_build(loaded, options, images, force=force)
    except BackendUnavailable as err:
        typer.secho(f"skipped: {err}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=3) from None
    except Exception as err:
        if is_disk_full(err):  # an OSError, or a library's error carrying ENOSPC: one line naming the store
            fail(f"artifact store {store_root}: no space left on device; free some space and run again", 1)
        if isinstance(err, KeyError):  # an unknown name: the message lists the valid ones
            fail(str(err).strip("'\""))
        if not isinstance(err, (ValueError, RuntimeError, OSError)):
            raise
        fail_on(err)  # bad input 2 (ValueError-based), failed work 1 (e.g. verification)
    if as_json:
        typer.echo(json.dumps({"path": str(artifact.path), **artifact.metadata}, indent=2, default=str))
        return
    ver = artifact.metadata["verification"]
    model_bytes = sum(path.stat().st_size for path in artifact.model_files)
    typer.echo(
        f"{artifact.slug}: {'reused' if artifact.reused else 'built'}, model {model_bytes / 1e6:.1f} MB, "
        f"max rel diff {ver['max_rel_diff']:.2e}, argmax agreement {ver['argmax_agreement']:.4f}",
        err=True,
    )
    if artifact.metadata.get("model_files"):
        typer.echo(f"ship: {', '.join(str(path) for path in artifact.model_files)}", err=True)
    typer.echo(str(artifact.path))


def colour_mask(mask, palette) -> object:
    """(H,W) class ids -> (H,W,3) uint8 RGB with the dataset palette (ids beyond it are black)."""
    import numpy as np

    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette[:256], dtype=np.uint8)
    return table[np.clip(mask, 0, 255).astype(np.uint8)]


def predict_command(
    images: list[Path] = typer.Argument(..., help="Image files."),
    artifact: Path = typer.Option(..., "--artifact", help="Artifact folder from `segopt optimize`."),
    out: Path = typer.Option(Path("masks"), help="Output folder for the colour masks."),
) -> None:
    """Segment images with any artifact and write colour masks (the spec's palette) as PNGs."""
    from segopt_core.atomic import check_target_path, make_parents, remove_empty

    for path in images:  # before anything is loaded, imported or created
        if not path.is_file():
            fail(f"{path}: {'a folder, not an image file' if path.is_dir() else 'no such image file'}")
    check_target_path(out, folder=True)
    import cv2

    from segopt_core.backends import ArtifactError, load_predictor, read_metadata
    from segopt_core.backends.source import spec_from_dict
    from segopt_core.data import read_image
    from segopt_core.evaluation import predict_mask

    made = []
    try:
        predictor = load_predictor(artifact)
        spec = spec_from_dict(read_metadata(artifact)["spec"])
        made = make_parents(out / "mask.png")
        for path in images:
            mask = predict_mask(predictor, read_image(path), spec)
            target = out / f"{path.stem}.png"
            write_png(target, cv2.cvtColor(colour_mask(mask, spec.dataset.palette), cv2.COLOR_RGB2BGR))
            typer.echo(str(target))
    except (ValueError, RuntimeError, OSError) as err:
        remove_empty(made)  # a failure before the first mask leaves no empty --out folder
        if isinstance(err, ArtifactError):  # the folder the user named is not a usable artifact: bad input
            fail(str(err))
        fail_on(err)


def write_png(path: Path, image) -> None:
    """One PNG, written atomically (OSError naming the file when it cannot be encoded or written)."""
    import errno

    import cv2

    from segopt_core.atomic import write_bytes_atomic

    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise OSError(errno.EINVAL, "cannot encode the mask as PNG", str(path))
    write_bytes_atomic(path, png.tobytes())


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("optimize")(optimize_command)
    app.command("predict")(predict_command)
