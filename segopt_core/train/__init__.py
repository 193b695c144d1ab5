"""SegFormer retraining: mmseg's recipe, resumable, exported as HF folders that `segopt discover` matches."""

from __future__ import annotations

from segopt_core.train.config import PRESETS, TrainConfig, TrainConfigError, load_config, make_config, preset
from segopt_core.train.export import METADATA_NAME, read_metadata
from segopt_core.train.init import InitError, cell_for_data, resolve_cell, training_spec
from segopt_core.train.loop import MetricsCallback, TrainError, TrainResult, segmentation_loss, train
from segopt_core.train.optim import build_optimizer, param_groups
from segopt_core.train.schedule import WarmupPoly
from segopt_core.train.state import ResumeError

__all__ = [
    "METADATA_NAME",
    "PRESETS",
    "InitError",
    "MetricsCallback",
    "ResumeError",
    "TrainConfig",
    "TrainConfigError",
    "TrainError",
    "TrainResult",
    "WarmupPoly",
    "build_optimizer",
    "cell_for_data",
    "load_config",
    "make_config",
    "param_groups",
    "preset",
    "read_metadata",
    "resolve_cell",
    "segmentation_loss",
    "train",
    "training_spec",
]
