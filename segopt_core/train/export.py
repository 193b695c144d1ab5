"""Trained models as Hugging Face folders (config.json + model.safetensors) plus segopt.json metadata."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from segopt_core.variants import VariantSpec

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
    spec: VariantSpec,
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
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _save_quietly(model, tmp)
        (tmp / METADATA_NAME).write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")
        old = out_dir.with_name(f".{out_dir.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def read_metadata(folder: Path) -> dict[str, Any]:
    """The segopt.json of an exported folder."""
    return json.loads((Path(folder) / METADATA_NAME).read_text())
