"""The SegFormer variant matrix: one source of truth for encoders, datasets and the cells users run."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field, replace

IGNORE_INDEX = 255
IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, 0..255 scale, as mmseg's data preprocessor
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class EncoderSpec:
    """A Mix Transformer (MiT) encoder: the per-stage shapes that define B0..B5."""

    name: str
    hidden_sizes: tuple[int, ...]
    depths: tuple[int, ...]
    num_heads: tuple[int, ...] = (1, 2, 5, 8)
    sr_ratios: tuple[int, ...] = (8, 4, 2, 1)
    patch_sizes: tuple[int, ...] = (7, 3, 3, 3)
    strides: tuple[int, ...] = (4, 2, 2, 2)
    mlp_ratios: tuple[int, ...] = (4, 4, 4, 4)

    def __post_init__(self) -> None:
        lengths = {
            len(v)
            for v in (
                self.hidden_sizes,
                self.depths,
                self.num_heads,
                self.sr_ratios,
                self.patch_sizes,
                self.strides,
                self.mlp_ratios,
            )
        }
        if lengths != {4}:
            raise ValueError(f"encoder {self.name!r}: every per-stage tuple must have 4 entries")
        for width, heads in zip(self.hidden_sizes, self.num_heads, strict=True):
            if width % heads:
                raise ValueError(f"encoder {self.name!r}: hidden size {width} not divisible by {heads} heads")


@dataclass(frozen=True)
class DatasetSpec:
    """A label space: class names, palette and how raw annotation values map to training labels."""

    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    reduce_zero_label: bool
    test_scale: tuple[int, int]  # (long side, short side) bound, mmseg's Resize(keep_ratio=True)
    inference_mode: str = "whole"  # "whole" or "slide"

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.palette):
            raise ValueError(
                f"dataset {self.name!r}: {len(self.class_names)} names but {len(self.palette)} colours"
            )
        if self.inference_mode not in ("whole", "slide"):
            raise ValueError(f"dataset {self.name!r}: inference_mode must be 'whole' or 'slide'")

    @property
    def num_classes(self) -> int:
        """Number of output classes (labels 0..num_classes-1; 255 is ignored)."""
        return len(self.class_names)


@dataclass(frozen=True)
class CellSpec:
    """One cell of the matrix: encoder × resolution × dataset, everything a model and its evaluation need."""

    name: str
    encoder: EncoderSpec
    decoder_hidden_size: int
    dataset: DatasetSpec
    crop_size: tuple[int, int]  # (height, width) the model was trained at
    test_scale: tuple[int, int]
    inference_mode: str = "whole"
    slide_stride: tuple[int, int] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    custom: bool = False  # True for valid SegFormer checkpoints outside the 11 matrix cells
    num_labels_override: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.inference_mode not in ("whole", "slide"):
            raise ValueError(f"cell {self.name!r}: inference_mode must be 'whole' or 'slide'")
        if self.inference_mode == "slide" and self.slide_stride is None:
            raise ValueError(f"cell {self.name!r}: slide mode needs slide_stride")
        if self.decoder_hidden_size <= 0:
            raise ValueError(f"cell {self.name!r}: decoder_hidden_size must be positive")

    @property
    def num_classes(self) -> int:
        """Classifier rows: the dataset's class count unless a custom checkpoint says otherwise."""
        return self.num_labels_override or self.dataset.num_classes

    @property
    def resolution(self) -> int:
        """The nominal resolution used in cell names (crop height)."""
        return self.crop_size[0]


ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow",
    "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower",
    "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair",
    "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship",
    "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel",
    "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket",
    "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

# The official Cityscapes colours of the 19 training classes (cityscapesScripts' label table).
CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip

# Cityscapes labelId -> trainId for the 19 evaluated classes; every other id maps to IGNORE_INDEX.
CITYSCAPES_ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


def distinct_palette(n: int, seed_hue: float = 0.0) -> tuple[tuple[int, int, int], ...]:
    """A deterministic palette of n well-separated RGB colours (golden-ratio hue walk)."""
    colours = []
    for i in range(n):
        hue = (seed_hue + i * 0.618033988749895) % 1.0
        sat = 0.55 + 0.4 * ((i * 7) % 5) / 4
        val = 0.6 + 0.4 * ((i * 3) % 4) / 3
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(colours)


ADE20K = DatasetSpec(
    name="ade20k",
    class_names=ADE20K_CLASSES,
    palette=distinct_palette(len(ADE20K_CLASSES)),
    reduce_zero_label=True,  # raw 0 = "other" -> ignored; 1..150 -> 0..149
    test_scale=(2048, 512),
)
CITYSCAPES = DatasetSpec(
    name="cityscapes",
    class_names=CITYSCAPES_CLASSES,
    palette=CITYSCAPES_PALETTE,
    reduce_zero_label=False,
    test_scale=(2048, 1024),
    inference_mode="slide",
)
DATASETS: dict[str, DatasetSpec] = {d.name: d for d in (ADE20K, CITYSCAPES)}

_MIT_WIDE = (64, 128, 320, 512)
ENCODERS: dict[str, EncoderSpec] = {
    "b0": EncoderSpec("b0", hidden_sizes=(32, 64, 160, 256), depths=(2, 2, 2, 2)),
    "b1": EncoderSpec("b1", hidden_sizes=_MIT_WIDE, depths=(2, 2, 2, 2)),
    "b2": EncoderSpec("b2", hidden_sizes=_MIT_WIDE, depths=(3, 4, 6, 3)),
    "b3": EncoderSpec("b3", hidden_sizes=_MIT_WIDE, depths=(3, 4, 18, 3)),
    "b4": EncoderSpec("b4", hidden_sizes=_MIT_WIDE, depths=(3, 8, 27, 3)),
    "b5": EncoderSpec("b5", hidden_sizes=_MIT_WIDE, depths=(3, 6, 40, 3)),
}
DECODER_HIDDEN_SIZE = {"b0": 256, "b1": 256, "b2": 768, "b3": 768, "b4": 768, "b5": 768}


def cell_name(encoder: str, resolution: int, dataset: str) -> str:
    """Canonical cell name, e.g. 'b2-512-ade20k'."""
    return f"{encoder}-{resolution}-{dataset}"


def _test_scale(data: DatasetSpec, resolution: int) -> tuple[int, int]:
    """mmseg's test scale at the standard crops (b5 640 keeps the 2048 bound); scaled down for small crops."""
    if resolution >= data.test_scale[1]:
        return (data.test_scale[0], max(data.test_scale[1], resolution))
    factor = resolution / data.test_scale[1]
    return (round(data.test_scale[0] * factor), resolution)


def make_cell(encoder: str, resolution: int, dataset: str) -> CellSpec:
    """Build the spec of one (encoder, resolution, dataset) combination, inside the matrix or not."""
    data = DATASETS[dataset]
    if data.inference_mode == "slide":
        stride = (resolution * 3 // 4, resolution * 3 // 4)  # 768 for 1024 crops, as mmseg's configs
        mode = "slide"
    else:
        stride, mode = None, "whole"
    test_scale = _test_scale(data, resolution)
    return CellSpec(
        name=cell_name(encoder, resolution, dataset),
        encoder=ENCODERS[encoder],
        decoder_hidden_size=DECODER_HIDDEN_SIZE[encoder],
        dataset=data,
        crop_size=(resolution, resolution),
        test_scale=test_scale,
        inference_mode=mode,
        slide_stride=stride,
    )


_MATRIX = (
    ("b0", 512, "ade20k"), ("b0", 1024, "cityscapes"),
    ("b1", 512, "ade20k"),
    ("b2", 512, "ade20k"), ("b2", 1024, "cityscapes"),
    ("b3", 512, "ade20k"), ("b3", 1024, "cityscapes"),
    ("b4", 512, "ade20k"), ("b4", 1024, "cityscapes"),
    ("b5", 640, "ade20k"), ("b5", 1024, "cityscapes"),
)  # fmt: skip
CELLS: dict[str, CellSpec] = {c.name: c for c in (make_cell(*args) for args in _MATRIX)}


def get_cell(name: str) -> CellSpec:
    """Look a matrix cell up by name; unknown names raise KeyError listing the valid ones."""
    try:
        return CELLS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown cell {name!r}; valid cells: {', '.join(CELLS)}") from None


def select_cells(patterns: list[str] | None) -> list[CellSpec]:
    """Cells whose names contain any of the patterns (all cells when None/empty)."""
    if not patterns:
        return list(CELLS.values())
    chosen = [c for c in CELLS.values() if any(p.lower() in c.name for p in patterns)]
    if not chosen:
        raise KeyError(f"no cell matches {patterns}; valid cells: {', '.join(CELLS)}")
    return chosen


def custom_cell(
    base: CellSpec,
    *,
    encoder: EncoderSpec | None = None,
    decoder_hidden_size: int | None = None,
    num_labels: int | None = None,
    crop_size: tuple[int, int] | None = None,
    name: str | None = None,
) -> CellSpec:
    """A non-matrix cell derived from a matrix one (custom classes, resolution or encoder)."""
    crop = crop_size or base.crop_size
    # mmseg scales the test scale with the crop (b5 640 -> (2048, 640)); keep that ratio for custom crops.
    factor = crop[0] / base.crop_size[0]
    test_scale = (round(base.test_scale[0] * factor), round(base.test_scale[1] * factor))
    labels = num_labels if num_labels and num_labels != base.dataset.num_classes else None
    stride = base.slide_stride and (crop[0] * 3 // 4, crop[1] * 3 // 4)
    return replace(
        base,
        name=name or f"{base.name}-custom",
        encoder=encoder or base.encoder,
        decoder_hidden_size=decoder_hidden_size or base.decoder_hidden_size,
        crop_size=crop,
        test_scale=test_scale,
        slide_stride=stride,
        num_labels_override=labels,
        custom=True,
    )


def tiny_cell(dataset: str = "ade20k", resolution: int = 64, num_labels: int | None = None) -> CellSpec:
    """A tiny custom cell for tests and quick demos (transformers' own SegFormer test sizes)."""
    tiny = EncoderSpec("tiny", hidden_sizes=(8, 8, 16, 16), depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2))
    base = make_cell("b0", 512 if dataset == "ade20k" else 1024, dataset)
    return custom_cell(
        base,
        encoder=tiny,
        decoder_hidden_size=16,
        num_labels=num_labels,
        crop_size=(resolution, resolution),
        name=f"tiny-{resolution}-{dataset}",
    )
