#!/usr/bin/env bash
# The bundled `ssl-bi`, end to end from the official weights (docs/MODELS.md, "ssl-bi"): the commands it was
# made with, in order, each resumable (--resume), each skipped when its export exists. The times are what each
# stage took on this project's 2-core CPU, one thread, with other jobs sharing the machine.
# Usage: pruning/recipes/ssl_bi.sh [RUNS=runs/recipe-ssl-bi]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${1:-runs/recipe-ssl-bi}
DATA=${DATA:-$HOME/.cache/vsrapp/train}
export VSRAPP_WEIGHTS=${VSRAPP_WEIGHTS:-../shared/weights}
[[ -f $DATA/manifest.tsv ]] || python -m pruning.prepare_data --out "$DATA"
COMMON=(--teacher basicvsr-vimeo-bi --data "$DATA" --batch 1 --lr-size 32 --threads 1 --resume)
FT=(--tf-weight 0 --spynet-frozen-iters -1 "${COMMON[@]}")
done_() { [[ -f $1/model.safetensors ]]; }

# 1. sparsity learning, 600 it (2,807 s)
done_ "$R/sparsity" || vsrapp prune --method ssl --ratio 0.5 --out "$R/sparsity" --iters 600 --frames 5 --lr 2e-4 \
    --gate-lr 3e-3 --reg-delta 2.8e-4 --reg-interval 1 --reg-ceiling 0.1 --ckpt-every 50 "${COMMON[@]}"
# 2. fine-tuning, 50 it on 5-frame clips (360 s)
done_ "$R/ft50" || vsrapp finetune --model "$R/sparsity" --out "$R/ft50" --iters 50 --frames 5 --lr 2e-4 "${FT[@]}"
# 3. 800 it on 5-frame clips, data seed 1 (2,639 s)
done_ "$R/ft800" || vsrapp finetune --model "$R/ft50" --out "$R/ft800" --iters 800 --seed 1 --frames 5 --lr 2e-4 \
    --ckpt-every 100 "${FT[@]}"
# 4. 1,600 it on 10-frame clips, data seed 2 (4,494 s)
done_ "$R/f10" || vsrapp finetune --model "$R/ft800" --out "$R/f10" --iters 1600 --seed 2 --frames 10 --lr 2e-4 \
    --ckpt-every 100 "${FT[@]}"
# 5. 1,500 it on 15-frame clips from 1e-4, data seed 3 (6,168 s)
done_ "$R/f15" || vsrapp finetune --model "$R/f10" --out "$R/f15" --iters 1500 --seed 3 --frames 15 --lr 1e-4 \
    --ckpt-every 100 "${FT[@]}"
# 6. bundle (fp16 safetensors; byte-reproducible from the same export)
python -m pruning.bundle "$R/f15" --name ssl-bi
