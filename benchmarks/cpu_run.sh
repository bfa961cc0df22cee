#!/usr/bin/env bash
# The reference CPU measurement of docs/BENCHMARKS.md, from the repository root: every model side by side
# (model-only with parts, network-only, end to end), then the memory-layout experiment (contiguous against
# channels-last). Dense weights come from $VSRAPP_WEIGHTS; the bundled models ship with the package.
#   MODELS   the models to compare (default: dense BasicVSR, the two bundled models, bicubic)
#   THREADS  torch threads (default: all cores). On a 2-core machine shared with other jobs, two OpenMP threads
#            wait on each other at every parallel region, so THREADS=1 gives the cleaner comparison there.
#   FRAMES   frames per measurement (default 4; a dense frame takes seconds on a small CPU)
set -uo pipefail
export VSRAPP_WEIGHTS=${VSRAPP_WEIGHTS:-/work/shared/weights}
read -r -a MODELS <<< "${MODELS:-basicvsr-vimeo-bi ssl-bi ssl-uni bicubic}"
THREADS_ARG=()
[ -n "${THREADS:-}" ] && THREADS_ARG=(--threads "$THREADS")
FRAMES=${FRAMES:-4}
DATE=$(date +%Y%m%d-%H%M)
TAG=${THREADS:+-${THREADS}thread}
mkdir -p benchmarks/results
quiet() { grep --line-buffered -v "^USDT\|gpuGetDeviceCount"; }
uptime
vsrapp bench --models "${MODELS[@]}" --size 180x320 --frames "$FRAMES" --warmup 1 "${THREADS_ARG[@]}" --profile \
  --json "benchmarks/results/cpu${TAG}-180x320-$DATE.json" 2>&1 | quiet
uptime
vsrapp bench --models "${MODELS[@]}" --size 180x320 --frames "$FRAMES" --warmup 1 "${THREADS_ARG[@]}" --no-e2e \
  --gpu-opts fp32 fp32-cl --opts-frames 3 --json "benchmarks/results/cpu${TAG}-180x320-layout-$DATE.json" 2>&1 | quiet
uptime
