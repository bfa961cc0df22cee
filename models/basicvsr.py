"""BasicVSR (Chan et al., CVPR 2021): bidirectional recurrent x4 video super-resolution, and its forward-only
(unidirectional) sibling for live streams.

Parameter names follow BasicSR's ``BasicVSR`` so that the official checkpoints load with ``strict=True``.
Both networks are written as small per-frame steps (flow, one propagation step, reconstruction) so that the
streaming engine in ``vsrapp`` can drive the recurrence window by window with exactly the same arithmetic as
``forward`` on a whole clip.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .contract import ForwardState, forward_only_step, is_backward
from .spynet import SpyNet
from .warp import flow_warp

SCALE = 4
# Re-exported: the engine and the backends import the forward-only state from here (defined in the contract).
__all__ = ["SCALE", "BasicVSR", "BasicVSRUni", "ForwardState", "Reconstruction", "RecurrentSR", "ResidualBlock",
           "ResidualTrunk", "uni_state_from_bidirectional"]


class ResidualBlock(nn.Module):
    """``x + conv2(relu(conv1(x)))``: 3x3 convs, no normalisation (BasicSR's ``ResidualBlockNoBN``)."""

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ResidualTrunk(nn.Module):
    """conv3x3(in -> num_feat), LeakyReLU(0.1), then ``num_block`` residual blocks (BasicSR's
    ``ConvResidualBlocks``; the LeakyReLU at ``main.1`` has no parameters, the blocks sit at ``main.2``)."""

    def __init__(self, num_in: int, num_feat: int = 64, num_block: int = 30) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(num_in, num_feat, 3, 1, 1),
            nn.LeakyReLU(0.1),
            nn.Sequential(*(ResidualBlock(num_feat) for _ in range(num_block))),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class Reconstruction(nn.Module):
    """Mixin: the x4 upsampler shared by both directions' models.

    Layers live on the model itself (``fusion``, ``upconv1``, ``upconv2``, ``conv_hr``, ``conv_last``) because
    that is where BasicSR's checkpoints put them.
    """

    fusion: nn.Conv2d
    upconv1: nn.Conv2d
    upconv2: nn.Conv2d
    conv_hr: nn.Conv2d
    conv_last: nn.Conv2d

    def _build_upsampler(self, fused_in: int, num_feat: int) -> None:
        self.fusion = nn.Conv2d(fused_in, num_feat, 1, 1, 0)
        self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, 64 * 4, 3, 1, 1)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)

    def upsample(self, lr: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """HR frame from the LR frame ``lr`` (B, 3, h, w) and its propagated features ``feat``."""
        # In place: every activation here overwrites a fresh conv or shuffle output that nothing else holds
        # (autograd saves the activation's output, never a conv's), and at 4x the maps are large enough that
        # a copy per activation costs more than some of the convs.
        def act(x: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(x, 0.1, inplace=True)

        out = act(self.fusion(feat))
        out = act(F.pixel_shuffle(self.upconv1(out), 2))
        out = act(F.pixel_shuffle(self.upconv2(out), 2))
        out = act(self.conv_hr(out))
        out = self.conv_last(out)
        # The network predicts a residual over the bilinearly upsampled input.
        return out + F.interpolate(lr, scale_factor=SCALE, mode="bilinear", align_corners=False)


def _propagate(trunk: nn.Module, lr: torch.Tensor, feat: torch.Tensor | None, flow: torch.Tensor | None,
               num_feat: int) -> torch.Tensor:
    """One recurrent step: align the previous hidden state to ``lr`` with ``flow`` and refine it."""
    if feat is None:
        feat = lr.new_zeros(lr.shape[0], num_feat, *lr.shape[-2:])
    elif flow is not None:
        feat = flow_warp(feat, flow)
    return trunk(torch.cat([lr, feat], dim=1))


class RecurrentSR(Reconstruction):
    """What both directions share: the contract's constants (any frame size, no padding), SpyNet's ``flow``, the
    upsampler, and the choice between the dense layers and a pruned family's ``build`` (the same names, other
    shapes: their ``__init__`` runs this one and allocates no dense layer)."""

    # The model contract (models/contract.py).
    bidirectional: bool
    scale = SCALE
    modulus = 1
    min_size = 1
    spynet: SpyNet

    def __init__(self, num_feat: int = 64, num_block: int = 30, *,
                 build: Callable[[nn.Module], None] | None = None) -> None:
        super().__init__()
        self.num_feat = num_feat
        if build is None:
            self._build_dense(num_feat, num_block)
        else:
            build(self)

    def _build_dense(self, num_feat: int, num_block: int) -> None:
        raise NotImplementedError

    def flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        return self.spynet(ref, supp)


class BasicVSR(RecurrentSR):
    """Bidirectional BasicVSR, x4. ``forward`` takes (B, T, 3, h, w) in [0, 1] and returns (B, T, 3, 4h, 4w).

    Step API (used by the streaming engine, and by ``forward`` itself):

    - ``flow(ref, supp)``: SpyNet flow that warps features of ``supp`` onto ``ref``;
    - ``backward_step(lr_t, feat_next, flow_t_to_next)``; ``forward_step(lr_t, feat_prev, flow_t_to_prev)``;
    - ``reconstruct(lr_t, feat_backward, feat_forward)``.

    ``build``: makes the layers on the new model instead of the dense ones (:class:`RecurrentSR`).
    """

    bidirectional = True

    def _build_dense(self, num_feat: int, num_block: int) -> None:
        self.spynet = SpyNet()
        self.backward_trunk = ResidualTrunk(num_feat + 3, num_feat, num_block)
        self.forward_trunk = ResidualTrunk(num_feat + 3, num_feat, num_block)
        self._build_upsampler(2 * num_feat, num_feat)

    def backward_step(self, lr: torch.Tensor, feat: torch.Tensor | None,
                      flow: torch.Tensor | None = None) -> torch.Tensor:
        return _propagate(self.backward_trunk, lr, feat, flow, self.num_feat)

    def forward_step(self, lr: torch.Tensor, feat: torch.Tensor | None,
                     flow: torch.Tensor | None = None) -> torch.Tensor:
        return _propagate(self.forward_trunk, lr, feat, flow, self.num_feat)

    def reconstruct(self, lr: torch.Tensor, feat_backward: torch.Tensor, feat_forward: torch.Tensor) -> torch.Tensor:
        return self.upsample(lr, torch.cat([feat_backward, feat_forward], dim=1))

    def forward(self, lrs: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = lrs.shape
        pairs_a = lrs[:, :-1].reshape(-1, c, h, w)
        pairs_b = lrs[:, 1:].reshape(-1, c, h, w)
        # flows_to_next[:, i] warps frame i+1's features onto frame i; flows_to_prev[:, i] warps i onto i+1.
        flows_to_next = self.flow(pairs_a, pairs_b).view(b, t - 1, 2, h, w)
        flows_to_prev = self.flow(pairs_b, pairs_a).view(b, t - 1, 2, h, w)

        feats_backward: list[torch.Tensor] = [lrs.new_empty(0)] * t
        feat = None
        for i in range(t - 1, -1, -1):
            flow = flows_to_next[:, i] if i < t - 1 else None
            feat = self.backward_step(lrs[:, i], feat, flow)
            feats_backward[i] = feat

        outputs = []
        feat = None
        for i in range(t):
            flow = flows_to_prev[:, i - 1] if i > 0 else None
            feat = self.forward_step(lrs[:, i], feat, flow)
            outputs.append(self.reconstruct(lrs[:, i], feats_backward[i], feat))
        return torch.stack(outputs, dim=1)


class BasicVSRUni(RecurrentSR):
    """Forward-only BasicVSR for live streams: one frame in, one frame out, latency of one frame.

    The backward branch is gone; ``fusion`` maps the forward features (64 -> 64). Weights can be initialised
    from a bidirectional checkpoint with :func:`uni_state_from_bidirectional` and then fine-tuned.

    ``build``: as :class:`BasicVSR`'s (the pruned forward-only families make their own layers).
    """

    bidirectional = False

    def _build_dense(self, num_feat: int, num_block: int) -> None:
        self.spynet = SpyNet()
        self.forward_trunk = ResidualTrunk(num_feat + 3, num_feat, num_block)
        self._build_upsampler(num_feat, num_feat)

    def forward_step(self, lr: torch.Tensor, feat: torch.Tensor | None,
                     flow: torch.Tensor | None = None) -> torch.Tensor:
        return _propagate(self.forward_trunk, lr, feat, flow, self.num_feat)

    def reconstruct(self, lr: torch.Tensor, feat_forward: torch.Tensor) -> torch.Tensor:
        return self.upsample(lr, feat_forward)

    def step(self, lr: torch.Tensor, state: ForwardState | None) -> tuple[torch.Tensor, ForwardState]:
        """Upscale one new frame ``lr`` (B, 3, h, w) given the state after the previous frame (None at start)."""
        return forward_only_step(self, lr, state)

    def forward(self, lrs: torch.Tensor) -> torch.Tensor:
        state = None
        outputs = []
        for i in range(lrs.shape[1]):
            out, state = self.step(lrs[:, i], state)
            outputs.append(out)
        return torch.stack(outputs, dim=1)


def uni_state_from_bidirectional(state: dict[str, torch.Tensor], num_feat: int = 64) -> dict[str, torch.Tensor]:
    """A starting point for :class:`BasicVSRUni` from a bidirectional state dict: drop the backward trunk and keep
    the half of ``fusion`` that reads forward features (it still needs fine-tuning to make up for the loss)."""
    out = {k: v for k, v in state.items() if not is_backward(k)}
    out["fusion.weight"] = state["fusion.weight"][:, num_feat:].clone()
    return out
