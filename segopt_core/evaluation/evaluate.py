"""mIoU of a predictor on a dataset split, and label-free agreement of a candidate with a reference."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from segopt_core.data.datasets import Sample, SegDataset
from segopt_core.errors import SegoptError
from segopt_core.evaluation.inference import predict_masks_batch, resolve_mode, slide_stride
from segopt_core.evaluation.metrics import ConfusionMatrix
from segopt_core.predictor import Predictor
from segopt_core.variants import CellSpec


class EvaluationError(SegoptError, ValueError):
    """A model and a dataset that cannot be evaluated together."""


@dataclass(frozen=True)
class EvalResult:
    """Every figure of one evaluation and the protocol that produced it."""

    metrics: dict  # ConfusionMatrix.summary()
    class_names: tuple[str, ...]
    protocol: dict
    n_images: int
    n_skipped: int
    seconds: float
    skipped: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.metrics["per_class_iou"]):
            raise ValueError(
                f"{len(self.class_names)} class names for {len(self.metrics['per_class_iou'])} IoUs"
            )

    @property
    def miou(self) -> float:
        """Mean IoU (fraction 0..1)."""
        return self.metrics["mIoU"]

    def to_dict(self) -> dict:
        """A JSON-able dict; undefined values (NaN) become null."""
        names = self.class_names
        return {
            "aAcc": _json_float(self.metrics["aAcc"]),
            "mIoU": _json_float(self.metrics["mIoU"]),
            "mAcc": _json_float(self.metrics["mAcc"]),
            "per_class_iou": {
                n: _json_float(v) for n, v in zip(names, self.metrics["per_class_iou"], strict=True)
            },
            "per_class_acc": {
                n: _json_float(v) for n, v in zip(names, self.metrics["per_class_acc"], strict=True)
            },
            "n_pixels": self.metrics["n_pixels"],
            "n_images": self.n_images,
            "n_skipped": self.n_skipped,
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.n_images / self.seconds, 3) if self.seconds > 0 else None,
            "protocol": self.protocol,
        }


def _json_float(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def protocol_of(spec: CellSpec, mode: str | None) -> dict:
    """The inference protocol a spec and mode give, as recorded with every result."""
    mode = resolve_mode(spec, mode)
    protocol = {
        "cell": spec.name,
        "mode": mode,
        "test_scale": list(spec.test_scale),
        "resize": "mmseg Resize keep_ratio; logits bilinear (align_corners=False) to input, then to original",
        "mean": list(spec.mean),
        "std": list(spec.std),
        "num_classes": spec.num_classes,
    }
    if mode == "slide":
        protocol |= {"crop_size": list(spec.crop_size), "stride": list(slide_stride(spec))}
    return protocol


def _batches(samples: Iterable[Sample], size: int, limit: int | None) -> Iterator[list[Sample]]:
    batch: list[Sample] = []
    for count, sample in enumerate(samples):
        if limit is not None and count >= limit:
            break
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def evaluate(
    predictor: Predictor,
    dataset: SegDataset,
    spec: CellSpec,
    mode: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    batch_size: int = 1,
) -> EvalResult:
    """mIoU/aAcc/mAcc of a predictor on a dataset split with the mmseg protocol (whole or slide)."""
    if dataset.num_classes != spec.num_classes:
        raise EvaluationError(
            f"{dataset.root}: dataset has {dataset.num_classes} classes ({dataset.layout}) but cell "
            f"{spec.name!r} predicts {spec.num_classes}; pick a cell/checkpoint trained on this label space"
        )
    protocol = protocol_of(spec, mode) | {"split": dataset.split, "layout": dataset.layout}
    total = len(dataset) if limit is None else min(limit, len(dataset))
    confusion = ConfusionMatrix(spec.num_classes)
    n_images, start = 0, time.perf_counter()
    with _progress(total, progress, f"evaluate {spec.name}") as bar:
        for batch in _batches(dataset, batch_size, limit):
            masks = predict_masks_batch(predictor, [s.image for s in batch], spec, mode, batch_size)
            for sample, mask in zip(batch, masks, strict=True):
                if sample.label is not None:
                    confusion.update(mask, sample.label)
            n_images += len(batch)
            bar.update(len(batch))
    if n_images == 0:
        raise EvaluationError(f"{dataset.root}: no readable sample in split {dataset.split!r}")
    return EvalResult(
        metrics=confusion.summary(),
        class_names=tuple(dataset.class_names),
        protocol=protocol,
        n_images=n_images,
        n_skipped=len(dataset.skipped),
        seconds=time.perf_counter() - start,
        skipped=tuple(dataset.skipped),
    )


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="img")


def compare_predictions(
    reference_predictor: Predictor,
    candidate_predictor: Predictor,
    images: Iterable[np.ndarray | Sample],
    spec: CellSpec,
    mode: str | None = None,
    batch_size: int = 1,
) -> dict:
    """Label-free check of a candidate against the reference: pixel agreement and mIoU vs its masks."""
    confusion = ConfusionMatrix(spec.num_classes)
    n_images = 0
    for image in images:
        array = image.image if isinstance(image, Sample) else image
        reference = predict_masks_batch(reference_predictor, [array], spec, mode, batch_size)[0]
        candidate = predict_masks_batch(candidate_predictor, [array], spec, mode, batch_size)[0]
        confusion.update(candidate, reference)
        n_images += 1
    if n_images == 0:
        raise EvaluationError("compare_predictions needs at least one image")
    summary = confusion.summary()
    return {
        "pixel_agreement": _json_float(summary["aAcc"]),
        "miou_vs_reference": _json_float(summary["mIoU"]),
        "macc_vs_reference": _json_float(summary["mAcc"]),
        "n_images": n_images,
        "n_pixels": summary["n_pixels"],
        "mode": resolve_mode(spec, mode),
        "reference": getattr(reference_predictor, "name", "reference"),
        "candidate": getattr(candidate_predictor, "name", "candidate"),
    }
