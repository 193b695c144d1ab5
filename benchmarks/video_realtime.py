#!/usr/bin/env python
"""Real-time video on this CPU: per-frame inference vs keyframes + propagation, stage by stage.

    python benchmarks/video_realtime.py                      # trains (or reuses) a B0, then the table
    python benchmarks/video_realtime.py --checkpoint DIR     # a trained B0 of the ADE20K label space

Synthetic 30 FPS clips with ground truth (camera pan, moving objects, a scene cut mid-way) at 720p and 1080p,
B0 at 512 short side (model input 512x896), offline per-frame (`--keyframes 1`) and `auto`, and live mode on
the 720p clip. Prints one table (end-to-end FPS, model FPS, per-stage p50 ms, mIoU vs ground truth and vs
per-frame, ETC TC, VC_8, live drops and latency) and writes it to benchmarks/VIDEO.md under this CPU kind
(other CPU kinds' sections are kept). Without --checkpoint it trains a B0 with the demo's recipe (quick
preset, 128x128 crops) on synthetic scenes drawn at 288x512 for --train-iters iterations (1600: 400 left the
per-frame mIoU on the clips below 0.5) once and reuses it from --work-dir.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout: use this segopt, not another installed one

STAGES = ("decode", "resize", "model", "propagation", "smoothing", "upsample", "overlay", "encode")
# `--variant auto`: the fastest B0 variant measured on each CPU kind (benchmarks/RESULTS.md), where it can
# be built here; else the first fp32 one of these backends that can
FASTEST = ("torch-compile-bf16-folded", "torch-compile-fp32-folded")
BACKENDS = ("openvino", "onnxruntime", "torch")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", help="trained checkpoint (default: train or reuse one in --work-dir)")
    parser.add_argument(
        "--variant",
        default="auto",
        help=f"the model's variant slug (auto: {FASTEST[0]} where bf16 is native, else {FASTEST[1]})",
    )
    parser.add_argument(
        "--train-iters", type=int, default=1600, help="iterations of the B0 trained without --checkpoint"
    )
    parser.add_argument("--sizes", default="720x1280,1080x1920", help="source sizes HxW")
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (scene cut mid-way)")
    parser.add_argument("--policies", default="1,auto", help="keyframe policies to compare")
    parser.add_argument("--live", default="720x1280", help="sizes also run in live mode ('' for none)")
    parser.add_argument("--input-short", type=int, default=512, help="model input short side")
    parser.add_argument("--work-dir", default="reports/video_realtime")
    parser.add_argument("--markdown", default=str(REPO / "benchmarks" / "VIDEO.md"))
    return parser.parse_args()


TRAIN_IMAGE_HW = (288, 512)  # 16:9 like the clips: their textures and objects at the clips' proportions


def trained_checkpoint(work: Path, iters: int) -> Path:
    """A B0 trained with the demo's recipe (quick preset, 128x128 crops) for `iters` iterations on synthetic
    ADE20K-layout scenes drawn at 288x512 (reused when already there)."""
    from segopt_core.data import synth_dataset
    from segopt_core.train import load_config, train
    from segopt_core.variants import get_cell

    h, w = TRAIN_IMAGE_HW
    model_dir = work / f"model-{iters}-{h}x{w}" / "best"
    if model_dir.is_dir():
        return model_dir
    data = work / f"data-{h}x{w}"
    if not data.exists():
        synth_dataset(data, "ade20k", 240, 40, TRAIN_IMAGE_HW, 0, progress=True)
    config = load_config(None, preset_name="quick", iters=iters, crop_size=128)
    result = train(data, get_cell("b0-512-ade20k"), config, model_dir.parent, progress=True)
    return result.model_dir


def variant_options(slug: str):
    """The VariantOptions named `slug` (one of this machine's defaults); `auto` as in `--variant`'s help."""
    from segopt_core.backends import VariantOptions
    from segopt_core.backends.options import cpu_supports_bf16, default_variants
    from segopt_core.backends.registry import get_backend

    if slug == "auto":
        slug = FASTEST[0] if cpu_supports_bf16() else FASTEST[1]
        options = next(o for o in default_variants(cuda=False, bf16=True) if o.slug == slug)
        if get_backend(options.backend).available(options) is None:
            return options
        fallback = (VariantOptions(name, "fp32") for name in BACKENDS)
        return next(o for o in fallback if get_backend(o.backend).available(o) is None)
    known = {o.slug: o for o in default_variants(cuda=False, bf16=True, pt2e=True)}
    if slug not in known:
        raise SystemExit(f"--variant {slug}: unknown; valid: auto, {', '.join(known)}")
    reason = get_backend(known[slug].backend).available(known[slug])
    if reason is not None:
        raise SystemExit(f"--variant {slug}: not available on this machine ({reason})")
    return known[slug]


def predictor_for(checkpoint: Path, options, work: Path, threads: int):
    """(predictor, spec) of the checkpoint built as `options`, cached in work/artifacts, loaded with
    `threads` intra-op threads (as `segopt video` loads it for the keyframe policy)."""
    from segopt_core.backends import ArtifactStore, load_predictor
    from segopt_core.checkpoints import load_checkpoint
    from segopt_core.predictor import TorchPredictor

    loaded = load_checkpoint(checkpoint)
    if options.slug == "torch-fp32":
        return TorchPredictor(loaded.model), loaded.spec
    artifact = ArtifactStore(work / "artifacts").get_or_build(loaded, options)
    return load_predictor(artifact.path, num_threads=threads), loaded.spec


def clip(work: Path, size: tuple[int, int], frames: int):
    """A 30 FPS synthetic clip with masks (pan ~ width/480 px per frame), written once and reused."""
    from segopt_core.data import SynthVideo, synth_video

    h, w = size
    path = work / "clips" / f"clip-{h}p-{frames}.mp4"
    meta = path.with_suffix(".json")
    if meta.is_file() and path.is_file():
        info = json.loads(meta.read_text())
        masks = path.with_name(info["masks_dir"])
        return SynthVideo(
            path, masks, info["n_frames"], info["fps"], tuple(info["size"]), info["scene_cut_at"]
        )
    return synth_video(path, frames, size, 30.0, seed=0, pan=max(1, round(w / 480)))


def run(video, predictor, spec, work: Path, mode: str, policy: str, input_short: int, metrics: str) -> dict:
    """One pass with `--metrics metrics`; the JSON summary."""
    from segopt_core.video import VideoOptions, VideoOutputs, parse_keyframes, segment_video

    tag = f"{video.size[0]}p-{mode}-k{policy}-m{metrics}"
    return segment_video(
        video.path,
        predictor,
        spec,
        VideoOutputs(work / "out" / f"{tag}.mp4", summary=work / "out" / f"{tag}.json"),
        options=VideoOptions(
            mode=mode, keyframes=parse_keyframes(policy), input_short=input_short, metrics=metrics
        ),
        gt_masks=video.masks_dir,
    )


def row(video, mode: str, policy: str, timed: dict, measured: dict, per_frame_miou: float | None) -> dict:
    """A flat row of rounded numbers: speed from the `--metrics off` run, accuracy from the `full` one."""
    perf, frames = timed["performance"], timed["frames"]
    smoothed = measured["consistency"]["smoothed"]
    miou = smoothed["miou_gt"]
    out = {
        "source": f"{video.size[0]}p",
        "mode": mode,
        "keyframes": policy,
        "fps_end_to_end": perf["fps_end_to_end"],
        "fps_model": perf["fps_model"],
        "model_frames_pct": round(100 * frames["keyframes"] / max(frames["processed"], 1), 1),
    }
    out |= {f"{s}_ms": (timed["stages"].get(s) or {}).get("p50_ms") for s in STAGES}
    out |= {
        "metrics_ms": (measured["stages"].get("metrics") or {}).get("p50_ms"),
        "fps_with_metrics": measured["performance"]["fps_end_to_end"],
        "miou_gt": miou,
        "miou_vs_per_frame": round(miou / per_frame_miou, 4) if miou is not None and per_frame_miou else None,
        "etc_tc": smoothed["etc_tc"],
        "vc_8": smoothed["vc_8"],
        "dropped_pct": round(100 * frames["dropped"] / max(frames["read"], 1), 1),
        "latency_p50_ms": perf["latency_ms_median"],
        "latency_p99_ms": perf["latency_ms_p99"],
        "batch": perf["batch_size"],
        "codec": perf["codec"],
    }
    return out


def cpu_kind() -> tuple[str, str]:
    """(CPU model, ISA class: AMX / AVX-512 / AVX2 / other) of this machine."""
    from segopt_core.cpuinfo import read_cpuinfo

    model, flags = read_cpuinfo()
    if "amx_tile" in flags:
        isa = "AMX"
    elif "avx512f" in flags:
        isa = "AVX-512 (no AMX)"
    else:
        isa = "AVX2" if "avx2" in flags else "no AVX2"
    return model, isa


def markdown_section(rows: list[dict], context: dict) -> str:
    """This CPU kind's section of VIDEO.md."""
    import pandas as pd

    table = pd.DataFrame(rows).to_markdown(index=False)
    lines = [
        f"## {context['isa']}: {context['cpu']}",
        "",
        f"{context['date']}, `{context['command']}`, {context['cores']} cores, model {context['variant']} "
        f"(B0 {context['trained']}, input {context['input']}), flow {context['flow']}, "
        f"load average {context['load']} at the start ({context['busy']}).",
        "",
        table,
        "",
        "Each row is two runs of `segopt video`: speed, stages, drops and latency from the run with "
        "`--metrics off` (what a deployment runs), `metrics_ms`, `fps_with_metrics` and the accuracy "
        "columns from the run with `--metrics full` (offline the two runs label every frame alike: the "
        "script checks their keyframes match). Stage columns are p50 ms per frame (`model` per model call; "
        "frames where a stage did not run are not counted). `miou_vs_per_frame` is mIoU against the clip's "
        "ground truth relative to `--keyframes 1` on the same clip and mode; `model_frames_pct` the share "
        "of frames the model ran on.",
        "",
    ]
    return "\n".join(lines)


def write_markdown(path: Path, section: str, isa: str) -> None:
    """Replace this CPU kind's section of VIDEO.md (others kept), atomically."""
    from segopt_core.atomic import write_text_atomic

    header = (
        "# Real-time video benchmark\n\n"
        "Written by `benchmarks/video_realtime.py`, one section per CPU kind.\n"
    )
    text = path.read_text() if path.is_file() else header
    sections = re.split(r"(?m)^(?=## )", text)
    kept = [s for s in sections[1:] if not s.startswith(f"## {isa}:")]
    write_text_atomic(path, "".join([sections[0].rstrip() + "\n\n", *kept, section]))


def main() -> None:
    args = parse_args()
    import numpy as np
    import pandas as pd

    from segopt_core.video import FLOW_METHOD, VideoOptions, parse_keyframes
    from segopt_core.video.pipeline import model_threads
    from segopt_core.video.segmenter import model_input_size

    work = Path(args.work_dir)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    checkpoint = Path(args.checkpoint) if args.checkpoint else trained_checkpoint(work, args.train_iters)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s]
    live = {tuple(int(v) for v in s.lower().split("x")) for s in args.live.split(",") if s}
    policies = [p.strip() for p in args.policies.split(",")]
    modes = ["offline"] + (["live"] if live else [])
    threads = {
        model_threads(VideoOptions(mode=m, keyframes=parse_keyframes(p))) for p in policies for m in modes
    }
    options = variant_options(args.variant)
    loaded = {n: predictor_for(checkpoint, options, work, n) for n in sorted(threads)}
    rows = []
    for size in sizes:
        video = clip(work, size, args.frames)
        for predictor, _ in loaded.values():  # warm-up at this input size, outside the timed runs (batch 2:
            for n in (1, 2):  # where it is micro-batched, the first batch at a new size measures its best)
                predictor(np.zeros((n, 3, *model_input_size(size, args.input_short)), np.float32))
        for mode in ["offline"] + (["live"] if size in live else []):
            per_frame = None
            for policy in policies:
                run_options = VideoOptions(mode=mode, keyframes=parse_keyframes(policy))
                predictor, spec = loaded[model_threads(run_options)]
                timed, measured = (
                    run(video, predictor, spec, work, mode, policy, args.input_short, metrics)
                    for metrics in ("off", "full")
                )
                if mode == "offline" and timed["frames"]["keyframes"] != measured["frames"]["keyframes"]:
                    raise SystemExit(f"{video.path}: keyframes differ between the two offline runs")
                per_frame = measured["consistency"]["smoothed"]["miou_gt"] if policy == "1" else per_frame
                rows.append(row(video, mode, policy, timed, measured, per_frame))
                print(json.dumps(rows[-1]), flush=True)
    cpu, isa = cpu_kind()
    context = {
        "isa": isa,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "date": dt.date.today().isoformat(),
        "command": "python benchmarks/video_realtime.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "variant": options.slug,
        "trained": f"from {args.checkpoint}"
        if args.checkpoint
        else f"trained {args.train_iters} "
        f"iterations on synthetic {TRAIN_IMAGE_HW[0]}x{TRAIN_IMAGE_HW[1]} scenes",
        "input": "x".join(map(str, model_input_size(sizes[0], args.input_short))) if sizes else "-",
        "flow": FLOW_METHOD,
        "load": round(load, 2),
        "busy": "busy: other work on the machine" if load > 0.5 else "quiet",
    }
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    write_markdown(Path(args.markdown), markdown_section(rows, context), isa)
    print(f"wrote {args.markdown} ({isa}: {cpu}) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
