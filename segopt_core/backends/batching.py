"""Micro-batches: the batch size a CPU artifact runs best at, measured when it is built, applied when loaded.

On two CPU cores a batch of N images is often slower per image than N calls of one image: the cores are
already busy at batch 1, and a larger batch only makes the activations fall out of cache (B0 at 512×896
on an AMX Xeon: 78 ms at batch 1, 466 ms at batch 4). So each CPU artifact records the per-image cost at a
few batch sizes, timed in interleaved rounds at build time, and `MicroBatched` splits larger batches into
runs of the fastest size: a caller that batches (the flows, video) never pays more per image than batch 1.
The best size depends on the input size (B0 bf16 on a Zen 5 EPYC: 4 at 128×128, 1 at 512×896, where batch 4
costs 1.45× batch 1 per image), so at any other input size the first call of more than one image measures
it again, within `FIRST_USE_BUDGET_S`, and the process keeps the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CANDIDATES = (1, 2, 4)
BUDGET_S = 20.0  # the most a build spends on this; a model slower than that per image gets batch 1
FIRST_USE_BUDGET_S = 4.0  # the most the first batch at a new input size spends on it ...
FIRST_USE_ROUNDS = 5  # ... in 5 rounds: with 3, B0 at 512x896 was measured at 2 one time in two, at 1 else
SPEED_MARGIN = 0.97  # a larger micro-batch must be 3 % faster per image to be kept: noise is not a win


@dataclass
class MicroBatched:
    """A predictor that runs batches larger than `size` as consecutive calls of at most `size` images;
    `size` was measured at `input_hw` (None: at every size), other sizes are measured on first use."""

    inner: object
    size: int
    input_hw: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"micro-batch size must be >= 1, got {self.size}")
        self.name = self.inner.name
        self.precision = self.inner.precision
        self.device = self.inner.device
        self.sizes: dict[tuple[int, int], int] = {tuple(self.input_hw): self.size} if self.input_hw else {}

    def size_for(self, input_hw: tuple[int, int]) -> int:
        """The micro-batch size at this input size (measured now when it was not yet)."""
        if self.input_hw is None:
            return self.size
        if input_hw not in self.sizes:
            found = measure_micro_batch(
                self.inner, input_hw, rounds=FIRST_USE_ROUNDS, budget_s=FIRST_USE_BUDGET_S
            )
            self.sizes[input_hw] = found["size"]
        return self.sizes[input_hw]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 1:
            return self.inner(batch)
        size = self.size_for((int(batch.shape[-2]), int(batch.shape[-1])))
        if len(batch) <= size:
            return self.inner(batch)
        out = None
        for i in range(0, len(batch), size):  # into one array: no second copy of every output
            part = self.inner(batch[i : i + size])
            if out is None:
                out = np.empty((len(batch), *part.shape[1:]), part.dtype)
            out[i : i + len(part)] = part
        return out

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)  # e.g. a package predictor's metadata or notes


def measure_micro_batch(
    predictor,
    input_hw: tuple[int, int],
    candidates: Sequence[int] = CANDIDATES,
    rounds: int = 3,
    budget_s: float | None = None,
) -> dict:
    """Per-image ms at each candidate batch size (interleaved rounds) and the size to run at.

    Returns {"size", "per_image_ms": {batch: ms}, "input_hw"} or, where measuring would exceed
    `budget_s` (default `BUDGET_S`), {"size": 1, "reason"}.
    """
    from segopt_core.clock import interleaved_ab, time_call

    h, w = input_hw
    rng = np.random.default_rng(0)
    batches = {n: rng.standard_normal((n, 3, h, w), dtype=np.float32) for n in candidates}
    one = min(time_call(lambda: predictor(batches[1]), lambda: None) for _ in range(2))  # 1st may compile
    budget = BUDGET_S if budget_s is None else budget_s
    cost = one * sum(candidates) * (rounds + 1)
    if cost > budget:
        return {"size": 1, "reason": f"not measured: one image takes {one:.2f} s (budget {budget:.0f} s)"}
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
    recorded = metadata.get("micro_batch") or {}
    if not recorded.get("size"):
        return predictor
    hw = recorded.get("input_hw")  # absent where measuring was skipped: that size holds everywhere
    return MicroBatched(predictor, int(recorded["size"]), tuple(hw) if hw else None)
