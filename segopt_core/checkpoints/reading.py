"""Read weights safely: safetensors headers, torch pickles under weights_only=True, Hugging Face folders."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from segopt_core.checkpoints.formats import CheckpointError, UnsafeCheckpointError, strip_wrappers

HF_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


@dataclass
class RawCheckpoint:
    """A checkpoint's tensors (real or on the meta device), its container and any embedded metadata."""

    path: Path
    container: str  # "hf-folder", "safetensors" or "torch"
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)  # mmseg 'meta', safetensors metadata, segopt info
    hf_config: dict[str, Any] | None = None
    segopt_info: dict[str, Any] | None = None  # segopt.json of a segopt-trained folder, or embedded


def is_hf_folder(path: Path) -> bool:
    """True for a folder holding config.json and HF weights."""
    return path.is_dir() and (path / "config.json").is_file() and hf_weights_file(path) is not None


def hf_weights_file(folder: Path) -> Path | None:
    """The weights file of an HF folder (safetensors preferred), or None."""
    for name in HF_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def read_checkpoint(path: str | Path, shapes_only: bool = False) -> RawCheckpoint:
    """Read a checkpoint file or HF folder; shapes_only gives meta tensors (shapes, no data)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_hf_folder(path, shapes_only)
    check_readable(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes); re-download or re-export it")
    if path.suffix == ".safetensors":
        tensors, meta = read_safetensors(path, shapes_only)
        return _with_embedded_info(RawCheckpoint(path, "safetensors", tensors, meta))
    tensors, meta = read_torch(path, shapes_only)
    return _with_embedded_info(RawCheckpoint(path, "torch", tensors, meta))


def check_readable(path: Path) -> None:
    """Raise CheckpointError "permission denied" when the file cannot be opened for reading (before a
    reader reports it as corrupt)."""
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise CheckpointError(
            f"{path}: permission denied; fix its permissions (chmod a+r) or leave it out of the scanned paths"
        ) from None


def _read_hf_folder(folder: Path, shapes_only: bool) -> RawCheckpoint:
    weights = hf_weights_file(folder)
    if not (folder / "config.json").is_file() or weights is None:
        raise CheckpointError(
            f"{folder}: not a Hugging Face checkpoint folder (needs config.json and "
            f"{' or '.join(HF_WEIGHT_FILES)})"
        )
    config = _read_json(folder / "config.json")
    shards = _shards(weights) if weights.name.endswith(".index.json") else [weights]
    tensors, meta = {}, {}
    for shard in shards:
        check_readable(shard)
        part, part_meta = (
            read_safetensors(shard, shapes_only)
            if shard.suffix == ".safetensors"
            else read_torch(shard, shapes_only)
        )
        tensors.update(part)
        meta.update(part_meta)
    segopt = _read_json(folder / "segopt.json") if (folder / "segopt.json").is_file() else None
    return RawCheckpoint(folder, "hf-folder", tensors, meta, hf_config=config, segopt_info=segopt)


def _shards(index: Path) -> list[Path]:
    """The shard files a sharded HF folder's index names (all must exist)."""
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: no weight_map in the shard index; re-save the model")
    shards = [index.parent / name for name in sorted(set(weight_map.values()))]
    missing = [p.name for p in shards if not p.is_file()]
    if missing:
        raise CheckpointError(f"{index}: shard files missing: {', '.join(missing[:3])}; download all shards")
    return shards


def _read_json(path: Path) -> dict[str, Any]:
    check_readable(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({exc}); fix or remove the file") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_safetensors(path: Path, shapes_only: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors (or meta tensors from the header alone) and the metadata of a .safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            if shapes_only:
                tensors = {k: _meta_tensor(fh.get_slice(k)) for k in fh.keys()}
            else:
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad headers and short files
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc})") from None
    return tensors, meta


def _meta_tensor(tensor_slice: Any) -> torch.Tensor:
    dtype = {"F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64, "I64": torch.int64}
    return torch.empty(
        tensor_slice.get_shape(), dtype=dtype.get(tensor_slice.get_dtype(), torch.float32), device="meta"
    )


def read_torch(path: Path, shapes_only: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and 'meta' of a torch pickle, loaded with weights_only=True (code is never run)."""
    obj = safe_torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found a pickled {type(obj).__name__}")
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    state = _find_state_dict(obj, path)
    prefix = strip_wrappers(list(state))
    tensors = {k[len(prefix) :]: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if shapes_only:
        tensors = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in tensors.items()}
    return tensors, meta


def _find_state_dict(obj: dict, path: Path) -> dict[str, Any]:
    for key in ("state_dict", "model", "module"):
        if isinstance(obj.get(key), dict) and any(isinstance(v, torch.Tensor) for v in obj[key].values()):
            return obj[key]
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise CheckpointError(
        f"{path}: no tensors found (top-level keys: {', '.join(map(str, list(obj)[:5])) or 'none'}); "
        "expected weights at top level or under 'state_dict'"
    )


def safe_torch_load(path: Path) -> Any:
    """torch.load with weights_only=True; a pickle that needs code raises UnsafeCheckpointError, a file
    torch.save did not write (a plain pickle) or a damaged one CheckpointError: one line, the real cause."""
    import pickle
    import warnings

    kind = _torch_file_kind(path)
    if kind != "torch":
        raise CheckpointError(
            f"{path}: {kind}, not a file torch.save wrote (a zip archive or its legacy format); give a "
            ".pth/.pt written by torch.save, a .safetensors file or a Hugging Face folder"
        )
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol before failing
            warnings.simplefilter("ignore")
            return _torch_load(path, mmap=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # the pickle names a function or class: code would run
            raise UnsafeCheckpointError(_unsafe_message(path, exc)) from None
        raise CheckpointError(f"{path}: corrupt or truncated PyTorch file (not a valid pickle)") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, IndexError) as exc:
        text = str(exc).strip() or type(exc).__name__
        first = text.splitlines()[0].split(". ")[0]  # torch appends paragraphs of advice; keep the cause
        raise CheckpointError(f"{path}: corrupt or truncated PyTorch file ({first})") from None


# torch's legacy (pre-1.6) format starts with this number, pickled with protocol 2 (a LONG1 of 10 bytes)
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _torch_file_kind(path: Path) -> str:
    """'torch' for what torch.save writes (a zip archive, even a truncated one, or the legacy format), else
    what the file starts like."""
    with open(path, "rb") as fh:
        head = fh.read(len(_LEGACY_MAGIC))
    if head.startswith(b"PK\x03\x04") or head == _LEGACY_MAGIC:
        return "torch"
    if head.startswith(b"\x80"):
        return "a plain Python pickle"
    return "unknown content" if head else "an empty file"


def _torch_load(path: Path, mmap: bool) -> Any:
    import zipfile

    # mmap keeps large checkpoints off the heap, but only the zip format (torch >= 1.6) supports it.
    use_mmap = mmap and zipfile.is_zipfile(path)
    with torch.serialization.safe_globals(_numpy_data_globals()):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)


def _numpy_data_globals() -> list:
    """numpy array/scalar reconstructors: data only (torch docs allow them); mmcv/mmengine metas hold them."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    found = [
        np.ndarray,
        np.dtype,
        getattr(core.multiarray, "_reconstruct", None),
        getattr(core.multiarray, "scalar", None),
    ]
    found += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return [g for g in found if g is not None]


def _unsafe_message(path: Path, exc: Exception) -> str:
    """One line saying the file needs code to load and segopt will not run it (never torch's advice to
    allow the global or to turn weights_only off)."""
    import re

    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    names = f" (it calls {found.group(1)})" if found else ""
    return (
        f"{path}: refused: loading it would run code{names}, and segopt loads weights only and never runs "
        "code from a checkpoint; re-save the weights as a plain state dict or .safetensors where you trust "
        "the file"
    )


def _with_embedded_info(raw: RawCheckpoint) -> RawCheckpoint:
    """Pick up segopt metadata written by `write_checkpoint` (safetensors metadata or mmseg 'meta')."""
    info = raw.meta.get("segopt")
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except ValueError:
            info = None
    raw.segopt_info = info if isinstance(info, dict) else None
    return raw
