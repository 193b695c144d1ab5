"""Readers for ADE20K, Cityscapes and plain image/mask folders, with labels already in train ids."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segopt_core.errors import SegoptError
from segopt_core.variants import (
    ADE20K,
    CITYSCAPES,
    CITYSCAPES_ID_TO_TRAIN_ID,
    IGNORE_INDEX,
)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
LAYOUTS = ("ade20k", "cityscapes", "folder")
ADE_SPLITS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}
CLASS_LIST_NAMES = ("classes.txt",)
_CITY_IMAGE_SUFFIX = "_leftImg8bit"
_CITY_TRAIN_IDS = "_gtFine_labelTrainIds.png"
_CITY_LABEL_IDS = "_gtFine_labelIds.png"


class DatasetError(SegoptError, ValueError):
    """A dataset folder or file that cannot be read as segmentation data."""


@dataclass(frozen=True)
class Sample:
    """One image (HxWx3 uint8 RGB) and its label (HxW uint8 train ids, 255 = ignore) or None."""

    name: str
    image: np.ndarray
    label: np.ndarray | None


@dataclass(frozen=True)
class _Pair:
    """An image file, its annotation file and how to turn raw annotation values into train ids."""

    name: str
    image: Path
    mask: Path | None
    label_kind: str  # "ade20k" (reduce zero label), "train_ids", "city_label_ids"


@dataclass
class SegDataset:
    """A split of a segmentation dataset: image/mask pairs read lazily, validated on read."""

    root: Path
    layout: str
    split: str
    class_names: tuple[str, ...]
    pairs: list[_Pair]
    strict: bool = True
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def num_classes(self) -> int:
        """Number of classes of the label space (labels 0..num_classes-1, 255 ignored)."""
        return len(self.class_names)

    def __getitem__(self, index: int) -> Sample:
        """Read and validate one sample; a bad file raises DatasetError naming it."""
        pair = self.pairs[index]
        image = read_image(pair.image)
        label = None if pair.mask is None else read_label(pair.mask, pair.label_kind, self.num_classes)
        if label is not None:
            _check_same_size(pair, label.shape, image.shape[:2])
        return Sample(pair.name, image, label)

    def check(self, limit: int | None = None) -> int:
        """Check the first `limit` pairs (all when None) without decoding images at full size.

        Reads each image's header (and a JPEG's whole stream at 1/8 scale, which finds truncation) and
        each mask in full (class range, size against its image). Raises DatasetError naming the first bad
        file; with strict=False bad files are counted in `skipped` instead. Returns the pairs checked.
        """
        pairs = self.pairs if limit is None else self.pairs[:limit]
        for pair in pairs:
            try:
                height_width = probe_image(pair.image)
                if pair.mask is not None:
                    label = read_label(pair.mask, pair.label_kind, self.num_classes)
                    _check_same_size(pair, label.shape, height_width)
            except DatasetError as err:
                if self.strict:
                    raise
                self._skip(str(pair.image), str(err))
        return len(pairs)

    def __iter__(self) -> Iterator[Sample]:
        """Samples in order; with strict=False bad files are logged, counted in `skipped` and left out."""
        for index in range(len(self)):
            try:
                yield self[index]
            except DatasetError as err:
                if self.strict:
                    raise
                self._skip(str(self.pairs[index].image), str(err))

    def _skip(self, path: str, reason: str) -> None:
        if (path, reason) in self.skipped:  # a second pass over the data reports each file once
            return
        log.warning("skipping %s: %s", path, reason)
        self.skipped.append((path, reason))


def _check_same_size(pair: _Pair, label_hw: tuple[int, ...], image_hw: tuple[int, ...]) -> None:
    if tuple(label_hw) != tuple(image_hw):
        raise DatasetError(
            f"{pair.mask}: mask size {label_hw[1]}x{label_hw[0]} (WxH) differs from image "
            f"{pair.image.name} size {image_hw[1]}x{image_hw[0]}; resize the mask with nearest "
            "interpolation or remove the pair"
        )


def _unreadable(path: Path, what: str, err: BaseException) -> DatasetError:
    """The DatasetError of a file that cannot be read: gone, permission denied, or corrupt."""
    if isinstance(err, FileNotFoundError):
        return DatasetError(f"{path}: no such {what} file")
    if isinstance(err, IsADirectoryError):
        return DatasetError(f"{path}: a folder, not an {what} file")
    if isinstance(err, PermissionError):
        return DatasetError(f"{path}: permission denied reading the {what} file; fix its permissions")
    return DatasetError(f"{path}: cannot decode {what} ({err}); the file is corrupt or truncated")


def probe_image(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, checked cheaply: header, and a JPEG's stream decoded at 1/8 scale."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
            if img.format == "JPEG":  # libjpeg's DCT scaling still reads every byte of the stream
                img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise _unreadable(path, "image", err) from None
    return height, width


def read_image(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB; grayscale/RGBA/palette images are converted (logged)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            rgb = img.convert("RGB") if mode != "RGB" else img.copy()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise _unreadable(path, "image", err) from None
    if mode != "RGB":
        log.info("%s: converted %s image to RGB", path, mode)
    return np.asarray(rgb, dtype=np.uint8)


def _read_mask_values(path: Path) -> np.ndarray:
    """The raw values of a single-channel annotation PNG (palette PNGs give their indices)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            values = np.asarray(img)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise _unreadable(path, "mask", err) from None
    if values.ndim != 2:
        raise DatasetError(
            f"{path}: mask has shape {values.shape}, expected one channel of class indices; "
            "convert colour-coded masks to index PNGs (mode L or P)"
        )
    if values.size and (values.min() < 0 or values.max() > 255):
        raise DatasetError(f"{path}: mask values {values.min()}..{values.max()} do not fit in 0..255")
    return values.astype(np.uint8)


def reduce_zero_label(raw: np.ndarray) -> np.ndarray:
    """ADE20K raw labels to train ids: 0 -> 255 (ignored), 1..150 -> 0..149, 255 stays 255."""
    out = raw.astype(np.int16) - 1
    out[raw == 0] = IGNORE_INDEX
    out[raw == IGNORE_INDEX] = IGNORE_INDEX
    return out.astype(np.uint8)


def cityscapes_label_ids_to_train_ids(raw: np.ndarray) -> np.ndarray:
    """Cityscapes labelIds to trainIds with the official table; every other id becomes 255."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_ID_TO_TRAIN_ID.items():
        table[label_id] = train_id
    return table[raw]


def read_label(path: Path, kind: str, num_classes: int) -> np.ndarray:
    """An annotation file as HxW uint8 train ids (255 = ignore), checked against the class range."""
    raw = _read_mask_values(path)
    if kind == "ade20k":
        _check_range(path, raw, num_classes + 1, "ADE20K raw labels 0..150 (0 = other)")
        return reduce_zero_label(raw)
    if kind == "city_label_ids":
        _check_range(path, raw, 34, "Cityscapes labelIds 0..33")
        return cityscapes_label_ids_to_train_ids(raw)
    _check_range(path, raw, num_classes, f"class indices 0..{num_classes - 1}")
    return raw


def _check_range(path: Path, raw: np.ndarray, limit: int, expected: str) -> None:
    bad = np.unique(raw[(raw >= limit) & (raw != IGNORE_INDEX)])
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:8])
        raise DatasetError(
            f"{path}: mask values {shown} outside the class range (expected {expected}, or 255 = ignore); "
            "fix the mask or the class list"
        )


def detect_layout(root: Path) -> tuple[str, Path]:
    """The layout of a dataset folder and its effective root ('ade20k', 'cityscapes' or 'folder')."""
    if (root / "ADEChallengeData2016").is_dir():
        return "ade20k", root / "ADEChallengeData2016"
    if (root / "images").is_dir() and (root / "annotations").is_dir():
        return "ade20k", root
    if (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir():
        return "cityscapes", root
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "folder", root
    raise DatasetError(
        f"{root}: no known dataset layout found; expected ADEChallengeData2016/ (or images/ + annotations/), "
        "leftImg8bit/ + gtFine/ (Cityscapes), or images/ + masks/ + classes.txt (folder)"
    )


def open_dataset(
    root: str | Path, split: str = "val", layout: str = "auto", strict: bool = True
) -> SegDataset:
    """Open one split of a dataset folder; layout 'auto' detects ADE20K, Cityscapes or a plain folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    if layout == "auto":
        layout, root = detect_layout(root)
    elif layout == "ade20k" and (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; valid layouts: auto, {', '.join(LAYOUTS)}")
    opener = {"ade20k": _open_ade20k, "cityscapes": _open_cityscapes, "folder": _open_folder}[layout]
    dataset = opener(root, split, strict)
    if not dataset.pairs:
        raise DatasetError(f"{root}: split {split!r} has no usable image/mask pairs")
    return dataset


def _list_files(folder: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """Every file of `folder` (recursively) with one of the suffixes; a folder that cannot be listed is a
    DatasetError naming it (rglob would skip it silently, and every image would then lack its mask)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: {what} folder does not exist")

    def refuse(err: OSError) -> None:
        raise DatasetError(
            f"{err.filename or folder}: cannot list the {what} folder ({err.strerror or err}); "
            "fix its permissions"
        )

    found = [
        Path(root) / name
        for root, _, names in os.walk(folder, onerror=refuse)
        for name in names
        if Path(name).suffix.lower() in suffixes
    ]
    return sorted(p for p in found if p.is_file())


def _pair_by_key(
    images: dict[str, Path], masks: dict[str, Path], strict: bool, skipped: list[tuple[str, str]]
) -> list[tuple[str, Path, Path]]:
    """Pairs of files sharing a key; unpaired files raise (strict) or are logged and counted."""
    problems = [(str(p), "image without mask") for k, p in images.items() if k not in masks]
    problems += [(str(p), "mask without image") for k, p in masks.items() if k not in images]
    for path, reason in sorted(problems):
        if strict:
            raise DatasetError(
                f"{path}: {reason}; add the missing file or remove this one (`segopt evaluate --no-strict` "
                "and open_dataset(strict=False) skip such files)"
            )
        log.warning("skipping %s: %s", path, reason)
        skipped.append((path, reason))
    return [(key, images[key], masks[key]) for key in sorted(images) if key in masks]


def _open_ade20k(root: Path, split: str, strict: bool) -> SegDataset:
    if split not in ADE_SPLITS:
        raise DatasetError(f"{root}: unknown split {split!r}; valid splits: train, val")
    folder = ADE_SPLITS[split]
    images = {p.stem: p for p in _list_files(root / "images" / folder, IMAGE_SUFFIXES, "image")}
    masks = {p.stem: p for p in _list_files(root / "annotations" / folder, (".png",), "annotation")}
    skipped: list[tuple[str, str]] = []
    pairs = [_Pair(k, i, m, "ade20k") for k, i, m in _pair_by_key(images, masks, strict, skipped)]
    return SegDataset(root, "ade20k", split, ADE20K.class_names, pairs, strict, skipped)


def _open_cityscapes(root: Path, split: str, strict: bool) -> SegDataset:
    image_files = _list_files(root / "leftImg8bit" / split, (".png",), "image")
    mask_dir = root / "gtFine" / split
    mask_files = _list_files(mask_dir, (".png",), "annotation")
    images = {_city_key(p, _CITY_IMAGE_SUFFIX + ".png"): p for p in image_files}
    train_ids = {_city_key(p, _CITY_TRAIN_IDS): p for p in mask_files if p.name.endswith(_CITY_TRAIN_IDS)}
    label_ids = {_city_key(p, _CITY_LABEL_IDS): p for p in mask_files if p.name.endswith(_CITY_LABEL_IDS)}
    masks = {**label_ids, **train_ids}  # trainIds win where both exist
    skipped: list[tuple[str, str]] = []
    pairs = [
        _Pair(key.split("/")[-1], image, mask, "train_ids" if key in train_ids else "city_label_ids")
        for key, image, mask in _pair_by_key(images, masks, strict, skipped)
    ]
    return SegDataset(root, "cityscapes", split, CITYSCAPES.class_names, pairs, strict, skipped)


def _city_key(path: Path, suffix: str) -> str:
    """'<city>/<city>_<seq>_<frame>' for a Cityscapes image or annotation file."""
    stem = path.name[: -len(suffix)] if path.name.endswith(suffix) else path.stem
    return f"{path.parent.name}/{stem}"


def _open_folder(root: Path, split: str, strict: bool) -> SegDataset:
    class_names = read_class_list(root)
    image_dir, mask_dir = root / "images", root / "masks"
    if (image_dir / split).is_dir():
        image_dir, mask_dir = image_dir / split, mask_dir / split
    elif any((image_dir / name).is_dir() for name in ("train", "val")):
        raise DatasetError(f"{image_dir}: no {split!r} split folder (found train/ or val/ next to it)")
    images = {p.stem: p for p in _list_files(image_dir, IMAGE_SUFFIXES, "image")}
    masks = {p.stem: p for p in _list_files(mask_dir, (".png",), "mask")}
    skipped: list[tuple[str, str]] = []
    pairs = [_Pair(k, i, m, "train_ids") for k, i, m in _pair_by_key(images, masks, strict, skipped)]
    return SegDataset(root, "folder", split, class_names, pairs, strict, skipped)


def read_class_list(root: Path) -> tuple[str, ...]:
    """Class names of a folder dataset: classes.txt, one name per line, line i = label value i."""
    path = root / CLASS_LIST_NAMES[0]
    if not path.is_file():
        raise DatasetError(f"{path}: class list missing; write one class name per line (line i = label i)")
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not names or len(names) > 255:
        raise DatasetError(f"{path}: needs 1..255 class names, found {len(names)}")
    return names
