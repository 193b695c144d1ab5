"""Prefect tasks for synthetic data: thin wrappers over segopt_core.data."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from segopt_core.data import SynthVideo, synth_dataset, synth_video


@task(name="synth-dataset", task_run_name="synth-dataset")
def synth_dataset_task(out: str, layout: str, n_train: int, n_val: int, size: int, seed: int) -> str:
    """Write (or reuse) a synthetic dataset in a real layout; returns the folder open_dataset reads."""
    return str(synth_dataset(out, layout, n_train, n_val, (size, size), seed, progress=True))


@task(name="synth-video", task_run_name="synth-video")
def synth_video_task(
    out: str, n_frames: int, size: int, fps: float, seed: int, width: int | None = None, pan: int = 0
) -> SynthVideo:
    """Write a synthetic clip (size x width, square by default) with ground-truth masks and a scene cut."""
    path = Path(out)
    return synth_video(path, n_frames=n_frames, size=(size, width or size), fps=fps, seed=seed, pan=pan)
