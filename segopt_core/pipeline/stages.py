"""The stages of optimize-all for one variant: build, benchmark, evaluate (each a plain function)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segopt_core.atomic import is_disk_full
from segopt_core.backends.options import REFERENCE_VARIANT
from segopt_core.lifecycle import file_lock
from segopt_core.pipeline.cache import ResultCache
from segopt_core.pipeline.jobs import VariantJob
from segopt_core.pipeline.record import VariantRecord
from segopt_core.variants import CellSpec

# Not thread-safe within one process: torch.onnx.export and torch.compile (global exporter/compiler state,
# "GLOBALS.in_onnx_export must be True") and the forward of transformers 5 SegFormer models (output recording,
# seen as "mat1 and mat2 shapes cannot be multiplied" under load). With the thread-pool runner, builds, loads
# and torch forwards take turns on this lock; ONNX Runtime / TensorRT inference runs outside it.
_TORCH_LOCK = threading.RLock()
log = logging.getLogger(__name__)
_TORCH_BACKENDS = ("torch", "torch-compile")


class _Serialized:
    """A predictor whose calls hold the torch lock."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.precision, self.device = inner, inner.name, inner.precision, inner.device

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with _TORCH_LOCK:
            return self.inner(batch)


@dataclass(frozen=True)
class EvalSource:
    """Where accuracy comes from: a labelled dataset (`data_dir`) or unlabelled sample images."""

    data_dir: str | None = None
    samples_dir: str | None = None
    limit: int | None = None

    @property
    def mode(self) -> str:
        """'labels' when a labelled dataset is given, else 'agreement' (vs the fp32 model)."""
        return "labels" if self.data_dir else "agreement"


def check_data(data_dir: str | Path, limit: int | None = None) -> int:
    """Check the pairs an evaluation reads (the first `limit`); DatasetError names a bad one."""
    from segopt_core.data import open_dataset

    return open_dataset(data_dir, split="val").check(limit)


def sample_images(source: EvalSource) -> list[np.ndarray]:
    """The images of the evaluation source (labels ignored), at most `limit`."""
    from segopt_core.data import open_dataset

    dataset = open_dataset(source.data_dir or source.samples_dir, split="val")
    count = len(dataset) if source.limit is None else min(source.limit, len(dataset))
    return [dataset[i].image for i in range(count)]


def calibration_images(source: EvalSource, spec: CellSpec, count: int = 32) -> np.ndarray:
    """Preprocessed (N,3,H,W) images at the crop size for INT8 static calibration (train split first)."""
    from segopt_core.backends.calibration import load_calibration_images

    return load_calibration_images(source.data_dir or source.samples_dir, spec, count)


def synthetic_calibration(work_dir: str | Path, spec: CellSpec, count: int = 8) -> np.ndarray:
    """Calibration images for INT8 static when no dataset is given: synthetic street scenes, preprocessed."""
    samples = prepare_samples(work_dir, [spec], count=count)
    return calibration_images(EvalSource(samples_dir=samples), spec, count=count)


def prepare_samples(work_dir: str | Path, specs: Sequence[CellSpec], count: int = 4, seed: int = 0) -> str:
    """Synthetic sample images (no real labels needed) for label-free checks; reused when present."""
    from segopt_core.data import synth_dataset

    size = max((s.crop_size for s in specs), default=(64, 64))
    out = Path(work_dir) / "samples" / f"folder-{size[0]}x{size[1]}-n{count}-s{seed}"
    # synth_dataset writes atomically: a present folder is complete. Runs at once on one work dir take turns
    # (else both write it and the second swaps the folder away under the first one's evaluation)
    out.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(out.parent):  # the samples folder itself: no lock file left behind
        if not out.exists():
            synth_dataset(out, layout="folder", n_train=0, n_val=count, size=size, seed=seed)
    return str(out)


def build_job(job: VariantJob, store_root: str | Path, calib: EvalSource | None = None) -> VariantRecord:
    """Load the checkpoint and get (or build) the variant's artifact; an unavailable backend is 'skipped'."""
    from segopt_core.backends import ArtifactStore, BackendUnavailable
    from segopt_core.checkpoints import load_checkpoint

    started, clock = _utc_now(), time.perf_counter()
    images = None
    if calib is not None and job.options.precision == "int8-static":
        images = calibration_images(calib, job.checkpoint.spec, job.options.calibration.num_images)
    waited = 0.0
    try:
        store = ArtifactStore(store_root)
        store.clean_temp()  # temp folders of builds killed earlier (never a live build's)
        queued = time.perf_counter()
        with _TORCH_LOCK:  # export, quantization and verification all run the torch model
            waited = time.perf_counter() - queued
            loaded = load_checkpoint(job.checkpoint.path, job.checkpoint.spec)
            artifact = store.get_or_build(loaded, job.options, calib_images=images)
    except BackendUnavailable as exc:  # not a failure: this machine cannot run the backend
        return job.record("skipped", error=str(exc), started_at=started, finished_at=_utc_now())
    except Exception as exc:  # a full disk fails this variant (a row), not the run
        if not is_disk_full(exc):
            raise
        error = f"artifact store {store_root}: no space left on device ({exc})"
        return job.record("failed", error=error, started_at=started, finished_at=_utc_now())
    return job.record(
        "ok",
        artifact=str(artifact.path),
        started_at=started,
        build_seconds=round(time.perf_counter() - clock - waited, 3),
        build_wait_seconds=round(waited, 3),
        artifact_build_seconds=artifact.metadata.get("build_seconds"),
    )


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def benchmark_record(
    record: VariantRecord,
    spec: CellSpec,
    batch_sizes: Sequence[int],
    warmup: int,
    iters: int,
    same_round_reference: bool = True,
) -> VariantRecord:
    """Benchmark a built variant at each batch size (flat rows in `bench_rows`) through `measure_variant`,
    in this process (the flows call `benchmark_record_isolated`).

    With `same_round_reference`, the torch fp32 model of the same checkpoint is also timed in alternating
    rounds with the variant at the smallest batch size, so the speedup compares numbers measured under the
    same load (`reference_latency_ms`, `paired_latency_ms` on that row), not minutes apart.
    """
    from segopt_core.benchmark import measure_variant

    config, candidate, reference = _measurement(
        record, spec, batch_sizes, warmup, iters, same_round_reference
    )
    measured = measure_variant(candidate, spec, config, reference.predictor)
    return dataclasses.replace(record, bench_rows=measured.rows)


def benchmark_record_isolated(
    record: VariantRecord, spec: CellSpec, batch_sizes: Sequence[int], warmup: int, iters: int
) -> VariantRecord:
    """`benchmark_record` in the measuring process (`segopt_core.benchmark.isolated`), where every segopt
    measurement runs: what the flows' worker threads call."""
    from segopt_core.benchmark.isolated import measure_isolated

    clock = time.perf_counter()
    config, candidate, reference = _measurement(record, spec, batch_sizes, warmup, iters, True)
    measured = measure_isolated(candidate, spec, config, reference)
    return dataclasses.replace(
        record, bench_rows=measured.rows, benchmark_seconds=round(time.perf_counter() - clock, 3)
    )


def _measurement(
    record: VariantRecord, spec: CellSpec, batch_sizes: Sequence[int], warmup: int, iters: int, paired: bool
) -> tuple[Any, Any, Any]:
    """(MeasureConfig, Candidate, ReferenceSource) of a built variant: its loop at each batch size, the
    pair spread over 5 rounds of the same calls, the checkpoint's own fp32 model as the reference."""
    from segopt_core.benchmark import Candidate, MeasureConfig, Rounds, TimingConfig
    from segopt_core.benchmark.isolated import ReferenceSource

    timing = TimingConfig(warmup_iters=warmup, iters=iters)
    config = MeasureConfig(tuple(batch_sizes), timing, Rounds.spread(timing) if paired else None)
    is_reference = record.variant == REFERENCE_VARIANT.slug
    candidate = Candidate(record.variant, record.artifact, record.precision, record.device,
                          record.checkpoint_sha256, is_reference=is_reference)  # fmt: skip
    return config, candidate, ReferenceSource(spec, record.checkpoint)


def evaluate_record(record: VariantRecord, spec: CellSpec, source: EvalSource) -> VariantRecord:
    """Accuracy of a built variant: mIoU on labels, or agreement with the fp32 checkpoint on sample images."""
    from segopt_core.backends import load_predictor
    from segopt_core.evaluation import compare_predictions, evaluate

    clock = time.perf_counter()
    with _TORCH_LOCK:
        predictor = load_predictor(record.artifact)
    if record.backend in _TORCH_BACKENDS:
        predictor = _Serialized(predictor)
    if source.mode == "labels":
        from segopt_core.data import open_dataset

        dataset = open_dataset(source.data_dir, split="val")
        result = evaluate(predictor, dataset, spec, limit=source.limit, progress=False).to_dict()
        accuracy = {"eval_mode": "labels", "eval_images": result["n_images"], "miou": result["mIoU"]}
        accuracy["per_class_iou"] = result["per_class_iou"]
    else:
        from segopt_core.benchmark.isolated import ReferenceSource

        with _TORCH_LOCK:
            reference = _Serialized(ReferenceSource(spec, record.checkpoint).predictor())
        result = compare_predictions(reference, predictor, sample_images(source), spec)
        accuracy = {"eval_mode": "agreement", "eval_images": result["n_images"]}
        accuracy |= {k: result[k] for k in ("pixel_agreement", "miou_vs_reference")}
    return dataclasses.replace(
        record, accuracy=accuracy, eval_seconds=round(time.perf_counter() - clock, 3), finished_at=_utc_now()
    )


def remember(record: VariantRecord, cache_root: str | Path, stage: str | None = None) -> VariantRecord:
    """Store a completed record (or one whose `stage` just finished) in the result cache and return it;
    only 'ok' builds are cached."""
    if record.ok and record.artifact:
        plain = json.loads(json.dumps(record.to_dict(), default=str))
        try:
            ResultCache(cache_root).put(record.cache_key, record.artifact, plain, stage=stage)
        except OSError as exc:  # the result stands; only a later resume loses it
            if not is_disk_full(exc):
                raise
            log.warning(
                "result cache %s not written (no space left on device): a re-run redoes it", cache_root
            )
    return record


def recall_stage(record: VariantRecord, cache_root: str | Path, stage: str) -> VariantRecord | None:
    """The record as it was when `stage` finished in an earlier run on the same artifact, else None."""
    done = ResultCache(cache_root).get_record(record.cache_key, stage=stage, artifact=record.artifact or None)
    return None if done is None else dataclasses.replace(done, reused=True)
