"""load_checkpoint: any supported checkpoint -> its matched cell + an fp32 eval LogitsModel."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from segopt_core.checkpoints.formats import Arch, CheckpointError, detect_layout, sha256_file
from segopt_core.checkpoints.hf import arch_from_canonical, normalize_hf_state
from segopt_core.checkpoints.matching import (
    CellMatch,
    Hints,
    hints_from_hf_config,
    hints_from_mmseg_meta,
    hints_from_name,
    hints_from_segopt,
    match_cell,
    match_given_cell,
)
from segopt_core.checkpoints.mmseg1 import mmseg1_to_canonical
from segopt_core.checkpoints.nvlabs import apply_eps, nvlabs_to_hf
from segopt_core.checkpoints.reading import RawCheckpoint, read_checkpoint
from segopt_core.variants import CellSpec

log = logging.getLogger(__name__)

_HEAD_OF_LAYOUT = {"hf": "hf", "nvlabs": "hf", "mmseg1": "mmseg"}


@dataclass(frozen=True)
class Inspection:
    """A checkpoint read and converted to canonical names, with its architecture and the hints around it."""

    path: Path
    format: str
    layout: str
    arch: Arch
    state: dict[str, torch.Tensor]  # canonical names; meta tensors when inspected for shapes only
    hints: tuple[Hints, ...]


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A loaded checkpoint: `model` is a LogitsModel (fp32, eval, cpu); `model.model` has `.segformer` and
    `.decode_head` (HF's SegformerDecodeHead, or MMSegSegformerHead for mmseg1 checkpoints)."""

    path: Path
    format: str
    spec: CellSpec
    model: nn.Module
    sha256: str
    match: CellMatch

    def __post_init__(self) -> None:
        if self.spec.name != self.match.cell:
            raise ValueError(
                f"LoadedCheckpoint {self.path}: spec {self.spec.name} differs from match {self.match.cell}"
            )


def to_canonical(layout: str, tensors: dict[str, torch.Tensor], source: object) -> dict[str, torch.Tensor]:
    """A state dict of any layout in canonical names (HF-5 encoder + the layout's head)."""
    if layout == "hf":
        return normalize_hf_state(tensors)
    if layout == "nvlabs":
        return nvlabs_to_hf(tensors, source)
    return mmseg1_to_canonical(tensors, source)


def _format_of(raw: RawCheckpoint, layout: str) -> str:
    if layout != "hf":
        return layout
    return "safetensors" if raw.container == "safetensors" else "hf"


def collect_hints(raw: RawCheckpoint) -> list[Hints]:
    """Config evidence first (segopt metadata, HF config, mmseg meta), then names (file, then folder)."""
    hints: list[Hints] = []
    if raw.segopt_info:
        source = "segopt.json" if raw.container == "hf-folder" else "embedded segopt metadata"
        hints.append(hints_from_segopt(raw.segopt_info, source))
    if raw.hf_config:
        hints.extend(hints_from_hf_config(raw.hf_config))
    if raw.meta:
        hints.append(hints_from_mmseg_meta(raw.meta))
    own = raw.path.name if raw.path.is_dir() else raw.path.stem
    hints.append(hints_from_name(own, "name"))
    if not hints[-1].says_anything() and raw.path.parent.name:
        hints.append(hints_from_name(raw.path.parent.name, "folder name"))
    return [h for h in hints if h.says_anything()]


def inspect_checkpoint(path: str | Path, shapes_only: bool = True) -> Inspection:
    """Read, detect the layout, convert names and read the architecture (shapes only by default)."""
    raw = read_checkpoint(path, shapes_only=shapes_only)
    layout = detect_layout(list(raw.tensors), raw.path)
    state = to_canonical(layout, raw.tensors, raw.path)
    arch = arch_from_canonical(state, raw.path)
    if layout != "hf" and arch.head != _HEAD_OF_LAYOUT[layout]:
        raise CheckpointError(
            f"{raw.path}: {layout} encoder names with a {arch.head} decode head; mixed-up file?"
        )
    return Inspection(raw.path, _format_of(raw, layout), layout, arch, state, tuple(collect_hints(raw)))


def match_inspection(inspection: Inspection, cell: str | CellSpec | None = None) -> CellMatch:
    """The cell of an inspected checkpoint: the given one (checked against the weights) or matched."""
    if cell is not None:
        return match_given_cell(inspection.arch, cell, inspection.path)
    return match_cell(inspection.arch, list(inspection.hints))


def build_empty_model(spec: CellSpec, head: str) -> nn.Module:
    """An (untrained) model of the right class for a spec and head kind."""
    from transformers import SegformerForSemanticSegmentation

    from segopt_core.checkpoints.mmseg_head import MMSegSegformer
    from segopt_core.models import hf_config

    config = hf_config(spec)
    return MMSegSegformer(config) if head == "mmseg" else SegformerForSemanticSegmentation(config)


def check_keys(model: nn.Module, state: dict[str, torch.Tensor], source: object) -> None:
    """CheckpointError when state's names or shapes differ from the model's."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if missing or unexpected or wrong:
        parts = [
            f"{name} {keys[:3]}"
            for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        ]
        raise CheckpointError(f"{source}: weights do not fit a SegFormer of this shape: {'; '.join(parts)}")


def validate_shapes(inspection: Inspection, spec: CellSpec) -> None:
    """Check, without allocating weights, that the converted state fits the model a spec builds."""
    with torch.device("meta"):
        model = build_empty_model(spec, inspection.arch.head)
    check_keys(model, inspection.state, inspection.path)


def load_checkpoint(path: str | Path, cell: str | CellSpec | None = None) -> LoadedCheckpoint:
    """Load a SegFormer checkpoint of any supported format, matched to its cell (or the given one)."""
    from segopt_core.models import LogitsModel

    inspection = inspect_checkpoint(path, shapes_only=False)
    match = match_inspection(inspection, cell)
    if cell is None:  # segopt chose the cell: say so where the name or config disagreed with the weights
        for conflict in match.conflicts:
            log.warning("warning: %s: %s", inspection.path, conflict)
    model = build_empty_model(match.spec, inspection.arch.head)
    state = {k: v.float() if v.is_floating_point() else v for k, v in inspection.state.items()}
    check_keys(model, state, inspection.path)
    model.load_state_dict(state, strict=True)
    if inspection.layout == "nvlabs":
        apply_eps(model, eps=1e-6, patch_and_sr_eps=1e-5)  # NVlabs: norm_layer=partial(LayerNorm, eps=1e-6)
    elif inspection.layout == "mmseg1":
        apply_eps(model, eps=1e-6, patch_and_sr_eps=1e-6)  # mmseg: norm_cfg=dict(type='LN', eps=1e-6)
    wrapped = LogitsModel(model.float()).eval()
    return LoadedCheckpoint(
        inspection.path, inspection.format, match.spec, wrapped, sha256_file(inspection.path), match
    )
