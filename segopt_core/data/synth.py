"""Synthetic street scenes in the real ADE20K / Cityscapes / folder layouts, learnable on a CPU in minutes.

Seven classes with distinct shape, colour and texture statistics (sky gradient, windowed buildings, leafy
trees, dark road with lane marks, tiled sidewalk, people, cars), perspective, occlusion, lighting changes,
sensor noise and real-scene class imbalance; small "other" objects are left unlabelled (ignored).
Everything is drawn with vectorised numpy/cv2 and is deterministic by seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segopt_core.atomic import atomic_folder
from segopt_core.errors import SegoptError
from segopt_core.variants import ADE20K, CITYSCAPES, IGNORE_INDEX

SYNTH_CLASSES = ("road", "sidewalk", "building", "vegetation", "sky", "person", "car")
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR = range(len(SYNTH_CLASSES))
_ADE_NAME = {"vegetation": "tree"}  # ADE20K calls vegetation "tree"
# Raw annotation value of each synthetic class in each layout (ADE20K raw ids are 1-based, 0 = other).
ADE20K_RAW_IDS = tuple(ADE20K.class_names.index(_ADE_NAME.get(n, n)) + 1 for n in SYNTH_CLASSES)
CITYSCAPES_TRAIN_IDS = tuple(CITYSCAPES.class_names.index(n) for n in SYNTH_CLASSES)
CITYSCAPES_LABEL_IDS = (7, 8, 11, 21, 23, 24, 26)  # official labelIds of the same classes
SYNTH_LAYOUTS = ("ade20k", "cityscapes", "folder")


class SynthError(SegoptError, ValueError):
    """Bad synthetic-data request (unknown layout, tiny size, existing output)."""


# far above any training crop; drawing keeps several float32 planes per image, so 100000x100000 asked
# numpy for 112 GiB before this check
MAX_SIDE = 8192


@dataclass(frozen=True)
class SynthConfig:
    """What synth_dataset writes."""

    layout: str = "ade20k"
    n_train: int = 40
    n_val: int = 10
    size: tuple[int, int] = (128, 128)  # (height, width)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.layout not in SYNTH_LAYOUTS:
            raise SynthError(f"unknown layout {self.layout!r}; valid layouts: {', '.join(SYNTH_LAYOUTS)}")
        if min(self.size) < 32:
            raise SynthError(f"size {self.size} too small; use at least 32x32 pixels")
        if max(self.size) > MAX_SIDE:
            raise SynthError(
                f"size {self.size[0]}x{self.size[1]} too large; use at most {MAX_SIDE} pixels a side"
            )
        if self.n_train < 0 or self.n_val < 0 or self.n_train + self.n_val == 0:
            raise SynthError(f"n_train={self.n_train}, n_val={self.n_val}: need a positive total count")


# ---------------------------------------------------------------- scene drawing


def _colour(rng: np.random.Generator, centre: tuple[int, int, int], spread: float) -> np.ndarray:
    return np.clip(np.asarray(centre, np.float32) + rng.normal(0, spread, 3), 0, 255)


def texture_fields(rng: np.random.Generator, height: int, width: int) -> dict:
    """Static per-scene texture parameters and noise fields (width may exceed the frame for camera pans)."""
    import cv2

    leaf = cv2.GaussianBlur(rng.random((height, width), dtype=np.float32), (0, 0), 0.8)
    return {
        "leaf": 0.55 + 0.9 * leaf,  # strong mid-frequency variation: foliage
        "fine": rng.normal(0, 1, (height, width)).astype(np.float32),
        "window": (int(rng.integers(5, 10)), int(rng.integers(5, 10)), int(rng.integers(2, 4))),
        "tile": int(rng.integers(5, 9)),
    }


def draw_background(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Base colours (HxWx3 float32) and labels (synthetic ids, 255 = other): sky, buildings, trees, ground."""
    import cv2

    base = np.zeros((height, width, 3), np.float32)
    label = np.full((height, width), IGNORE_INDEX, np.uint8)
    horizon = int(height * rng.uniform(0.3, 0.55))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Sky: vertical gradient, bluer at the top; sometimes overcast grey.
    top = _colour(rng, (70, 130, 200) if rng.random() < 0.75 else (150, 155, 165), 12)
    low = np.clip(top + rng.uniform(40, 80), 0, 255)
    t = np.clip(yy / max(horizon, 1), 0, 1)[..., None]
    base[:horizon] = ((1 - t) * top + t * low)[:horizon]
    label[:horizon] = SKY
    # Ground: road trapezoid towards a vanishing point, sidewalks outside it.
    vx = width * rng.uniform(0.3, 0.7)
    half_left, half_right = (height * rng.uniform(0.5, 1.0) for _ in range(2))
    depth = np.clip((yy - horizon) / max(height - horizon, 1), 0, 1)
    ground = yy >= horizon
    road = ground & (xx >= vx - depth * half_left) & (xx <= vx + depth * half_right)
    label[ground] = SIDEWALK
    base[ground] = _colour(rng, (190, 160, 150), 15)
    label[road] = ROAD
    base[road] = _colour(rng, (75, 75, 80), 8)
    _lane_marks(base, rng, horizon, height, vx)
    for _ in range(int(rng.integers(2, 6)) * max(1, width // height)):
        x1 = int(rng.uniform(-0.1, 0.9) * width)
        x2 = x1 + int(rng.uniform(0.15, 0.45) * width)
        y1 = int(rng.uniform(0.02, 0.8) * horizon)
        colour = _colour(
            rng, [(120, 120, 125), (170, 150, 120), (150, 80, 60), (200, 195, 185)][rng.integers(4)], 10
        )
        cv2.rectangle(label, (x1, y1), (x2, horizon + 1), BUILDING, -1)
        cv2.rectangle(base, (x1, y1), (x2, horizon + 1), colour.tolist(), -1)
    for _ in range(int(rng.integers(0, 4)) * max(1, width // height)):
        _draw_tree(base, label, rng, horizon, height, width)
    if rng.random() < 0.5:  # an unlabelled pole or sign: ignored by training and metrics
        x = int(rng.uniform(0, width))
        pole_w = max(1, height // 40)
        cv2.rectangle(label, (x, int(horizon * 0.3)), (x + pole_w, int(horizon * 1.4)), IGNORE_INDEX, -1)
        cv2.rectangle(base, (x, int(horizon * 0.3)), (x + pole_w, int(horizon * 1.4)), (110, 110, 100), -1)
    return base, label


def _lane_marks(base: np.ndarray, rng: np.random.Generator, horizon: int, height: int, vx: float) -> None:
    import cv2

    if rng.random() < 0.3:
        return
    steps = np.linspace(horizon, height, 9)
    for y1, y2 in zip(steps[::2], steps[1::2], strict=False):
        thickness = max(1, int((y1 - horizon) / max(height - horizon, 1) * height / 40))
        cv2.line(base, (int(vx), int(y1)), (int(vx), int(y2)), (225, 225, 215), thickness)


def _draw_tree(base, label, rng, horizon: int, height: int, width: int) -> None:
    import cv2

    cx = int(rng.uniform(0, width))
    cy = int(horizon * rng.uniform(0.5, 1.1))
    radius = max(3, int(height * rng.uniform(0.06, 0.16)))
    colour = _colour(rng, (60, 120, 40), 15).tolist()
    trunk = max(1, radius // 4)
    cv2.rectangle(label, (cx - trunk, cy), (cx + trunk, min(height - 1, cy + 2 * radius)), VEGETATION, -1)
    cv2.rectangle(base, (cx - trunk, cy), (cx + trunk, min(height - 1, cy + 2 * radius)), (80, 60, 40), -1)
    for _ in range(int(rng.integers(3, 6))):
        ox, oy = rng.normal(0, radius * 0.5, 2).astype(int)
        r = max(2, int(radius * rng.uniform(0.5, 0.9)))
        cv2.circle(label, (cx + int(ox), cy + int(oy)), r, VEGETATION, -1)
        cv2.circle(base, (cx + int(ox), cy + int(oy)), r, colour, -1)


@dataclass(frozen=True)
class SceneObject:
    """A person or car standing on the ground at (x, y_bottom), sized by perspective."""

    kind: int
    x: float
    y_bottom: float
    height_px: float
    colours: tuple[tuple[float, float, float], ...]
    velocity: float = 0.0  # pixels per frame (videos)


def random_objects(rng: np.random.Generator, height: int, width: int, horizon_frac: float = 0.45) -> list:
    """A few people and cars with random positions, sizes and colours, far ones first (occlusion order)."""
    objects = []
    n_cars, n_people = int(rng.integers(0, 4)), int(rng.integers(0, 5))
    for kind in [CAR] * n_cars + [PERSON] * n_people:
        y_bottom = height * rng.uniform(horizon_frac + 0.1, 1.05)
        scale = (y_bottom / height - horizon_frac + 0.1) / (1.1 - horizon_frac)
        size = height * scale * (0.2 if kind == CAR else 0.42)
        palette = (200, 30, 30), (30, 60, 170), (230, 230, 230), (20, 20, 25), (200, 170, 40)
        colours = tuple(
            tuple(_colour(rng, palette[rng.integers(len(palette))], 20).tolist()) for _ in range(2)
        )
        speed = rng.uniform(0.5, 2.5) * (1 if rng.random() < 0.5 else -1) * (2 if kind == CAR else 1)
        objects.append(SceneObject(kind, width * rng.uniform(-0.05, 1.05), y_bottom, size, colours, speed))
    return sorted(objects, key=lambda o: o.y_bottom)


def draw_object(base: np.ndarray, label: np.ndarray, obj: SceneObject, x: float) -> None:
    """Draw one person or car at horizontal position x into the base colours and labels."""
    import cv2

    h, yb = obj.height_px, int(obj.y_bottom)
    if obj.kind == CAR:
        w = h * 2.2
        x1, x2, y1 = int(x - w / 2), int(x + w / 2), int(yb - h)
        cabin = (int(x1 + w * 0.2), int(y1 - h * 0.45)), (int(x2 - w * 0.2), y1)
        for target, body, glass in ((label, CAR, CAR), (base, obj.colours[0], (40, 50, 60))):
            cv2.rectangle(target, (x1, y1), (x2, yb - int(h * 0.2)), body, -1)
            cv2.rectangle(target, *cabin, glass, -1)
            for wx in (x1 + w * 0.22, x2 - w * 0.22):
                cv2.circle(
                    target,
                    (int(wx), yb - int(h * 0.2)),
                    max(1, int(h * 0.22)),
                    body if target is label else (15, 15, 15),
                    -1,
                )
        return
    w = h * 0.3
    head = (int(x), int(yb - h * 0.88)), max(1, int(h * 0.1))
    shirt = (int(x - w / 2), int(yb - h * 0.78)), (int(x + w / 2), int(yb - h * 0.45))
    legs = (int(x - w / 2.5), int(yb - h * 0.45)), (int(x + w / 2.5), yb)
    for target, a, b, skin in (
        (label, PERSON, PERSON, PERSON),
        (base, obj.colours[0], obj.colours[1], (220, 180, 150)),
    ):
        cv2.rectangle(target, *shirt, a, -1)
        cv2.rectangle(target, *legs, b, -1)
        cv2.circle(target, *head, skin, -1)


def apply_textures(base: np.ndarray, label: np.ndarray, fields: dict, x0: int = 0) -> np.ndarray:
    """Class textures on the base colours: windows, foliage, tiles, road grain (fields cropped at x0)."""
    h, w = label.shape
    yy, xx = np.mgrid[0:h, 0:w]
    xx = xx + x0
    leaf, fine = fields["leaf"][:, x0 : x0 + w], fields["fine"][:, x0 : x0 + w]
    out = base.copy()
    py, px, size = fields["window"]
    windows = (label == BUILDING) & ((yy % py) < size) & ((xx % px) < size)
    out[windows] = out[windows] * 0.35 + np.float32([20, 30, 45])
    veg = label == VEGETATION
    out[veg] *= leaf[veg][:, None]
    tile = fields["tile"]
    tiles = (label == SIDEWALK) & (((yy % tile) == 0) | ((xx % tile) == 0))
    out[tiles] *= 0.7
    grain = np.isin(label, (ROAD, SIDEWALK, BUILDING))
    out[grain] += 6 * fine[grain][:, None]
    return out


@dataclass(frozen=True)
class Lighting:
    """One shot's illumination: gain, colour cast, linear gradient, sensor noise and blur."""

    gain: float
    cast: tuple[float, float, float]
    gradient: tuple[float, float, float]  # (amplitude, direction cos, direction sin)
    noise: float
    blur: bool


def random_lighting(rng: np.random.Generator) -> Lighting:
    """Random lighting: dim to bright, slight colour casts, shading gradient, noise, sometimes blur."""
    angle = rng.uniform(0, 2 * np.pi)
    return Lighting(
        gain=float(rng.uniform(0.6, 1.3)),
        cast=tuple(rng.uniform(0.92, 1.08, 3).tolist()),
        gradient=(float(rng.uniform(0, 0.3)), float(np.cos(angle)), float(np.sin(angle))),
        noise=float(rng.uniform(2, 9)),
        blur=bool(rng.random() < 0.3),
    )


def finish(image: np.ndarray, light: Lighting, rng: np.random.Generator) -> np.ndarray:
    """Apply lighting, noise and optional blur; return HxWx3 uint8 RGB."""
    import cv2

    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    amp, cx, cy = light.gradient
    shade = 1 + amp * ((xx / w - 0.5) * cx + (yy / h - 0.5) * cy)
    out = image * (light.gain * shade)[..., None] * np.float32(light.cast)
    out += rng.normal(0, light.noise, out.shape).astype(np.float32)
    if light.blur:
        out = cv2.GaussianBlur(out, (3, 3), 0)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def synth_scene(
    rng: np.random.Generator, size: tuple[int, int] = (128, 128)
) -> tuple[np.ndarray, np.ndarray]:
    """One street scene: (HxWx3 uint8 RGB image, HxW uint8 labels in SYNTH_CLASSES ids, 255 = other)."""
    height, width = size
    base, label = draw_background(rng, height, width)
    horizon = float(np.argmax((label != SKY).any(axis=1)) / height)
    for obj in random_objects(rng, height, width, max(horizon, 0.3)):
        draw_object(base, label, obj, obj.x)
    image = apply_textures(base, label, texture_fields(rng, height, width))
    return finish(image, random_lighting(rng), rng), label


# ---------------------------------------------------------------- label spaces and layouts


def to_label_space(label: np.ndarray, space: str) -> np.ndarray:
    """Synthetic ids -> 'ade20k_raw' (1-based, 0 = other), 'ade20k' / 'cityscapes' train ids,
    'cityscapes_label_ids' or 'folder' (0..6); unlabelled pixels -> the space's ignore value."""
    tables = {
        "ade20k_raw": (ADE20K_RAW_IDS, 0),
        "ade20k": (tuple(i - 1 for i in ADE20K_RAW_IDS), IGNORE_INDEX),
        "cityscapes": (CITYSCAPES_TRAIN_IDS, IGNORE_INDEX),
        "cityscapes_label_ids": (CITYSCAPES_LABEL_IDS, 0),
        "folder": (tuple(range(len(SYNTH_CLASSES))), IGNORE_INDEX),
    }
    if space not in tables:
        raise SynthError(f"unknown label space {space!r}; valid: {', '.join(tables)}")
    ids, other = tables[space]
    lut = np.full(256, other, np.uint8)
    lut[: len(ids)] = ids
    return lut[label]


def _save(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if path.suffix == ".jpg" else {}
    Image.fromarray(array).save(path, **options)


def _write_sample(root: Path, layout: str, split: str, index: int, image, label) -> None:
    """Write one image/mask pair where the real dataset keeps it."""
    if layout == "ade20k":
        ade_split = {"train": "training", "val": "validation"}[split]
        stem = f"ADE_{ade_split[:5] if split == 'train' else 'val'}_{index:08d}"
        _save(image, root / "ADEChallengeData2016" / "images" / ade_split / f"{stem}.jpg")
        _save(
            to_label_space(label, "ade20k_raw"),
            root / "ADEChallengeData2016" / "annotations" / ade_split / f"{stem}.png",
        )
    elif layout == "cityscapes":
        city = "synthcity"
        stem = f"{city}_{index // 1000:06d}_{index % 1000:06d}"
        _save(image, root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
        gt = root / "gtFine" / split / city
        _save(to_label_space(label, "cityscapes"), gt / f"{stem}_gtFine_labelTrainIds.png")
        _save(to_label_space(label, "cityscapes_label_ids"), gt / f"{stem}_gtFine_labelIds.png")
    else:
        _save(image, root / "images" / split / f"{index:06d}.png")
        _save(to_label_space(label, "folder"), root / "masks" / split / f"{index:06d}.png")


def synth_dataset(
    out: str | Path,
    layout: str = "ade20k",
    n_train: int = 40,
    n_val: int = 10,
    size: tuple[int, int] = (128, 128),
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a synthetic dataset in a real layout (atomically) and return the folder open_dataset reads."""
    from tqdm.auto import tqdm

    config = SynthConfig(layout, n_train, n_val, tuple(size), seed)
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise SynthError(
            f"{out}: output folder exists and is not empty; use another or pass overwrite=True (--overwrite)"
        )

    def write(tmp: Path) -> None:
        jobs = [("train", i) for i in range(n_train)] + [("val", i) for i in range(n_val)]
        for split, index in tqdm(jobs, disable=not progress, desc=f"synth {layout}", unit="img"):
            rng = np.random.default_rng([seed, 0 if split == "train" else 1, index])
            _write_sample(tmp, layout, split, index, *synth_scene(rng, config.size))
        _write_metadata(tmp, config)

    return atomic_folder(out, write)


def _write_metadata(root: Path, config: SynthConfig) -> None:
    if config.layout == "folder":
        (root / "classes.txt").write_text("\n".join(SYNTH_CLASSES) + "\n", encoding="utf-8")
    ids = {
        "ade20k": dict(zip(SYNTH_CLASSES, ADE20K_RAW_IDS, strict=True)),
        "cityscapes": dict(zip(SYNTH_CLASSES, CITYSCAPES_TRAIN_IDS, strict=True)),
        "folder": {n: i for i, n in enumerate(SYNTH_CLASSES)},
    }[config.layout]
    meta = {
        "generator": "segopt synth",
        "layout": config.layout,
        "seed": config.seed,
        "size": list(config.size),
        "n_train": config.n_train,
        "n_val": config.n_val,
        "annotation_values": ids,
    }
    (root / "segopt_synth.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
