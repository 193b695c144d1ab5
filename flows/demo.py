"""Flow `demo`: the embedded default, end to end on a fresh machine with nothing downloaded.

synthetic dataset -> train a small B0 -> optimize-all over it (every backend this machine has)
-> mIoU of each variant vs fp32 -> MLflow + reports/<run-id>/summary.md -> video with smoothing on/off.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.optimize_all import locals_of, optimize_all
from flows.parameters import described_by
from flows.train import train_flow
from flows.video import video_flow
from segopt_core.batches import DEFAULT_BATCH_SIZES
from segopt_core.pipeline.params import DEMO_DEFAULTS as DEFAULTS
from segopt_core.pipeline.params import DemoParams
from segopt_core.settings import load_settings
from tasks.data import synth_dataset_task, synth_video_task


@flow(name="demo", log_prints=True)
@described_by(DemoParams)
def demo(
    work_dir: str | None = None,
    report_dir: str | None = None,
    n_train: int = DEFAULTS.n_train,
    n_val: int = DEFAULTS.n_val,
    image_size: int = DEFAULTS.image_size,
    train_iters: int = DEFAULTS.train_iters,
    batch_sizes: list[int] = DEFAULT_BATCH_SIZES,
    video_frames: int = DEFAULTS.video_frames,
    alpha: float = DEFAULTS.alpha,
    seed: int = DEFAULTS.seed,
) -> dict:
    """Run segopt's whole pipeline on synthetic data and a freshly trained B0; returns where results are."""
    params = DemoParams.from_flow(**locals_of(demo, locals()))  # bad values stop here, before any task
    settings = load_settings()
    work = Path(params.work_dir or settings.work_dir)
    reports = Path(params.report_dir or settings.reports_dir)
    size, seed = params.image_size, params.seed

    data = synth_dataset_task(
        str(work / "data" / "synth-ade20k"), "ade20k", params.n_train, params.n_val, size, seed
    )
    model_out = work / "checkpoints" / f"b0-demo-{size}"
    trained = train_flow(
        data_dir=data,
        cell="b0-512-ade20k",
        preset="quick",
        iters=params.train_iters,
        crop=size,
        out_dir=str(model_out),
        resume=(model_out / "state" / "latest.pt").exists(),  # a re-run continues the earlier training
        seed=seed,
    )
    report_path = optimize_all(
        paths=[trained["model_dir"]],
        batch_sizes=params.batch_sizes,
        data_dir=data,
        limit=params.n_val,
        work_dir=str(work),
        report_dir=str(reports),
    )
    clip = synth_video_task(str(work / "video" / "synthetic-clip.mp4"), params.video_frames, size, 12.0, seed)
    video = video_flow(
        source=str(clip.path),
        out=str(work / "video" / "overlay.mp4"),
        checkpoint=trained["model_dir"],
        alpha=params.alpha,
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
