"""α sweep of temporal smoothing on a synthetic video with ground truth: consistency vs mIoU, and FPS.

    python benchmarks/video_alpha_sweep.py --checkpoint model.safetensors [--cell b0-512-ade20k]
    python benchmarks/video_alpha_sweep.py                     # random-init tiny model (numbers meaningless)

Each row is one pass over the same video; raw (per-frame) and smoothed predictions come from the same logits,
so `*_raw` columns are identical across rows and the α = 0 row has smoothed == raw.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", help="SegFormer checkpoint (default: random-init model of --random-cell)"
    )
    parser.add_argument("--cell", help="cell of the checkpoint when it cannot be inferred")
    parser.add_argument(
        "--random-cell", default="tiny", help="'tiny' or a matrix cell for a random-init model"
    )
    parser.add_argument("--alphas", default="0,0.3,0.6,0.8")
    parser.add_argument("--motion-aware", action="store_true", help="also run every α > 0 motion-aware")
    parser.add_argument("--smooth", default="logits", choices=["logits", "probs"])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="128x192", help="synthetic video HxW")
    parser.add_argument("--fps", type=float, default=12.0)
    parser.add_argument("--pan", type=int, default=2, help="camera pan, pixels per frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--input-short", type=int, default=None, help="model input short side")
    parser.add_argument("--out-dir", default="reports/video_alpha_sweep")
    return parser.parse_args()


def load_model(args: argparse.Namespace):
    """(predictor, spec) of the checkpoint, or of a random-init model."""
    from segopt_core.models import build_model
    from segopt_core.predictor import TorchPredictor
    from segopt_core.variants import get_cell, tiny_cell
    from segopt_core.video.pipeline import resolve_predictor

    if args.checkpoint:
        return resolve_predictor(args.checkpoint, None, args.cell)
    spec = tiny_cell("ade20k", 128) if args.random_cell == "tiny" else get_cell(args.random_cell)
    return TorchPredictor(build_model(spec, seed=args.seed)), spec


def run_row(video, predictor, spec, out_dir: Path, alpha: float, motion: bool, args) -> dict:
    """One pass at one α; a flat row of rounded numbers."""
    from segopt_core.video import SmoothingOptions, VideoOptions, VideoOutputs, segment_video

    tag = f"a{alpha:g}{'-motion' if motion else ''}"
    summary = segment_video(
        video.path,
        predictor,
        spec,
        VideoOutputs(out_dir / f"{tag}.mp4", summary=out_dir / f"{tag}.json"),
        SmoothingOptions(alpha=alpha, space=args.smooth, motion_aware=motion),
        options=VideoOptions(batch_size=args.batch_size, input_short=args.input_short, metrics="full"),
        gt_masks=video.masks_dir,
    )
    raw, smooth, perf = (
        summary["consistency"]["raw"],
        summary["consistency"]["smoothed"],
        summary["performance"],
    )
    return {
        "alpha": alpha,
        "motion_aware": motion,
        "static_persistence_raw": raw["static_persistence"],
        "static_persistence": smooth["static_persistence"],
        "flow_tc_raw": raw["flow_tc"],
        "flow_tc": smooth["flow_tc"],
        "etc_tc_raw": raw["etc_tc"],
        "etc_tc": smooth["etc_tc"],
        "vc_8_raw": raw["vc_8"],
        "vc_8": smooth["vc_8"],
        "miou_raw": raw["miou_gt"],
        "miou": smooth["miou_gt"],
        "fps_end_to_end": perf["fps_end_to_end"],
        "fps_model": perf["fps_model"],
        "e2e_over_model": round(perf["fps_end_to_end"] / perf["fps_model"], 3),
        "latency_ms_median": perf["latency_ms_median"],
        "peak_rss_mb": perf["peak_rss_mb"],
    }


def main() -> None:
    args = parse_args()
    from segopt_core.data import synth_video

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    h, w = (int(v) for v in args.size.lower().split("x"))
    video = synth_video(out_dir / "synth.mp4", args.frames, (h, w), args.fps, args.seed, pan=args.pan)
    predictor, spec = load_model(args)
    run_row(video, predictor, spec, out_dir, 0.0, False, args)  # warm-up pass (allocator, caches)
    alphas = [float(a) for a in args.alphas.split(",")]
    plan = [(a, False) for a in alphas] + [(a, True) for a in alphas if args.motion_aware and a > 0]
    rows = [run_row(video, predictor, spec, out_dir, a, m, args) for a, m in plan]
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "alpha_sweep.csv", index=False)
    (out_dir / "alpha_sweep.json").write_text(json.dumps({"cell": spec.name, "rows": rows}, indent=2))
    print(f"cell {spec.name}, video {args.frames} frames {h}x{w} (pan {args.pan}px/frame, scene cut mid-way)")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
