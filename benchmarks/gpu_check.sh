#!/usr/bin/env bash
# segopt on a CUDA machine, from nothing but a fresh clone, in one command (target: under 8 minutes):
#   1. a venv with CUDA PyTorch (same version as the CPU pin) + segopt[gpu,pt2e,dev,tensorrt]
#   2. every `gpu`-marked test (pytest -m gpu)
#   3. the GPU headline: torch fp16, ORT CUDA EP, TensorRT FP16/INT8 on B0 and B2 at 512, batch 1/4/8,
#      speedup vs torch fp32 and argmax agreement, printed as one table (also written to gpu-check/)
#
#   bash benchmarks/gpu_check.sh                      # everything
#   QUICK=1 bash benchmarks/gpu_check.sh              # B0 only, batch 1 and 8, fewer iterations
#   TORCH_INDEX=https://download.pytorch.org/whl/cu126 bash benchmarks/gpu_check.sh   # other CUDA build
#
# Exit status: 0 when the tests passed and the headline ran, 1 otherwise; 2 when there is no NVIDIA GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv-gpu}"
OUT="${OUT:-gpu-check}"
# CUDA 12.x wheels: onnxruntime-gpu and the tensorrt meta-package on PyPI default to CUDA 12 too.
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cu128}"
mkdir -p "$OUT"
step() { printf '\n[%4ds] == %s\n' "$((SECONDS - start))" "$*"; }

step "GPU"
if ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; then
    echo "gpu_check: no NVIDIA GPU / driver (nvidia-smi failed); nothing to check" >&2
    exit 2
fi

step "venv $VENV with CUDA torch + segopt[gpu,pt2e,dev,tensorrt]"
set -e
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
torch_version="$(grep -E '^torch==' constraints.txt | cut -d= -f3)"
# constraints.txt pins the CPU builds (torch, onnxruntime): drop those two pins for the CUDA install.
grep -v -E '^(torch|onnxruntime)==' constraints.txt > "$OUT/constraints-gpu.txt"
"$VENV/bin/python" -m pip install -q "torch==${torch_version}" --index-url "$TORCH_INDEX"
"$VENV/bin/python" -m pip install -q -c "$OUT/constraints-gpu.txt" "torch==${torch_version}" \
    -e ".[gpu,pt2e,dev,tensorrt]"
"$VENV/bin/python" - <<'EOF'
import torch
assert torch.cuda.is_available(), f"torch {torch.__version__} sees no CUDA device"
print("torch", torch.__version__, "CUDA", torch.version.cuda, "on", torch.cuda.get_device_name(0))
import onnxruntime as ort
print("onnxruntime", ort.__version__, ort.get_available_providers())
try:
    import tensorrt
    print("tensorrt", tensorrt.__version__)
except ImportError as exc:
    print("tensorrt not importable:", exc)
EOF
set +e
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 HF_HUB_OFFLINE=1

step "pytest -m gpu"
"$VENV/bin/python" -m pytest -m gpu -q -p no:cacheprovider --junitxml="$OUT/gpu-tests.xml"
tests_rc=$?

step "GPU headline"
if [[ -n "${QUICK:-}" ]]; then
    headline_args=(--cells b0-512-ade20k --batch-sizes 1,8 --warmup 5 --iters 20)
else
    headline_args=(--warmup 10 --iters 30)
fi
# Stay inside 8 minutes: variants not started within the headline budget are listed as skipped.
budget=$((420 - (SECONDS - start)))
if ((budget < 60)); then
    budget=60
fi
"$VENV/bin/python" benchmarks/gpu_headline.py "${headline_args[@]}" --budget-s "$budget" \
    --work-dir "$OUT" --out "$OUT/gpu-headline.md"
headline_rc=$?

step "done in $((SECONDS - start)) s (target < 480 s): tests rc=$tests_rc, headline rc=$headline_rc"
[[ -f "$OUT/gpu-headline.md" ]] && echo "table: $OUT/gpu-headline.md, test report: $OUT/gpu-tests.xml"
[[ $tests_rc -eq 0 && $headline_rc -eq 0 ]]
