# Sourced by the block-pruning recipes (basicvsr_b15.sh, basicvsr_b8_hr32.sh, basicvsr_uni_b7_hr16.sh): the stages
# they share, in one place.
#
# teacher_caches: the training data by package name (1 min and 20 s) and the teacher's pass over it, cached once:
# $REAL (72 real-motion windows, 4 min) and $CACHE (108 synthetic clips, 6 min), 10 frames of 64x64 LR each.
# Reads DATA, CLIPS, CACHE, REAL (set by the recipe, or these defaults).
teacher_caches() {
    DATA=${DATA:-$HOME/.cache/vsrapp/train}
    CLIPS=${CLIPS:-$HOME/.cache/vsrapp/train-clips}
    CACHE=${CACHE:-runs/cache64}
    REAL=${REAL:-runs/cache-real64}
    [[ -f $DATA/manifest.tsv ]] || python -m pruning.prepare_data --out "$DATA"
    [[ -d $CLIPS/clips ]] || python -m pruning.prepare_data --clips-only --out "$CLIPS"
    python -m pruning.distill cache --data "$CLIPS" --out "$REAL" --clips 72 --frames 10 --lr-size 64 --seed 200 \
        --real-prob 1 --threads 2
    python -m pruning.distill cache --out "$CACHE" --clips 108 --frames 10 --lr-size 64 --seed 100 --threads 2
}

# second_pool: a second pool of the same size as teacher_caches' beside it, from other seeds (72 real-motion windows,
# seed 400, in ${REAL}b; 108 synthetic clips, seed 300, in ${CACHE}b; 7.5 min on the AMX Xeon): the bf16 stretches
# of 2026-12-06 train on both. Call after teacher_caches (or with CLIPS, REAL and CACHE set).
second_pool() {
    python -m pruning.distill cache --data "$CLIPS" --out "${REAL}b" --clips 72 --frames 10 --lr-size 64 --seed 400 \
        --real-prob 1 --threads 2
    python -m pruning.distill cache --out "${CACHE}b" --clips 108 --frames 10 --lr-size 64 --seed 300 --threads 2
}

# score_blocks NAME SCRIPT CLIPS MODEL...: held-out teacher agreement of every MODEL (a stage's model.pth or export
# folder) on synthetic and real windows of other seeds than training (never Vid4), then the last MODEL's run
# exported with SCRIPT recorded in its meta.json, scored on Vid4 whole clips (about 2-4 min) and named for
# `python -m pruning.bundle`. CLIPS: the real-motion clip folder of `prepare_data --clips-only`.
score_blocks() {
    local name=$1 script=$2 clips=$3
    shift 3
    local run
    run=$(dirname "${@: -1}")
    python -m pruning.distill cache --out runs/cache-val --clips 8 --frames 10 --lr-size 64 --seed 777 --threads 2
    python -m pruning.distill cache --data "$clips" --out runs/cache-real-val --clips 8 --frames 10 --lr-size 64 \
        --seed 888 --real-prob 1 --threads 2
    for val in runs/cache-val runs/cache-real-val; do
        python -m pruning.distill agree --cache "$val" "$@" --threads 2
    done
    python -m pruning.blocks export "$run" --script "$script"
    vsrapp eval --model "$run/export" --data ../shared/data/Vid4/inputs/G --threads 2 --json "$run/vid4.json"
    echo "bundle with: python -m pruning.bundle $run/export --name $name"
}
