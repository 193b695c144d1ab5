"""Verify an optimized predictor against the fp32 eager reference at shapes other than the build shape."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from segopt_core.backends.errors import VerificationError
from segopt_core.variants import CellSpec


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria: max |diff| relative to the reference's max |logit|, and argmax agreement."""

    max_rel_diff: float
    min_argmax_agreement: float

    def __post_init__(self) -> None:
        if not (self.max_rel_diff > 0 and 0 <= self.min_argmax_agreement <= 1):
            raise ValueError(f"bad tolerance {self}")


# Per precision.  fp32 must be the same function (folding is exact up to rounding); reduced precisions are
# judged mostly on the decisions (argmax).  INT8 bounds are loose on purpose: random-init models have
# near-tied logits, where a tiny error flips argmax; trained checkpoints agree far better (>0.97).
TOLERANCES = {
    "fp32": Tolerance(max_rel_diff=1e-3, min_argmax_agreement=0.99),
    "fp16": Tolerance(max_rel_diff=0.1, min_argmax_agreement=0.90),
    "bf16": Tolerance(max_rel_diff=0.25, min_argmax_agreement=0.80),
    "int8-dynamic": Tolerance(max_rel_diff=1.0, min_argmax_agreement=0.50),
    "int8-static": Tolerance(max_rel_diff=1.0, min_argmax_agreement=0.50),
}


def round_shape(value: float) -> int:
    """Multiple of 32, at least 64: every stage keeps at least 2x2 pixels (what compiled packages serve)."""
    return max(64, int(value) // 32 * 32)


def verification_shapes(spec: CellSpec) -> list[tuple[int, int, int, int]]:
    """Two (N,3,H,W) shapes different from the build shape (batch 2 at crop size)."""
    h, w = spec.crop_size
    return [
        (1, 3, round_shape(h / 2), round_shape(w * 3 / 4)),
        (3, 3, round_shape(h * 3 / 4), round_shape(w / 2)),
    ]


def verification_inputs(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Deterministic image-like inputs: smooth random structure plus fine noise, ~N(0,1) like real inputs."""
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    coarse = torch.randn(n, c, max(2, h // 16), max(2, w // 16), generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (smooth + 0.3 * torch.randn(n, c, h, w, generator=gen)).numpy().astype(np.float32)


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Max/mean abs diff, relative max diff and argmax agreement of two logit arrays."""
    if candidate.shape != reference.shape:
        raise VerificationError(
            f"output shape {candidate.shape} differs from the reference {reference.shape}"
        )
    finite = bool(np.isfinite(candidate).all())
    diff = np.abs(candidate.astype(np.float64) - reference) if finite else np.array([np.inf])
    scale = float(np.abs(reference).max()) or 1.0
    agree = float((candidate.argmax(1) == reference.argmax(1)).mean()) if finite else 0.0
    return {
        "finite": finite,
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "max_rel_diff": float(diff.max() / scale),
        "argmax_agreement": agree,
    }


@torch.inference_mode()
def reference_logits(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    """fp32 eager logits of the source model on CPU."""
    return model.float().eval()(torch.from_numpy(batch)).numpy()


def verify_predictor(reference: nn.Module, predictor, spec: CellSpec, precision: str) -> dict:
    """Compare at two shapes; returns the figures, or raises VerificationError with them in the message."""
    tol = TOLERANCES[precision]
    shapes = []
    for k, shape in enumerate(verification_shapes(spec)):
        batch = verification_inputs(shape, seed=k)
        figures = compare_logits(reference_logits(reference, batch), np.asarray(predictor(batch), np.float32))
        shapes.append({"shape": list(shape), **figures})
    worst = {
        "finite": all(s["finite"] for s in shapes),
        "max_abs_diff": max(s["max_abs_diff"] for s in shapes),
        "max_rel_diff": max(s["max_rel_diff"] for s in shapes),
        "argmax_agreement": min(s["argmax_agreement"] for s in shapes),
    }
    result = {**worst, "tolerance": tol.__dict__, "shapes": shapes}
    problems = _problems(worst, tol)
    result["passed"] = not problems
    if problems:
        raise VerificationError(f"{predictor.name} ({precision}) failed verification: {'; '.join(problems)}")
    return result


def verify_at(
    reference: nn.Module, predict, shape: tuple[int, int, int, int], precision: str, name: str
) -> dict:
    """verify_predictor's check at one given shape (a size compiled on first use): figures, else
    VerificationError naming the variant, the size and the figures."""
    tol = TOLERANCES[precision]
    batch = verification_inputs(shape, seed=0)
    figures = compare_logits(reference_logits(reference, batch), np.asarray(predict(batch), np.float32))
    problems = _problems(figures, tol)
    if problems:
        raise VerificationError(
            f"{name} ({precision}) failed verification at {shape[2]}x{shape[3]}: {'; '.join(problems)}"
        )
    return {**figures, "shape": list(shape), "tolerance": tol.__dict__, "passed": True}


def _problems(worst: dict, tol: Tolerance) -> list[str]:
    """Human-readable reasons a verification failed (empty when it passed)."""
    if not worst["finite"]:
        return ["output contains NaN/inf (overflow? try fp32 or bf16 for the failing layers)"]
    out = []
    if worst["max_rel_diff"] > tol.max_rel_diff:
        out.append(f"max relative logit diff {worst['max_rel_diff']:.3g} > {tol.max_rel_diff}")
    if worst["argmax_agreement"] < tol.min_argmax_agreement:
        out.append(f"argmax agreement {worst['argmax_agreement']:.4f} < {tol.min_argmax_agreement}")
    return out
