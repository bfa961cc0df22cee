#!/usr/bin/env bash
# The bundled `ssl-uni`, end to end from the official weights (docs/MODELS.md, "ssl-uni"), as ssl_bi.sh.
# Usage: pruning/recipes/ssl_uni.sh [RUNS=runs/recipe-ssl-uni]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${1:-runs/recipe-ssl-uni}
DATA=${DATA:-$HOME/.cache/vsrapp/train}
export VSRAPP_WEIGHTS=${VSRAPP_WEIGHTS:-../shared/weights}
[[ -f $DATA/manifest.tsv ]] || python -m pruning.prepare_data --out "$DATA"
COMMON=(--teacher basicvsr-vimeo-bi --data "$DATA" --batch 1 --threads 1 --resume)
FT=(--tf-weight 0 --spynet-frozen-iters -1 --ckpt-every 100 "${COMMON[@]}")
done_() { [[ -f $1/model.safetensors ]]; }

# 1. sparsity learning on the forward-only model initialised from the teacher's forward half, 600 it (1,345 s)
done_ "$R/sparsity" || vsrapp prune --method ssl --arch uni --ratio 0.6 --out "$R/sparsity" --iters 600 --frames 5 \
    --lr-size 32 --lr 2e-4 --gate-lr 3e-3 --reg-delta 2.8e-4 --reg-interval 1 --reg-ceiling 0.1 --ckpt-every 50 \
    "${COMMON[@]}"
# 2. 50 it, 5-frame clips
done_ "$R/ft50" || vsrapp finetune --model "$R/sparsity" --out "$R/ft50" --iters 50 --frames 5 --lr-size 32 \
    --lr 2e-4 "${FT[@]}"
# 3. 1,000 it, 5-frame clips, data seed 1 (1,426 s)
done_ "$R/ft1000" || vsrapp finetune --model "$R/ft50" --out "$R/ft1000" --iters 1000 --seed 1 --frames 5 \
    --lr-size 32 --lr 2e-4 "${FT[@]}"
# 4. 1,000 it, 10-frame clips, data seed 2 (1,375 s)
done_ "$R/f10" || vsrapp finetune --model "$R/ft1000" --out "$R/f10" --iters 1000 --seed 2 --frames 10 \
    --lr-size 32 --lr 2e-4 "${FT[@]}"
# 5. 600 it, 10-frame clips of 48x48 LR, from 1e-4, data seed 3 (1,563 s)
done_ "$R/f10-48" || vsrapp finetune --model "$R/f10" --out "$R/f10-48" --iters 600 --seed 3 --frames 10 \
    --lr-size 48 --lr 1e-4 "${FT[@]}"
# 6. 900 it, 15-frame clips of 32x32 LR, from 1e-4, data seed 3 (1,664 s)
done_ "$R/f15" || vsrapp finetune --model "$R/f10-48" --out "$R/f15" --iters 900 --seed 3 --frames 15 \
    --lr-size 32 --lr 1e-4 "${FT[@]}"
# 7. bundle
python -m pruning.bundle "$R/f15" --name ssl-uni
