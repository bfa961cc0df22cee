#!/usr/bin/env bash
# The first CPU measurement recorded in docs/BENCHMARKS.md (repo root; dense weights from $VSRAPP_WEIGHTS, the
# pruned model from runs/ssl-oneshot-r05). A frame of dense BasicVSR takes tens of seconds on 2 shared cores, so
# the clip is short and warm-up is off (first-call overhead is milliseconds against seconds per frame).
set -uo pipefail
export VSRAPP_WEIGHTS=${VSRAPP_WEIGHTS:-/work/shared/weights}
PRUNED=${PRUNED:-runs/ssl-oneshot-r05}
DATE=$(date +%Y%m%d-%H%M)
mkdir -p benchmarks/results
uptime
# A: every model side by side (model-only with parts, top ops, network-only, end to end).
python -m vsrapp.bench --models basicvsr-vimeo-bi "$PRUNED" bicubic --size 180x320 --frames 3 --warmup 0 \
  --profile --json "benchmarks/results/cpu-180x320-$DATE.json" 2>&1 | grep --line-buffered -v "^USDT\|gpuGetDeviceCount"
uptime
# B: channels-last on the CPU (the pruned model: cheapest network with every kind of layer).
python -m vsrapp.bench --models "$PRUNED" --size 180x320 --frames 2 --warmup 0 --no-e2e --gpu-opts fp32 fp32-cl \
  --opts-frames 2 --json "benchmarks/results/cpu-180x320-opts-$DATE.json" 2>&1 | grep --line-buffered -v "^USDT\|gpuGetDeviceCount"
uptime
