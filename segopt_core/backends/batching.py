"""Micro-batches: the batch size a CPU artifact runs best at, measured when it is built, applied when loaded.

On two CPU cores a batch of N images is often slower per image than N calls of one image: the cores are
already busy at batch 1, and a larger batch only makes the activations fall out of cache (B0 at 512×896
on an AMX Xeon: 78 ms at batch 1, 466 ms at batch 4). So each CPU artifact records the per-image cost at a
few batch sizes, timed in interleaved rounds at build time, and `MicroBatched` splits larger batches into
runs of the fastest size: a caller that batches (the flows, video) never pays more per image than batch 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CANDIDATES = (1, 2, 4)
BUDGET_S = 20.0  # the most a build spends on this; a model slower than that per image gets batch 1
SPEED_MARGIN = 0.97  # a larger micro-batch must be 3 % faster per image to be kept: noise is not a win


@dataclass
class MicroBatched:
    """A predictor that runs batches larger than `size` as consecutive calls of at most `size` images."""

    inner: object
    size: int

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"micro-batch size must be >= 1, got {self.size}")
        self.name = self.inner.name
        self.precision = self.inner.precision
        self.device = self.inner.device

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) <= self.size:
            return self.inner(batch)
        return np.concatenate([self.inner(batch[i : i + self.size]) for i in range(0, len(batch), self.size)])

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)  # e.g. a package predictor's metadata or notes


def measure_micro_batch(
    predictor, input_hw: tuple[int, int], candidates: Sequence[int] = CANDIDATES, rounds: int = 3
) -> dict:
    """Per-image ms at each candidate batch size (interleaved rounds) and the size to run at.

    Returns {"size", "per_image_ms": {batch: ms}, "input_hw"} or, where measuring would exceed
    `BUDGET_S`, {"size": 1, "reason"}.
    """
    from segopt_core.benchmark.timing import interleaved_ab, time_call

    h, w = input_hw
    rng = np.random.default_rng(0)
    batches = {n: rng.standard_normal((n, 3, h, w), dtype=np.float32) for n in candidates}
    one = min(time_call(lambda: predictor(batches[1]), lambda: None) for _ in range(2))  # 1st may compile
    cost = one * sum(candidates) * (rounds + 1)
    if cost > BUDGET_S:
        return {"size": 1, "reason": f"not measured: one image takes {one:.2f} s (budget {BUDGET_S:.0f} s)"}
    calls = {n: (lambda b=batch: predictor(b)) for n, batch in batches.items()}
    samples = interleaved_ab(calls, rounds, 1, warmup_iters=1)
    per_image = {n: round(float(np.median(s)) * 1e3 / n, 3) for n, s in samples.items()}
    return {"size": pick_size(per_image), "per_image_ms": per_image, "input_hw": [h, w]}


def pick_size(per_image_ms: dict[int, float]) -> int:
    """The smallest batch size within `SPEED_MARGIN` of the fastest per-image time."""
    best = min(per_image_ms.values())
    return min(n for n, ms in per_image_ms.items() if ms * SPEED_MARGIN <= best)


def apply_micro_batch(predictor, metadata: dict):
    """The predictor wrapped in `MicroBatched` where the artifact recorded a micro-batch size."""
    size = (metadata.get("micro_batch") or {}).get("size")
    return MicroBatched(predictor, int(size)) if size else predictor
