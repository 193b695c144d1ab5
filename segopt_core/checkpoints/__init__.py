"""Checkpoints: load HF / safetensors / NVlabs / MMSegmentation SegFormer weights, match them to cells,
discover them in folders, and write random-init ones (the zoo).

Everything beyond the formats (torch, transformers) is imported on first use, so that a command can
check the paths it was given in its first second.
"""

from __future__ import annotations

import importlib
from typing import Any

from segopt_core.checkpoints.formats import (
    FORMATS,
    Arch,
    CheckpointError,
    NotSegformerError,
    UnsafeCheckpointError,
    normalize_format,
    sha256_file,
)

_LAZY = {
    "DiscoveredCheckpoint": "discovery",
    "DiscoveryReport": "discovery",
    "RejectedFile": "discovery",
    "discover": "discovery",
    "LoadedCheckpoint": "loading",
    "inspect_checkpoint": "loading",
    "load_checkpoint": "loading",
    "CellMatch": "matching",
    "hints_from_name": "matching",
    "MMSegSegformer": "mmseg_head",
    "MMSegSegformerHead": "mmseg_head",
    "build_mmseg_model": "zoo",
    "convert_checkpoint": "zoo",
    "init_zoo": "zoo",
    "release_name": "zoo",
    "write_checkpoint": "zoo",
}

__all__ = [
    "FORMATS",
    "Arch",
    "CheckpointError",
    "NotSegformerError",
    "UnsafeCheckpointError",
    "normalize_format",
    "sha256_file",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """The loaders', discovery's and the zoo's names, imported when first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
