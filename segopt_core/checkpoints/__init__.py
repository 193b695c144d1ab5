"""Checkpoints: load HF / safetensors / NVlabs / MMSegmentation SegFormer weights, match them to cells,
discover them in folders, and write random-init ones (the zoo)."""

from __future__ import annotations

from segopt_core.checkpoints.discovery import DiscoveredCheckpoint, DiscoveryReport, RejectedFile, discover
from segopt_core.checkpoints.formats import (
    FORMATS,
    Arch,
    CheckpointError,
    NotSegformerError,
    UnsafeCheckpointError,
    normalize_format,
    sha256_file,
)
from segopt_core.checkpoints.loading import LoadedCheckpoint, inspect_checkpoint, load_checkpoint
from segopt_core.checkpoints.matching import CellMatch, hints_from_name
from segopt_core.checkpoints.mmseg_head import MMSegSegformer, MMSegSegformerHead
from segopt_core.checkpoints.zoo import (
    build_mmseg_model,
    convert_checkpoint,
    init_zoo,
    release_name,
    write_checkpoint,
)

__all__ = [
    "FORMATS",
    "Arch",
    "CellMatch",
    "CheckpointError",
    "DiscoveredCheckpoint",
    "DiscoveryReport",
    "LoadedCheckpoint",
    "MMSegSegformer",
    "MMSegSegformerHead",
    "NotSegformerError",
    "RejectedFile",
    "UnsafeCheckpointError",
    "build_mmseg_model",
    "convert_checkpoint",
    "discover",
    "hints_from_name",
    "init_zoo",
    "inspect_checkpoint",
    "load_checkpoint",
    "normalize_format",
    "release_name",
    "sha256_file",
    "write_checkpoint",
]
