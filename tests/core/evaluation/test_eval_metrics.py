"""ConfusionMatrix against small hand-computed cases (mmseg semantics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segopt_core.data.datasets import cityscapes_label_ids_to_train_ids, reduce_zero_label
from segopt_core.evaluation import ConfusionMatrix, MetricsError


def test_hand_computed_case_with_ignore_index() -> None:
    label = np.array([[0, 0, 1], [1, 2, 255]], np.uint8)
    pred = np.array([[0, 1, 1], [1, 1, 0]], np.uint8)  # the pixel under 255 is not counted
    cm = ConfusionMatrix(3)
    cm.update(pred, label)
    s = cm.summary()
    # intersect (1, 2, 0); label area (2, 2, 1); pred area (1, 4, 0); union (2, 4, 1)
    assert s["per_class_iou"] == pytest.approx([0.5, 0.5, 0.0])
    assert s["per_class_acc"] == pytest.approx([0.5, 1.0, 0.0])
    assert s["mIoU"] == pytest.approx(1 / 3)
    assert s["mAcc"] == pytest.approx(0.5)
    assert s["aAcc"] == pytest.approx(3 / 5)
    assert s["n_pixels"] == 5


def test_absent_classes_are_nan_and_excluded() -> None:
    label = np.array([[0, 0], [1, 1]], np.uint8)
    pred = np.array([[0, 2], [1, 1]], np.uint8)  # class 2 predicted but absent; class 3 absent everywhere
    cm = ConfusionMatrix(4)
    cm.update(pred, label)
    s = cm.summary()
    assert math.isnan(s["per_class_iou"][3]) and math.isnan(s["per_class_acc"][3])
    assert s["per_class_iou"][2] == 0.0  # union > 0: counts in mIoU as mmseg does
    assert math.isnan(s["per_class_acc"][2])  # no labelled pixel: no accuracy
    assert s["mIoU"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert s["mAcc"] == pytest.approx((0.5 + 1.0) / 2)


def test_streaming_updates_equal_one_big_update() -> None:
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 5, (7, 9)).astype(np.uint8) for _ in range(4)]
    preds = [rng.integers(0, 5, (7, 9)).astype(np.uint8) for _ in range(4)]
    labels[1][2:4] = 255
    streamed, whole = ConfusionMatrix(5), ConfusionMatrix(5)
    for p, lab in zip(preds, labels, strict=True):
        streamed.update(p, lab)
    whole.update(np.concatenate(preds), np.concatenate(labels))
    np.testing.assert_array_equal(streamed.matrix, whole.matrix)
    halves = ConfusionMatrix(5)
    halves.update(preds[0], labels[0])
    rest = ConfusionMatrix(5)
    for p, lab in zip(preds[1:], labels[1:], strict=True):
        rest.update(p, lab)
    np.testing.assert_array_equal(halves.merge(rest).matrix, whole.matrix)


def test_all_ignored_gives_nan_not_an_error() -> None:
    cm = ConfusionMatrix(2)
    cm.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8))
    s = cm.summary()
    assert math.isnan(s["aAcc"]) and math.isnan(s["mIoU"])


@pytest.mark.parametrize(
    ("pred", "label", "match"),
    [
        (np.zeros((2, 2)), np.array([[0, 3], [0, 0]]), "label value 3"),
        (np.array([[0, 9], [0, 0]]), np.zeros((2, 2)), "prediction value 9"),
        (np.zeros((2, 3)), np.zeros((2, 2)), "shape"),
    ],
)
def test_bad_inputs_raise(pred, label, match) -> None:
    with pytest.raises(MetricsError, match=match):
        ConfusionMatrix(3).update(pred.astype(np.int64), label.astype(np.int64))


def test_reduce_zero_label_and_metrics() -> None:
    raw = np.array([[0, 1], [150, 255]], np.uint8)
    train = reduce_zero_label(raw)
    np.testing.assert_array_equal(train, [[255, 0], [149, 255]])
    cm = ConfusionMatrix(150)
    cm.update(np.array([[7, 0], [149, 3]], np.uint8), train)  # raw 0 and 255 pixels are ignored
    assert cm.summary()["aAcc"] == 1.0 and cm.summary()["n_pixels"] == 2


def test_cityscapes_label_ids_map_with_the_official_table() -> None:
    ids = np.array([[7, 26], [0, 33], [255, 24]], np.uint8)
    np.testing.assert_array_equal(cityscapes_label_ids_to_train_ids(ids), [[0, 13], [255, 18], [255, 11]])
