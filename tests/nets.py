"""Small random-weight networks of the real architectures, and random clips, for fast mechanics tests."""

from __future__ import annotations

import time

import torch

from models.basicvsr import BasicVSR, BasicVSRUni
from models.bicubic import Bicubic


def tiny_net(bidirectional: bool = True, seed: int = 0, num_feat: int = 8, num_block: int = 2):
    torch.manual_seed(seed)
    return (BasicVSR if bidirectional else BasicVSRUni)(num_feat, num_block).eval()


def random_clip(frames: int, seed: int = 1, h: int = 10, w: int = 12) -> torch.Tensor:
    """(1, frames, 3, h, w) in [0, 1], reproducible."""
    return torch.rand(1, frames, 3, h, w, generator=torch.Generator().manual_seed(seed))


class SlowBicubic(Bicubic):
    """The stateless bicubic baseline, made ``delay`` seconds slower per frame: long-running tasks for tests
    that must catch a worker mid-segment."""

    def __init__(self, delay: float = 0.1) -> None:
        super().__init__()
        self.delay = delay

    def step(self, lr: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        time.sleep(self.delay)
        return super().step(lr, state)
