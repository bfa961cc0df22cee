"""Long-stream stability of a recurrent model: one clip played forwards and backwards, over and over, as one
long stream through :class:`vsrapp.Upscaler` (what `vsrapp upscale` and live input run), scored frame by frame.

A recurrent model trained on short clips can carry a hidden state that drifts or blows up after tens of
frames; Vid4's clips (34-49 frames) are too short to show it reliably. Playing a clip "ping-pong" makes a
stream of any length whose every frame has ground truth, with real motion that reverses at the ends.

    python benchmarks/stability.py --model ssl-uni --clip ../shared/data/Vid4/inputs/G/calendar --frames 400 \
        --json runs/evals/stability_ssl-uni.json

Each output frame is scored with PSNR on Y (basicsr, as `vsrapp eval`) and compared with bicubic on the same
frame. The summary gives the mean and worst PSNR over the first and the last quarter of the stream (a drift
shows as a gap between them) and the worst frame's margin over bicubic. A frame more than ``--margin`` dB
below bicubic counts as a blow-up, and the exit status is 1 when there is one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from vsrapp import zoo
from vsrapp.engine.upscaler import Upscaler, set_threads
from vsrapp.evaluation import bicubic_degrade, crop_to_multiple, frame_paths, read_rgb, y_psnr


def ping_pong(n: int, length: int) -> Iterator[int]:
    """Frame indices 0, 1, ..., n-1, n-2, ..., 0, 1, ... (no frame repeated at a turn), ``length`` of them."""
    if n < 2:
        raise ValueError("a ping-pong stream needs a clip of at least 2 frames")
    period = 2 * (n - 1)
    for k in range(length):
        i = k % period
        yield i if i < n else period - i


def run(model: str, clip: Path, length: int, threads: int | None = None) -> dict:
    name = zoo.resolve_name(model)
    if not clip.is_dir():
        raise FileNotFoundError(f"{clip} is not a folder of frames")
    gts = [crop_to_multiple(read_rgb(p), 4) for p in frame_paths(clip)]
    lrs = [bicubic_degrade(g) for g in gts]
    set_threads(threads, "cpu")  # an Upscaler no longer sets the process's threads: this script's entry does
    bicubic = Upscaler("bicubic", device="cpu", threads=threads)
    bicubic_psnr = [y_psnr(out, gt) for out, gt in zip(bicubic.upscale_frames(lrs), gts)]
    order = list(ping_pong(len(gts), length))
    upscaler = Upscaler(name, device="cpu", threads=threads)
    started = time.perf_counter()
    psnr = [y_psnr(out, gts[i]) for out, i in zip(upscaler.upscale_frames(lrs[i] for i in order), order)]
    margin = [p - bicubic_psnr[i] for p, i in zip(psnr, order)]
    quarter = max(1, length // 4)
    worst = int(np.argmin(margin))
    return {
        "model": name, "clip": clip.name, "clip_frames": len(gts), "stream_frames": length,
        "bidirectional": upscaler.bidirectional, "window": upscaler.window, "lookahead": upscaler.lookahead,
        "first_quarter": {"mean": round(float(np.mean(psnr[:quarter])), 3), "min": round(min(psnr[:quarter]), 3)},
        "last_quarter": {"mean": round(float(np.mean(psnr[-quarter:])), 3), "min": round(min(psnr[-quarter:]), 3)},
        "worst_margin_over_bicubic": {"frame": worst, "clip_frame": order[worst], "db": round(margin[worst], 3)},
        "psnr_y_per_frame": [round(p, 3) for p in psnr], "clip_frame_order": order,
        "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="zoo name or pruned-model folder")
    ap.add_argument("--clip", type=Path, required=True, help="folder of ground-truth frames (PNG)")
    ap.add_argument("--frames", type=int, default=400, help="length of the stream (default 400)")
    ap.add_argument("--margin", type=float, default=3.0,
                    help="a frame this many dB below bicubic counts as a blow-up (default 3)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        result = run(args.model, args.clip, args.frames, args.threads)
    except (OSError, ValueError, KeyError) as exc:
        print(f"stability: error: {exc}", file=sys.stderr)
        return 2
    worst = result["worst_margin_over_bicubic"]
    print(f"{result['model']} on {result['clip']} played ping-pong for {args.frames} frames: "
          f"first quarter {result['first_quarter']['mean']:.2f} dB (min {result['first_quarter']['min']:.2f}), "
          f"last quarter {result['last_quarter']['mean']:.2f} dB (min {result['last_quarter']['min']:.2f}); "
          f"worst margin over bicubic {worst['db']:+.2f} dB at stream frame {worst['frame']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 1 if worst["db"] < -args.margin else 0


if __name__ == "__main__":
    sys.exit(main())
