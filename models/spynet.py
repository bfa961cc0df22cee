"""SpyNet: coarse-to-fine optical flow (Ranjan & Black, CVPR 2017), laid out as BasicSR's ``SpyNet``.

Parameter names follow BasicSR (``basic_module.{level}.basic_module.{0,2,4,6,8}``, ``mean``, ``std``) so the
``spynet.*`` part of the official BasicVSR checkpoints loads unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .warp import flow_warp

NUM_LEVELS = 6
# The pyramid halves the image five times, so the network works on sizes that are multiples of 2**5.
MODULUS = 32


class FlowEstimator(nn.Module):
    """One pyramid level: five 7x7 convs mapping [ref, warped supp, flow] (8 ch) to a flow residual (2 ch)."""

    def __init__(self) -> None:
        super().__init__()
        widths = [8, 32, 64, 32, 16, 2]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=7, padding=3))
            if i < len(widths) - 2:
                layers.append(nn.ReLU(inplace=False))
        self.basic_module = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basic_module(x)


class SpyNet(nn.Module):
    """Flow from ``ref`` to ``supp``: ``warp(supp, flow)`` approximates ``ref``. Inputs are RGB in [0, 1].

    ``skip_finest`` (0 by default, the network as trained) stops the coarse-to-fine refinement that many levels
    early and upsamples the flow from there: each level has four times the pixels of the one below it, so
    skipping the finest one leaves about a quarter of the flow's cost (issue #18, the cheaper flow)."""

    def __init__(self, skip_finest: int = 0) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList(FlowEstimator() for _ in range(NUM_LEVELS))
        self.skip_finest = skip_finest  # not a weight: a setting, so checkpoints load either way
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _pyramid(self, img: torch.Tensor) -> list[torch.Tensor]:
        """ImageNet-normalised image and its 2x average-pooled copies, coarsest first."""
        levels = [(img - self.mean) / self.std]
        for _ in range(NUM_LEVELS - 1):
            levels.append(F.avg_pool2d(levels[-1], kernel_size=2, stride=2, count_include_pad=False))
        return levels[::-1]

    def _flow_at_multiple_of_32(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        ref_pyr, supp_pyr = self._pyramid(ref), self._pyramid(supp)
        levels = NUM_LEVELS - self.skip_finest
        if not 1 <= levels <= NUM_LEVELS:
            raise ValueError(f"skip_finest={self.skip_finest}: SpyNet has {NUM_LEVELS} levels")
        flow = None
        for estimator, ref_l, supp_l in zip(self.basic_module[:levels], ref_pyr[:levels], supp_pyr[:levels]):
            if flow is None:
                # The coarsest level starts from zero flow (also when that level is a single pixel).
                up = ref_l.new_zeros(ref_l.shape[0], 2, *ref_l.shape[2:])
            else:
                # Upsample the coarser estimate; flow is in pixels, so it doubles with the resolution.
                up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
                # Odd sizes at a level leave the upsampled flow one pixel short: repeat the edge.
                pad_w, pad_h = ref_l.shape[3] - up.shape[3], ref_l.shape[2] - up.shape[2]
                if pad_w or pad_h:
                    up = F.pad(up, [0, pad_w, 0, pad_h], mode="replicate")
            warped = flow_warp(supp_l, up, padding_mode="border")
            flow = estimator(torch.cat([ref_l, warped, up], dim=1)) + up
        if levels < NUM_LEVELS:  # from the last level refined to the full size; flow is in pixels: scaled too
            factor = 2 ** (NUM_LEVELS - levels)
            flow = F.interpolate(flow, size=ref.shape[-2:], mode="bilinear", align_corners=True) * float(factor)
        return flow

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        if ref.shape != supp.shape:
            raise ValueError(f"ref {tuple(ref.shape)} and supp {tuple(supp.shape)} differ in shape")
        h, w = ref.shape[-2:]
        # Resize (not pad) to the next multiple of 32, as the network was trained, then scale the flow back.
        # Rounded up with (n + 31) // 32, not -(-n // 32): when the ONNX export traces this, sizes are int64
        # tensors and ONNX's integer Div truncates towards zero, so the negative form would round down there.
        h32, w32 = (h + MODULUS - 1) // MODULUS * MODULUS, (w + MODULUS - 1) // MODULUS * MODULUS
        ref32 = F.interpolate(ref, size=(h32, w32), mode="bilinear", align_corners=False)
        supp32 = F.interpolate(supp, size=(h32, w32), mode="bilinear", align_corners=False)
        flow = F.interpolate(self._flow_at_multiple_of_32(ref32, supp32), size=(h, w), mode="bilinear",
                             align_corners=False)
        # Python floats, not a tensor: no host-to-device copy per call (which would also break CUDA graphs).
        return torch.cat([flow[:, :1] * (w / w32), flow[:, 1:] * (h / h32)], dim=1)


def flow_levels_skipped(arch: dict[str, Any]) -> int:
    """The SpyNet levels the network of an export plan's ``arch`` skips (``arch["skip_finest"]``, 0 when absent:
    the flow as trained), checked."""
    skip = arch.get("skip_finest", 0)
    if not isinstance(skip, int) or not 0 <= skip < NUM_LEVELS:
        raise ValueError(f"plan arch skip_finest must be an int in [0, {NUM_LEVELS}), got {skip!r}")
    return skip
