#!/usr/bin/env bash
# Teacher-anchored recovery of a bundled pruned model on one GPU, in calls of a few minutes that resume each
# other (docs/MODELS.md, "The GPU recipe"). The CPU recipe's loss (teacher output; the TF term cost 0.05 dB at
# equal budget on the CPU) and EMA of the weights, at SSL's batch shape: batch 8 x 14-frame clips x 64x64 LR
# crops, bf16 autocast, the teacher run live on fresh synthetic clips (on a GPU its pass is cheap: no cache).
#
# Here, once:   pruning/recipes/gpu_distill.sh prepare            -> .gpu/ (fp16 teacher, stills, real clips)
# On the GPU:   pruning/recipes/gpu_distill.sh train [MODEL]      (device run, carry .gpu; results under $OUT)
# Here, after:  pruning/recipes/gpu_distill.sh collect DIR        (DIR = the returned files: state for next call)
# Tiny CPU check of the whole cycle: TINY=1 pruning/recipes/gpu_distill.sh train   (a few seconds per stage)
# One call that is all there is (a lent GPU's 15 minutes): FIT_SECONDS=280 ... train MODEL fits the schedule
# (warm-up, cosine, EMA, export) to 280 s of training, timed on its first steps, and returns the finished model.
# What travels: the repository (about 45 MB) + .gpu (about 20 MB) must stay under 64 MiB, hence the small stills.
set -euo pipefail
cd "$(dirname "$0")/../.."
STAGE=${1:-train}
MODEL=${2:-ssl-bi}
GPU=${GPU_DIR:-.gpu}
OUT=${OUT:-$GPU/out}
SECONDS_BUDGET=${SECONDS_BUDGET:-420}   # training time per call: 7 of the 9 minutes (start-up, export, copy)
ITERS=${ITERS:-6000}                    # the whole schedule (cosine), over as many calls as it takes
REAL_PROB=${REAL_PROB:-0.5}             # share of samples from the real clips (docs/RESULTS.md, real-motion pool)
STILL_SIDE=${STILL_SIDE:-416}           # long side of the travelling stills: the tree (45 MB) + .gpu < 64 MiB
CLIP_FRAMES=${CLIP_FRAMES:-150}        # frames kept of each real clip
CLIP_CRF=${CLIP_CRF:-20}                # their H.264 quality (x264 CRF)
export STILL_SIDE CLIP_FRAMES CLIP_CRF  # the one place of these defaults: prepare's Python reads them from here

case $STAGE in
prepare)
    rm -rf $GPU/train && mkdir -p $GPU/train/stills $GPU/state
    # The teacher in fp16 (half the bytes; it runs under bf16 autocast there anyway).
    python -c "
import sys, torch
from vsrapp.zoo import load_basicsr_state
state = load_basicsr_state(sys.argv[1])
torch.save({'params': {k: v.half() for k, v in state.items()}}, sys.argv[2])
" "${VSRAPP_WEIGHTS:-../shared/weights}/BasicVSR_Vimeo90K_BIx4.pth" $GPU/teacher-fp16.pth
    # The training stills, re-encoded as quality-92 JPEG so that everything travels in 64 MiB with the
    # checkpoint of the next call: a long side of 416 px still leaves room for 256 px GT crops and camera paths.
    python - <<'PY'
import cv2, os, pathlib
from pruning.data import list_stills
from pruning.prepare_data import DEFAULT_OUT
out = pathlib.Path(os.environ.get("GPU_DIR", ".gpu")) / "train" / "stills"
for i, p in enumerate(list_stills(DEFAULT_OUT)):
    img = cv2.imread(str(p))
    s = int(os.environ["STILL_SIDE"]) / max(img.shape[:2])
    if s < 1:
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out / f"{i:03d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
PY
    # The real-motion clips (python -m pruning.prepare_data --clips-only), at most CLIP_FRAMES frames each, as
    # H.264 (CRF CLIP_CRF): a fraction of the same frames as JPEG, so four clips travel in 2.4 MB. The train
    # stage decodes them there with OpenCV (PyAV is not on the device). The live teacher needs no ground
    # truth, only real motion.
    CLIPS=${CLIPS:-$HOME/.cache/vsrapp/train-clips}
    [[ -d $CLIPS/clips ]] || python -m pruning.prepare_data --clips-only --out "$CLIPS"
    CLIPS=$CLIPS python - <<'PY'
import av, cv2, os, pathlib
from pruning.data import list_clips
src = pathlib.Path(os.environ["CLIPS"])
out = pathlib.Path(os.environ.get("GPU_DIR", ".gpu")) / "train" / "clip-videos"
out.mkdir(parents=True, exist_ok=True)
for clip in list_clips(src):
    frames = [cv2.imread(str(f))[:, :, ::-1] for f in clip[:int(os.environ["CLIP_FRAMES"])]]
    h, w = (d // 2 * 2 for d in frames[0].shape[:2])  # 4:2:0 wants even sides
    with av.open(str(out / f"{clip[0].parent.name}.mp4"), "w") as container:
        options = {"crf": os.environ["CLIP_CRF"], "preset": "slow"}
        stream = container.add_stream("libx264", rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb[:h, :w].copy(), format="rgb24")))
        container.mux(stream.encode())
PY
    # A device call carries the working tree and .gpu together, at most 64 MiB.
    TREE=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb | tail -1 | cut -f1)
    CARRY=$(du -sb $GPU | cut -f1)
    echo "travels: the tree $((TREE / 1000000)) MB + $GPU $((CARRY / 1000000)) MB of $((64 * 1048576 / 1000000)) MB"
    if (( TREE + CARRY >= 64 * 1048576 )); then
        echo "too large to travel: lower STILL_SIDE or CLIP_FRAMES, or raise CLIP_CRF" >&2
        exit 1
    fi
    ;;
train)
    source benchmarks/checkout_path.sh
    PYTHONPATH=$(checkout_pythonpath)
    export PYTHONPATH PYTHONUNBUFFERED=1
    RUN=${RUN_DIR:-/tmp/gpu_distill}
    mkdir -p $RUN/checkpoints "$OUT"
    RESUME=""
    if [[ -f $GPU/state/last.pt ]]; then
        cp $GPU/state/last.pt $RUN/checkpoints/last.pt
        cp $GPU/state/train.log $RUN/ 2>/dev/null || true
        RESUME=--resume
    fi
    # The training data of this call, outside .gpu (which must stay small enough to travel): the stills, and the
    # real clips, which travel as H.264, decoded into the folders of frames the data loader reads.
    DATA=$RUN/data
    rm -rf "$DATA" && mkdir -p "$DATA" && cp -r $GPU/train/stills "$DATA"/
    DATA=$DATA python3 - <<'PY'
import cv2, os, pathlib
root = pathlib.Path(os.environ.get("GPU_DIR", ".gpu")) / "train"
data = pathlib.Path(os.environ["DATA"])
for video in sorted((root / "clip-videos").glob("*.mp4")):
    dest = data / "clips" / video.stem
    dest.mkdir(parents=True)
    capture, i = cv2.VideoCapture(str(video)), 0
    while (frame := capture.read()[1]) is not None:
        cv2.imwrite(str(dest / f"{i:05d}.png"), frame, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        i += 1
    print(f"{video.name}: {i} frames")
PY
    SRC=vsrapp/weights/$MODEL
    [[ -d $MODEL ]] && SRC=$MODEL
    if [[ ${TINY:-0} == 1 ]]; then  # CPU check: a tiny schedule on the bundled model
        SHAPE="--batch 1 --frames 3 --lr-size 16 --threads 2"; ITERS=${TINY_ITERS:-4}; SECONDS_BUDGET=${TINY_SECONDS:-600}
    else
        SHAPE="--batch 8 --frames 14 --lr-size 64 --workers 12"
    fi
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/device.txt" || true
    FIT=""
    [[ -n ${FIT_SECONDS:-} ]] && FIT="--fit-seconds $FIT_SECONDS" && SECONDS_BUDGET=$((FIT_SECONDS + 60))
    python3 -m pruning.commands finetune --model "$SRC" --live-teacher --teacher $GPU/teacher-fp16.pth \
        --data "$DATA" --out $RUN $SHAPE --iters "$ITERS" --lr 1e-4 --warmup 200 --ema 0.999 \
        --real-prob "$REAL_PROB" \
        --kd-weight 1 --tf-weight 0 --ckpt-every 200 --log-every 20 --seed 7 \
        --max-seconds "$SECONDS_BUDGET" $FIT $RESUME 2>&1 | grep -v "^USDT" || true
    # One archive, split below the size of one returned file (at most 8 files come back): the export and log
    # when the schedule finished, with the checkpoint (weights, Adam state, EMA) when it did not.
    KEEP=(train.log)
    for f in model.safetensors plan.json meta.json; do [[ -f $RUN/$f ]] && KEEP+=($f); done
    [[ -f $RUN/model.safetensors ]] || KEEP+=(checkpoints/last.pt)
    cp "$OUT/device.txt" $RUN/ && KEEP+=(device.txt)
    tar -C $RUN -cf - "${KEEP[@]}" | split -b 15M -d - "$OUT/distill.tar.part-"
    rm -f "$OUT/device.txt"
    ls -la "$OUT"
    ;;
collect)
    DIR=${2:?the folder the device run returned}
    UNPACK=$(mktemp -d)
    cat "$DIR"/distill.tar.part-* | tar -C "$UNPACK" -xf -
    mkdir -p $GPU/state
    rm -f $GPU/state/last.pt
    cp "$UNPACK"/train.log $GPU/state/
    if [[ -f $UNPACK/model.safetensors ]]; then
        DEST=${COLLECT_TO:-runs/gpu-distill}
        mkdir -p "$DEST" && cp "$UNPACK"/{model.safetensors,plan.json,meta.json,train.log,device.txt} "$DEST"/
        echo "schedule finished: the distilled model is in $DEST (score it with vsrapp eval)"
    else
        cp "$UNPACK"/checkpoints/last.pt $GPU/state/
        echo "state kept in $GPU/state: run the train stage again"
    fi
    rm -rf "$UNPACK"
    ;;
*) echo "usage: $0 prepare|train|collect ..." >&2; exit 2 ;;
esac
