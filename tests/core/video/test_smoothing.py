"""Temporal smoothing math: α = 0 is per-frame, noise is damped, cuts and size changes reset the history."""

from __future__ import annotations

import numpy as np
import pytest

from segopt_core.video.smoothing import SmoothingOptions, TemporalSmoother, softmax, warp_scores

C, H, W = 5, 8, 12


def _gray(value: int = 100, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    return np.full(shape, value, np.uint8)


def _noisy_logits(n: int, seed: int = 0) -> list[np.ndarray]:
    """A fixed scene (class = column band) plus strong per-frame noise."""
    rng = np.random.default_rng(seed)
    clean = np.zeros((C, H, W), np.float32)
    for c in range(C):
        clean[c, :, c * W // C : (c + 1) * W // C] = 1.0
    return [clean + rng.normal(0, 0.8, clean.shape).astype(np.float32) for _ in range(n)]


def test_alpha_zero_is_per_frame():
    smoother = TemporalSmoother(SmoothingOptions(alpha=0.0))
    for z in _noisy_logits(4):
        np.testing.assert_array_equal(smoother.update(z, _gray()), z)


def test_ema_formula_on_logits_and_probs():
    z1, z2 = _noisy_logits(2)
    logits = TemporalSmoother(SmoothingOptions(alpha=0.6))
    logits.update(z1, _gray())
    np.testing.assert_allclose(logits.update(z2, _gray()), 0.6 * z1 + 0.4 * z2, rtol=1e-6)
    probs = TemporalSmoother(SmoothingOptions(alpha=0.3, space="probs"))
    probs.update(z1, _gray())
    out = probs.update(z2, _gray())
    np.testing.assert_allclose(out, 0.3 * softmax(z1) + 0.7 * softmax(z2), rtol=1e-5)
    np.testing.assert_allclose(out.sum(0), 1.0, rtol=1e-5)


def test_static_noisy_scene_gets_more_consistent():
    frames = _noisy_logits(30)
    smoother = TemporalSmoother(SmoothingOptions(alpha=0.8))
    raw = [z.argmax(0) for z in frames]
    smooth = [smoother.update(z, _gray()).argmax(0) for z in frames]

    def flips(labels):
        return float(np.mean([(a != b).mean() for a, b in zip(labels, labels[1:], strict=False)]))

    assert flips(smooth) < 0.5 * flips(raw)


def test_scene_cut_and_size_change_reset_history():
    z1, z2, z3 = _noisy_logits(3)
    smoother = TemporalSmoother(SmoothingOptions(alpha=0.6, scene_cut_threshold=30))
    smoother.update(z1, _gray(100))
    np.testing.assert_array_equal(smoother.update(z2, _gray(200)), z2)  # |Δgray| = 100 > 30: cut
    assert smoother.resets == 1
    small = z3[:, :4, :6]
    np.testing.assert_array_equal(smoother.update(small, _gray(200, (4, 6))), small)  # size change
    assert smoother.resets == 2


def test_warp_scores_follows_a_known_shift():
    scores = np.random.default_rng(0).normal(size=(C, H, W)).astype(np.float32)
    flow = np.zeros((H, W, 2), np.float32)
    flow[..., 0] = -2.0  # frame t at x looks at x-2 in t-1: content moved right by 2
    warped = warp_scores(scores, flow)
    np.testing.assert_allclose(warped[:, :, 2:], scores[:, :, :-2], rtol=1e-6)


def test_motion_aware_keeps_less_history_where_motion_is_large():
    z1, z2 = _noisy_logits(2)
    options = SmoothingOptions(alpha=0.6, motion_aware=True, motion_scale_px=1.0)
    still = np.zeros((H, W, 2), np.float32)
    moving = np.full((H, W, 2), 50.0, np.float32)
    a = TemporalSmoother(options)
    a.update(z1, _gray())
    np.testing.assert_allclose(a.update(z2, _gray(), still), 0.6 * z1 + 0.4 * z2, rtol=1e-5)
    b = TemporalSmoother(options)
    b.update(z1, _gray())
    np.testing.assert_allclose(b.update(z2, _gray(), moving), z2, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"alpha": 1.0}, {"alpha": -0.1}, {"space": "softmax"}])
def test_invalid_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        SmoothingOptions(**kwargs)
