#!/usr/bin/env bash
# The GPU measurement recorded in docs/BENCHMARKS.md, in one call on a lent CUDA machine (repo root):
#   carry .whl (the PyAV wheel for its Python); results and log under $OUT (or ./gpu-out). The pruned models are the
#   bundled ones (in the repository, so nothing else travels); PRUNED="..." measures others.
# Stage 1: every model at 180x320 and 540x960 (model-only, network-only, end to end, profile, variants);
# stage 2 (STAGE=2): the torch.compile variants, which take minutes to compile;
# STAGE=quick: model-only timings of every bundled model at both sizes in the fastest variants, in about two
# minutes and without PyAV (when the PyAV wheel cannot travel: the repository and .gpu fill the 64 MiB).
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
source benchmarks/checkout_path.sh
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$(checkout_pythonpath)
else
  export PYTHONPATH=$(checkout_pythonpath)
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv | tee "$OUT/nvidia-smi.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
python3 -c "import av; print('av', av.__version__, 'nvenc', 'h264_nvenc' in av.codecs_available)" 2>&1 | tail -1
PRUNED=${PRUNED:-ssl-bi basicvsr-b15 basicvsr-b8-hr32 ssl-uni basicvsr-uni-b7-hr16}
MODELS="basicvsr-vimeo-bi $PRUNED bicubic"
ENC=${ENC:-"--preset veryfast"}
if [ "${STAGE:-1}" = quick ]; then
  python3 -m vsrapp.bench --device cuda --random-weights --models basicvsr-vimeo-bi $PRUNED --size 180x320 540x960 \
    --frames 16 --no-e2e --gpu-opts fp16-cl bf16-cl fp16-cl-graphs --opts-frames 16 \
    --json "$OUT/gpu-quick.json" 2>&1 | grep --line-buffered -v "^USDT" | tee "$OUT/gpu-quick.log"
elif [ "${STAGE:-1}" = 1 ]; then
  python3 -m pytest -q -p no:cacheprovider tests/test_bench.py 2>&1 | tail -3
  python3 -m vsrapp.bench --device cuda --random-weights --models $MODELS --size 180x320 540x960 --frames 32 \
    --profile $ENC --gpu-opts fp32 fp32-cl fp16-autocast fp16-autocast-cl fp16-cl bf16-cl fp16-cl-graphs \
    --opts-frames 16 --json "$OUT/gpu-stage1.json" 2>&1 | grep --line-buffered -v "^USDT\|^ERROR:.*gpuGetDeviceCount" | tee "$OUT/gpu-stage1.log"
else
  python3 -m vsrapp.bench --device cuda --random-weights --models basicvsr-vimeo-bi $PRUNED --size 180x320 540x960 \
    --frames 16 --no-e2e --gpu-opts fp16-cl fp16-cl-graphs fp16-cl-compile fp16-cl-compile-graphs --opts-frames 16 \
    --json "$OUT/gpu-stage2.json" 2>&1 | grep --line-buffered -v "^USDT" | tee "$OUT/gpu-stage2.log"
fi
