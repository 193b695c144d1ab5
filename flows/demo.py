"""Flow `demo`: the embedded default, end to end on a fresh machine with nothing downloaded.

synthetic dataset -> train a small B0 -> optimize-all over it (every backend this machine has)
-> mIoU of each variant vs fp32 -> MLflow + reports/<run-id>/summary.md -> video with smoothing on/off.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.naming import run_options
from flows.optimize_all import optimize_all
from flows.train import train_flow
from flows.video import video_flow
from segopt_core.settings import load_settings
from tasks.data import synth_dataset_task, synth_video_task


@flow(name="demo", **run_options(), log_prints=True)
def demo(
    work_dir: str | None = None,
    report_dir: str | None = None,
    n_train: int = 240,
    n_val: int = 40,
    image_size: int = 128,
    train_iters: int = 400,
    batch_sizes: list[int] | None = None,
    video_frames: int = 60,
    alpha: float = 0.6,
    seed: int = 0,
) -> dict:
    """Run segopt's whole pipeline on synthetic data and a freshly trained B0; returns where results are."""
    settings = load_settings()
    work = Path(work_dir or settings.work_dir)
    reports = Path(report_dir or settings.reports_dir)

    data = synth_dataset_task(str(work / "data" / "synth-ade20k"), "ade20k", n_train, n_val, image_size, seed)
    model_out = work / "checkpoints" / f"b0-demo-{image_size}"
    trained = train_flow(
        data_dir=data,
        cell="b0-512-ade20k",
        preset="quick",
        iters=train_iters,
        crop=image_size,
        out_dir=str(model_out),
        resume=(model_out / "state" / "latest.pt").exists(),  # a re-run continues the earlier training
        seed=seed,
    )
    report_path = optimize_all(
        paths=[trained["model_dir"]],
        batch_sizes=batch_sizes or [1, 4, 8],
        data_dir=data,
        limit=n_val,
        work_dir=str(work),
        report_dir=str(reports),
    )
    clip = synth_video_task(str(work / "video" / "synthetic-clip.mp4"), video_frames, image_size, 12.0, seed)
    video = video_flow(
        source=str(clip.path),
        out=str(work / "video" / "overlay.mp4"),
        checkpoint=trained["model_dir"],
        alpha=alpha,
        gt_masks=str(clip.masks_dir),
        side_by_side=True,
        summary=str(work / "video" / "summary.json"),
    )
    return {
        "data": data,
        "model_dir": trained["model_dir"],
        "best_val_miou": trained["best_miou"],
        "report": str(Path(report_path) / "summary.md"),
        "video": str(work / "video" / "overlay.mp4"),
        "video_summary": str(work / "video" / "summary.json"),
        **video_fps(video),
    }


def video_fps(summary: dict) -> dict:
    """End-to-end and model-only frames per second from the video flow's summary (its `performance`)."""
    performance = summary.get("performance") or {}
    return {"video_fps": performance.get("fps_end_to_end"), "video_model_fps": performance.get("fps_model")}
