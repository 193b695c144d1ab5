"""Checkpoint formats: names, errors, the architecture read from weights, and layout detection from keys."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from segopt_core.errors import SegoptError

# Formats segopt reads and writes. "hf" is a Hugging Face folder (or a torch pickle with HF keys),
# "safetensors" a bare HF-keyed .safetensors, "nvlabs" the original NVlabs / mmseg 0.x SegFormer release,
# "mmseg1" MMSegmentation's own MiT + SegformerHead (0.17+ and 1.x).
FORMATS = ("hf", "safetensors", "nvlabs", "mmseg1")
FORMAT_ALIASES = {"mmseg": "nvlabs", "mmseg0": "nvlabs", "original": "nvlabs", "mmseg-1": "mmseg1"}
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


class CheckpointError(SegoptError, ValueError):
    """A checkpoint that cannot be read or converted; the message names the file and the problem."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that needs code to load: refused under weights_only=True and never executed."""


class NotSegformerError(CheckpointError):
    """A readable weights file that is not a SegFormer semantic-segmentation checkpoint."""


def normalize_format(fmt: str) -> str:
    """The canonical format name for fmt (aliases accepted); unknown names raise CheckpointError."""
    name = FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if name not in FORMATS:
        valid = ", ".join(FORMATS + tuple(FORMAT_ALIASES))
        raise CheckpointError(f"unknown checkpoint format {fmt!r}; valid formats: {valid}")
    return name


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, or of a folder's weight and config files in name order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode())
        with open(file, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Arch:
    """The SegFormer architecture read from weight shapes (num_heads is not in the weights: None)."""

    hidden_sizes: tuple[int, ...]
    depths: tuple[int, ...]
    sr_ratios: tuple[int, ...]
    patch_sizes: tuple[int, ...]
    mlp_ratios: tuple[int, ...]
    decoder_hidden_size: int
    num_labels: int
    head: str  # "hf" (all-MLP head, NVlabs and HF) or "mmseg" (MMSegmentation's SegformerHead)
    num_heads: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.hidden_sizes) != 4 or len(self.depths) != 4:
            raise ValueError(f"Arch: expected 4 encoder stages, got widths {self.hidden_sizes}")
        if self.head not in ("hf", "mmseg"):
            raise ValueError(f"Arch: head must be 'hf' or 'mmseg', got {self.head!r}")

    def describe_encoder(self) -> str:
        """One line: encoder widths and depths."""
        return f"widths {'/'.join(map(str, self.hidden_sizes))}, depths {'/'.join(map(str, self.depths))}"

    def describe(self) -> str:
        """One line: widths, depths, decoder width, classes."""
        return f"{self.describe_encoder()}, decoder {self.decoder_hidden_size}, {self.num_labels} classes"


def strip_wrappers(keys: list[str]) -> str:
    """The common wrapper prefix ('module.', 'model.') every key carries, or ''."""
    for prefix in ("module.", "model.", "_orig_mod."):
        if keys and all(k.startswith(prefix) for k in keys):
            return prefix
    return ""


def detect_layout(keys: list[str], source: str | Path) -> str:
    """'hf', 'nvlabs' or 'mmseg1' from state-dict key names; NotSegformerError otherwise."""
    keyset = set(keys)
    if any(k.startswith("segformer.") for k in keys):
        return "hf"
    if "backbone.patch_embed1.proj.weight" in keyset:
        return "nvlabs"
    if "backbone.layers.0.0.projection.weight" in keyset:
        return "mmseg1"
    if any(k.startswith(("encoder.patch_embeddings", "stages.0.")) for k in keys):
        raise NotSegformerError(
            f"{source}: SegFormer encoder weights without the 'segformer.' prefix and without a decode head "
            "(an encoder-only/ImageNet checkpoint); segopt needs a semantic-segmentation checkpoint"
        )
    sample = ", ".join(sorted(keys)[:3]) or "no tensors"
    raise NotSegformerError(
        f"{source}: not a SegFormer checkpoint (no HF, NVlabs or MMSegmentation keys; found {sample})"
    )
