"""The model contract: what the engine (``vsrapp.engine.recurrence``, ``vsrapp.engine.upscaler``), the exporters
(``vsrapp.export``) and the backends (``vsrapp.engine.backends.GraphModel``) rely on a model for, written once.

Every model the engine runs is a :class:`SuperResolver`:

- ``scale`` (int): the output is ``scale`` times the input in both directions (4 for the BasicVSR family);
- ``bidirectional`` (bool): True if the model needs future frames (windows with look-ahead,
  :class:`BidirectionalNetwork`), False if it upscales one frame at a time (:class:`ForwardOnlyModel`);
- ``modulus`` (int): frames are padded to a multiple of this before they reach the model (1: any size; an
  exported graph needs a fixed multiple), read as ``pad_multiple`` in export manifests;
- ``min_size`` (int): the smallest height/width the model takes (after padding).

A *network* (:class:`RecurrentNetwork`; every family in ``models/``, and exported graphs) also has the
per-frame steps the engine schedules, with these signatures (tensors (B, C, h, w)):

- ``flow(ref, supp) -> (B, 2, h, w)``: the flow that warps features of frame ``supp`` onto frame ``ref``;
- ``forward_step(lr, feat_prev | None, flow_to_prev | None) -> feat``: one step of the forward branch
  (``None`` state: the branch starts from zeros, ``num_feat`` channels);
- ``backward_step(lr, feat_next | None, flow_to_next | None) -> feat`` (bidirectional only);
- ``reconstruct(lr, *feats) -> (B, 3, scale*h, scale*w)``: ``(lr, feat_backward, feat_forward)`` for
  bidirectional networks, ``(lr, feat_forward)`` for forward-only ones;
- ``step(lr, state | None) -> (out, state)`` (forward-only models, networks or not): one new frame; for a
  network this is ``forward_step(lr, state.feat, flow(lr, state.lr))`` then ``reconstruct``, with
  :class:`ForwardState` as the state.

The Protocols are ``runtime_checkable``, so ``isinstance(model, BidirectionalNetwork)`` tells whether the
members exist (not their signatures). The engine itself branches on ``bidirectional``, read with
:func:`traits`, which also covers any ``nn.Module`` a caller hands in without stating the contract (the defaults
of :data:`DEFAULT_TRAITS`).

The second half of this module is the parameter naming every network family shares (BasicSR's checkpoint
keys): which trunk a parameter belongs to and the ``main.2`` rule of the residual blocks. Pruning plans, gates,
exports and MAC counts name layers by these keys, so they are built here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

# ------------------------------------------------------------------------------------------ the contract


class ForwardState:
    """What a forward-only network carries from one frame to the next: the previous LR frame and hidden
    state."""

    __slots__ = ("lr", "feat")

    def __init__(self, lr: torch.Tensor, feat: torch.Tensor) -> None:
        self.lr = lr
        self.feat = feat


@runtime_checkable
class SuperResolver(Protocol):
    """Any model the engine runs, with or without a network (the bicubic baseline)."""

    scale: int
    bidirectional: bool
    modulus: int
    min_size: int


@runtime_checkable
class ForwardOnlyModel(SuperResolver, Protocol):
    """A model that upscales one frame at a time (``bidirectional`` is False): bicubic, forward-only networks."""

    def step(self, lr: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...


@runtime_checkable
class RecurrentNetwork(SuperResolver, Protocol):
    """The per-frame steps every BasicVSR-family network has (both directions)."""

    num_feat: int  # channels of the hidden state a branch starts from (zeros)

    def flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor: ...

    def forward_step(self, lr: torch.Tensor, feat: torch.Tensor | None,
                     flow: torch.Tensor | None = None) -> torch.Tensor: ...

    def reconstruct(self, lr: torch.Tensor, *feats: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class BidirectionalNetwork(RecurrentNetwork, Protocol):
    """A network whose output at frame t also reads frames after t (``bidirectional`` is True)."""

    def backward_step(self, lr: torch.Tensor, feat: torch.Tensor | None,
                      flow: torch.Tensor | None = None) -> torch.Tensor: ...


@runtime_checkable
class ForwardOnlyNetwork(RecurrentNetwork, ForwardOnlyModel, Protocol):
    """A forward-only network: the steps, and ``step`` made of them (:func:`forward_only_step`; live streams)."""


def forward_only_step(net: RecurrentNetwork, lr: torch.Tensor,
                      state: ForwardState | None) -> tuple[torch.Tensor, ForwardState]:
    """``step`` of a forward-only network, made of its steps: the new frame ``lr`` (B, 3, h, w) given the state
    after the previous one (None at the start), as one output frame and the next state. The one copy of that
    rule: :class:`vsrapp_models.basicvsr.BasicVSRUni` and the graph backends' models step through it."""
    if state is None:
        feat = net.forward_step(lr, None)
    else:
        feat = net.forward_step(lr, state.feat, net.flow(lr, state.lr))
    return net.reconstruct(lr, feat), ForwardState(lr, feat)


@dataclass(frozen=True)
class Traits:
    """The contract's attributes of one model, as the engine reads them."""

    scale: int = 4
    bidirectional: bool = False
    modulus: int = 1
    min_size: int = 1


# What a module that states nothing is taken to be: x4, one frame at a time, any frame size. These are the
# defaults the engine has always applied to a caller's own ``nn.Module``.
DEFAULT_TRAITS = Traits()


def traits(model: Any) -> Traits:
    """The contract attributes of ``model``; those it does not state take :data:`DEFAULT_TRAITS`' values."""
    d = DEFAULT_TRAITS
    return Traits(scale=getattr(model, "scale", d.scale),
                  bidirectional=getattr(model, "bidirectional", d.bidirectional),
                  modulus=getattr(model, "modulus", d.modulus),
                  min_size=getattr(model, "min_size", d.min_size))


def is_network(model: Any) -> bool:
    """True if ``model`` has the per-frame steps (every network); False for bicubic and other stateless
    models, which only have ``step``."""
    return all(hasattr(model, name) for name in ("flow", "forward_step", "reconstruct"))


# ------------------------------------------------------------------------------------------ parameter naming
SPYNET = "spynet"  # the flow network's parameters: spynet.*
BACKWARD_TRUNK = "backward_trunk"
FORWARD_TRUNK = "forward_trunk"
# BasicSR's ConvResidualBlocks: ``main.0`` is the input conv (3 + num_feat -> num_feat), ``main.1`` the
# LeakyReLU (no parameters), ``main.2`` the sequence of residual blocks, each ``conv1`` then ``conv2``.
TRUNK_INPUT = "main.0"
BLOCKS = "main.2"
BLOCK_CONVS = ("conv1", "conv2")
UPSAMPLER = ("fusion", "upconv1", "upconv2", "conv_hr", "conv_last")  # the reconstruction's layers, in order
WRAPPER = "net"  # a training wrapper (pruning's gated models) holds the network as ``net``

# ``backward_trunk.main.2.7.`` -> groups trunk, block index (keys relative to the network, no wrapper).
_BLOCK_KEY = re.compile(rf"^({BACKWARD_TRUNK}|{FORWARD_TRUNK})\.main\.2\.(\d+)\.")


def trunk_names(bidirectional: bool) -> tuple[str, ...]:
    """The trunks a network has, in checkpoint order."""
    return (BACKWARD_TRUNK, FORWARD_TRUNK) if bidirectional else (FORWARD_TRUNK,)


def block_name(trunk: str, j: int) -> str:
    """Key prefix of residual block ``j`` of ``trunk``: ``forward_trunk.main.2.3``."""
    return f"{trunk}.{BLOCKS}.{j}"


def block_conv_names(bidirectional: bool, num_block: int) -> list[str]:
    """Every residual-block conv, trunk by trunk and block by block: ``backward_trunk.main.2.0.conv1``, ...
    (the layers SSL, GASSL, N:M and ISS-P prune)."""
    return [f"{block_name(t, j)}.{conv}" for t in trunk_names(bidirectional) for j in range(num_block)
            for conv in BLOCK_CONVS]


def blocks_of(trunk: nn.Module) -> nn.Sequential:
    """The residual blocks of a trunk module (its ``main[2]``)."""
    return trunk.main[2]


def num_blocks(model: nn.Module) -> int:
    """Residual blocks per trunk of a network (every trunk has as many; the forward trunk always exists)."""
    return len(blocks_of(getattr(model, FORWARD_TRUNK)))


def part_of(name: str) -> str:
    """The top-level part a parameter or module belongs to (``spynet``, ``backward_trunk``, ``fusion``, ...),
    a ``net.`` wrapper prefix skipped."""
    parts = name.split(".")
    return parts[1] if parts[0] == WRAPPER and len(parts) > 1 else parts[0]


def is_spynet(name: str) -> bool:
    """True for a parameter name of the flow network (``spynet.*``; SSL and distillation freeze it)."""
    return name.startswith(SPYNET + ".")


def is_backward(name: str) -> bool:
    """True for a key of the backward trunk (a bidirectional checkpoint has them, a forward-only one none)."""
    return name.startswith(BACKWARD_TRUNK + ".")


def block_of(name: str) -> tuple[str, int] | None:
    """``(trunk, block index)`` of a residual-block key (``forward_trunk.main.2.3.conv1.in`` -> ``("forward_trunk",
    3)``), None for any other key."""
    match = _BLOCK_KEY.match(name)
    return (match.group(1), int(match.group(2))) if match else None


def strip_block(name: str, replacement: str = "trunk.") -> str:
    """A residual-block key with its trunk and block index replaced: ``backward_trunk.main.2.7.conv1.in`` ->
    ``trunk.conv1.in`` (the *kind* of layer, the same in every block); other keys unchanged."""
    return _BLOCK_KEY.sub(replacement, name)
