"""Readers on layouts written here (ADE20K, Cityscapes trainIds or labelIds-only, folder); bad inputs."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segopt_core.data import DatasetError, open_dataset


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _rgb(h: int = 6, w: int = 8, value: int = 100) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def _ade(root: Path, raw_masks: dict[str, np.ndarray], split: str = "validation") -> Path:
    base = root / "ADEChallengeData2016"
    for stem, mask in raw_masks.items():
        _write(base / "images" / split / f"{stem}.jpg", _rgb(*mask.shape))
        _write(base / "annotations" / split / f"{stem}.png", mask)
    return base


def _city(root: Path, masks: dict[str, np.ndarray], kind: str = "labelTrainIds") -> Path:
    for stem, mask in masks.items():
        _write(root / "leftImg8bit" / "val" / "aachen" / f"{stem}_leftImg8bit.png", _rgb(*mask.shape))
        _write(root / "gtFine" / "val" / "aachen" / f"{stem}_gtFine_{kind}.png", mask)
    return root


def _folder(
    root: Path, masks: dict[str, np.ndarray], classes=("bg", "cat", "dog"), split: str | None = None
) -> Path:
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    sub = Path(split) if split else Path()
    for stem, mask in masks.items():
        _write(root / "images" / sub / f"{stem}.png", _rgb(*mask.shape))
        _write(root / "masks" / sub / f"{stem}.png", mask)
    return root


RAW = np.array([[0, 1, 2, 150], [255, 3, 3, 3]], np.uint8)


@pytest.mark.parametrize("use_parent", [True, False])
def test_ade20k_reduces_zero_label_from_either_root(tmp_path, use_parent) -> None:
    base = _ade(tmp_path, {"ADE_val_00000001": RAW})
    ds = open_dataset(tmp_path if use_parent else base, split="val")
    assert (ds.layout, len(ds), ds.num_classes) == ("ade20k", 1, 150)
    sample = ds[0]
    assert sample.name == "ADE_val_00000001" and sample.image.shape == (2, 4, 3)
    np.testing.assert_array_equal(sample.label, [[255, 0, 1, 149], [255, 2, 2, 2]])


def test_ade20k_train_split_maps_to_training(tmp_path) -> None:
    _ade(tmp_path, {"a": RAW}, split="training")
    assert len(open_dataset(tmp_path, split="train")) == 1
    with pytest.raises(DatasetError, match="validation"):
        open_dataset(tmp_path, split="val")


def test_cityscapes_train_ids(tmp_path) -> None:
    mask = np.array([[0, 18], [255, 13]], np.uint8)
    ds = open_dataset(_city(tmp_path, {"aachen_000000_000019": mask}))
    assert ds.layout == "cityscapes" and ds.num_classes == 19 and ds.class_names[13] == "car"
    np.testing.assert_array_equal(ds[0].label, mask)
    assert ds[0].name == "aachen_000000_000019"


def test_cityscapes_label_ids_only_are_mapped(tmp_path) -> None:
    ids = np.array([[7, 26], [0, 33]], np.uint8)
    ds = open_dataset(_city(tmp_path, {"aachen_000000_000019": ids}, kind="labelIds"))
    np.testing.assert_array_equal(ds[0].label, [[0, 13], [255, 18]])


def test_cityscapes_prefers_train_ids_when_both_exist(tmp_path) -> None:
    _city(tmp_path, {"aachen_000000_000019": np.array([[7, 7]], np.uint8)}, kind="labelIds")
    _city(tmp_path, {"aachen_000000_000019": np.array([[1, 1]], np.uint8)}, kind="labelTrainIds")
    np.testing.assert_array_equal(open_dataset(tmp_path)[0].label, [[1, 1]])


@pytest.mark.parametrize("split", [None, "val"])
def test_folder_layout_flat_or_split(tmp_path, split) -> None:
    mask = np.array([[0, 1], [2, 255]], np.uint8)
    ds = open_dataset(_folder(tmp_path, {"x": mask}, split=split), split="val")
    assert ds.layout == "folder" and ds.class_names == ("bg", "cat", "dog")
    np.testing.assert_array_equal(ds[0].label, mask)
    assert [s.name for s in ds] == ["x"]


def test_grayscale_and_rgba_images_are_converted(tmp_path, caplog) -> None:
    root = _folder(tmp_path, {})
    _write(root / "images" / "gray.png", np.full((2, 2), 50, np.uint8))
    _write(root / "images" / "rgba.png", np.full((2, 2, 4), 60, np.uint8))
    for stem in ("gray", "rgba"):
        _write(root / "masks" / f"{stem}.png", np.zeros((2, 2), np.uint8))
    with caplog.at_level(logging.INFO, logger="segopt_core.data.datasets"):
        samples = list(open_dataset(root))
    assert all(s.image.shape == (2, 2, 3) and s.image.dtype == np.uint8 for s in samples)
    assert "converted L image to RGB" in caplog.text and "converted RGBA image to RGB" in caplog.text


# ---------------------------------------------------------------- bad inputs


def test_missing_and_unknown_folders(tmp_path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no known dataset layout"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="unknown layout"):
        open_dataset(tmp_path, layout="coco")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError, match="classes.txt"):
        open_dataset(tmp_path)


def test_empty_split(tmp_path) -> None:
    _ade(tmp_path, {"a": RAW}, split="training")
    (tmp_path / "ADEChallengeData2016" / "images" / "validation").mkdir()
    (tmp_path / "ADEChallengeData2016" / "annotations" / "validation").mkdir()
    with pytest.raises(DatasetError, match="no usable image/mask pairs"):
        open_dataset(tmp_path, split="val")


def test_unpaired_files_raise_when_strict_and_are_skipped_otherwise(tmp_path) -> None:
    root = _folder(tmp_path, {"ok": np.zeros((2, 2), np.uint8)})
    _write(root / "images" / "lonely_image.png", _rgb())
    _write(root / "masks" / "lonely_mask.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(DatasetError, match="lonely_image.png: image without mask.*evaluate --no-strict"):
        open_dataset(root)
    ds = open_dataset(root, strict=False)
    assert len(ds) == 1
    assert sorted(reason for _, reason in ds.skipped) == ["image without mask", "mask without image"]


def _bad_sample_cases(root: Path) -> dict[str, str]:
    """Write one bad pair per case next to a good one; return stem -> expected error text."""
    _write(root / "images" / "size.png", _rgb(4, 4))
    _write(root / "masks" / "size.png", np.zeros((5, 4), np.uint8))
    (root / "images" / "corrupt.png").write_bytes(b"not an image at all")
    _write(root / "masks" / "corrupt.png", np.zeros((2, 2), np.uint8))
    good = _write(
        root / "images" / "truncated.png", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    )
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _write(root / "masks" / "truncated.png", np.zeros((64, 64), np.uint8))
    _write(root / "images" / "range.png", _rgb(2, 2))
    _write(root / "masks" / "range.png", np.array([[0, 7], [255, 1]], np.uint8))
    _write(root / "images" / "colourmask.png", _rgb(2, 2))
    _write(root / "masks" / "colourmask.png", _rgb(2, 2))
    return {
        "size": "differs from image",
        "corrupt": "cannot decode image",
        "truncated": "corrupt or truncated",
        "range": "mask values 7 outside the class range",
        "colourmask": "expected one channel",
    }


def test_every_bad_sample_is_named_when_strict_and_skipped_otherwise(tmp_path) -> None:
    root = _folder(tmp_path, {"good": np.array([[0, 1], [2, 255]], np.uint8)})
    cases = _bad_sample_cases(root)
    strict = open_dataset(root)
    by_name = {pair.name: i for i, pair in enumerate(strict.pairs)}
    for stem, message in cases.items():
        with pytest.raises(DatasetError, match=message) as err:
            strict[by_name[stem]]
        assert f"{stem}.png" in str(err.value)
    lenient = open_dataset(root, strict=False)
    assert [s.name for s in lenient] == ["good"]
    assert len(lenient.skipped) == len(cases)


def test_ade20k_raw_value_above_150_is_out_of_range(tmp_path) -> None:
    _ade(tmp_path, {"a": np.array([[151, 1]], np.uint8)})
    with pytest.raises(DatasetError, match="151 outside the class range"):
        open_dataset(tmp_path)[0]


def test_cityscapes_label_ids_above_33_are_out_of_range(tmp_path) -> None:
    _city(tmp_path, {"aachen_000000_000019": np.array([[40, 7]], np.uint8)}, kind="labelIds")
    with pytest.raises(DatasetError, match="40 outside"):
        open_dataset(tmp_path)[0]


def test_folder_with_split_folders_refuses_a_missing_split(tmp_path) -> None:
    root = _folder(tmp_path, {"x": np.zeros((2, 2), np.uint8)}, split="train")
    with pytest.raises(DatasetError, match="no 'val' split folder"):
        open_dataset(root, split="val")


def test_iterating_twice_counts_each_skip_once(tmp_path) -> None:
    root = _folder(tmp_path, {"good": np.zeros((2, 2), np.uint8)})
    _write(root / "images" / "bad.png", _rgb(3, 3))
    _write(root / "masks" / "bad.png", np.zeros((2, 2), np.uint8))
    ds = open_dataset(root, strict=False)
    assert [s.name for s in ds] == [s.name for s in ds] == ["good"]
    assert len(ds.skipped) == 1


def test_check_finds_every_bad_sample_without_reading_it_as_a_sample(tmp_path) -> None:
    root = _folder(tmp_path, {"good": np.array([[0, 1], [2, 255]], np.uint8)})
    cases = _bad_sample_cases(root)
    noise = np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)
    jpeg = _write(root / "images" / "cutjpeg.jpg", noise)
    jpeg.write_bytes(jpeg.read_bytes()[:400])  # a truncated JPEG: its header alone still reads
    _write(root / "masks" / "cutjpeg.png", np.zeros((64, 64), np.uint8))
    cases["cutjpeg"] = "corrupt or truncated"
    for stem, message in cases.items():
        only = open_dataset(root)
        only.pairs = [p for p in only.pairs if p.name in ("good", stem)]
        with pytest.raises(DatasetError, match=message) as err:
            only.check()
        assert stem in str(err.value)
    lenient = open_dataset(root, strict=False)
    assert lenient.check() == len(cases) + 1 and len(lenient.skipped) == len(cases)


def test_check_reads_only_what_a_limited_evaluation_reads(tmp_path) -> None:
    root = _folder(tmp_path, {"a_good": np.zeros((2, 2), np.uint8)})
    _write(root / "images" / "z_bad.png", _rgb(3, 3))
    _write(root / "masks" / "z_bad.png", np.zeros((2, 2), np.uint8))
    assert open_dataset(root).check(limit=1) == 1
    with pytest.raises(DatasetError, match="z_bad.png"):
        open_dataset(root).check()


def test_unpaired_hint_names_the_cli_flag(tmp_path) -> None:
    root = _folder(tmp_path, {"ok": np.zeros((2, 2), np.uint8)})
    _write(root / "images" / "lonely.png", _rgb())
    with pytest.raises(DatasetError, match="--no-strict"):
        open_dataset(root)


@pytest.mark.skipif(
    shutil.which("setpriv") is None, reason="needs setpriv to read the folder as another user"
)
def test_a_masks_folder_that_cannot_be_listed_is_named_not_every_image_without_its_mask(tmp_path) -> None:
    """Root lists every folder: the reader runs as `nobody` (setpriv) on a folder it cannot list."""
    import subprocess
    import sys
    import tempfile

    from segopt_core.data import synth_dataset

    shared = Path(tempfile.mkdtemp(prefix="segopt-perm-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        root = synth_dataset(shared / "ds", "ade20k", n_train=1, n_val=2, size=(32, 32), seed=0)
        masks = next(root.glob("**/annotations/validation"))
        masks.chmod(0o000)
        code = f"from segopt_core.data import open_dataset; open_dataset({str(root)!r})"
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                               "-c", code], capture_output=True, text=True, timeout=120)  # fmt: skip
        if "Operation not permitted" in done.stderr:
            pytest.skip("setpriv cannot change user here")
        assert f"{masks}: cannot list the annotation folder (Permission denied)" in done.stderr, done.stderr
        assert "image without mask" not in done.stderr
    finally:
        for folder in shared.glob("**/annotations/validation"):
            folder.chmod(0o755)
        shutil.rmtree(shared, ignore_errors=True)
