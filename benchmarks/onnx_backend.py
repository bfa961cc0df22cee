"""The ONNX Runtime backend against torch, through :class:`vsrapp.Upscaler` (what `vsrapp upscale` runs).

Two things per model, side by side in one run:

- **parity** on a real clip: the first ``--frames`` frames of a Vid4 clip, BI-degraded as `vsrapp eval` does,
  through the engine with both backends (small windows, so windows and look-ahead are exercised); PSNR of the
  ONNX Runtime frames against the torch frames (uint8 RGB, whole frames; inf when identical), and each
  backend's PSNR on Y against the ground truth;
- **speed** at ``--size`` on the bench's synthetic panning clip: network-only ms/frame of the Upscaler (frames
  already decoded; padding and uint8 conversion included, as in ``vsrapp bench``'s network-only figure),
  after a warm-up of two frames, backends interleaved ``--repeats`` times, best kept.

    python benchmarks/onnx_backend.py --models ssl-bi ssl-uni --clip ../shared/data/Vid4/inputs/G/calendar \
        --threads 2 --json benchmarks/results/onnx-backend.json

The export (on the fly, into the cache) happens before any timing and is timed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from backend_speed import best_ms_per_frame  # the same timing loop, side by side in one run

from vsrapp import Upscaler, export, zoo
from vsrapp.bench.run import host_info, parse_size
from vsrapp.engine.synthetic import synthetic_frames
from vsrapp.evaluation import bicubic_degrade, crop_to_multiple, frame_paths, read_rgb, y_psnr


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def parity(name: str, clip: Path, frames: int, threads: int, window: int, lookahead: int) -> dict:
    gts = [crop_to_multiple(read_rgb(p), 4) for p in frame_paths(clip)[:frames]]
    lrs = [bicubic_degrade(g) for g in gts]
    kw = dict(device="cpu", window=window, lookahead=lookahead, threads=threads)
    outs = {b: list(Upscaler(name, backend=b, **kw).upscale_frames(lrs)) for b in ("torch", "onnxruntime")}
    vs_torch = [psnr_rgb(a, b) for a, b in zip(outs["onnxruntime"], outs["torch"])]
    return {
        "clip": clip.name, "frames": len(lrs), "lr_size": list(lrs[0].shape[:2]), "window": window,
        "lookahead": lookahead,
        "onnxruntime_vs_torch_psnr_rgb_min": min(vs_torch),
        "onnxruntime_vs_torch_max_abs_diff": int(max(np.abs(a.astype(int) - b.astype(int)).max()
                                                     for a, b in zip(outs["onnxruntime"], outs["torch"]))),
        "y_psnr_vs_gt": {b: float(np.mean([y_psnr(o, g) for o, g in zip(outs[b], gts)])) for b in outs},
    }


def speed(name: str, size: tuple[int, int], frames: int, threads: int, repeats: int) -> dict:
    clip = list(synthetic_frames(frames, *size))
    ups = {b: Upscaler(name, device="cpu", backend=b, threads=threads) for b in ("torch", "onnxruntime")}
    best = best_ms_per_frame(ups, clip, repeats)
    return {"lr_size": list(size), "frames": frames, "repeats": repeats,
            "ms_per_frame": {b: round(v, 1) for b, v in best.items()},
            "onnxruntime_speedup": round(best["torch"] / best["onnxruntime"], 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["ssl-bi"])
    p.add_argument("--clip", type=Path, help="a Vid4 ground-truth clip folder for the parity check")
    p.add_argument("--frames", type=int, default=10, help="parity frames (default 10)")
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--lookahead", type=int, default=2)
    p.add_argument("--size", default="180x320", help="LR size of the speed run (default 180x320)")
    p.add_argument("--speed-frames", type=int, default=6, help="frames per timed run (default 6; 0 skips speed)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    doc: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(["python", *sys.argv]),
                 "host": host_info(torch.device("cpu")), "models": {}}
    for name in args.models:
        row: dict = {}
        start = time.perf_counter()
        folder = export.cached_export(zoo.get_model(name), name)
        row["export_seconds"] = round(time.perf_counter() - start, 1)
        row["export_folder"] = str(folder)
        if args.clip:
            row["parity"] = parity(name, args.clip, args.frames, args.threads, args.window, args.lookahead)
            print(name, "parity", json.dumps(row["parity"]), flush=True)
        if args.speed_frames:
            row["speed"] = speed(name, parse_size(args.size), args.speed_frames, args.threads, args.repeats)
            print(name, "speed", json.dumps(row["speed"]), flush=True)
        doc["models"][name] = row
    doc["host"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
