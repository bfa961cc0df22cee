"""Small random-weight networks of the real architectures, random clips and a PSNR, for fast mechanics tests."""

from __future__ import annotations

import time

import numpy as np
import torch

from vsrapp_models.basicvsr import BasicVSR, BasicVSRUni
from vsrapp_models.bicubic import Bicubic


def tiny_net(bidirectional: bool = True, seed: int = 0, num_feat: int = 8, num_block: int = 2):
    torch.manual_seed(seed)
    return (BasicVSR if bidirectional else BasicVSRUni)(num_feat, num_block).eval()


def random_clip(frames: int, seed: int = 1, h: int = 10, w: int = 12) -> torch.Tensor:
    """(1, frames, 3, h, w) in [0, 1], reproducible."""
    return torch.rand(1, frames, 3, h, w, generator=torch.Generator().manual_seed(seed))


def smooth_frames(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    """A pan over a smooth random picture (uint8 RGB frames): real motion, so the flow is not trivial."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, h // 4 + 2, (w + 2 * n) // 4 + 2))).float()
    big = torch.nn.functional.interpolate(coarse, size=(h, w + 2 * n), mode="bicubic", align_corners=False)
    big = (big.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return [np.ascontiguousarray(big[:, 2 * i:2 * i + w]) for i in range(n)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 pictures in dB (inf when equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class SlowBicubic(Bicubic):
    """The stateless bicubic baseline, made ``delay`` seconds slower per frame: long-running tasks for tests
    that must catch a worker mid-segment."""

    def __init__(self, delay: float = 0.1) -> None:
        super().__init__()
        self.delay = delay

    def step(self, lr: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        time.sleep(self.delay)
        return super().step(lr, state)
