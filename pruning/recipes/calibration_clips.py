"""Write int8 calibration clips from the training data: folders of low-resolution PNG frames.

    python -m pruning.recipes.calibration_clips --data ~/.cache/vsrapp/train --out runs/calib

Each clip is a training sample of :class:`vsrapp_pruning.data.SyntheticClips` (a still under a synthetic camera path,
or a crop of a real licence-clean clip), degraded as in training (MATLAB bicubic x1/4, 8-bit): the input a
model sees, which is what int8 ranges must cover. A seed of its own, so no clip is one of the distillation
cache's; never Vid4. ``vsrapp export MODEL OUT --format openvino --int8 --calibrate runs/calib`` reads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from vsrapp_pruning.data import ClipConfig, SyntheticClips


def write_clips(data: Path, out: Path, clips: int, frames: int, lr_size: int, seed: int) -> None:
    dataset = SyntheticClips(data, ClipConfig(frames=frames, lr_size=lr_size), seed=seed)
    for i in range(clips):
        folder = out / f"clip_{i:03d}"
        if folder.is_dir() and len(list(folder.glob("*.png"))) == frames:
            continue  # resumable
        lr, _ = dataset[i]
        folder.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(lr):
            rgb = (frame.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
            cv2.imwrite(str(folder / f"{t:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path.home() / ".cache/vsrapp/train")
    p.add_argument("--out", type=Path, default=Path("runs/calib"))
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--lr-size", type=int, default=96)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    write_clips(a.data, a.out, a.clips, a.frames, a.lr_size, a.seed)
    print(f"{a.clips} clips of {a.frames} frames ({a.lr_size} px LR) in {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
