"""Consistency metrics on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from segopt_core.video.metrics import (
    ConsistencyMeter,
    label_persistence,
    pair_miou,
    still_pixels,
    warp_labels,
)


def test_label_persistence_counts_only_still_pixels():
    prev = np.array([[0, 1], [2, 3]], np.uint8)
    cur = np.array([[0, 1], [9, 9]], np.uint8)
    still = np.array([[True, True], [True, False]])
    assert label_persistence(prev, cur, still) == (2, 3)
    g1, g2 = np.array([[10, 10]], np.uint8), np.array([[12, 40]], np.uint8)
    assert still_pixels(g1, g2, tau=5).tolist() == [[True, False]]


def test_pair_miou_known_values():
    a = np.array([[0, 0, 1, 1]], np.uint8)
    assert pair_miou(a, a, 3) == 1.0
    b = np.array([[0, 1, 1, 1]], np.uint8)  # class 0: 1/2, class 1: 2/3
    assert abs(pair_miou(a, b, 3) - (0.5 + 2 / 3) / 2) < 1e-9
    assert pair_miou(a, np.full_like(a, 255), 3) is None


def test_warp_labels_shift_and_out_of_frame_is_ignored():
    labels = np.tile(np.arange(6, dtype=np.uint8), (3, 1))
    flow = np.zeros((3, 6, 2), np.float32)
    flow[..., 0] = 1.0
    warped = warp_labels(labels, flow)
    assert warped[0].tolist() == [1, 2, 3, 4, 5, 255]


def test_meter_on_a_moving_pattern_with_exact_flow_is_perfectly_consistent():
    base = np.repeat(np.arange(8, dtype=np.uint8)[None] // 2, 4, 0)
    shifted = np.roll(base, 1, axis=1)  # content moved right by 1 px
    flow = np.zeros((4, 8, 2), np.float32)
    flow[..., 0] = -1.0  # t at x comes from t-1 at x-1
    meter = ConsistencyMeter(num_classes=4)
    meter.update(base, None, None)
    meter.update(shifted, np.zeros((4, 8), bool), flow)
    assert meter.summary()["flow_tc"] == 1.0
    no_flow = ConsistencyMeter(num_classes=4)
    no_flow.update(base, None, None)
    no_flow.update(shifted, None, np.zeros_like(flow))
    assert no_flow.summary()["flow_tc"] < 0.7  # without motion compensation the shift looks like flicker


def test_static_persistence_and_break_sequence():
    meter = ConsistencyMeter(num_classes=3)
    still = np.ones((2, 2), bool)
    meter.update(np.zeros((2, 2), np.uint8), None, None)
    meter.update(np.array([[0, 0], [0, 1]], np.uint8), still, None)  # 3 of 4 unchanged
    meter.break_sequence()
    meter.update(np.full((2, 2), 2, np.uint8), still, None)  # not paired with the previous frame
    summary = meter.summary()
    assert summary["static_persistence"] == 0.75 and summary["static_pixels"] == 4
    assert summary["flow_tc"] is None and summary["miou_gt"] is None


def test_gt_miou_accumulates_with_ignore():
    meter = ConsistencyMeter(num_classes=2)
    label = np.array([[0, 1, 255]], np.uint8)
    meter.update_gt(np.array([[0, 1, 1]], np.uint8), label)
    assert meter.summary()["miou_gt"] == 1.0
    meter.update_gt(np.array([[1, 1, 0]], np.uint8), label)  # class 0: 1/2, class 1: 2/3
    assert abs(meter.summary()["miou_gt"] - round((0.5 + 2 / 3) / 2, 4)) < 1e-9


def _zero_flow(shape: tuple[int, int]) -> np.ndarray:
    return np.zeros((*shape, 2), np.float32)


def test_etc_tc_of_a_constant_sequence_is_1_and_of_alternating_disjoint_labelings_is_0():
    a = np.repeat(np.array([[0, 0, 1, 1, 2, 2]], np.uint8), 4, 0)
    b = (a + 3).astype(np.uint8)  # classes 3, 4, 5: disjoint from a's
    constant, alternating = ConsistencyMeter(num_classes=6), ConsistencyMeter(num_classes=6)
    for t in range(6):
        constant.update(a, None, _zero_flow(a.shape), _zero_flow(a.shape))
        alternating.update(a if t % 2 else b, None, _zero_flow(a.shape), _zero_flow(a.shape))
    assert constant.summary()["etc_tc"] == 1.0 and constant.summary()["etc_pairs"] == 5
    assert alternating.summary()["etc_tc"] == 0.0


def test_etc_tc_accumulates_intersections_and_unions_before_averaging():
    from segopt_core.video.metrics import EtcConsistency

    etc = EtcConsistency(num_classes=2)
    etc.add(np.array([[0, 0, 1, 1]], np.uint8), np.array([[0, 1, 1, 1]], np.uint8))  # 0: 1/2, 1: 2/3
    etc.add(np.array([[0, 0, 0, 0]], np.uint8), np.array([[0, 0, 0, 0]], np.uint8))  # 0: 4/4
    assert etc.value() == pytest.approx((5 / 6 + 2 / 3) / 2)  # (1+4)/(2+4) and 2/3, not a mean of pairs


def test_vc_n_counts_windows_where_ground_truth_and_prediction_both_hold():
    from segopt_core.video.metrics import VideoConsistency

    gt = np.zeros((2, 2), np.uint8)
    vc = VideoConsistency(3)
    preds = [np.zeros((2, 2), np.uint8) for _ in range(4)]
    preds[2] = np.array([[0, 0], [0, 1]], np.uint8)  # one pixel flips in frame 2: both windows see it
    for pred in preds:
        vc.add(gt, pred)
    assert vc.windows == 2 and vc.value() == pytest.approx(0.75)
    vc.break_sequence()
    vc.add(gt, preds[0])
    assert vc.windows == 2  # a new clip needs n frames before its first window
    ignored = VideoConsistency(2)
    for _ in range(3):
        ignored.add(np.full((2, 2), 255, np.uint8), preds[0])
    assert ignored.value() is None  # all ground truth ignored: no window counts
