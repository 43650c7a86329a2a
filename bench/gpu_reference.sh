#!/usr/bin/env bash
# The one-shot GPU run on a lent machine, from the repository root, in about 9 minutes on one H200:
#   bash bench/gpu_reference.sh [--dry-run | --smoke] [DATA_ROOT]     (DATA_ROOT holds MNIST/raw; default ./data)
# 1. makes this checkout importable: `python -m pip install --no-deps --no-build-isolation -e .` over the machine's own torch
#    and Lightning (no network needed; `python -m pip`, because a machine's `pip` may belong to another interpreter), and
#    PYTHONPATH, which works where the install cannot;
# 2. runs the speed bench, bench/gpu_speed.py (every preset, at most about 5 minutes);
# 3. trains each MNIST preset at its GPU batch on the fast path for a share of about 4 minutes, bench/gpu_reference.py,
#    compiled where step 2 measured compilation to pay.
# Both write their results files to $OUT when that is set (the device tool's output folder), else to bench/results.
# --dry-run prints the commands without running them; --smoke runs both scripts' smoke modes on the CPU (no install).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=run
case "${1:-}" in --dry-run|--smoke) mode="${1#--}"; shift ;; esac
# the smoke mode reads MNIST from $PYGENBRIX_DATA unless DATA_ROOT is given
if [ -n "${1:-}" ]; then data=(--data-root "$1"); elif [ "$mode" = smoke ]; then data=(); else data=(--data-root data); fi
output="${OUT:-bench/results}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
speed_budget="${SPEED_BUDGET_SECONDS:-270}"   # the speed bench starts no cell after this
time_scale="${TIME_SCALE:-1}"                 # multiplies every preset's share of training time

run() {
    echo "+ $*"
    if [ "$mode" != dry-run ]; then "$@"; fi
}

if [ "$mode" = smoke ]; then
    run python bench/gpu_speed.py --smoke --device cpu --output-dir "$output"
    run python bench/gpu_reference.py --smoke --device cpu "${data[@]}" --output-dir "$output" --speed-results "$output"
    exit 0
fi
run python -m pip install -q --no-deps --no-build-isolation -e . || echo "the editable install failed; pygenbrix is imported from PYTHONPATH=$PWD"
run python -c "import pygenbrix, torch; print('pygenbrix from', pygenbrix.__file__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())"
if [ "$mode" = run ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true; fi
run python bench/gpu_speed.py --budget-seconds "$speed_budget" --output-dir "$output" || echo "the speed bench failed; training goes on, uncompiled"
# --speed-results FOLDER: the latest speed run on this device in it, the one just written
if [ "$mode" = dry-run ] || ls "$output"/*-speed.json >/dev/null 2>&1; then speed=(--speed-results "$output"); else speed=(); fi
run python bench/gpu_reference.py "${data[@]}" --output-dir "$output" --time-scale "$time_scale" "${speed[@]}"
