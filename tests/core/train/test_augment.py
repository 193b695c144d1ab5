"""mmseg's train pipeline: shapes, padding values, cat_max_ratio, determinism by RNG."""

from __future__ import annotations

import numpy as np

from segopt_core.train.augment import AugmentConfig, augment, random_crop, rescale_size


def _scene(h=40, w=60):
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    label = np.zeros((h, w), np.uint8)
    label[:, w // 2 :] = 1
    label[:4] = 255
    return image, label


def test_output_is_crop_sized_and_padded(tiny_spec):
    image, label = _scene()
    cfg = AugmentConfig(scale=(64, 16), crop=(32, 32), ratio_range=(1.0, 1.0))  # resized to 16x24 < crop
    pixels, target = augment(image, label, cfg, tiny_spec, np.random.default_rng(1))
    assert pixels.shape == (3, 32, 32) and pixels.dtype == np.float32
    assert target.shape == (32, 32) and target.dtype == np.int64
    assert (pixels[:, 16:, :] == 0).all() and (target[16:, :] == 255).all()  # pad: 0 image, 255 label
    assert (pixels[:, :, 24:] == 0).all() and (target[:, 24:] == 255).all()
    assert set(np.unique(target[:16, :24])) <= {0, 1, 255}


def test_same_rng_same_sample(tiny_spec):
    image, label = _scene()
    cfg = AugmentConfig(scale=(240, 60), crop=(32, 32))
    a = augment(image, label, cfg, tiny_spec, np.random.default_rng([3, 1, 4]))
    b = augment(image, label, cfg, tiny_spec, np.random.default_rng([3, 1, 4]))
    c = augment(image, label, cfg, tiny_spec, np.random.default_rng([3, 1, 5]))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_cat_max_ratio_prefers_mixed_crops():
    label = np.zeros((100, 100), np.uint8)
    label[:, 90:] = 1  # class 1 only in a 10-pixel strip at the right
    image = np.zeros((100, 100, 3), np.uint8)
    cfg = AugmentConfig(scale=(100, 100), crop=(20, 20), cat_max_ratio=0.75)
    mixed = 0
    for seed in range(50):
        _, crop = random_crop(image, label, cfg, np.random.default_rng(seed))
        mixed += len(np.unique(crop)) > 1
    plain = AugmentConfig(scale=(100, 100), crop=(20, 20), cat_max_ratio=1.0)
    mixed_plain = sum(
        len(np.unique(random_crop(image, label, plain, np.random.default_rng(s))[1])) > 1 for s in range(50)
    )
    assert mixed > 2 * mixed_plain


def test_rescale_size_keeps_ratio_within_bounds():
    assert rescale_size(512, 683, (2048, 512)) == (512, 683)
    assert rescale_size(100, 200, (2048, 512)) == (512, 1024)
