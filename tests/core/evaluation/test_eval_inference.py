"""mmseg's test protocol: rescale rounding, slide windows, whole vs slide, two-step logits resize."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segopt_core.data.preprocess import preprocess, rescale_size
from segopt_core.evaluation import (
    InferenceError,
    predict_logits,
    predict_logits_batch,
    predict_mask,
    slide_windows,
)
from segopt_core.predictor import TorchPredictor


@pytest.fixture(scope="module")
def predictor(tiny_model) -> TorchPredictor:
    return TorchPredictor(tiny_model)


@pytest.fixture(scope="module")
def city_predictor(tiny_city_spec) -> TorchPredictor:
    from segopt_core.models import build_model

    return TorchPredictor(build_model(tiny_city_spec, seed=1))


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("hw", "scale", "expected"),
    [
        ((512, 683), (2048, 512), (512, 683)),  # ADE20K val image: unchanged
        ((1024, 2048), (2048, 512), (512, 1024)),
        ((1024, 2048), (2048, 1024), (1024, 2048)),  # Cityscapes: unchanged
        ((64, 64), (2048, 512), (512, 512)),
        ((333, 500), (2048, 512), (512, 769)),  # 500 * 1.5375 = 768.75 -> int(769.25) = 769 (mmcv rounding)
    ],
)
def test_rescale_size_matches_mmcv(hw, scale, expected) -> None:
    assert rescale_size(*hw, scale) == expected


def test_slide_windows_match_mmseg() -> None:
    windows = slide_windows(1024, 2048, (1024, 1024), (768, 768))
    assert windows == [(0, 1024, 0, 1024), (0, 1024, 768, 1792), (0, 1024, 1024, 2048)]
    assert slide_windows(40, 50, (64, 64), (48, 48)) == [(0, 40, 0, 50)]  # smaller than the crop: one window
    assert len(slide_windows(100, 100, (64, 64), (48, 48))) == 4


def test_preprocess_normalises_to_chw_float32(tiny_spec) -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    image[...] = (124, 116, 104)
    x = preprocess(image, tiny_spec)
    assert x.shape == (3, 2, 3) and x.dtype == np.float32
    np.testing.assert_allclose(
        x[:, 0, 0], np.subtract((124, 116, 104), tiny_spec.mean) / tiny_spec.std, atol=1e-6
    )


def test_whole_is_resize_predict_resize_twice(tiny_spec, predictor, tiny_model) -> None:
    spec = replace(tiny_spec, test_scale=(128, 64))
    image = _image(50, 90)
    logits = predict_logits(predictor, image, spec, mode="whole")
    new_h, new_w = rescale_size(50, 90, (128, 64))  # (64, 115)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    with torch.no_grad():
        low = tiny_model(torch.from_numpy(preprocess(resized, spec))[None])
    expected = F.interpolate(F.interpolate(low, (new_h, new_w), mode="bilinear"), (50, 90), mode="bilinear")
    assert logits.shape == (150, 50, 90) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected[0].numpy(), atol=1e-5)
    np.testing.assert_array_equal(predict_mask(predictor, image, spec, "whole"), logits.argmax(0))


def test_batched_equals_one_by_one(tiny_spec, predictor) -> None:
    spec = replace(tiny_spec, test_scale=(128, 64))
    images = [_image(64, 64, 1), _image(48, 80, 2), _image(64, 64, 3)]
    batched = predict_logits_batch(predictor, images, spec, batch_size=4)
    for image, logits in zip(images, batched, strict=True):
        np.testing.assert_allclose(logits, predict_logits(predictor, image, spec), atol=1e-4)


def test_slide_equals_whole_on_a_crop_sized_image(tiny_city_spec, city_predictor) -> None:
    spec = replace(tiny_city_spec, test_scale=(64, 64))
    image = _image(64, 64, 4)
    slide = predict_logits(city_predictor, image, spec, mode="slide")
    whole = predict_logits(city_predictor, image, spec, mode="whole")
    np.testing.assert_allclose(slide, whole, atol=1e-5)


def test_slide_averages_overlapping_crops(tiny_city_spec, city_predictor) -> None:
    spec = replace(tiny_city_spec, test_scale=(160, 80))  # 64x128 -> 80x160 (factor 1.25)
    image = _image(64, 128, 5)
    new_h, new_w = rescale_size(64, 128, spec.test_scale)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(preprocess(resized, spec))[None]
    preds, count = torch.zeros(1, 19, new_h, new_w), torch.zeros(1, 1, new_h, new_w)
    windows = slide_windows(new_h, new_w, spec.crop_size, spec.slide_stride)
    assert len(windows) == 6  # 80x160 with 64 crops, stride 48: 2 rows x 3 columns
    with torch.no_grad():
        for y1, y2, x1, x2 in windows:
            crop = city_predictor.model(x[:, :, y1:y2, x1:x2])
            preds[:, :, y1:y2, x1:x2] += F.interpolate(crop, (y2 - y1, x2 - x1), mode="bilinear")
            count[:, :, y1:y2, x1:x2] += 1
    expected = F.interpolate(preds / count, (64, 128), mode="bilinear")[0].numpy()
    np.testing.assert_allclose(predict_logits(city_predictor, image, spec, "slide"), expected, atol=1e-5)
    whole = predict_logits(city_predictor, image, spec, "whole")
    assert not np.allclose(whole, expected, atol=1e-3)  # the modes really differ on larger images


def test_bad_mode_and_bad_image_raise(tiny_spec, predictor) -> None:
    with pytest.raises(InferenceError, match="valid modes"):
        predict_logits(predictor, _image(8, 8), tiny_spec, mode="tiles")
    with pytest.raises(InferenceError, match="HxWx3 uint8"):
        predict_logits(predictor, np.zeros((8, 8), np.uint8), tiny_spec)


@pytest.mark.parametrize("group", [1, 7, 150])
def test_argmax_in_channel_groups_equals_the_full_size_argmax(group) -> None:
    from segopt_core.evaluation.inference import argmax_resized

    logits = torch.randn(1, 150, 23, 31, generator=torch.Generator().manual_seed(0))
    logits[0, 40] = logits[0, 3]  # exact ties keep the lowest class, as argmax does
    size = (97, 131)
    full = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)[0].argmax(0)
    tiled = argmax_resized(logits, size, budget=group * size[0] * size[1])
    assert torch.equal(tiled.long(), full)


def test_mask_of_a_large_image_equals_the_argmax_of_its_logits(tiny_spec, predictor, monkeypatch) -> None:
    import segopt_core.evaluation.inference as inference

    image = _image(300, 420, seed=3)
    expected = predict_logits(predictor, image, tiny_spec).argmax(0)
    monkeypatch.setattr(inference, "ARGMAX_BUDGET_ELEMENTS", 300 * 420 * 2)  # force 2-channel groups
    assert np.array_equal(predict_mask(predictor, image, tiny_spec), expected)


@pytest.mark.slow
def test_peak_memory_of_a_large_image_mask_stays_within_the_stated_bound(tmp_path) -> None:
    """A 3000x2000 image, 150 classes: full-size float32 logits alone would be 3.6 GB; the stated bound is
    256 MB (one channel group) + about 40 bytes per pixel over the process's own memory."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import resource, numpy as np, torch
        from segopt_core.evaluation import predict_mask
        from segopt_core.models import build_model
        from segopt_core.predictor import TorchPredictor
        from segopt_core.variants import tiny_cell
        torch.set_num_threads(2)
        spec = tiny_cell("ade20k", 64)
        predictor = TorchPredictor(build_model(spec, seed=0).eval())
        image = np.random.default_rng(0).integers(0, 255, (2000, 3000, 3), dtype=np.uint8)
        predict_mask(predictor, image[:64, :64], spec)  # warm: allocator, kernels, model at the crop
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        mask = predict_mask(predictor, image, spec)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(mask.shape, (after - before) / 1024)
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=600
    )
    shape, growth_mb = out.stdout.strip().rsplit(" ", 1)
    bound_mb = 256 + 40 * 3000 * 2000 / 2**20
    assert shape == "(2000, 3000)" and float(growth_mb) <= bound_mb, (growth_mb, bound_mb)
