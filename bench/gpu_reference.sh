#!/usr/bin/env bash
# The one-shot GPU run on a lent machine, from the repository root:
#   bash bench/gpu_reference.sh [DATA_ROOT]     (DATA_ROOT holds MNIST/raw; default ./data)
# It installs pygenbrix over the machine's own torch and Lightning (no network needed), runs bench/gpu_reference.py,
# and writes gpu_reference.json and .md to $OUT when that is set (the device tool's output folder), else bench/results.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q --no-deps --no-build-isolation -e . >/dev/null
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python bench/gpu_reference.py --data-root "${1:-data}" --output-dir "${OUT:-bench/results}"
