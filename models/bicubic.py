"""MATLAB-compatible bicubic x4 upscaling as a (parameter-free) network: the baseline every VSR model must beat.

MATLAB's ``imresize`` uses the Keys cubic kernel with a = -0.5 and mirrors the image at its borders (the edge
pixel repeated: ``x[1], x[0] | x[0], x[1], ...``). When enlarging by an integer factor no antialiasing applies,
so each of the ``scale`` output phases is a fixed 4-tap filter, applied separably. This matches
``basicsr.utils.matlab_functions.imresize(img, 4)`` to float rounding (tested).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _keys_cubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def _phase_taps(scale: int) -> torch.Tensor:
    """(scale, 4) filter taps; output pixel ``scale*k + j`` reads input pixels ``k-2 .. k+1`` shifted by one
    for phases right of the pixel centre (see ``_upsample_axis``)."""
    taps = []
    for j in range(scale):
        centre = (j + 0.5) / scale - 0.5  # position of the output pixel in input coordinates, relative to k
        left = math.floor(centre) - 1  # first of the four input pixels it reads, relative to k
        weights = [_keys_cubic(centre - (left + i)) for i in range(4)]
        total = sum(weights)
        taps.append([w / total for w in weights])
    return torch.tensor(taps, dtype=torch.float64)


def _symmetric_pad(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Mirror ``pad`` samples at both ends of ``dim``, repeating the edge sample (MATLAB's 'symmetric')."""
    n = x.shape[dim]
    idx = list(range(pad - 1, -1, -1)) + list(range(n)) + list(range(n - 1, n - 1 - pad, -1))
    idx = [min(max(i, 0), n - 1) for i in idx]  # inputs narrower than the pad clamp, like MATLAB does
    return x.index_select(dim, torch.tensor(idx, device=x.device))


class Bicubic(nn.Module):
    """x4 bicubic upscaling of (B, T, 3, h, w) or (B, 3, h, w) tensors in [0, 1]; stateless."""

    # The model contract (models/contract.py): a ForwardOnlyModel without a network, any frame size.
    bidirectional = False
    modulus = 1
    min_size = 1

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.register_buffer("taps", _phase_taps(scale).float(), persistent=False)
        # Phases left of the pixel centre start their four taps one input pixel earlier.
        self.starts = [math.floor((j + 0.5) / scale - 0.5) - 1 for j in range(scale)]

    def _upsample_axis(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        pad = 2
        padded = _symmetric_pad(x, pad, dim)
        n = x.shape[dim]
        phases = []
        for j in range(self.scale):
            start = self.starts[j] + pad
            out = sum(self.taps[j, i].to(x.dtype) * padded.narrow(dim, start + i, n) for i in range(4))
            phases.append(out)
        # Interleave the phases: output index scale*k + j comes from phase j at k.
        stacked = torch.stack(phases, dim=dim + 1)
        shape = list(x.shape)
        shape[dim] = n * self.scale
        return stacked.reshape(shape)

    def upscale(self, img: torch.Tensor) -> torch.Tensor:
        return self._upsample_axis(self._upsample_axis(img, img.dim() - 2), img.dim() - 1)

    def forward(self, lrs: torch.Tensor) -> torch.Tensor:
        return self.upscale(lrs)

    def step(self, lr: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        return self.upscale(lr), None

