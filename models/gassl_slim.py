"""Narrow-stream BasicVSR: the physically pruned network (G)ASSL produces (frame_pruning.md §A.7).

Unlike SSL's RSC network (:mod:`vsrapp_models.slim`), (G)ASSL prunes the residual *stream* itself. Every conv that adds
into a trunk's stream (the trunk's input conv ``main.0`` and each block's ``conv2``) keeps the same output
channels S, so the stream, the hidden state and the warp all become ``len(S)`` wide; each block's ``conv1`` keeps
its own hidden filters M_j. The reconstruction is dense; only ``fusion`` loses the input channels of the
pruned stream channels. This module never imports ``pruning``.

Plan (plain JSON, written by :mod:`vsrapp_pruning.gassl`)::

    {"format": "vsrapp-gassl-plan", "version": 1,
     "arch": {"bidirectional": true, "num_feat": 64, "num_block": 30, "scale": 4},
     "stream_kept": {"backward_trunk": [...], "forward_trunk": [...]},   # S per trunk, same length
     "kept": {"backward_trunk.main.2.0.conv1.out": [...], ...}}          # M_j per block

Both trunks keep the same *number* of stream channels (different indices are fine): the step API creates the
first hidden state from one ``num_feat`` (see :func:`vsrapp_models.basicvsr._propagate`), so one width keeps the
streaming engine, :func:`vsrapp_models.complexity.count_macs` and the dense code path unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import nn

from .basicvsr import SCALE, BasicVSR, BasicVSRUni
from .contract import block_name, trunk_names
from .spynet import SpyNet

GASSL_PLAN_FORMAT = "vsrapp-gassl-plan"
GASSL_PLAN_VERSION = 1
# trunk_names is the contract's (models/contract.py); pruning.gassl imports it from here.
__all__ = ["GASSL_PLAN_FORMAT", "GASSL_PLAN_VERSION", "GasslBasicVSR", "GasslBasicVSRUni", "NarrowBlock",
           "NarrowTrunk", "build_gassl", "load_gassl", "trunk_names", "validate_gassl_plan"]


def _check_indices(name: str, idx: Any, n: int) -> None:
    if not isinstance(idx, list) or not idx or any(not isinstance(i, int) for i in idx) \
            or idx != sorted(set(idx)) or idx[0] < 0 or idx[-1] >= n:
        raise ValueError(f"plan entry {name} must be a non-empty ascending list of distinct ints in [0, {n})")


def validate_gassl_plan(plan: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless ``plan`` is a well-formed GASSL plan (sorted lists keep the dense order, which
    the export's slicing relies on)."""
    if plan.get("format") != GASSL_PLAN_FORMAT or plan.get("version") != GASSL_PLAN_VERSION:
        raise ValueError(f"not a {GASSL_PLAN_FORMAT} v{GASSL_PLAN_VERSION} plan: "
                         f"{plan.get('format')!r} {plan.get('version')!r}")
    arch = plan["arch"]
    if arch.get("scale", SCALE) != SCALE:
        raise ValueError(f"only x{SCALE} plans are supported")
    nf, trunks = arch["num_feat"], trunk_names(arch["bidirectional"])
    stream = plan["stream_kept"]
    if sorted(stream) != sorted(trunks):
        raise ValueError(f"stream_kept must name exactly {trunks}")
    for t in trunks:
        _check_indices(f"stream_kept.{t}", stream[t], nf)
    if len({len(stream[t]) for t in trunks}) != 1:
        raise ValueError("every trunk must keep the same number of stream channels")
    expected = {f"{block_name(t, j)}.conv1.out" for t in trunks for j in range(arch["num_block"])}
    if set(plan["kept"]) != expected:
        raise ValueError("plan 'kept' must list conv1.out of every block and nothing else")
    for name in expected:
        _check_indices(name, plan["kept"][name], nf)


class NarrowBlock(nn.Module):
    """``x + conv2(relu(conv1(x)))`` with ``width`` stream channels and ``hidden`` inner filters."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, hidden, 3, 1, 1)
        self.conv2 = nn.Conv2d(hidden, width, 3, 1, 1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class NarrowTrunk(nn.Module):
    """conv3x3(3 + width -> width), LeakyReLU(0.1), narrow blocks; parameter names match the dense trunk."""

    def __init__(self, width: int, hidden: list[int]) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(3 + width, width, 3, 1, 1), nn.LeakyReLU(0.1),
                                  nn.Sequential(*(NarrowBlock(width, m) for m in hidden)))

    def forward(self, x):
        return self.main(x)


def _build(model: nn.Module, plan: dict[str, Any]) -> None:
    validate_gassl_plan(plan)
    arch = plan["arch"]
    trunks = trunk_names(arch["bidirectional"])
    width = len(plan["stream_kept"][trunks[0]])
    model.plan = plan
    model.num_feat = width  # the hidden-state width the step API allocates
    model.spynet = SpyNet()
    for t in trunks:
        hidden = [len(plan["kept"][f"{block_name(t, j)}.conv1.out"]) for j in range(arch["num_block"])]
        setattr(model, t, NarrowTrunk(width, hidden))
    # The upsampler stays dense (dense num_feat); fusion reads the concatenated narrow states.
    model._build_upsampler(width * len(trunks), arch["num_feat"])


class GasslBasicVSR(BasicVSR):
    """Bidirectional narrow-stream BasicVSR; the step API and ``forward`` are the dense ones."""

    def __init__(self, plan: dict[str, Any]) -> None:
        if not plan["arch"]["bidirectional"]:
            raise ValueError("forward-only plan: use GasslBasicVSRUni")
        # The parent's __init__ with the narrow layers in place of the dense ones (none allocated in vain); the
        # builder sets num_feat from the plan.
        super().__init__(build=lambda model: _build(model, plan))


class GasslBasicVSRUni(BasicVSRUni):
    """Forward-only narrow-stream BasicVSR (``step(lr, state)`` as the dense one)."""

    def __init__(self, plan: dict[str, Any]) -> None:
        if plan["arch"]["bidirectional"]:
            raise ValueError("bidirectional plan: use GasslBasicVSR")
        super().__init__(build=lambda model: _build(model, plan))


def build_gassl(plan: dict[str, Any]) -> GasslBasicVSR | GasslBasicVSRUni:
    """The narrow network for ``plan`` (random weights)."""
    return GasslBasicVSR(plan) if plan["arch"]["bidirectional"] else GasslBasicVSRUni(plan)


def load_gassl(directory: str | Path) -> GasslBasicVSR | GasslBasicVSRUni:
    """A GASSL export folder (``plan.json`` + ``model.safetensors``), loaded strictly, in eval mode."""
    from safetensors.torch import load_file

    directory = Path(directory)
    model = build_gassl(json.loads((directory / "plan.json").read_text()))
    model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=True)
    return model.eval()
