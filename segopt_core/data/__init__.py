"""Datasets, synthetic data and preprocessing."""

from __future__ import annotations

from segopt_core.data.datasets import DatasetError, Sample, SegDataset, open_dataset, read_image
from segopt_core.data.preprocess import preprocess, rescale_size, resize_to_test_scale
from segopt_core.data.synth import SYNTH_CLASSES, synth_dataset, synth_scene
from segopt_core.data.video_synth import SynthVideo, synth_video

__all__ = [
    "SYNTH_CLASSES",
    "DatasetError",
    "Sample",
    "SegDataset",
    "SynthVideo",
    "open_dataset",
    "preprocess",
    "read_image",
    "rescale_size",
    "resize_to_test_scale",
    "synth_dataset",
    "synth_scene",
    "synth_video",
]
