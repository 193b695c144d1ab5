"""evaluate() on synthetic data with a tiny model; compare_predictions; label-space checks."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from segopt_core.data import open_dataset, synth_dataset
from segopt_core.evaluation import (
    ConfusionMatrix,
    EvaluationError,
    compare_predictions,
    evaluate,
    predict_mask,
)
from segopt_core.models import build_model
from segopt_core.predictor import TorchPredictor
from segopt_core.variants import tiny_cell


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory):
    root = synth_dataset(
        tmp_path_factory.mktemp("eval") / "d", "folder", n_train=0, n_val=5, size=(48, 64), seed=2
    )
    return open_dataset(root)


@pytest.fixture(scope="module")
def spec7():
    return replace(tiny_cell("ade20k", 64, num_labels=7), test_scale=(96, 48))


@pytest.fixture(scope="module")
def predictor7(spec7):
    return TorchPredictor(build_model(spec7, seed=0))


def test_evaluate_equals_the_confusion_matrix_of_predict_mask(folder_data, spec7, predictor7) -> None:
    result = evaluate(predictor7, folder_data, spec7, progress=False, batch_size=2)
    manual = ConfusionMatrix(7)
    for sample in folder_data:
        manual.update(predict_mask(predictor7, sample.image, spec7), sample.label)
    assert result.metrics["mIoU"] == pytest.approx(manual.summary()["mIoU"])
    assert result.n_images == 5 and result.n_skipped == 0
    d = json.loads(json.dumps(result.to_dict()))  # JSON-able, NaN -> null
    assert set(d["per_class_iou"]) == set(folder_data.class_names)
    assert (d["protocol"]["mode"], d["protocol"]["test_scale"], d["protocol"]["layout"]) == (
        "whole",
        [96, 48],
        "folder",
    )
    assert 0.0 <= d["mIoU"] <= 1.0 and d["seconds"] > 0


def test_limit_and_slide_mode_are_recorded(folder_data, spec7, predictor7) -> None:
    result = evaluate(predictor7, folder_data, spec7, mode="slide", limit=2, progress=False).to_dict()
    assert result["n_images"] == 2
    assert result["protocol"]["mode"] == "slide" and result["protocol"]["crop_size"] == [64, 64]


def test_label_space_mismatch_is_refused(folder_data, tiny_spec, tiny_model) -> None:
    with pytest.raises(EvaluationError, match="7 classes .* predicts 150"):
        evaluate(TorchPredictor(tiny_model), folder_data, tiny_spec, progress=False)


def test_compare_predictions(folder_data, spec7, predictor7) -> None:
    same = compare_predictions(predictor7, predictor7, folder_data, spec7)
    assert same["pixel_agreement"] == 1.0 and same["miou_vs_reference"] == 1.0 and same["n_images"] == 5
    other = TorchPredictor(build_model(spec7, seed=5), name="other")
    images = [s.image for s in folder_data]
    differ = compare_predictions(predictor7, other, images, spec7)
    assert differ["pixel_agreement"] < 1.0 and differ["candidate"] == "other"
    with pytest.raises(EvaluationError, match="at least one image"):
        compare_predictions(predictor7, other, [], spec7)


def test_skipped_files_are_counted(tmp_path, spec7, predictor7) -> None:
    root = synth_dataset(tmp_path / "d", "folder", n_train=0, n_val=3, size=(32, 32))
    (root / "images" / "val" / "000001.png").write_bytes(b"broken")
    result = evaluate(predictor7, open_dataset(root, strict=False), spec7, progress=False).to_dict()
    assert result["n_images"] == 2 and result["n_skipped"] == 1
    assert "000001.png" in result["skipped"][0]["file"]
    assert np.isfinite(result["aAcc"])
