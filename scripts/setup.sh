#!/usr/bin/env bash
# Create .venv and install segopt for a CPU machine; the constraints pin the CPU build of torch.
# The openvino extra (OpenVINO + NNCF: ~60 MB download, ~5 s to install) is included so CI tests that backend.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
stamp=".venv/.segopt-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "segopt: .venv is up to date"
    exit 0
fi
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[cpu,pt2e,openvino,dev]"
echo "$want" > "$stamp"
echo "segopt: installed into .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
