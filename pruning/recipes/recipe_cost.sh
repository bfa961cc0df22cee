#!/usr/bin/env bash
# What the fine-tuning recipe alone costs (docs/RESULTS.md, "What the recipe costs"): the dense official
# BasicVSR fine-tuned with each recipe, nothing pruned, scored on the first 12 frames of every Vid4 clip.
# Resumable: an arm whose model exists is skipped, and so is a score whose JSON exists.
# Usage: pruning/recipes/recipe_cost.sh [OUT=runs/recipe_cost] [THREADS=1]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/recipe_cost}
THREADS=${2:-1}
VID4=${VID4:-../shared/data/Vid4/inputs/G}
export OMP_NUM_THREADS=$THREADS VSRAPP_WEIGHTS=${VSRAPP_WEIGHTS:-../shared/weights}
mkdir -p "$OUT"

arm() {  # arm NAME STEPS... -- OPTIONS...
    local name=$1; shift
    local steps=()
    while [[ $1 != -- ]]; do steps+=("$1"); shift; done; shift
    [[ -f $OUT/$name/step${steps[-1]}.pth ]] || \
        python -m pruning.recipes.recipe_cost --out "$OUT/$name" --steps "${steps[@]}" --threads "$THREADS" "$@"
    for s in "${steps[@]}"; do score "$name/step$s"; done
}
score() {
    [[ -f $OUT/$1.json ]] || vsrapp eval --model "$OUT/$1.pth" --data "$VID4" --max-frames 12 --json "$OUT/$1.json"
}

# 5-frame 32x32 teacher cache for the teacher-target arms (pool seed 200: apart from every training seed)
[[ -f $OUT/cache32/clip_00099.pt ]] || python -m pruning.distill cache --out "$OUT/cache32" --clips 100 \
    --frames 5 --lr-size 32 --seed 200 --threads "$THREADS"

arm gt32 100 300 -- --arm gt --lr-size 32 --frames 5 --lr 2e-4            # the shipped models' recipe
arm kd32 100 300 -- --arm kd --cache "$OUT/cache32" --lr 2e-4              # same, teacher output as target
arm gt32-lr2e-5 100 -- --arm gt --lr-size 32 --frames 5 --lr 2e-5          # same as gt32, 10x lower rate
arm oneshot-nm 0 -- --arm oneshot-nm                                      # magnitude 2:4, no training
arm oneshot-issp 0 -- --arm oneshot-issp --sparsity 0.8                    # 80 % smallest zeroed, no training
arm kd32-slow 300 -- --arm kd --cache "$OUT/cache32" --lr 5e-5 --warmup 20 --ema 0.99  # teacher, gentle
arm gt64 100 -- --arm gt --lr-size 64 --frames 5 --lr 2e-4                # larger crops, GT
# Recovery of the one-shot 2:4 mask by the acceptable recipe (teacher output, 5e-5, warm-up, EMA; zeros kept)
arm nm-kd-slow 100 200 -- --arm kd --init oneshot-nm --cache "$OUT/cache32" --lr 5e-5 --warmup 20 --ema 0.99
