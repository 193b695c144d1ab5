"""`segopt benchmark`: latency, throughput, memory and same-round speedups of a checkpoint's variants (the
machine's set by default) or of built artifacts."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import typer

from segopt_cli.common import (
    BACKENDS_OPTION,
    FAILED_EXIT,
    PRECISIONS_OPTION,
    VARIANTS_OPTION,
    check_positive,
    fail,
    figure,
    parse_batch_sizes,
    parse_size,
    split_list,
)
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
    "speedup_vs_torch_fp32",
    "first_call_ms",
    "peak_rss_mib",
    "model_size_mib",
    "other_cpu_cores",
    "quality",
]


@dataclass(frozen=True)
class Run:
    """What every variant of this command is measured with (`config`), and where the rows go."""

    config: Any  # segopt_core.benchmark.MeasureConfig (imported lazily)
    images: Path | None = None
    input_size: tuple[int, int] | None = None
    calib_data: Path | None = None
    on_row: Callable[[dict], None] | None = field(default=None, compare=False)


def _calibration(run: Run, options: list, spec):
    """Preprocessed calibration images when an int8-static variant is asked for: --calib-data, else
    synthetic street scenes (fine for timing; give your own data for accuracy)."""
    if not any(o.precision == "int8-static" for o in options):
        return None
    from segopt_core.backends.calibration import load_calibration_images
    from segopt_core.pipeline.stages import synthetic_calibration
    from segopt_core.settings import load_settings

    if run.calib_data is None:
        return synthetic_calibration(load_settings().work_dir, spec)
    try:
        return load_calibration_images(run.calib_data, spec, 32)
    except (ValueError, OSError) as exc:
        fail(f"--calib-data {run.calib_data}: {exc}")


def _checkpoint_rows(path: Path, options: list, run: Run) -> Rows:
    """Build (or reuse) each variant of the checkpoint in the artifact store, then measure it in the
    measuring process against the checkpoint's torch fp32 model in the same rounds."""
    from segopt_core.backends import ArtifactStore
    from segopt_core.backends.options import REFERENCE_VARIANT
    from segopt_core.benchmark import Candidate
    from segopt_core.benchmark.isolated import ReferenceSource, measure_isolated
    from segopt_core.benchmark.paired import with_speedups
    from segopt_core.checkpoints import load_checkpoint
    from segopt_core.settings import load_settings

    try:
        checkpoint = load_checkpoint(path)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    store = ArtifactStore(load_settings().artifacts_dir)
    calib, images = _calibration(run, options, checkpoint.spec), _e2e_images(run, checkpoint.spec)
    reference = ReferenceSource(checkpoint.spec, str(checkpoint.path))
    rows: Rows = []
    for opts in options:
        candidate = Candidate(
            opts.slug,
            lambda opts=opts: store.get_or_build(checkpoint, opts, calib_images=calib).path,
            opts.precision,
            opts.device,
            checkpoint.sha256,
            is_reference=opts == REFERENCE_VARIANT,
        )
        shape = run.input_size or checkpoint.spec
        measured = measure_isolated(candidate, shape, run.config, reference, images=images, on_row=run.on_row)
        rows += measured.rows
    return with_speedups(rows, REFERENCE_VARIANT.slug)


def _artifact_rows(folders: list[Path], run: Run) -> Rows:
    """Measure already-built artifact folders (variant = their slug) in the measuring process; no
    same-round reference (an artifact does not name its checkpoint's path)."""
    from segopt_core.backends import ArtifactError, read_metadata
    from segopt_core.backends.source import spec_from_dict
    from segopt_core.benchmark import Candidate
    from segopt_core.benchmark.isolated import measure_isolated

    rows = []
    for folder in folders:
        try:
            metadata = read_metadata(folder)
            spec = spec_from_dict(metadata["spec"])
        except ArtifactError as exc:  # names the folder and what to do
            fail(f"--artifact {exc}")
        except (KeyError, TypeError, ValueError) as exc:
            fail(f"--artifact {folder}: its metadata holds no usable cell spec ({exc}); rebuild the artifact")
        candidate = Candidate(
            metadata.get("slug", folder.name),
            str(folder),
            metadata.get("precision", ""),
            metadata.get("device", "cpu"),
            metadata.get("checkpoint_sha256", ""),
        )
        config, images = replace(run.config, rounds=None), _e2e_images(run, spec)
        rows += measure_isolated(
            candidate, run.input_size or spec, config, images=images, on_row=run.on_row
        ).rows
    return rows


def _e2e_images(run: Run, spec) -> list[Path] | None:
    """Image files for the e2e scope: the --images folder or freshly written samples sized for the cell."""
    if run.config.scope != "e2e":
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

        typer.echo(pd.DataFrame(_for_people(rows))[SUMMARY_COLUMNS].to_string(index=False, na_rep="-"))
    for row in rows:
        if row["status"] != "ok":
            note = f"{row['variant']} batch {row['batch_size']}: {row['status']}: {row['error']}"
            typer.secho(note, err=True, fg=typer.colors.YELLOW)
        elif row.get("quality") == "suspect":
            from segopt_core.benchmark.contention import describe_quality

            note = f"{row['variant']} batch {row['batch_size']}: suspect timing: {describe_quality(row)}"
            typer.secho(note, err=True, fg=typer.colors.YELLOW)


def _for_people(rows: Rows) -> Rows:
    """The summary columns rounded to 4 significant digits; a speedup as '2.57×' (+ ' (separate)' when not
    from the same rounds)."""
    table = []
    for row in rows:
        shown = {k: figure(v) if isinstance(v, float) else v for k, v in row.items() if k in SUMMARY_COLUMNS}
        if row.get("speedup_vs_torch_fp32") is not None:
            basis = " (separate)" if row.get("speedup_basis") == "separate" else ""
            shown["speedup_vs_torch_fp32"] = f"{row['speedup_vs_torch_fp32']:.2f}×{basis}"
        table.append(shown)
    return table


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
    backends: list[str] = BACKENDS_OPTION,
    precisions: list[str] = PRECISIONS_OPTION,
    variants: list[str] = VARIANTS_OPTION,
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
    """Benchmark each variant per batch size against torch fp32 in the same rounds; failures are rows."""
    from segopt_core.benchmark import DeviceBusy

    _check_inputs(checkpoint, artifact, scope, input_size, images, calib_data)
    if lock_timeout is not None and lock_timeout < 0:
        fail(f"--lock-timeout {lock_timeout}: must be at least 0 (seconds to wait for the device)")
    options = _options(backends, precisions, variants) if checkpoint is not None else []
    run = Run(_config(batch_sizes, scope, iters, warmup, min_time, threads), images, calib_data=calib_data)
    run = replace(run, input_size=parse_size(input_size, "--input-size") if input_size else None)
    devices = {o.device for o in options} or {_artifact_device(folder) for folder in artifact}
    try:
        with (
            _device_locks(devices, lock, lock_timeout),
            _progress((len(options) or len(artifact)) * len(run.config.batch_sizes)) as on_row,
        ):
            run = replace(run, on_row=on_row)
            rows = _checkpoint_rows(checkpoint, options, run) if checkpoint else _artifact_rows(artifact, run)
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


def _options(backends: list[str] | None, precisions: list[str] | None, variants: list[str] | None) -> list:
    """The variants to measure: this machine's default set (what optimize-all builds), filtered like
    optimize-all's --backends / --precisions / --variants; torch fp32 first (the reference)."""
    import torch

    from segopt_core.pipeline.selection import select_options

    backends, precisions, variants = map(split_list, (backends, precisions, variants))
    return select_options(backends, precisions, variants, torch.cuda.is_available())


def _config(batch_sizes: str, scope: str, iters: int, warmup: int, min_time: float, threads: int | None):
    """The MeasureConfig of the options: each batch size's own loop, the same-round pair at the smallest."""
    from segopt_core.benchmark import MeasureConfig, Rounds, TimingConfig

    try:
        timing = TimingConfig(warmup_iters=warmup, iters=iters, min_time_s=min_time)
    except ValueError as exc:
        fail(str(exc))
    check_positive(threads, "--threads")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    sizes = tuple(parse_batch_sizes(batch_sizes))
    return MeasureConfig(sizes, timing, Rounds.spread(timing), scope=scope, threads=threads)


def _artifact_device(folder: Path) -> str:
    """The device an artifact folder runs on ('cpu' when its metadata cannot say)."""
    from segopt_core.backends import ArtifactError, read_metadata

    try:
        return str(read_metadata(folder).get("device", "cpu"))
    except ArtifactError:  # reported with its own message when it is measured
        return "cpu"


@contextlib.contextmanager
def _device_locks(devices: set[str], lock: bool, timeout_s: float | None) -> Iterator[None]:
    """Hold the benchmark lock of every device the variants use (in a fixed order: no deadlock)."""
    from segopt_core.benchmark import device_lock

    with contextlib.ExitStack() as stack:
        for device in sorted(devices) if lock else []:
            stack.enter_context(device_lock(device, timeout_s=timeout_s))
        yield


def _check_inputs(checkpoint, artifact, scope, input_size, images, calib_data) -> None:
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
    if scope == "e2e" and input_size:
        fail("--input-size applies to --scope model; e2e uses the cell's own preprocessing")
    if images is not None and not images.is_dir():
        fail(f"--images {images} is not a folder of images")
    if calib_data is not None and not calib_data.is_dir():
        fail(f"--calib-data {calib_data} is not a dataset folder")


def register(app: typer.Typer) -> None:
    """Add `segopt benchmark`."""
    app.command("benchmark")(benchmark_command)
