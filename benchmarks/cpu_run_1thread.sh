#!/usr/bin/env bash
# Run A of benchmarks/cpu_run.sh on one thread: on a 2-core machine shared with other jobs, two OpenMP threads
# wait on each other at every parallel region (a memory-bound op such as index_add or clone took 10-100x longer
# than on one thread), so one thread gives the cleaner comparison between models.
set -uo pipefail
export VSRAPP_WEIGHTS=${VSRAPP_WEIGHTS:-/work/shared/weights}
PRUNED=${PRUNED:-runs/ssl-oneshot-r05}
DATE=$(date +%Y%m%d-%H%M)
mkdir -p benchmarks/results
uptime
python -m vsrapp.bench --models basicvsr-vimeo-bi "$PRUNED" bicubic --size 180x320 --frames 3 --warmup 0 --threads 1 \
  --profile --json "benchmarks/results/cpu-180x320-1thread-$DATE.json" 2>&1 | grep --line-buffered -v "^USDT\|gpuGetDeviceCount"
uptime
