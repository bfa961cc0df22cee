"""Slim (physically pruned) BasicVSR built from a pruning *plan* alone: kept-index lists per layer.

A plan is plain JSON (written by ``pruning.export``; this module never imports ``pruning``)::

    {"format": "vsrapp-slim-plan", "version": 1,
     "arch": {"bidirectional": true, "num_feat": 64, "num_block": 30, "scale": 4},
     "kept": {"backward_trunk.main.2.0.conv1.in":  [...],   # P_j: stream channels block j reads
              "backward_trunk.main.2.0.conv1.out": [...],   # M_j: its hidden filters
              "backward_trunk.main.2.0.conv2.out": [...],   # O_j: stream channels it writes
              ...,
              "fusion.out": [...], "conv_hr.out": [...],
              "upconv1.out": [group ids], "upconv2.out": [group ids]}}

Residual blocks use RSC (ssl.md §8): ``x.index_add(1, O_j, conv2(relu(conv1(x.index_select(1, P_j)))))``, out
of place, so it is autograd-safe and exports as Gather/ScatterND. The 64-channel stream, the hidden state,
SpyNet, the trunks' first convs and ``conv_last``'s outputs are never pruned, so the recurrence is the dense
one. Upsampling convs keep whole groups of 4 filters (one PixelShuffle(2) output channel each), and the layer
after reads the kept group ids.

The slim classes inherit the step API (``flow``, ``backward_step``, ``forward_step``, ``reconstruct``,
``forward``, ``step``) from :class:`~vsrapp_models.basicvsr.BasicVSR` /
:class:`~vsrapp_models.basicvsr.BasicVSRUni`: only the layers differ, so the streaming engine runs them with exactly
the dense code path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .basicvsr import SCALE, BasicVSR, BasicVSRUni
from .contract import block_name, blocks_of, trunk_names
from .spynet import SpyNet, flow_levels_skipped

PLAN_FORMAT = "vsrapp-slim-plan"
PLAN_VERSION = 1
UPSAMPLE_GROUP = 4  # PixelShuffle(2): 4 consecutive filters make one output channel
HR_FEAT = 64  # upconv2 has 64 groups and conv_hr is 64 -> 64 whatever num_feat is (as in BasicSR)
# trunk_names is the contract's (models/contract.py); importable from here as before (vsrapp.bench, pruning).
__all__ = ["HR_FEAT", "PLAN_FORMAT", "PLAN_VERSION", "SCALE", "UPSAMPLE_GROUP", "SlimBasicVSR", "SlimBasicVSRUni",
           "SlimResidualBlock", "SlimTrunk", "build_slim", "layer_slices", "load_slim", "trunk_names",
           "validate_plan"]


def layer_slices(plan: dict[str, Any]) -> dict[str, tuple[list[int] | None, int, list[int] | None]]:
    """For every conv that pruning changes: ``(kept output units or None = all, filters per unit, kept input
    channels or None = all)``. The single source of truth for both the slim shapes and the export's slicing.

    Inputs follow the previous layer's kept outputs (ssl.md §10): conv2 reads M_j, upconv1 reads F, upconv2
    reads the kept upconv1 *group ids* (channel index after the shuffle), conv_hr reads upconv2's groups,
    conv_last reads conv_hr's filters. conv1 reads its own P_j; fusion reads all 2*64 (or 64) stream channels.
    """
    arch, kept = plan["arch"], plan["kept"]
    out: dict[str, tuple[list[int] | None, int, list[int] | None]] = {}
    for trunk in trunk_names(arch["bidirectional"]):
        for j in range(arch["num_block"]):
            base = block_name(trunk, j)
            out[f"{base}.conv1"] = (kept[f"{base}.conv1.out"], 1, kept[f"{base}.conv1.in"])
            out[f"{base}.conv2"] = (kept[f"{base}.conv2.out"], 1, kept[f"{base}.conv1.out"])
    out["fusion"] = (kept["fusion.out"], 1, None)
    out["upconv1"] = (kept["upconv1.out"], UPSAMPLE_GROUP, kept["fusion.out"])
    out["upconv2"] = (kept["upconv2.out"], UPSAMPLE_GROUP, kept["upconv1.out"])
    out["conv_hr"] = (kept["conv_hr.out"], 1, kept["upconv2.out"])
    out["conv_last"] = (None, 1, kept["conv_hr.out"])
    return out


def validate_plan(plan: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless ``plan`` is a well-formed plan: every list non-empty, ascending, unique and
    in range. (Sorted lists keep the slim channel order equal to the dense order, which export relies on.)"""
    if plan.get("format") != PLAN_FORMAT or plan.get("version") != PLAN_VERSION:
        raise ValueError(f"not a {PLAN_FORMAT} v{PLAN_VERSION} plan: "
                         f"{plan.get('format')!r} {plan.get('version')!r}")
    arch, kept = plan["arch"], plan["kept"]
    flow_levels_skipped(arch)
    nf = arch["num_feat"]
    sizes = {"fusion.out": nf, "upconv1.out": nf, "upconv2.out": HR_FEAT, "conv_hr.out": HR_FEAT}
    for trunk in trunk_names(arch["bidirectional"]):
        for j in range(arch["num_block"]):
            for side in ("conv1.in", "conv1.out", "conv2.out"):
                sizes[f"{block_name(trunk, j)}.{side}"] = nf
    missing = sorted(set(sizes) - set(kept))
    extra = sorted(set(kept) - set(sizes))
    if missing or extra:
        raise ValueError(f"plan keys do not fit the arch: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, n in sizes.items():
        idx = kept[name]
        if not idx or any(not isinstance(i, int) for i in idx) or idx != sorted(set(idx)) or idx[0] < 0 \
                or idx[-1] >= n:
            raise ValueError(f"plan entry {name} must be a non-empty ascending list of distinct ints "
                             f"in [0, {n})")


def _index(idx: list[int]) -> torch.Tensor:
    return torch.tensor(idx, dtype=torch.long)


class SlimResidualBlock(nn.Module):
    """RSC residual block: reads stream channels ``read`` (P_j), writes ``write`` (O_j); the rest pass
    through."""

    def __init__(self, num_feat: int, read: list[int], hidden: list[int], write: list[int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(len(read), len(hidden), 3, 1, 1)
        self.conv2 = nn.Conv2d(len(hidden), len(write), 3, 1, 1)
        # Full sets skip the gather/scatter (the dense block's arithmetic); indices are rebuilt from the plan,
        # so they are non-persistent and the weights file holds conv tensors only.
        self.read_all = len(read) == num_feat
        self.write_all = len(write) == num_feat
        self.register_buffer("read_idx", _index(read), persistent=False)
        self.register_buffer("write_idx", _index(write), persistent=False)

    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """``x`` plus the block's residual on the write set. ``inplace=True`` adds into ``x`` itself (for a
        caller that owns ``x`` and runs without autograd): it saves a copy of the whole stream per block."""
        to_channels, from_channels = _channel_axis_views(x)
        u = x if self.read_all else from_channels(to_channels(x).index_select(1, self.read_idx))
        r = self.conv2(F.relu(self.conv1(u), inplace=True))
        if self.write_all:
            return x.add_(r) if inplace else x + r
        stream, residual = to_channels(x), to_channels(r)
        if inplace:
            return from_channels(stream.index_add_(1, self.write_idx, residual))
        return from_channels(stream.index_add(1, self.write_idx, residual))


def _channel_axis_views(x: torch.Tensor) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                  Callable[[torch.Tensor], torch.Tensor]]:
    """How to gather and scatter the channels of ``x``'s layout: a pair of maps to a tensor whose dim 1 is the
    channel axis and back.

    NCHW: the tensor itself. Channels-last: a (pixels, channels) matrix, a view of the same memory, on which
    the gather and scatter are contiguous row operations; on the NCHW view of channels-last memory they are
    strided and several times slower (and on a 4-d NHWC view about 4x slower than on the 2-d one).
    """
    if not (x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)):
        return _same, _same
    n, _, h, w = x.shape
    return (lambda t: t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]),
            lambda rows: rows.reshape(n, h, w, rows.shape[1]).permute(0, 3, 1, 2))


def _same(t: torch.Tensor) -> torch.Tensor:
    return t


class SlimTrunk(nn.Module):
    """``main.0`` conv (67 -> 64, unpruned), LeakyReLU(0.1), then RSC blocks; names match the dense trunk."""

    def __init__(self, name: str, plan: dict[str, Any]) -> None:
        super().__init__()
        nf, kept = plan["arch"]["num_feat"], plan["kept"]
        blocks = []
        for j in range(plan["arch"]["num_block"]):
            base = block_name(name, j)
            blocks.append(SlimResidualBlock(nf, kept[f"{base}.conv1.in"], kept[f"{base}.conv1.out"],
                                            kept[f"{base}.conv2.out"]))
        self.main = nn.Sequential(nn.Conv2d(nf + 3, nf, 3, 1, 1), nn.LeakyReLU(0.1), nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.main[1](self.main[0](x))
        # The stream is this trunk's own tensor from here on, so without autograd every block may add into
        # it in place.
        inplace = not torch.is_grad_enabled()
        for block in blocks_of(self):
            x = block(x, inplace=inplace)
        return x


def _build_slim_layers(model: nn.Module, plan: dict[str, Any]) -> None:
    """Create SpyNet, the trunk(s) and the pruned upsampler on ``model`` (shared by both directions)."""
    arch = plan["arch"]
    kept = plan["kept"]
    model.num_feat = arch["num_feat"]
    model.plan = plan
    # A plan may record a coarser flow the network was trained with (``arch.skip_finest``; 0 when absent).
    model.spynet = SpyNet(skip_finest=flow_levels_skipped(arch))
    for name in trunk_names(arch["bidirectional"]):
        setattr(model, name, SlimTrunk(name, plan))
    fused_in = arch["num_feat"] * (2 if arch["bidirectional"] else 1)
    g = UPSAMPLE_GROUP
    model.fusion = nn.Conv2d(fused_in, len(kept["fusion.out"]), 1, 1, 0)
    model.upconv1 = nn.Conv2d(len(kept["fusion.out"]), g * len(kept["upconv1.out"]), 3, 1, 1)
    model.upconv2 = nn.Conv2d(len(kept["upconv1.out"]), g * len(kept["upconv2.out"]), 3, 1, 1)
    model.conv_hr = nn.Conv2d(len(kept["upconv2.out"]), len(kept["conv_hr.out"]), 3, 1, 1)
    model.conv_last = nn.Conv2d(len(kept["conv_hr.out"]), 3, 3, 1, 1)


class SlimBasicVSR(BasicVSR):
    """Bidirectional slim BasicVSR. Step API, ``bidirectional``, ``scale`` and ``num_feat`` as the dense
    model."""

    def __init__(self, plan: dict[str, Any]) -> None:
        validate_plan(plan)
        if not plan["arch"]["bidirectional"]:
            raise ValueError("forward-only plan: use SlimBasicVSRUni")
        # The parent's __init__ with the slim layers in place of the dense ones (none allocated in vain); the
        # builder sets num_feat from the plan.
        super().__init__(build=lambda model: _build_slim_layers(model, plan))


class SlimBasicVSRUni(BasicVSRUni):
    """Forward-only slim BasicVSR: ``step(lr, state)`` as :class:`~vsrapp_models.basicvsr.BasicVSRUni`."""

    def __init__(self, plan: dict[str, Any]) -> None:
        validate_plan(plan)
        if plan["arch"]["bidirectional"]:
            raise ValueError("bidirectional plan: use SlimBasicVSR")
        super().__init__(build=lambda model: _build_slim_layers(model, plan))


def build_slim(plan: dict[str, Any]) -> SlimBasicVSR | SlimBasicVSRUni:
    """The slim network for ``plan`` (random weights)."""
    if plan.get("arch", {}).get("scale", SCALE) != SCALE:
        raise ValueError(f"only x{SCALE} plans are supported")
    return SlimBasicVSR(plan) if plan["arch"]["bidirectional"] else SlimBasicVSRUni(plan)


def load_slim(directory: str | Path) -> SlimBasicVSR | SlimBasicVSRUni:
    """A slim model from an export folder (``plan.json`` + ``model.safetensors``), loaded strictly, in eval
    mode."""
    from safetensors.torch import load_file  # imported here so that building from a plan needs no safetensors

    directory = Path(directory)
    plan = json.loads((directory / "plan.json").read_text())
    model = build_slim(plan)
    model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=True)
    return model.eval()
