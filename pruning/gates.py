"""Learnable per-filter scales ("gates") on a dense BasicVSR, the handles SSL prunes with.

What is gated (ssl.md §4-§5), per trunk and block j, plus the reconstruction:

- ``main.2.j.conv1``: one scale per output filter (the hidden set M_j) and one per *input* channel (the stream
  channels P_j the block reads);
- ``main.2.j.conv2``: one scale per output filter (the stream channels O_j the block writes);
- ``fusion`` and ``conv_hr``: one scale per output filter;
- ``upconv1`` / ``upconv2``: one scale per group of r**2 = 4 consecutive filters, because PixelShuffle(2)
  turns exactly such a group into one output channel; pruning anything smaller would break the sub-pixel
  layout.

Never gated: SpyNet, each trunk's first conv (``main.0``, which produces the 64-channel stream) and
``conv_last``.

How a gate acts. SSL writes the scales on activations: ``y = g_out * conv(g_in * x) + g_out * b``. A
convolution is linear per input and per output channel (zero padding stays zero when scaled), so that is the
same function as a plain convolution with the folded weight
``W' = g_out[:, None, None, None] * W * g_in[None, :, None, None]`` and bias ``g_out * b``.
:class:`GatedConv2d` computes exactly that: the dense ``forward`` code runs unchanged, the scales get the same
gradients as in the activation form, and with all scales 1 the arithmetic is bit-identical to the dense model
(``W * 1 == W``).

Importance score (the decision the tie problem of ssl.md §6 forces). The official BasicSR weights were trained
without gates, so freshly added scales are all 1 and ranking by |g| would be all ties (the selection would be
argsort order, i.e. arbitrary). We rank by the L1 norm of the *scale-folded* filter instead (see
:func:`vsrapp_pruning.selection.importance_scores`): on fresh gates it is the classic filter-L1 criterion (the one
the paper's figure names), and during/after sparsity learning it shrinks with |g|, so the same criterion
re-picks the units the penalty drove to zero. Warming the scales up would need a training run before pruning
can even start and still leaves near-ties after a short warm-up; the L1 criterion needs none and is
deterministic.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vsrapp_models.basicvsr import BasicVSR, BasicVSRUni, ForwardState
from vsrapp_models.contract import block_conv_names, is_spynet, num_blocks

from .convs import copy_conv_into, require_plain_conv

# Filters per unit before PixelShuffle(2): r**2.
UPSAMPLE_GROUP = 4


class GatedConv2d(nn.Conv2d):
    """A ``nn.Conv2d`` with an output scale per unit of ``group`` consecutive filters and optionally an input
    scale per channel. Parameter names: ``weight``, ``bias`` (as the dense conv, so dense checkpoints map
    1:1), ``out_scale`` [C_out / group] and ``in_scale`` [C_in] (or ``None``)."""

    in_scale: nn.Parameter | None

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int, group: int = 1,
                 in_gate: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, 1, padding)
        if out_channels % group:
            raise ValueError(f"{out_channels} filters do not split into groups of {group}")
        self.group = group
        self.out_scale = nn.Parameter(torch.ones(out_channels // group))
        self.in_scale = nn.Parameter(torch.ones(in_channels)) if in_gate else None

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, group: int = 1, in_gate: bool = False) -> GatedConv2d:
        """A gated copy of ``conv`` (weights copied, scales 1)."""
        require_plain_conv(conv, "gated")
        gated = cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.padding[0], group, in_gate)
        return copy_conv_into(gated, conv)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The plain conv's (weight, bias) that computes the same function as this gated conv."""
        scale = self.out_scale.repeat_interleave(self.group)
        weight = self.weight * scale.view(-1, 1, 1, 1)
        if self.in_scale is not None:
            weight = weight * self.in_scale.view(1, -1, 1, 1)
        return weight, self.bias * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.folded()
        return F.conv2d(x, weight, bias, self.stride, self.padding)


@dataclass(frozen=True)
class Gate:
    """One gate vector. ``name`` is ``<layer>.<side>`` (e.g. ``forward_trunk.main.2.3.conv1.in``) and is also
    the key of the plan's kept-index list; ``group`` is the number of filters one entry stands for."""

    name: str
    layer: str
    side: str  # "out" | "in"
    group: int


def gated_layer_names(bidirectional: bool, num_block: int) -> list[str]:
    """Names (relative to the network) of the gated convs, in registration order."""
    return block_conv_names(bidirectional, num_block) + ["fusion", "upconv1", "upconv2", "conv_hr"]


class GatedModel(nn.Module):
    """Holds a gated deep copy of a dense model in ``self.net`` and forwards the step API to it."""

    def __init__(self, dense: BasicVSR | BasicVSRUni) -> None:
        super().__init__()
        self.net = copy.deepcopy(dense)
        self.num_feat: int = dense.num_feat
        self.num_block: int = num_blocks(dense)
        self.gates: list[Gate] = []
        for name in gated_layer_names(self.bidirectional, self.num_block):
            parent_name, _, child = name.rpartition(".")
            parent = self.net.get_submodule(parent_name) if parent_name else self.net
            group = UPSAMPLE_GROUP if name.startswith("upconv") else 1
            in_gate = name.endswith(".conv1")  # not "upconv1"
            setattr(parent, child, GatedConv2d.from_conv(getattr(parent, child), group, in_gate))
            self.gates.append(Gate(f"{name}.out", name, "out", group))
            if in_gate:
                self.gates.append(Gate(f"{name}.in", name, "in", 1))

    # ----------------------------------------------------------------------------------------- gate handles
    def gated_conv(self, layer: str) -> GatedConv2d:
        conv = self.net.get_submodule(layer)
        assert isinstance(conv, GatedConv2d)
        return conv

    def gate_tensor(self, gate: Gate | str) -> nn.Parameter:
        """The scale vector of ``gate`` (a :class:`Gate` or its name)."""
        if isinstance(gate, str):
            layer, _, side = gate.rpartition(".")
        else:
            layer, side = gate.layer, gate.side
        conv = self.gated_conv(layer)
        param = conv.out_scale if side == "out" else conv.in_scale
        if param is None:
            raise KeyError(f"{layer} has no {side} gate")
        return param

    def named_gates(self) -> dict[str, nn.Parameter]:
        return {g.name: self.gate_tensor(g) for g in self.gates}

    def gate_parameters(self) -> list[nn.Parameter]:
        """All scale vectors (for an optimiser group; SSL trains them with the weights, no weight decay)."""
        return list(self.named_gates().values())

    def weight_parameters(self, include_spynet: bool = True) -> list[nn.Parameter]:
        """Every parameter that is not a gate (SpyNet optionally left out: SSL freezes it during sparsity)."""
        gate_ids = {id(p) for p in self.gate_parameters()}
        return [p for n, p in self.net.named_parameters()
                if id(p) not in gate_ids and (include_spynet or not is_spynet(n))]

    @torch.no_grad()
    def apply_masks(self, pruned: dict[str, torch.Tensor]) -> None:
        """Zero the scales of pruned units (``pruned[name]`` is a bool vector, True = pruned): the *masked*
        model, which computes what the sliced network computes."""
        for name, mask in pruned.items():
            gate = self.gate_tensor(name)
            gate[mask.to(device=gate.device, dtype=torch.bool)] = 0.0

    @torch.no_grad()
    def reset_gates(self, value: float = 1.0) -> None:
        for p in self.gate_parameters():
            p.fill_(value)

    # ------------------------------------------------------------------------------------------- step API
    def flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        return self.net.flow(ref, supp)

    def forward_step(self, lr: torch.Tensor, feat: torch.Tensor | None,
                     flow: torch.Tensor | None = None) -> torch.Tensor:
        return self.net.forward_step(lr, feat, flow)

    def forward(self, lrs: torch.Tensor) -> torch.Tensor:
        return self.net(lrs)


class GatedBasicVSR(GatedModel):
    """Bidirectional BasicVSR with SSL scale gates; same step API as :class:`vsrapp_models.basicvsr.BasicVSR`."""

    bidirectional = True
    scale = BasicVSR.scale

    def __init__(self, dense: BasicVSR) -> None:
        if not dense.bidirectional:
            raise TypeError("GatedBasicVSR wraps a bidirectional BasicVSR; use GatedBasicVSRUni")
        super().__init__(dense)

    def backward_step(self, lr: torch.Tensor, feat: torch.Tensor | None,
                      flow: torch.Tensor | None = None) -> torch.Tensor:
        return self.net.backward_step(lr, feat, flow)

    def reconstruct(self, lr: torch.Tensor, feat_backward: torch.Tensor,
                    feat_forward: torch.Tensor) -> torch.Tensor:
        return self.net.reconstruct(lr, feat_backward, feat_forward)


class GatedBasicVSRUni(GatedModel):
    """Forward-only BasicVSR with SSL scale gates; same step API as :class:`vsrapp_models.basicvsr.BasicVSRUni`."""

    bidirectional = False
    scale = BasicVSRUni.scale

    def __init__(self, dense: BasicVSRUni) -> None:
        if dense.bidirectional:
            raise TypeError("GatedBasicVSRUni wraps a forward-only BasicVSRUni; use GatedBasicVSR")
        super().__init__(dense)

    def reconstruct(self, lr: torch.Tensor, feat_forward: torch.Tensor) -> torch.Tensor:
        return self.net.reconstruct(lr, feat_forward)

    def step(self, lr: torch.Tensor, state: ForwardState | None) -> tuple[torch.Tensor, ForwardState]:
        return self.net.step(lr, state)


def add_gates(dense: BasicVSR | BasicVSRUni) -> GatedBasicVSR | GatedBasicVSRUni:
    """Gated copy of ``dense`` (which is left untouched), all scales 1."""
    return GatedBasicVSR(dense) if dense.bidirectional else GatedBasicVSRUni(dense)
