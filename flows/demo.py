"""Flow `demo`: the embedded default, end to end on a fresh machine with nothing downloaded.

synthetic dataset -> train a small B0 -> optimize-all over it (every backend this machine has)
-> mIoU of each variant vs fp32 -> MLflow + reports/<run-id>/summary.md -> a 720p clip segmented per frame
and with `--keyframes auto` (speed and accuracy of keyframes + propagation against per-frame inference).
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
    video_frames: int = 48,
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
    clip = synth_video_task(str(work / "video" / "clip-720p.mp4"), video_frames, 720, 30.0, seed, 1280, 3)
    runs = {}
    for keyframes, name in (("1", "per-frame"), ("auto", "overlay")):
        runs[keyframes] = video_flow(
            source=str(clip.path),
            out=str(work / "video" / f"{name}.mp4"),
            checkpoint=trained["model_dir"],
            alpha=alpha,
            keyframes=keyframes,
            input_short=image_size,  # the demo B0 is trained at image_size: its input, not 512
            gt_masks=str(clip.masks_dir),
            side_by_side=keyframes == "auto",
            summary=str(work / "video" / f"{name}.json"),
        )
    return {
        "data": data,
        "model_dir": trained["model_dir"],
        "best_val_miou": trained["best_miou"],
        "report": str(Path(report_path) / "summary.md"),
        "video": str(work / "video" / "overlay.mp4"),
        "video_summary": str(work / "video" / "overlay.json"),
        **video_fps(runs["auto"]),
        "video_accuracy": keyframes_vs_per_frame(runs["auto"], runs["1"]),
    }


def keyframes_vs_per_frame(auto: dict, per_frame: dict) -> str:
    """'mIoU 0.612 vs 0.618 per-frame (99.0 %), model on 9/48 frames, per-frame 11.2 FPS end-to-end'."""
    a, b = (s["consistency"]["smoothed"]["miou_gt"] for s in (auto, per_frame))
    ratio = f" ({100 * a / b:.1f} %)" if a is not None and b else ""
    frames = auto["frames"]
    return (
        f"mIoU {_figure(a)} vs {_figure(b)} per-frame{ratio}, "
        f"model on {frames['keyframes']}/{frames['written']} frames, "
        f"per-frame {per_frame['performance']['fps_end_to_end']} FPS end-to-end"
    )


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def video_fps(summary: dict) -> dict:
    """End-to-end and model-only frames per second from the video flow's summary (its `performance`)."""
    performance = summary.get("performance") or {}
    return {"video_fps": performance.get("fps_end_to_end"), "video_model_fps": performance.get("fps_model")}
