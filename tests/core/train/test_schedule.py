"""The LR schedule equals mmengine's LinearLR(1e-6, 0..1500) + PolyLR(1.0, 0, 1500..160000) per iteration."""

from __future__ import annotations

import pytest

from segopt_core.train import WarmupPoly

BASE = 6e-5


def mmengine_chain(
    max_iters: int, warmup: int, start: float, power: float, eta_min: float = 0.0
) -> list[float]:
    """mmengine's chainable recursions, stepped after every iteration; element i = lr used in iteration i."""
    lr, lrs = BASE, []
    lin_total, poly_total = warmup - 1, max_iters - warmup - 1
    for step in range(max_iters + 1):  # _global_step of the scheduler step() that set the lr for `step`
        if 0 <= step < warmup:
            if step == 0:
                lr = lr * start
            else:
                lr = lr * (1.0 + (1.0 - start) / (lin_total * start + (step - 1) * (1.0 - start)))
        if warmup <= step < max_iters:
            last = step - warmup
            if last > 0:
                lr = (lr - eta_min) * (1 - 1 / (poly_total - last + 1)) ** power + eta_min
        lrs.append(lr)
    return lrs


@pytest.mark.parametrize(
    ("iteration", "expected"),
    [
        (0, BASE * 1e-6),
        (750, BASE * (1e-6 + (1 - 1e-6) * 750 / 1499)),  # LinearLR total_iters = end - begin - 1 = 1499
        (1500, BASE),
        (80_750, BASE * (158_499 - 79_250) / 158_499),  # PolyLR: T = 160000 - 1500 - 1, k = 80750 - 1500
        (160_000, 0.0),
    ],
)
def test_default_schedule_hand_computed(iteration, expected):
    schedule = WarmupPoly(max_iters=160_000, warmup_iters=1500, start_factor=1e-6, power=1.0)
    assert schedule.lr(BASE, iteration) == pytest.approx(expected, rel=1e-9, abs=1e-18)
    assert schedule.lr(10 * BASE, iteration) == pytest.approx(10 * expected, rel=1e-9, abs=1e-18)  # head


def test_matches_mmengine_chain_every_iteration():
    schedule = WarmupPoly(max_iters=160_000, warmup_iters=1500, start_factor=1e-6, power=1.0)
    reference = mmengine_chain(160_000, 1500, 1e-6, 1.0)
    for i in range(0, 160_001, 7):
        assert schedule.lr(BASE, i) == pytest.approx(reference[i], rel=1e-7, abs=1e-16), i


def test_power_and_eta_min_short_budget():
    schedule = WarmupPoly(max_iters=400, warmup_iters=40, start_factor=1e-6, power=0.9, min_lr=1e-6)
    reference = mmengine_chain(400, 40, 1e-6, 0.9, eta_min=1e-6)
    assert [schedule.lr(BASE, i) for i in range(400)] == pytest.approx(reference[:400], rel=1e-9)
    assert schedule.lr(BASE, 399) == pytest.approx(1e-6)


def test_rejects_warmup_longer_than_run():
    with pytest.raises(ValueError, match="warmup_iters=500"):
        WarmupPoly(max_iters=500, warmup_iters=500)
