"""The stages of optimize-all for one variant: build, benchmark, evaluate (each a plain function)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segopt_core.atomic import is_disk_full
from segopt_core.pipeline.cache import ResultCache
from segopt_core.pipeline.jobs import VariantJob
from segopt_core.variants import VariantSpec

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


def calibration_images(source: EvalSource, spec: VariantSpec, count: int = 32) -> np.ndarray:
    """Preprocessed (N,3,H,W) images at the crop size for INT8 static calibration (train split first)."""
    import cv2

    from segopt_core.data import DatasetError, open_dataset, preprocess

    root = source.data_dir or source.samples_dir
    try:
        dataset = open_dataset(root, split="train")
    except DatasetError:
        dataset = open_dataset(root, split="val")
    if len(dataset) == 0:
        dataset = open_dataset(root, split="val")
    height, width = spec.crop_size
    images = [dataset[i].image for i in range(min(count, len(dataset)))]
    resized = [cv2.resize(im, (width, height), interpolation=cv2.INTER_LINEAR) for im in images]
    return np.stack([preprocess(im, spec) for im in resized])


def prepare_samples(work_dir: str | Path, specs: Sequence[VariantSpec], count: int = 4, seed: int = 0) -> str:
    """Synthetic sample images (no real labels needed) for label-free checks; reused when present."""
    from segopt_core.data import synth_dataset

    size = max((s.crop_size for s in specs), default=(64, 64))
    out = Path(work_dir) / "samples" / f"folder-{size[0]}x{size[1]}-n{count}-s{seed}"
    if not out.exists():  # synth_dataset writes atomically: a present folder is complete
        synth_dataset(out, layout="folder", n_train=0, n_val=count, size=size, seed=seed)
    return str(out)


def build_job(job: VariantJob, store_root: str | Path, calib: EvalSource | None = None) -> dict[str, Any]:
    """Load the checkpoint and get (or build) the variant's artifact; an unavailable backend is 'skipped'."""
    from segopt_core.backends import ArtifactStore, BackendUnavailable
    from segopt_core.checkpoints import load_checkpoint

    images = None
    if calib is not None and job.options.precision == "int8-static":
        images = calibration_images(calib, job.checkpoint.spec, job.options.calibration.num_images)
    try:
        store = ArtifactStore(store_root)
        store.clean_temp()  # temp folders of builds killed earlier (never a live build's)
        with _TORCH_LOCK:  # export, quantization and verification all run the torch model
            loaded = load_checkpoint(job.checkpoint.path, job.checkpoint.spec)
            artifact = store.get_or_build(loaded, job.options, calib_images=images)
    except BackendUnavailable as exc:  # not a failure: this machine cannot run the backend
        return job.record("skipped", error=str(exc))
    except Exception as exc:  # a full disk fails this variant (a row), not the run
        if not is_disk_full(exc):
            raise
        return job.record("failed", error=f"artifact store {store_root}: no space left on device ({exc})")
    return job.record("ok", artifact=str(artifact.path))


def benchmark_record(
    record: Mapping[str, Any], spec: VariantSpec, batch_sizes: Sequence[int], warmup: int, iters: int
) -> dict[str, Any]:
    """Benchmark a built variant at each batch size (flat rows in `bench_rows`)."""
    from segopt_core.backends import BackendUnavailable, load_predictor
    from segopt_core.benchmark import benchmark_loader

    options = record.get("options") or {}
    rows = benchmark_loader(
        lambda: load_predictor(record["artifact"]),
        spec,
        list(batch_sizes),
        variant=record["variant"],
        precision=record["precision"],
        device=options.get("device", "cpu"),
        skip_on=(BackendUnavailable,),
        warmup=warmup,
        iters=iters,
        checkpoint_sha256=record["checkpoint_sha256"],
        model_path=record["artifact"],
    )
    return {**record, "bench_rows": rows}


def benchmark_record_isolated(
    record: Mapping[str, Any], spec: VariantSpec, batch_sizes: Sequence[int], warmup: int, iters: int
) -> dict[str, Any]:
    """`benchmark_record` in a fresh spawned process: what the flows' worker threads must call.

    On the 2-core CI machine, torch run from a worker thread after the main thread had used torch took
    1.5-3x longer than from the main thread (`benchmarks/thread_isolation.py`); ONNX Runtime was
    unaffected. A process per measurement also gives each variant its own peak RSS and allocator state.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from segopt_core.lifecycle import die_with_parent

    # the worker dies with this process (a killed run leaves no measurement running on the device)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, context, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        return pool.submit(benchmark_record, dict(record), spec, list(batch_sizes), warmup, iters).result()


def evaluate_record(record: Mapping[str, Any], spec: VariantSpec, source: EvalSource) -> dict[str, Any]:
    """Accuracy of a built variant: mIoU on labels, or agreement with the fp32 checkpoint on sample images."""
    from segopt_core.backends import load_predictor
    from segopt_core.evaluation import compare_predictions, evaluate

    with _TORCH_LOCK:
        predictor = load_predictor(record["artifact"])
    if record["backend"] in _TORCH_BACKENDS:
        predictor = _Serialized(predictor)
    if source.mode == "labels":
        from segopt_core.data import open_dataset

        dataset = open_dataset(source.data_dir, split="val")
        result = evaluate(predictor, dataset, spec, limit=source.limit, progress=False).to_dict()
        accuracy = {"eval_mode": "labels", "eval_images": result["n_images"], "miou": result["mIoU"]}
        accuracy["per_class_iou"] = result["per_class_iou"]
    else:
        from segopt_core.checkpoints import load_checkpoint
        from segopt_core.predictor import TorchPredictor

        with _TORCH_LOCK:
            reference = _Serialized(TorchPredictor(load_checkpoint(record["checkpoint"], spec).model))
        result = compare_predictions(reference, predictor, sample_images(source), spec)
        accuracy = {"eval_mode": "agreement", "eval_images": result["n_images"]}
        accuracy |= {k: result[k] for k in ("pixel_agreement", "miou_vs_reference")}
    return {**record, "accuracy": accuracy}


def remember(record: Mapping[str, Any], cache_root: str | Path, stage: str | None = None) -> dict[str, Any]:
    """Store a completed record (or one whose `stage` just finished) in the result cache and return it;
    only 'ok' builds are cached."""
    if record.get("status") == "ok" and record.get("artifact"):
        plain = json.loads(json.dumps(record, default=str))
        try:
            ResultCache(cache_root).put(record["cache_key"], record["artifact"], plain, stage=stage)
        except OSError as exc:  # the result stands; only a later resume loses it
            if not is_disk_full(exc):
                raise
            log.warning(
                "result cache %s not written (no space left on device): a re-run redoes it", cache_root
            )
    return dict(record)


def recall_stage(record: Mapping[str, Any], cache_root: str | Path, stage: str) -> dict[str, Any] | None:
    """The record as it was when `stage` finished in an earlier run on the same artifact, else None."""
    done = ResultCache(cache_root).get(record["cache_key"], stage=stage, artifact=record.get("artifact"))
    return None if done is None else {**done, "reused": True}
