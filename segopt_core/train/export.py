"""Trained models as Hugging Face folders (config.json + model.safetensors) plus segopt.json metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from segopt_core.atomic import atomic_folder
from segopt_core.variants import CellSpec

METADATA_NAME = "segopt.json"
METADATA_VERSION = 1


def set_class_names(model: nn.Module, class_names: tuple[str, ...]) -> None:
    """Write the label space into the HF config (id2label / label2id / num_labels)."""
    id2label = {i: name for i, name in enumerate(class_names)}
    model.config.id2label = id2label
    model.config.label2id = {name: i for i, name in id2label.items()}


def _version() -> str:
    """segopt's installed version ('unknown' when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("segopt")
    except PackageNotFoundError:
        return "unknown"


def training_metadata(
    spec: CellSpec,
    *,
    dataset: str,
    class_names: tuple[str, ...],
    config: dict[str, Any],
    iterations: int,
    best_miou: float | None,
    best_iteration: int | None,
    val_metrics: dict[str, Any] | None,
    init: str,
) -> dict[str, Any]:
    """The segopt.json document written next to every exported model."""
    return {
        "segopt_version": _version(),
        "metadata_version": METADATA_VERSION,
        "writer": "segopt",
        "producer": "segopt train",
        "cell": spec.name,
        "encoder": spec.encoder.name,
        "crop_size": list(spec.crop_size),
        "test_scale": list(spec.test_scale),
        "dataset": spec.dataset.name,  # label space / protocol, as checkpoints.zoo.segopt_info writes it
        "data_dir": dataset,
        "num_heads": list(spec.encoder.num_heads),  # not recoverable from weights
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "init": init,
        "iterations": iterations,
        "best_miou": best_miou,
        "best_iteration": best_iteration,
        "val_metrics": val_metrics,
        "training_config": config,
    }


def _save_quietly(model: nn.Module, folder: Path) -> None:
    """save_pretrained without transformers' per-shard progress bar (it would break the training bar)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def export_hf_folder(model: nn.Module, out_dir: Path, metadata: dict[str, Any]) -> Path:
    """save_pretrained + segopt.json in a temp folder, swapped in for `out_dir` (never half-written)."""

    def write(folder: Path) -> None:
        _save_quietly(model, folder)
        (folder / METADATA_NAME).write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")

    return atomic_folder(out_dir, write)


def read_metadata(folder: Path) -> dict[str, Any]:
    """The segopt.json of an exported folder."""
    return json.loads((Path(folder) / METADATA_NAME).read_text())
