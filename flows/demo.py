"""Flow `demo`: the embedded default, end to end on a fresh machine with nothing downloaded.

synthetic dataset -> train a small B0 -> optimize-all over it (every backend this machine has)
-> mIoU of each variant vs fp32 -> MLflow + reports/<run-id>/summary.md -> a 720p clip segmented per frame
and with `--keyframes auto` (speed and accuracy of keyframes + propagation against per-frame inference).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.naming import run_options
from flows.optimize_all import locals_of, optimize_all
from flows.parameters import described_by
from flows.train import train_flow
from flows.video import video_flow
from segopt_core.batches import DEFAULT_BATCH_SIZES
from segopt_core.pipeline.params import DEMO_DEFAULTS as DEFAULTS
from segopt_core.pipeline.params import DemoParams
from segopt_core.settings import load_settings
from tasks.data import synth_dataset_task, synth_video_task


@flow(name="demo", **run_options(), log_prints=True)
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
    clip = synth_video_task(
        str(work / "video" / "clip-720p.mp4"), params.video_frames, 720, 30.0, seed, 1280, 3
    )
    runs = {}
    for keyframes, name in (("1", "per-frame"), ("auto", "overlay")):
        runs[keyframes] = video_flow(
            source=str(clip.path),
            out=str(work / "video" / f"{name}.mp4"),
            checkpoint=trained["model_dir"],
            alpha=params.alpha,
            keyframes=keyframes,
            input_short=size,  # the demo B0 is trained at image_size: its input, not 512
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
