"""`segopt benchmark`: latency, throughput and memory of checkpoint variants or built artifacts."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import typer

from segopt_cli.common import FAILED_EXIT, fail, parse_batch_sizes, parse_size, split_list
from segopt_core.batches import DEFAULT_BATCH_SIZES

Rows = list[dict[str, Any]]
# Columns of the table printed when neither --json nor --parquet is given.
SUMMARY_COLUMNS = [
    "variant",
    "device",
    "scope",
    "batch_size",
    "status",
    "latency_ms_median",
    "latency_ms_p90",
    "throughput_ips",
    "first_call_ms",
    "peak_rss_mb",
    "model_size_mb",
    "other_cpu_cores",
    "quality",
]


@dataclass(frozen=True)
class Run:
    """What every variant of this command is measured with."""

    batch_sizes: tuple[int, ...]
    timing: Any  # segopt_core.benchmark.TimingConfig (imported lazily)
    scope: str
    images: Path | None = None
    input_size: tuple[int, int] | None = None
    threads: int | None = None
    calib_data: Path | None = None
    on_row: Callable[[dict], None] | None = field(default=None, compare=False)

    def bench_kwargs(self, images: list[Path] | None) -> dict[str, Any]:
        """Keyword arguments for benchmark_loader."""
        return {
            "batch_sizes": self.batch_sizes,
            "timing": self.timing,
            "scope": self.scope,
            "images": images,
            "on_row": self.on_row,
        }


@dataclass(frozen=True)
class Plan:
    """One requested variant: its label, precision, device and build options (None when impossible)."""

    label: str
    precision: str
    device: str
    options: Any = None
    reason: str = ""


def _names(text: str, flag: str) -> list[str]:
    """A non-empty comma-separated list of names."""
    return split_list(text) or fail(f"{flag} is empty; give a comma-separated list")


def _variant_plans(backends: list[str], precisions: list[str], device: str, fold: bool) -> list[Plan]:
    """A Plan for every backend x precision asked for (combinations a backend lacks become skipped rows)."""
    from segopt_core.backends.options import BACKENDS, PRECISIONS, VariantOptions
    from segopt_core.pipeline.selection import check_names

    check_names("backend", backends, BACKENDS)
    check_names("precision", precisions, PRECISIONS)
    plans = []
    for backend, precision in itertools.product(backends, precisions):
        try:
            options = VariantOptions(backend, precision, fold_decode_head=fold, device=device)
        except ValueError as exc:
            plans.append(Plan(f"{backend}-{precision}", precision, device, reason=str(exc)))
        else:
            plans.append(Plan(options.slug, precision, options.device, options))
    return plans


def _calibration(run: Run, plans: list[Plan], spec):
    """Preprocessed calibration images from --calib-data when an int8-static variant is asked for."""
    if run.calib_data is None or not any(p.precision == "int8-static" for p in plans):
        return None
    from segopt_core.backends.calibration import load_calibration_images

    try:
        return load_calibration_images(run.calib_data, spec, 32)
    except (ValueError, OSError) as exc:
        fail(f"--calib-data {run.calib_data}: {exc}")


def _checkpoint_rows(path: Path, plans: list[Plan], run: Run) -> Rows:
    """Build (or reuse) each variant of the checkpoint in the artifact store and benchmark it."""
    from segopt_core.backends import ArtifactStore
    from segopt_core.checkpoints import load_checkpoint
    from segopt_core.settings import load_settings

    try:
        checkpoint = load_checkpoint(path)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    store = ArtifactStore(load_settings().artifacts_dir)
    calib = _calibration(run, plans, checkpoint.spec)
    images = _e2e_images(run, checkpoint.spec)
    return [row for plan in plans for row in _plan_rows(store, checkpoint, plan, run, calib, images)]


def _plan_rows(store, checkpoint, plan: Plan, run: Run, calib, images: list[Path] | None) -> Rows:
    """Rows of one variant: skipped / failed when it cannot be built, else its measurements."""
    from segopt_core.backends import BackendUnavailable, load_predictor
    from segopt_core.benchmark import benchmark_loader, status_rows

    shape = run.input_size or checkpoint.spec
    labels = {"precision": plan.precision, "device": plan.device, "scope": run.scope, "on_row": run.on_row}
    labels["checkpoint_sha256"] = checkpoint.sha256
    if plan.options is None:
        return status_rows("skipped", plan.reason, plan.label, shape, run.batch_sizes, **labels)
    try:
        artifact = store.get_or_build(checkpoint, plan.options, calib_images=calib)
    except BackendUnavailable as exc:
        return status_rows("skipped", str(exc), plan.label, shape, run.batch_sizes, **labels)
    except Exception as exc:  # a variant that fails to build is a row; the run goes on
        error = f"build failed: {type(exc).__name__}: {exc}"[:500]
        return status_rows("failed", error, plan.label, shape, run.batch_sizes, **labels)
    return benchmark_loader(
        functools.partial(load_predictor, artifact.path, num_threads=run.threads),
        shape,
        variant=plan.label,
        precision=plan.precision,
        device=plan.device,
        skip_on=(BackendUnavailable,),
        model_path=artifact.path,
        checkpoint_sha256=checkpoint.sha256,
        **run.bench_kwargs(images),
    )


def _artifact_rows(folders: list[Path], run: Run) -> Rows:
    """Benchmark already-built artifact folders (variant = folder name)."""
    from segopt_core.backends import ArtifactError, BackendUnavailable, load_predictor, read_metadata
    from segopt_core.backends.source import spec_from_dict
    from segopt_core.benchmark import benchmark_loader

    rows = []
    for folder in folders:
        try:
            metadata = read_metadata(folder)
            spec = spec_from_dict(metadata["spec"])
        except ArtifactError as exc:  # names the folder and what to do
            fail(f"--artifact {exc}")
        except (KeyError, TypeError, ValueError) as exc:
            fail(f"--artifact {folder}: its metadata holds no usable cell spec ({exc}); rebuild the artifact")
        rows += benchmark_loader(
            functools.partial(load_predictor, folder, num_threads=run.threads),
            run.input_size or spec,
            variant=metadata.get("slug", folder.name),
            precision=metadata.get("precision", ""),
            device=metadata.get("device", "cpu"),
            skip_on=(BackendUnavailable,),
            model_path=folder,
            checkpoint_sha256=metadata.get("checkpoint_sha256", ""),
            **run.bench_kwargs(_e2e_images(run, spec)),
        )
    return rows


def _e2e_images(run: Run, spec) -> list[Path] | None:
    """Image files for the e2e scope: the --images folder or freshly written samples sized for the cell."""
    if run.scope != "e2e":
        return None
    if run.images is not None:
        files = sorted(p for p in run.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            fail(f"--images {run.images}: no .jpg/.jpeg/.png files; point it at a folder of images")
        return files
    from segopt_core.benchmark.end_to_end import default_image_size, write_sample_images

    out = Path(tempfile.mkdtemp(prefix="segopt-e2e-"))
    return write_sample_images(out, default_image_size(spec), n=8)


def _emit(rows: Rows, as_json: bool, parquet: Path | None) -> None:
    """Write the rows: Parquet file, JSON on stdout, else a readable table; problems listed on stderr."""
    from segopt_core.benchmark import write_parquet

    if parquet is not None:
        typer.echo(f"wrote {len(rows)} rows to {write_parquet(rows, parquet)}", err=True)
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    elif parquet is None:
        import pandas as pd

        typer.echo(pd.DataFrame(rows)[SUMMARY_COLUMNS].to_string(index=False, na_rep="-"))
    for row in rows:
        if row["status"] != "ok":
            note = f"{row['variant']} batch {row['batch_size']}: {row['status']}: {row['error']}"
            typer.secho(note, err=True, fg=typer.colors.YELLOW)
        elif row.get("quality") == "suspect":
            from segopt_core.benchmark.contention import describe_quality

            note = f"{row['variant']} batch {row['batch_size']}: suspect timing: {describe_quality(row)}"
            typer.secho(note, err=True, fg=typer.colors.YELLOW)


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[dict], None]]:
    """A tqdm bar on stderr; yields the per-row callback that advances it."""
    from tqdm import tqdm

    with tqdm(total=total, desc="benchmark", unit="row", file=sys.stderr) as bar:

        def on_row(row: dict) -> None:
            bar.set_postfix_str(f"{row['variant']} b{row['batch_size']} {row['status']}")
            bar.update(1)

        yield on_row


def benchmark_command(
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Checkpoint to build variants from."),
    artifact: list[Path] = typer.Option([], "--artifact", help="Built artifact folder (repeatable)."),
    backends: str = typer.Option("torch", help="Comma-separated backends, e.g. torch,onnxruntime."),
    precisions: str = typer.Option("fp32", help="Comma-separated precisions, e.g. fp32,int8-dynamic."),
    device: str = typer.Option("cpu", help="cpu | cuda."),
    fold: bool = typer.Option(False, help="Fold the decode head (exact) before building."),
    calib_data: Path | None = typer.Option(None, help="Dataset folder for int8-static calibration."),
    batch_sizes: str = typer.Option(
        ",".join(map(str, DEFAULT_BATCH_SIZES)), help="Comma-separated batch sizes."
    ),
    scope: str = typer.Option("model", help="model (tensor in, logits out) | e2e (image file in, mask out)."),
    images: Path | None = typer.Option(None, help="e2e: folder of images (default: written samples)."),
    input_size: str | None = typer.Option(None, help="Model input HxW (default: the cell's crop size)."),
    iters: int = typer.Option(50, help="Minimum timed calls per batch size."),
    warmup: int = typer.Option(10, help="Warm-up calls per batch size (after the first call)."),
    min_time: float = typer.Option(0.0, help="Also time for at least this many seconds per batch size."),
    threads: int | None = typer.Option(None, help="Intra-op threads for torch / ONNX Runtime."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    parquet: Path | None = typer.Option(None, "--parquet", help="Write the rows to this Parquet file."),
    lock: bool = typer.Option(True, help="Wait for other segopt benchmarks on this device to finish first."),
    lock_timeout: float | None = typer.Option(None, help="Stop waiting for the device lock after S s."),
) -> None:
    """Benchmark latency, throughput and peak memory per variant and batch size; failures are rows."""
    from segopt_core.benchmark import DeviceBusy, TimingConfig, device_lock

    _check_inputs(checkpoint, artifact, scope, device, input_size, images, calib_data)
    if lock_timeout is not None and lock_timeout < 0:
        fail(f"--lock-timeout {lock_timeout}: must be at least 0 (seconds to wait for the device)")
    try:
        timing = TimingConfig(warmup_iters=warmup, iters=iters, min_time_s=min_time)
    except ValueError as exc:
        fail(str(exc))
    if threads is not None:
        if threads < 1:
            fail(f"--threads {threads} must be >= 1")
        import torch

        torch.set_num_threads(threads)
    size = parse_size(input_size, "--input-size") if input_size else None
    run = Run(tuple(parse_batch_sizes(batch_sizes)), timing, scope, images, size, threads, calib_data)
    plans = []
    if checkpoint is not None:
        plans = _variant_plans(
            _names(backends, "--backends"), _names(precisions, "--precisions"), device, fold
        )
    total = (len(plans) or len(artifact)) * len(run.batch_sizes)
    try:
        guard = device_lock(device, timeout_s=lock_timeout) if lock else contextlib.nullcontext()
        with guard, _progress(total) as on_row:
            run = replace(run, on_row=on_row)
            rows = _checkpoint_rows(checkpoint, plans, run) if checkpoint else _artifact_rows(artifact, run)
    except DeviceBusy as exc:
        fail(str(exc))
    _emit(rows, as_json, parquet)
    if rows and not any(row["status"] == "ok" for row in rows):  # nothing measured: the work failed
        fail(f"no row could be measured ({_status_counts(rows)}); the reasons are above", code=FAILED_EXIT)


def _status_counts(rows: Rows) -> str:
    """'2 failed, 1 skipped'."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _check_inputs(checkpoint, artifact, scope, device, input_size, images, calib_data) -> None:
    """Reject contradictory or missing inputs with a one-line error."""
    if (checkpoint is None) == (not artifact):
        fail("give exactly one of --checkpoint PATH or --artifact DIR")
    if checkpoint is not None and not checkpoint.exists():
        fail(f"--checkpoint {checkpoint} does not exist")
    for folder in artifact:
        if not folder.is_dir():
            fail(f"--artifact {folder} is not a folder; pass an artifact folder built by `segopt optimize`")
    if scope not in ("model", "e2e"):
        fail(f"--scope {scope!r} must be 'model' or 'e2e'")
    if device not in ("cpu", "cuda"):
        fail(f"--device {device!r} must be 'cpu' or 'cuda'")
    if scope == "e2e" and input_size:
        fail("--input-size applies to --scope model; e2e uses the cell's own preprocessing")
    if images is not None and not images.is_dir():
        fail(f"--images {images} is not a folder of images")
    if calib_data is not None and not calib_data.is_dir():
        fail(f"--calib-data {calib_data} is not a dataset folder")


def register(app: typer.Typer) -> None:
    """Add `segopt benchmark`."""
    app.command("benchmark")(benchmark_command)
