#!/usr/bin/env bash
# SSL held to the teacher: the `ssl-bi` candidate of issue #17, end to end from the official weights
# (docs/MODELS.md, "The anchored recipe"). Each stage resumes (--resume) and is skipped when its result exists.
# The times are what each stage took on this project's 2-core AMD EPYC, two threads, with other jobs (test
# runs, a benchmark) sharing the machine for part of the time.
# Usage: pruning/recipes/ssl_bi_anchored.sh [RUNS=runs/recipe-ssl-bi-anchored]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${1:-runs/recipe-ssl-bi-anchored}
DATA=${DATA:-$HOME/.cache/vsrapp/train}
CACHE=${CACHE:-runs/cache64}
export VSRAPP_WEIGHTS=${VSRAPP_WEIGHTS:-../shared/weights}
[[ -f $DATA/manifest.tsv ]] || python -m pruning.prepare_data --out "$DATA"
done_() { [[ -f $1/model.safetensors ]]; }

# 0. The teacher's pass over 160 synthetic 10-frame 64x64 clips, cached once (fp16, ~15 MB a clip, ~4.5 s a
#    clip on 2 threads). The runs below used the first 108 clips (the rest were not built yet); the cache is
#    resumable, so a shorter build is a matter of stopping it.
python -m pruning.distill cache --out "$CACHE" --clips 160 --frames 10 --lr-size 64 --seed 100 --threads 2
# 1. Sparsity learning against the cached teacher output: hidden filters and the HR upsampler only (every
#    stream channel kept), widths rounded to multiples of 8, 62 % of those gate entries marked; lambda grows
#    1e-3 an iteration to 0.1 (step 100); weights at 5e-5 after 20 warm-up steps, gates at 1e-2.
#    120 iterations, ~45 min (11-25 s/it; the run was stopped after the step-120 checkpoint and exported with
#    --iters 120 --resume).
done_ "$R/sparsity" || vsrapp prune --method ssl --cache "$CACHE" --teacher basicvsr-vimeo-bi --ratio 0.62 \
    --channel-multiple 8 --out "$R/sparsity" --iters 120 --lr 5e-5 --warmup 20 --gate-lr 1e-2 --reg-delta 1e-3 \
    --reg-interval 1 --reg-ceiling 0.1 --ckpt-every 20 --log-every 5 --threads 2 --resume
# 2. Recovery of the slim export: Charbonnier to the cached teacher output, Adam 1e-4 cosine after 20 warm-up
#    steps, EMA 0.995 of the weights (what is saved), snapshots every 100 iterations (8 s/it on 2 threads).
done_ "$R/kd" || vsrapp finetune --model "$R/sparsity" --cache "$CACHE" --out "$R/kd" --teacher basicvsr-vimeo-bi \
    --iters "${KD_ITERS:-600}" --lr 1e-4 --warmup 20 --ema 0.995 --tf-weight 0 --kd-weight 1 --snapshot-every 100 \
    --ckpt-every 50 --log-every 10 --threads 2 --resume
# 3. Score (Vid4 whole clips) and bundle (fp16 safetensors; byte-reproducible from the same export).
vsrapp eval --model "$R/kd" --data ../shared/data/Vid4/inputs/G --json "$R/kd/vid4.json"
echo "bundle with: python -m pruning.bundle $R/kd --name ssl-bi"
