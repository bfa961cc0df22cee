"""Swapping a plain ``nn.Conv2d`` for a pruning-aware subclass (gated, weight-normalised, N:M) that starts from
the same weights."""

from __future__ import annotations

import torch
from torch import nn


def require_plain_conv(conv: nn.Conv2d, what: str) -> None:
    """The pruning layers assume stride 1, no groups, no dilation and a bias, as every BasicVSR conv has."""
    if conv.stride != (1, 1) or conv.groups != 1 or conv.dilation != (1, 1) or conv.bias is None:
        raise ValueError(f"only stride-1, ungrouped, undilated convs with bias can be {what}")


@torch.no_grad()
def copy_conv_into(new: nn.Conv2d, conv: nn.Conv2d) -> nn.Conv2d:
    """Put ``new`` on ``conv``'s device and dtype and copy its weight and bias; returns ``new``."""
    new.to(device=conv.weight.device, dtype=conv.weight.dtype)
    new.weight.copy_(conv.weight)
    new.bias.copy_(conv.bias)
    return new
