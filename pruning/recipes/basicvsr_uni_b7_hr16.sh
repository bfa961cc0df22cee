#!/usr/bin/env bash
# A forward-only (live-input) model by block and pixel-shuffle pruning, distilled to the bidirectional teacher's
# output (issue #17, the `ssl-uni` row): from the bundled `basicvsr-b15` (whose recipe, pruning/recipes/basicvsr_b15.sh,
# starts from the official weights), its forward trunk only: 7 of its 15 blocks (the ones with the largest
# residual against the stream, ranked inside the bidirectional network), the forward half of `fusion`, 32 and later
# 16 of the 64 high-resolution channels. 7 blocks and 16 channels is the size that runs no slower than `ssl-uni`
# (measured side by side through the Upscaler: b8-hr16 820 ms, ssl-uni 830 ms). Re-running resumes.
# The times are this project's 2-core AMD EPYC, two threads.
# Usage: pruning/recipes/basicvsr_uni_b7_hr16.sh [RUNS=runs/recipe-basicvsr-uni-b7-hr16] [FROM=vsrapp/weights/basicvsr-b15]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${1:-runs/recipe-basicvsr-uni-b7-hr16}
FROM=${2:-vsrapp/weights/basicvsr-b15}
S1=${S1:-1200}
S2=${S2:-1200}
S3=${S3:-1800}
export VSRAPP_WEIGHTS=${VSRAPP_WEIGHTS:-../shared/weights}
source pruning/recipes/block_stages.sh

# 0. The teacher's pass, cached once (shared by the block recipes; 11 min with the data).
teacher_caches
# 1. Cut to a forward-only network and recover: Charbonnier to the bidirectional teacher's output, Adam 1e-4,
#    20 warm-up steps, cosine, EMA 0.995, one 10-frame clip a step, the two caches in turn: 47 min (1.9-2.4 s/step).
[[ -f $R/s1/model.pth ]] || python -m pruning.blocks --cache "$REAL" "$CACHE" --forward-only --keep 7 \
    --upsampler 32 --init "$FROM" --out "$R/s1" --iters "$S1" --threads 2
# 2. Gradual pixel-shuffle pruning: 16 of those 32 high-resolution channels, ranked on that network, and more
#    steps from its weights: 28 min (1.4 s/step).
[[ -f $R/s2/model.pth ]] || python -m pruning.blocks --cache "$REAL" "$CACHE" --keep 7 --upsampler 16 \
    --init "$R/s1/export" --out "$R/s2" --iters "$S2" --threads 2
# 3. The same network, more steps from stage 2's weights with a fresh schedule: 42 min alone (1.4 s/step; it took
#    69 here, sharing the cores with the test suite for half of it). Vid4 25.64 -> 25.76 dB.
[[ -f $R/s3/model.pth ]] || python -m pruning.blocks --cache "$REAL" "$CACHE" --keep 7 --upsampler 16 \
    --init "$R/s2/export" --out "$R/s3" --iters "$S3" --threads 2
# 4. 1,200 more steps of the same network from stage 3's weights, fresh schedule: 28 min alone (1.4 s/step).
#    Vid4 25.76 -> 25.80 dB, every clip up; held-out agreement +0.14 / +0.19 dB (2026-12-05).
[[ -f $R/s4/model.pth ]] || python -m pruning.blocks --cache "$REAL" "$CACHE" --keep 7 --upsampler 16 \
    --init "$R/s3/export" --out "$R/s4" --iters 1200 --threads 2
# 5. Score: held-out teacher agreement (other seeds; never Vid4) and Vid4 whole clips; export and bundle.
score_blocks basicvsr-uni-b7-hr16 pruning/recipes/basicvsr_uni_b7_hr16.sh "$CLIPS" "$R/s1/export" "$R/s2/export" \
    "$R/s3/export" "$R/s4/export"
# 6. The cheaper flow (issue #18): SpyNet stopped one level early (3.9x cheaper) costs stage 4's weights 0.24 dB;
#    1,000 steps trained with that flow (the student runs its own flow, not the cached one) bring it back to
#    25.79 (-0.01): 25 min alone (1.5 s/step). Bundled since 2026-12-05 23:50 UTC; 1.17x faster in int8.
[[ -f $R/s6/model.pth ]] || python -m pruning.blocks --cache "$REAL" "$CACHE" --keep 7 --init "$R/s4/export" \
    --flow-skip 1 --out "$R/s6" --iters 1000 --threads 2
score_blocks basicvsr-uni-b7-hr16 pruning/recipes/basicvsr_uni_b7_hr16.sh "$CLIPS" "$R/s4/export" "$R/s6/export"
# 7. On a CPU with AMX (bf16 autocast, --bf16-cpu; 2026-12-06 05:55-06:33 UTC): the second pool (72 real windows,
#    seed 400; 108 synthetic clips, seed 300; 7.5 min; shared with the bidirectional recipes) beside the first,
#    seen under 16 symmetries after its first pass (--augment), from stage 6's weights (its coarser flow kept) with
#    a fresh cosine schedule fitted to 35 min (--fit-seconds 2100: 5,918 steps, 0.36-0.41 s a step on the 2-core
#    Xeon in bf16). Held-out agreement +0.41 / +0.93 dB, Vid4 25.79 -> 26.03, every clip up.
second_pool
[[ -f $R/s7/model.pth ]] || python -m pruning.blocks --cache "$REAL" "$CACHE" "${REAL}b" "${CACHE}b" --keep 7 \
    --init "$R/s6/export" --out "$R/s7" --iters 8000 --fit-seconds 2100 --augment --bf16-cpu --threads 2
score_blocks basicvsr-uni-b7-hr16 pruning/recipes/basicvsr_uni_b7_hr16.sh "$CLIPS" "$R/s6/export" "$R/s7/export"
