#!/usr/bin/env bash
# The GPU check's dry run on a CPU machine (CI runs it): benchmarks/gpu_check.sh --dry-run with nothing but
# what the GPU machine has, to prove it gets to the first CUDA call of every step there.
#   - Python: a venv (.venv-gpu-dry, git-ignored) holding only packages on the GPU machine's list
#     (benchmarks/gpu_machine_packages.txt), at its versions: benchmarks/gpu_dryrun_requirements.txt, with
#     the CPU build of torch 2.13.0 for its CUDA 2.11. Built once from pip's cache and reused while that
#     file is unchanged; checked against the list on every run.
#   - The wheels the GPU machine lacks from .whl/ (downloaded by benchmarks/gpu_wheels.sh when incomplete).
#   - No network: a network namespace with no interfaces where `unshare -rn` works, and in every Python
#     process a guard (benchmarks/gpu_dryrun/sitecustomize.py) that refuses connections and records each
#     one tried, and each import of prefect or mlflow, in a log that must stay empty.
# Not a venv with --system-site-packages: it would see this machine's prefect, mlflow and pydantic, the
# very packages whose absence the dry run is for.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv-gpu-dry}"
stamp="$VENV/.segopt-dryrun"
want="$(sha256sum benchmarks/gpu_dryrun_requirements.txt | cut -c1-16)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "gpu_dryrun: building $VENV from benchmarks/gpu_dryrun_requirements.txt (once; pip's cache)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-compile \
        -r benchmarks/gpu_dryrun_requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c "import torch, transformers, typer, cv2, onnxruntime, pytest" || exit 1
    echo "$want" > "$stamp"
fi
# -P: not the working directory on sys.path, where setup.sh's editable install left segopt.egg-info
"$VENV/bin/python" -P - <<'EOF'
import re, sys
from importlib import metadata
from pathlib import Path

def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

listed = Path("benchmarks/gpu_machine_packages.txt").read_text().splitlines()
allowed = {norm(line.split("==")[0].strip()) for line in listed if line.strip() and not line.startswith("#")}
extra = sorted({norm(d.metadata["Name"]) for d in metadata.distributions()} - allowed)
if extra:
    sys.exit(f"gpu_dryrun: the dry-run venv holds packages the GPU machine lacks: {', '.join(extra)}")
print(f"gpu_dryrun: venv checked: every package is on the GPU machine's list")
EOF
bash benchmarks/gpu_wheels.sh --check > /dev/null 2>&1 || bash benchmarks/gpu_wheels.sh

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
guard_log="$work/guard.log"
: > "$guard_log"
isolate=()
if unshare -rn true 2>/dev/null; then
    isolate=(unshare -rn)
    echo "gpu_dryrun: in a network namespace without interfaces (unshare -rn)"
fi
rc=0
env -u PYTHONHOME PYTHONNOUSERSITE=1 PYTHONPATH="$PWD/benchmarks/gpu_dryrun" GPU_DRYRUN_LOG="$guard_log" \
    PY="$PWD/$VENV/bin/python" WORK="$work/run" OUT="$work/out" JOBS=2 \
    "${isolate[@]}" bash benchmarks/gpu_check.sh --dry-run || rc=$?
if [[ -s "$guard_log" ]]; then
    echo "gpu_dryrun: FAILED: something tried the network or prefect/mlflow (the GPU machine has neither):" >&2
    cat "$guard_log" >&2
    exit 1
fi
if ((rc != 0)); then
    echo "gpu_dryrun: FAILED: benchmarks/gpu_check.sh --dry-run exited $rc (log above)" >&2
    exit 1
fi
echo "gpu_dryrun: passed in $((SECONDS - start)) s: every step of benchmarks/gpu_check.sh reached its first" \
    "CUDA call with the GPU machine's packages and .whl/ only, without network, prefect or mlflow"
