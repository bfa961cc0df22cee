# Sourced by the block-pruning recipes (basicvsr_b15.sh, basicvsr_b8_hr32.sh): their last stage, in one place.
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
