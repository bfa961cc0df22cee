#!/usr/bin/env bash
# What one lent GPU session runs, in one device call (a session has 15 minutes of device time, the machine's
# start included, and one command may run 10): the GPU distillation of a bundled model with its schedule fitted
# to FIT_SECONDS of training (pruning/recipes/gpu_distill.sh), then as much of the GPU bench as BENCH_SECONDS
# allows (benchmarks/gpu_run.sh, STAGE=quick unless STAGE says otherwise). About 8 minutes with the defaults.
#
# Here, first:  pruning/recipes/gpu_distill.sh prepare
# Device run:   command "bash benchmarks/gpu_session.sh", carry [".gpu"], timeout_s 560
# Here, after:  pruning/recipes/gpu_distill.sh collect <files_at>; score it (vsrapp eval), copy the bench JSON
#               into benchmarks/results/ (docs/MODELS.md "The GPU recipe", docs/BENCHMARKS.md "GPU")
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
FIT_SECONDS=${FIT_SECONDS:-265} ITERS=${ITERS:-20000} bash pruning/recipes/gpu_distill.sh train \
    "${MODEL:-basicvsr-b8-hr32}" 2>&1 | grep -v "^USDT" | grep -v " it [0-9]*[1-9]0/"
STAGE=${STAGE:-quick} timeout "${BENCH_SECONDS:-170}" bash benchmarks/gpu_run.sh 2>&1 | tail -40
