"""The fp32 source model inside an artifact: spec <-> JSON and weights as safetensors (never a pickle)."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import torch
from torch import nn

from segopt_core.backends.errors import ArtifactError
from segopt_core.variants import CellSpec, DatasetSpec, EncoderSpec

SOURCE_FILE = "source.safetensors"


def spec_to_dict(spec: CellSpec) -> dict:
    """JSON-able form of a CellSpec (tuples become lists)."""
    data = asdict(spec)
    data["num_labels_override"] = spec.num_labels_override
    return data


def _tuplify(value: object) -> object:
    """Lists (from JSON) back to the nested tuples the frozen specs use."""
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def spec_from_dict(data: dict) -> CellSpec:
    """Inverse of `spec_to_dict`."""
    enc = EncoderSpec(**{k: _tuplify(v) for k, v in data["encoder"].items()})
    ds = DatasetSpec(**{k: _tuplify(v) for k, v in data["dataset"].items()})
    names = {f.name for f in fields(CellSpec)} - {"encoder", "dataset"}
    rest = {k: _tuplify(v) for k, v in data.items() if k in names}
    return CellSpec(encoder=enc, dataset=ds, **rest)


def hf_segformer(model: nn.Module) -> nn.Module | None:
    """The transformers SegformerForSemanticSegmentation inside a LogitsModel (None for other heads)."""
    from transformers import SegformerForSemanticSegmentation

    inner = getattr(model, "model", model)
    return inner if isinstance(inner, SegformerForSemanticSegmentation) else None


def model_kind(model: nn.Module) -> str:
    """'hf' for transformers' head, 'mmseg' for the MMSeg-head model; else ArtifactError."""
    from segopt_core.checkpoints.mmseg_head import MMSegSegformer

    if hf_segformer(model) is not None:
        return "hf"
    if isinstance(getattr(model, "model", model), MMSegSegformer):
        return "mmseg"
    raise ArtifactError(
        f"cannot store a {type(model).__name__}: artifacts hold LogitsModel(SegformerForSemanticSegmentation)"
        " "
        "or the MMSeg-head model; load the checkpoint with segopt_core.checkpoints.load_checkpoint()"
    )


def norm_eps(model: nn.Module) -> dict[str, float]:
    """eps of every normalisation layer: not in the state dict, and NVlabs/mmseg checkpoints change it."""
    return {
        name: float(m.eps) for name, m in model.named_modules() if isinstance(getattr(m, "eps", None), float)
    }


def save_source(model: nn.Module, folder: Path) -> dict:
    """Write the fp32 weights to folder/source.safetensors; returns what metadata needs to rebuild."""
    from safetensors.torch import save_file

    from segopt_core.models import LogitsModel

    kind = model_kind(model)
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / SOURCE_FILE))
    wrapped = isinstance(model, LogitsModel)
    return {"model_kind": kind, "wrapped": wrapped, "source_file": SOURCE_FILE, "norm_eps": norm_eps(model)}


def build_empty(kind: str, spec: CellSpec, wrapped: bool = True) -> nn.Module:
    """An uninitialised model of the right class for a spec, ready for load_state_dict."""
    from segopt_core.checkpoints.loading import build_empty_model
    from segopt_core.models import LogitsModel

    if kind not in ("hf", "mmseg"):
        raise ArtifactError(f"unknown model_kind {kind!r} in artifact metadata; valid: hf, mmseg")
    inner = build_empty_model(spec, head=kind)
    return LogitsModel(inner) if wrapped else inner


def load_source(folder: Path, metadata: dict) -> tuple[nn.Module, CellSpec]:
    """Rebuild the fp32 eval model stored in an artifact folder."""
    from safetensors.torch import load_file

    spec = spec_from_dict(metadata["spec"])
    path = folder / metadata["source_file"]
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated files
        raise ArtifactError(
            f"{path}: cannot read source weights ({exc}); delete the folder to rebuild it"
        ) from None
    model = build_empty(metadata["model_kind"], spec, metadata.get("wrapped", True))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # torch lists every mismatch over many lines: the first one says it
        first = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise ArtifactError(
            f"{path}: the weights do not fit the artifact's cell {spec.name} ({spec.num_classes} classes): "
            f"{first[:200]}; it was replaced or built for another cell (rebuild the artifact)"
        ) from None
    modules = dict(model.named_modules())
    for name, eps in metadata.get("norm_eps", {}).items():
        modules[name].eps = eps
    return model.float().eval(), spec


def torch_device(device: str) -> torch.device:
    """A torch.device, or BackendUnavailable when CUDA is asked for but missing."""
    from segopt_core.backends.errors import BackendUnavailable

    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(
            "no CUDA device: torch.cuda.is_available() is False (CPU-only machine or torch build)"
        )
    return torch.device(device)
