#!/usr/bin/env bash
# segopt's GPU check, on the GPU machine as it is (its own python3 with CUDA torch, no network at all):
#   1. nvidia-smi; the wheels segopt needs that python3 lacks (benchmarks/gpu_wheels.txt, prepared with
#      benchmarks/gpu_wheels.sh and copied along as .whl/) into $SITE with --no-index; PYTHONPATH=$SITE:.
#   2. in the background: every GPU headline artifact built and verified, $JOBS at a time
#      (benchmarks/gpu_headline.py --build-only), and a 1080p clip for step 4
#   3. meanwhile every `gpu` test (pytest -m gpu over the test files that have them)
#   4. `segopt video` on the 1080p clip with the B0 torch-compile fp16 CUDA package: its summary JSON
#   5. the GPU headline: every built variant timed, one Markdown section, RESULTS.md with it merged in
# Everything lands in $OUT (the device tool's return folder; ./gpu-check elsewhere): gpu-check.log,
# gpu-env.json, gpu-tests.xml, gpu-video.json, gpu-headline.md, gpu-rows.json, RESULTS.md.
# It keeps to $BUDGET_S seconds of wall time (360): each step has its own limit and a late one is cut.
#
#   bash benchmarks/gpu_check.sh             # on the GPU machine
#   bash benchmarks/gpu_check.sh --dry-run   # on a CPU (benchmarks/gpu_dryrun.sh): each step up to its
#                                            # first CUDA call, the video on a tiny CPU artifact
#
# Exit status: 0 when every step ran (variants this machine lacks are skipped rows, not failures),
# 1 when a step failed, 2 when a prerequisite is missing (no GPU, no .whl/).
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
DRY=""
[[ "${1:-}" == "--dry-run" ]] && DRY=1
PY="${PY:-python3}"
OUT="${OUT:-gpu-check}"
WORK="${WORK:-/tmp/segopt-gpu-check}"
SITE="${SITE:-$WORK/site}"
WHEELS="${WHEELS:-.whl}"
BUDGET_S="${BUDGET_S:-360}"
JOBS="${JOBS:-8}"  # 6 compiles at once (3 cells x fp16, bf16) + 2 workers for the eager builds
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/gpu-check.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 DO_NOT_TRACK=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
step() { printf '\n[%4ds] == %s\n' "$((SECONDS - start))" "$*"; }
left() { echo $((BUDGET_S - (SECONDS - start))); }
failed=()

step "GPU${DRY:+ (dry run: none expected)}"
if ! nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader; then
    if [[ -z "$DRY" ]]; then
        echo "gpu_check: no NVIDIA GPU / driver (nvidia-smi failed); nothing to check" >&2
        exit 2
    fi
fi

step "wheels from $WHEELS/ into $SITE (no index, no network)"
if [[ ! -d "$WHEELS" ]]; then
    echo "gpu_check: $WHEELS/ is missing: run 'bash benchmarks/gpu_wheels.sh' where PyPI is reachable, then" \
        "copy it along (device tool: carry [\"$WHEELS\"])" >&2
    exit 2
fi
PIP_FIND_LINKS= "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" --find-links "$WHEELS" -r benchmarks/gpu_wheels.txt || exit 2
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"

step "environment"
"$PY" - "$OUT/gpu-env.json" "$DRY" <<'EOF' || exit 2
import importlib.metadata, importlib.util, json, platform, shutil, sys

import torch

import segopt_cli.main  # noqa: F401  (the CLI `segopt video` runs)
import segopt_core.backends.compile  # noqa: F401
import segopt_core.benchmark  # noqa: F401
import segopt_core.video  # noqa: F401
from segopt_core.settings import load_settings

load_settings()
env = {
    "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
    "cuda_available": torch.cuda.is_available(),
    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "capability": list(torch.cuda.get_device_capability(0)) if torch.cuda.is_available() else None,
    "compilers": {name: shutil.which(name) for name in ("gcc", "g++", "nvcc")},
}
for name in ("prefect", "mlflow"):  # distributions, not find_spec: the dry run's guard records imports
    try:
        env[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        env[name] = None
for name in ("transformers", "onnxruntime", "tensorrt", "pydantic", "pydantic_settings", "triton"):
    spec = importlib.util.find_spec(name)
    env[name] = getattr(__import__(name), "__version__", "?") if spec else None
loaded = sorted(m for m in ("prefect", "mlflow") if m in sys.modules)
assert not loaded, f"segopt's GPU path imported {loaded}"
json.dump(env, open(sys.argv[1], "w"), indent=1)
print(json.dumps(env))
if not torch.cuda.is_available():
    if not sys.argv[2]:
        sys.exit(f"torch {torch.__version__} sees no CUDA device")
    print("dry run: torch.cuda.is_available() is False, the first CUDA call of every step answers no")
EOF

step "background: build every GPU headline artifact ($JOBS at a time), make the 1080p clip"
# its own process group (job control on for this one job), so the build's worker processes can be stopped
# together when it runs late
set -m
"$PY" benchmarks/gpu_headline.py --build-only --jobs "$JOBS" --work-dir "$WORK/headline" \
    ${DRY:+--dry-run} > "$OUT/gpu-build.log" 2>&1 &
build_pid=$!
set +m
if [[ -n "$DRY" ]]; then clip=(--frames 6 --size 1080x1920); else clip=(--frames 120 --size 1080x1920); fi
"$PY" -m segopt_cli.main data synth-video --out "$WORK/clip-1080p.mp4" --fps 30 "${clip[@]}" \
    > "$WORK/clip.log" 2>&1 &
clip_pid=$!

step "pytest -m gpu (the files with gpu tests)"
mapfile -t gpu_files < <(grep -rlE --include='test_*.py' 'mark\.gpu' tests | sort)
printf '  %s\n' "${gpu_files[@]}"
tests_s=$(( $(left) - 150 ))
((tests_s < 60)) && tests_s=60
TORCHINDUCTOR_COMPILE_THREADS=4 timeout -k 10 "$tests_s" "$PY" -m pytest -m gpu -q -p no:cacheprovider \
    --junitxml="$OUT/gpu-tests.xml" "${gpu_files[@]}" || failed+=("pytest")

step "waiting for the builds"
deadline=$((SECONDS + $(left) - 120))
while kill -0 "$build_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 2; done
if kill -0 "$build_pid" 2>/dev/null; then
    echo "gpu_check: builds still running at their limit; stopping them (the headline lists what is missing)"
    kill -TERM -- "-$build_pid" 2>/dev/null
    sleep 5
    kill -KILL -- "-$build_pid" 2>/dev/null
fi
wait "$build_pid" || failed+=("builds")
tail -n 40 "$OUT/gpu-build.log"
wait "$clip_pid" || failed+=("clip")

step "segopt video on the 1080p clip"
if [[ -n "$DRY" ]]; then  # no CUDA package to run: the same command with a tiny CPU artifact
    video_artifact="$("$PY" - "$WORK/dry-artifacts" <<'EOF'
import sys

from segopt_core.backends import ArtifactStore, VariantOptions
from segopt_core.models import build_model
from segopt_core.variants import tiny_cell

spec = tiny_cell("ade20k", 64)
model = build_model(spec, seed=0)
print(ArtifactStore(sys.argv[1]).get_or_build(model, VariantOptions("torch", "fp32"), spec=spec).path)
EOF
)"
else
    video_artifact="$("$PY" - "$WORK/headline/gpu-artifacts.json" <<'EOF'
import json, sys

built = {(b["cell"], b["slug"]): b for b in json.load(open(sys.argv[1])) if b["status"] == "ok"}
for slug in ("torch-compile-fp16-folded-cuda", "torch-fp16-folded-cuda"):  # the package, else eager fp16
    if ("b0-512-ade20k", slug) in built:
        print(built["b0-512-ade20k", slug]["artifact"])
        break
EOF
)"
fi
if [[ -d "$video_artifact" ]]; then
    video=("$PY" -m segopt_cli.main video "$WORK/clip-1080p.mp4" --artifact "$video_artifact"
        --out "$WORK/overlay-1080p.mp4" --summary "$WORK/video-summary.json" --batch-size 8)
    timeout -k 5 90 "${video[@]}" || failed+=("video")
    "$PY" - "$WORK/video-summary.json" "$video_artifact" "${video[*]}" "$OUT/gpu-video.json" <<'EOF' || failed+=("video")
import json, sys
from pathlib import Path

summary, artifact, command, out = sys.argv[1:]
meta = json.loads((Path(artifact) / "metadata.json").read_text())
record = {"variant": meta["slug"], "artifact": artifact, "command": command, **json.loads(Path(summary).read_text())}
Path(out).write_text(json.dumps(record, indent=1))
print(json.dumps({"variant": record["variant"], "performance": record.get("performance")}))
EOF
else
    echo "gpu_check: no artifact for the video (see the build log)"
    failed+=("video")
fi

step "GPU headline (timing the built variants)"
budget=$(( $(left) - 20 ))
((budget < 30)) && budget=30
cp benchmarks/RESULTS.md "$OUT/RESULTS.md"  # the headline merges its section into this copy
timeout -k 10 "$((budget + 60))" "$PY" benchmarks/gpu_headline.py --work-dir "$WORK/headline" --no-build \
    --budget-s "$budget" ${DRY:+--dry-run} --video-summary "$OUT/gpu-video.json" \
    --out "$OUT/gpu-headline.md" --rows-json "$OUT/gpu-rows.json" --results "$OUT/RESULTS.md" \
    --note "benchmarks/gpu_check.sh${DRY:+ --dry-run}, $(date -u +%FT%TZ)" > /dev/null || failed+=("headline")

if [[ -n "$DRY" ]]; then
    step "dry run: every build stopped at its first CUDA call (skipped, none failed)"
    "$PY" - "$WORK/headline/gpu-artifacts.json" <<'EOF' || failed+=("dry-run")
import json, sys

built = json.load(open(sys.argv[1]))
wrong = [f"{b['cell']} {b['slug']}: {b['status']} {b['reason']}" for b in built if b["status"] != "skipped"]
assert built and not wrong, "\n".join(wrong) or "no builds"
print(f"{len(built)} variants, all skipped at their first CUDA call")
EOF
fi
step "done in $((SECONDS - start)) s (limit $BUDGET_S s)${failed[*]:+; failed: ${failed[*]}}"
ls -la "$OUT"
((${#failed[@]} == 0))
