"""Start points: random init, an existing checkpoint, or an ImageNet-pretrained MiT encoder (mit_bX.pth)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from transformers import SegformerForSemanticSegmentation

from segopt_core.errors import SegoptError
from segopt_core.models import build_hf_model
from segopt_core.variants import (
    CELLS,
    DATASETS,
    ENCODERS,
    CellSpec,
    custom_cell,
    get_cell,
    make_cell,
    tiny_cell,
)

log = logging.getLogger(__name__)


class InitError(SegoptError, ValueError):
    """A start point that cannot be used for training; the message names the file and the problem."""


@dataclass
class StartPoint:
    """The model to train, the spec it was built for and a one-line description of where it came from."""

    model: SegformerForSemanticSegmentation
    spec: CellSpec
    description: str


def resolve_cell(name: str | None, tiny: bool = False, label_space: str = "ade20k") -> CellSpec | None:
    """A cell by name ('b0-512-ade20k' or any 'bX-RES-dataset'), the tiny test cell, or None (use init)."""
    if tiny:
        return tiny_cell(label_space, 64)
    if name is None:
        return None
    parts = name.lower().split("-")
    if name.lower() not in CELLS and len(parts) == 3 and parts[0] in ENCODERS and parts[1].isdigit():
        if parts[2] in DATASETS:
            return make_cell(parts[0], int(parts[1]), parts[2])
    return get_cell(name)


def label_space_of(layout: str) -> str:
    """The label space a dataset layout implies (Cityscapes for cityscapes, ADE20K conventions otherwise)."""
    return "cityscapes" if layout == "cityscapes" else "ade20k"


def cell_for_data(
    name: str | None, tiny: bool, data_root: str | Path, layout: str = "auto"
) -> CellSpec | None:
    """resolve_cell with the tiny cell's label space taken from the dataset's layout."""
    if not tiny:
        return resolve_cell(name)
    from segopt_core.data import open_dataset

    return resolve_cell(
        None, tiny=True, label_space=label_space_of(open_dataset(data_root, "train", layout).layout)
    )


def training_spec(spec: CellSpec, crop: int | None, num_classes: int) -> CellSpec:
    """The spec of a training run: the cell at the requested crop and class count, test scale scaled along.

    A non-matrix crop gets mmseg's test-scale ratio of its label space (ADE20K 4:1 -> (4c, c), Cityscapes
    2:1 -> (2c, c)) so validation sees images at the scale the model was trained for.
    """
    crop = crop or spec.crop_size[0]
    if CELLS.get(spec.name) == spec and crop == spec.crop_size[0] and num_classes == spec.num_classes:
        return spec
    name = spec.name if crop == spec.crop_size[0] else f"{spec.encoder.name}-{crop}-{spec.dataset.name}"
    if spec.encoder.name == "tiny":
        name = f"tiny-{crop}-{spec.dataset.name}"
    derived = custom_cell(spec, crop_size=(crop, crop), num_labels=num_classes, name=name)
    long_ratio = spec.dataset.test_scale[0] / spec.dataset.test_scale[1]
    return replace(derived, test_scale=(round(crop * long_ratio), crop))


def replace_classifier(model: SegformerForSemanticSegmentation, num_classes: int, seed: int) -> None:
    """A fresh classifier for a new class count (HF's init: normal(0, initializer_range), zero bias)."""
    old = model.decode_head.classifier
    torch.manual_seed(seed)
    new = nn.Conv2d(old.in_channels, num_classes, kernel_size=1)
    nn.init.normal_(new.weight, std=model.config.initializer_range)
    nn.init.zeros_(new.bias)
    model.decode_head.classifier = new
    model.config.num_labels = num_classes


def from_scratch(spec: CellSpec, seed: int) -> StartPoint:
    """Random init for a cell (HF's SegFormer init)."""
    return StartPoint(build_hf_model(spec, seed).train(), spec, "scratch")


def from_checkpoint(path: Path, spec: CellSpec | None, num_classes: int, seed: int) -> StartPoint:
    """Any checkpoint `load_checkpoint` reads; the classifier is re-initialised if the class count differs."""
    from segopt_core.checkpoints import load_checkpoint

    loaded = load_checkpoint(path, cell=spec)
    inner = getattr(loaded.model, "model", loaded.model)
    if not isinstance(inner, SegformerForSemanticSegmentation):
        raise InitError(
            f"{path}: loads as {type(inner).__name__} ({loaded.format}), not a transformers SegFormer; "
            "convert it to an HF folder first (segopt zoo convert) or start from scratch"
        )
    if loaded.spec.num_classes != num_classes:
        message = (
            f"{path}: checkpoint has {loaded.spec.num_classes} classes, dataset has {num_classes}; "
            "re-initialising the classifier"
        )
        warnings.warn(message, stacklevel=2)
        log.warning(message)
        replace_classifier(inner, num_classes, seed)
    return StartPoint(inner.float().cpu().train(), loaded.spec, f"checkpoint:{path} ({loaded.format})")


def load_mit_encoder(model: SegformerForSemanticSegmentation, path: Path) -> int:
    """Load an NVlabs ImageNet MiT file (patch_embed1.*, block1.*) into the encoder; returns #tensors."""
    from segopt_core.checkpoints.nvlabs import nvlabs_to_hf
    from segopt_core.checkpoints.reading import read_checkpoint

    raw = read_checkpoint(path)
    state = {k.removeprefix("backbone."): v for k, v in raw.tensors.items()}
    state = {f"backbone.{k}": v for k, v in state.items() if not k.startswith("head.")}  # drop ImageNet head
    converted = {k: v for k, v in nvlabs_to_hf(state, source=path).items() if k.startswith("segformer.")}
    own = model.state_dict()
    bad = [k for k, v in converted.items() if k not in own or own[k].shape != v.shape]
    missing = [k for k in own if k.startswith("segformer.") and k not in converted]
    if bad or missing or not converted:
        raise InitError(
            f"{path}: encoder does not fit this cell ({len(bad)} mismatched, {len(missing)} missing tensors, "
            f"e.g. {(bad or missing or ['no MiT keys'])[0]}); pick the cell of this MiT size (mit_b0 -> b0)"
        )
    model.load_state_dict(converted, strict=False)
    return len(converted)


def start_point(
    spec: CellSpec | None,
    init: str,
    num_classes: int,
    crop: int | None,
    seed: int,
    pretrained_encoder: Path | None = None,
) -> StartPoint:
    """Build the model a run starts from: 'scratch' or a checkpoint path, optionally with a pretrained MiT."""
    if init == "scratch":
        if spec is None:
            raise InitError("training from scratch needs a cell (--cell NAME or --tiny)")
        spec = training_spec(spec, crop, num_classes)
        start = from_scratch(spec, seed)
    else:
        start = from_checkpoint(Path(init), spec, num_classes, seed)
        start.spec = training_spec(start.spec, crop, num_classes)
    if pretrained_encoder is not None:
        n = load_mit_encoder(start.model, Path(pretrained_encoder))
        start.description += f" + encoder:{pretrained_encoder} ({n} tensors)"
    return start
