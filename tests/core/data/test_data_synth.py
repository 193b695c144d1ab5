"""Synthetic datasets: real layouts, label spaces, determinism by seed, learnable statistics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from segopt_core.data import SYNTH_CLASSES, open_dataset, synth_dataset, synth_scene
from segopt_core.data.synth import ADE20K_RAW_IDS, CITYSCAPES_TRAIN_IDS, SynthError, to_label_space
from segopt_core.variants import ADE20K, CITYSCAPES


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory) -> Path:
    return synth_dataset(
        tmp_path_factory.mktemp("ade") / "synth", "ade20k", n_train=4, n_val=3, size=(64, 96), seed=3
    )


def test_same_seed_same_bytes_other_seed_other_bytes(ade_root, tmp_path) -> None:
    again = synth_dataset(tmp_path / "again", "ade20k", n_train=4, n_val=3, size=(64, 96), seed=3)
    other = synth_dataset(tmp_path / "other", "ade20k", n_train=4, n_val=3, size=(64, 96), seed=4)
    assert _digests(again) == _digests(ade_root)
    assert set(_digests(other)) == set(_digests(ade_root)) and _digests(other) != _digests(ade_root)


def test_ade20k_layout_uses_the_real_label_space(ade_root) -> None:
    assert (ade_root / "ADEChallengeData2016" / "images" / "training").is_dir()
    train, val = open_dataset(ade_root, "train"), open_dataset(ade_root, "val")
    assert (len(train), len(val), val.layout) == (4, 3, "ade20k")
    labels = np.concatenate([s.label.ravel() for s in train])
    assert set(np.unique(labels)) <= {i - 1 for i in ADE20K_RAW_IDS} | {255}
    assert val[0].image.shape == (64, 96, 3)
    assert [ADE20K.class_names[i - 1] for i in ADE20K_RAW_IDS] == [
        "road", "sidewalk", "building", "tree", "sky", "person", "car",
    ]  # fmt: skip


def test_cityscapes_layout_writes_label_ids_and_train_ids_that_agree(tmp_path) -> None:
    root = synth_dataset(tmp_path / "city", "cityscapes", n_train=1, n_val=2, size=(64, 128), seed=0)
    ds = open_dataset(root)
    assert ds.layout == "cityscapes" and len(ds) == 2
    samples = list(ds)
    gt = sorted((root / "gtFine" / "val").rglob("*_gtFine_labelTrainIds.png"))
    for path in gt:
        path.unlink()  # the reader now has only labelIds and must map them to the same train ids
    from_ids = open_dataset(root)
    for a, b in zip(samples, from_ids, strict=True):
        np.testing.assert_array_equal(a.label, b.label)
    assert [CITYSCAPES.class_names[i] for i in CITYSCAPES_TRAIN_IDS] == list(SYNTH_CLASSES)


def test_folder_layout_has_a_class_list(tmp_path) -> None:
    ds = open_dataset(synth_dataset(tmp_path / "f", "folder", n_train=0, n_val=2, size=(32, 32)))
    assert ds.class_names == SYNTH_CLASSES and ds.layout == "folder"
    assert ds[0].label.max() < len(SYNTH_CLASSES) or 255 in ds[0].label


def test_scenes_have_every_class_imbalanced_and_separable_by_colour() -> None:
    scenes = [synth_scene(np.random.default_rng(i), (64, 64)) for i in range(24)]
    labels = np.stack([lab for _, lab in scenes])
    images = np.stack([img for img, _ in scenes]).astype(np.float32)
    counts = np.bincount(labels[labels != 255], minlength=7)
    assert (counts > 0).all()
    assert counts[[0, 2, 4]].sum() > 2 * counts[[5, 6]].sum()  # stuff dominates things, as in real scenes
    train, test = slice(0, 16), slice(16, 24)
    means = np.stack([images[train][labels[train] == c].mean(0) for c in range(7)])
    keep = labels[test] != 255
    pixels, truth = images[test][keep], labels[test][keep]
    nearest = np.argmin(((pixels[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == truth).mean() > 0.5  # colour alone separates much; shape/texture do the rest


def test_label_space_tables() -> None:
    synth = np.array([0, 4, 6, 255], np.uint8)
    np.testing.assert_array_equal(to_label_space(synth, "ade20k_raw"), [7, 3, 21, 0])
    np.testing.assert_array_equal(to_label_space(synth, "ade20k"), [6, 2, 20, 255])
    np.testing.assert_array_equal(to_label_space(synth, "cityscapes"), [0, 10, 13, 255])
    np.testing.assert_array_equal(to_label_space(synth, "cityscapes_label_ids"), [7, 23, 26, 0])


def test_bad_requests(tmp_path, ade_root) -> None:
    with pytest.raises(SynthError, match="valid layouts"):
        synth_dataset(tmp_path / "x", "coco")
    with pytest.raises(SynthError, match="too small"):
        synth_dataset(tmp_path / "x", size=(8, 8))
    with pytest.raises(SynthError, match="not empty"):
        synth_dataset(ade_root, n_train=1, n_val=1)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp folder left behind
