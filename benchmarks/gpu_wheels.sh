#!/usr/bin/env bash
# Download the wheels the GPU machine lacks (benchmarks/gpu_wheels.txt) into .whl/, here, where PyPI is
# reachable: for the GPU machine's Python (3.12, manylinux x86-64) and for this machine's own Python (the
# CPU dry run). .whl/ is git-ignored; the device tool's run copies it with `carry: [".whl"]`, and
# benchmarks/gpu_check.sh installs from it with --no-index. About 10 MB; never CUDA wheels.
#
#   bash benchmarks/gpu_wheels.sh                 # .whl/ for python 3.12 + this python
#   bash benchmarks/gpu_wheels.sh --check         # only check that .whl/ holds them all (no network)
#   GPU_PYTHON=3.13 bash benchmarks/gpu_wheels.sh # another GPU-side Python
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="${WHEELS:-.whl}"
GPU_PYTHON="${GPU_PYTHON:-3.12}"
PYTHON="${PYTHON:-python3}"
CHECK_ONLY="${1:-}"
mkdir -p "$WHEELS"
download() { "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$WHEELS" "$@" \
    -r benchmarks/gpu_wheels.txt 2>&1 | grep -v "^WARNING: Location" || true; }
if [[ "$CHECK_ONLY" != "--check" ]]; then
    download --python-version "$GPU_PYTHON" --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
    download  # this machine's Python and platform: what the dry run installs
fi
# the set must be closed under its dependencies for both Pythons: the GPU machine has no index to ask
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
check() { PIP_FIND_LINKS= "$PYTHON" -m pip install -q --dry-run --disable-pip-version-check --no-index \
    --find-links "$WHEELS" --target "$scratch" --only-binary=:all: "$@" -r benchmarks/gpu_wheels.txt; }
check --python-version "$GPU_PYTHON" --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
check
echo "gpu_wheels: $(ls "$WHEELS"/*.whl | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1) in $WHEELS/ (device run: carry [\"$WHEELS\"])"
