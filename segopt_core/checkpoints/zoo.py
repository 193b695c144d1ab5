"""Write checkpoints in every supported format (atomically); a random-init zoo named like real releases."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from segopt_core.atomic import atomic_file, atomic_folder
from segopt_core.checkpoints.formats import CheckpointError, normalize_format
from segopt_core.variants import CellSpec, select_cells, tiny_cell

_NVLABS_DATASET = {"ade20k": "ade", "cityscapes": "city"}
_HF_DATASET = {"ade20k": "ade", "cityscapes": "cityscapes"}


def release_name(spec: CellSpec, fmt: str) -> str:
    """The official release's name for a cell in a format, e.g. 'segformer.b2.512x512.ade.160k.pth'."""
    fmt = normalize_format(fmt)
    enc = spec.encoder.name.split("-")[0]
    res, ds = spec.resolution, spec.dataset.name
    if fmt in ("hf", "safetensors"):
        name = f"segformer-{enc}-finetuned-{_HF_DATASET[ds]}-{res}-{res}"
        return name if fmt == "hf" else f"{name}.safetensors"
    if fmt == "nvlabs":
        return f"segformer.{enc}.{res}x{res}.{_NVLABS_DATASET[ds]}.160k.pth"
    batch = "_8x1" if ds == "cityscapes" else ""
    return f"segformer_mit-{enc}{batch}_{res}x{res}_160k_{ds}.pth"


def segopt_info(spec: CellSpec) -> dict:
    """The metadata segopt embeds in what it writes (cell, dataset, classes, crop, heads)."""
    return {
        "cell": spec.name,
        "encoder": spec.encoder.name,
        "dataset": spec.dataset.name,
        "num_classes": spec.num_classes,
        "crop_size": list(spec.crop_size),
        "num_heads": list(spec.encoder.num_heads),
        "writer": "segopt",
    }


def _mmseg_meta(spec: CellSpec) -> dict:
    """A 'meta' like mmseg's: config text with crop size, heads and dataset type (what real files carry)."""
    dataset_type = "ADE20KDataset" if spec.dataset.name == "ade20k" else "CityscapesDataset"
    heads = ", ".join(map(str, spec.encoder.num_heads))
    config = (
        f"dataset_type = '{dataset_type}'\ncrop_size = ({spec.crop_size[0]}, {spec.crop_size[1]})\n"
        f"model = dict(backbone=dict(num_heads=[{heads}]), "
        f"decode_head=dict(num_classes={spec.num_classes}))\n"
    )
    return {"config": config, "segopt": json.dumps(segopt_info(spec))}


def _unwrap(model: nn.Module) -> nn.Module:
    from segopt_core.models import LogitsModel

    return model.model if isinstance(model, LogitsModel) else model


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def write_checkpoint(model: nn.Module, spec: CellSpec, out_path: str | Path, fmt: str) -> Path:
    """Write model (HF SegFormer, MMSegSegformer, or either inside a LogitsModel) in a format, atomically."""
    from segopt_core.checkpoints.mmseg1 import canonical_to_mmseg1
    from segopt_core.checkpoints.mmseg_head import MMSegSegformer
    from segopt_core.checkpoints.nvlabs import hf_to_nvlabs

    fmt, inner, out_path = normalize_format(fmt), _unwrap(model), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    is_mmseg = isinstance(inner, MMSegSegformer)
    if fmt == "mmseg1" and not is_mmseg:
        raise CheckpointError(
            f"{out_path}: mmseg1 needs an MMSegSegformer (its head has BN+ReLU per stage, HF's has none); "
            "build one with build_mmseg_model(spec) or write this model as hf, safetensors or nvlabs"
        )
    if fmt in ("hf", "nvlabs") and is_mmseg:
        raise CheckpointError(
            f"{out_path}: an MMSegmentation-head model can be written as mmseg1 or safetensors, not {fmt}"
        )
    if fmt == "hf":
        return atomic_folder(out_path, lambda tmp: _save_hf_folder(inner, spec, tmp))
    state = _plain_state(inner)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        meta = {"format": "pt", "segopt": json.dumps(segopt_info(spec))}
        return atomic_file(out_path, lambda tmp: save_file(state, str(tmp), metadata=meta))
    converted = hf_to_nvlabs(state) if fmt == "nvlabs" else canonical_to_mmseg1(state)
    payload = {"meta": _mmseg_meta(spec), "state_dict": converted}
    return atomic_file(out_path, lambda tmp: torch.save(payload, tmp))


def _save_hf_folder(model: nn.Module, spec: CellSpec, folder: Path) -> None:
    model.save_pretrained(folder)
    (folder / "segopt.json").write_text(
        json.dumps({**segopt_info(spec), "class_names": list(model.config.id2label.values())}, indent=2)
    )


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial random statistics and affine weights (so tests exercise them)."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


def build_mmseg_model(spec: CellSpec, seed: int = 0) -> nn.Module:
    """A random-init MMSegSegformer (HF encoder + MMSegmentation head) for a cell, in eval mode."""
    from segopt_core.checkpoints.mmseg_head import MMSegSegformer
    from segopt_core.models import hf_config

    torch.manual_seed(seed)
    return randomize_batchnorm(MMSegSegformer(hf_config(spec)), seed).eval()


def zoo_specs(cells: list[str] | None, tiny: bool) -> list[CellSpec]:
    """The cells a zoo holds: the selected matrix cells, or their tiny custom stand-ins (deduplicated)."""
    specs = select_cells(cells)
    if tiny:
        specs = [tiny_cell(s.dataset.name, 64) for s in specs]
    unique = {s.name: s for s in specs}
    return list(unique.values())


def init_zoo(
    out_dir: str | Path,
    cells: list[str] | None = None,
    fmt: str = "hf",
    tiny: bool = False,
    seed: int = 0,
    progress: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Write a random-init checkpoint per cell into out_dir, named like real releases; return the paths.

    Like every command that creates segopt's inputs (`data synth`, `zoo convert`), it refuses to replace
    what is there: a checkpoint it would write that exists raises CheckpointError unless `overwrite`.
    """
    from tqdm import tqdm

    from segopt_core.models import build_hf_model

    fmt, out_dir = normalize_format(fmt), Path(out_dir)
    specs = zoo_specs(cells, tiny)
    if not overwrite:
        refuse_existing([out_dir / release_name(spec, fmt) for spec in specs])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in tqdm(specs, desc=f"zoo ({fmt})", unit="ckpt", disable=not progress):
        model = build_mmseg_model(spec, seed) if fmt == "mmseg1" else build_hf_model(spec, seed)
        written.append(write_checkpoint(model, spec, out_dir / release_name(spec, fmt), fmt))
    return written


def refuse_existing(paths: list[Path]) -> None:
    """CheckpointError naming the first path that exists (and how to replace it)."""
    there = [path for path in paths if path.exists()]
    if there:
        more = f" (and {len(there) - 1} more)" if len(there) > 1 else ""
        raise CheckpointError(f"{there[0]}{more} exists; pass --overwrite (overwrite=True) to replace it")


def convert_checkpoint(
    src: str | Path,
    out_path: str | Path,
    fmt: str,
    cell: str | CellSpec | None = None,
    overwrite: bool = False,
) -> Path:
    """Load any supported checkpoint and write it in another format (atomically); returns the written path.
    An existing out_path is refused unless `overwrite`."""
    from segopt_core.checkpoints.loading import load_checkpoint

    if not overwrite:
        refuse_existing([Path(out_path)])
    loaded = load_checkpoint(src, cell=cell)
    return write_checkpoint(loaded.model, loaded.spec, out_path, fmt)
