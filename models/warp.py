"""Backward warping of a feature map by a dense optical-flow field."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pixel_grid(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates as an (1, h, w, 2) tensor holding (x, y) per location."""
    ys = torch.arange(h, device=like.device, dtype=like.dtype)
    xs = torch.arange(w, device=like.device, dtype=like.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1).unsqueeze(0)


def flow_warp(
    feat: torch.Tensor,
    flow: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Sample ``feat`` (B, C, H, W) at ``p + flow(p)`` for every pixel ``p``.

    ``flow`` is (B, 2, H, W) in pixels, channel 0 horizontal and channel 1 vertical. Coordinates are mapped to
    grid_sample's [-1, 1] range with ``align_corners=True`` (pixel centres at the ends), which is the convention
    the official BasicVSR/SpyNet weights were trained with.
    """
    _, _, h, w = feat.shape
    if flow.shape[-2:] != (h, w):
        raise ValueError(f"flow is {tuple(flow.shape[-2:])} but features are {(h, w)}")
    # Coordinates in float32 whatever the compute dtype: fp16 cannot tell x = 1000 from 1000.4.
    flow = flow.float()
    coords = _pixel_grid(h, w, flow) + flow.permute(0, 2, 3, 1)
    # Normalise to [-1, 1]; max(.., 1) keeps a 1-pixel-wide map finite.
    grid_x = 2.0 * coords[..., 0] / max(w - 1, 1) - 1.0
    grid_y = 2.0 * coords[..., 1] / max(h - 1, 1) - 1.0
    grid = torch.stack((grid_x, grid_y), dim=-1)
    out = F.grid_sample(feat.float(), grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    return out.to(feat.dtype)
