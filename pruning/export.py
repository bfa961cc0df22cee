"""Slim export: fold the scales into the weights, slice every conv by the plan, save a self-describing folder.

Folder layout (what :func:`vsrapp_models.slim.load_slim` and the zoo read; nothing is pickled)::

    out_dir/model.safetensors   slim state dict (plain conv weights, no scales, no index buffers)
    out_dir/plan.json           kept-index lists per gate + arch (format in models/slim.py)
    out_dir/meta.json           method, ratio, params, MACs per 180x320 frame, teacher, training recipe, ...

Folding is exact (see :mod:`vsrapp_pruning.gates`); slicing is exact when the pruned scales are zero, and otherwise
drops the (small) contribution of the pruned units, which is what fine-tuning then recovers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vsrapp_models.complexity import count_macs, count_params
from vsrapp_models.pruned import save_pruned
from vsrapp_models.slim import build_slim, layer_slices, validate_plan

from .gates import GatedConv2d, GatedModel
from .plan import kept_fraction

META_LR_SIZE = (180, 320)


def _slice_conv(weight: torch.Tensor, bias: torch.Tensor, kept_out: list[int] | None, group: int,
                kept_in: list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    if kept_out is not None:
        idx = torch.tensor(kept_out, dtype=torch.long, device=weight.device)
        # Whole groups of `group` consecutive filters: view as [units, group, ...], pick units, flatten back.
        shape = weight.shape
        weight = weight.reshape(-1, group, *shape[1:]).index_select(0, idx).reshape(-1, *shape[1:])
        bias = bias.reshape(-1, group).index_select(0, idx).reshape(-1)
    if kept_in is not None:
        weight = weight.index_select(1, torch.tensor(kept_in, dtype=torch.long, device=weight.device))
    return weight.contiguous(), bias.contiguous()


@torch.no_grad()
def slim_state_dict(model: GatedModel, plan: dict[str, Any]) -> dict[str, torch.Tensor]:
    """State dict of ``models.slim.build_slim(plan)`` computed from the gated ``model`` (CPU tensors)."""
    validate_plan(plan)
    if plan["arch"]["bidirectional"] != model.bidirectional or plan["arch"]["num_block"] != model.num_block \
            or plan["arch"]["num_feat"] != model.num_feat:
        raise ValueError("plan arch does not match the gated model")

    def folded(layer: str, conv: torch.nn.Module, group: int) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(conv, GatedConv2d):
            if conv.group != group:
                raise ValueError(f"{layer}: plan groups of {group} filters, gate groups of {conv.group}")
            return conv.folded()
        return conv.weight, conv.bias  # conv_last: not gated, only its inputs follow conv_hr

    return slice_state(model.net, plan, folded)


@torch.no_grad()
def slice_state(net: torch.nn.Module, plan: dict[str, Any],
                weights: Callable[[str, torch.nn.Module, int], tuple[torch.Tensor, torch.Tensor]] | None = None,
                ) -> dict[str, torch.Tensor]:
    """State dict of ``models.slim.build_slim(plan)`` cut from the dense-shaped ``net`` (CPU tensors): every
    conv the plan changes is sliced (``weights(layer, conv, group)`` gives its weight and bias; default the
    conv's own), everything else (SpyNet, the trunks' first convs, buffers) is copied as is."""
    state: dict[str, torch.Tensor] = {}
    handled: set[str] = set()
    for layer, (kept_out, group, kept_in) in layer_slices(plan).items():
        conv = net.get_submodule(layer)
        weight, bias = weights(layer, conv, group) if weights else (conv.weight, conv.bias)
        weight, bias = _slice_conv(weight, bias, kept_out, group, kept_in)
        state[f"{layer}.weight"], state[f"{layer}.bias"] = weight, bias
        handled.add(layer)
    for name, tensor in net.state_dict().items():
        if name.rpartition(".")[0] in handled:
            continue
        state[name] = tensor
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def build_meta(slim: torch.nn.Module, plan: dict[str, Any],
               meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metadata for an export: defaults (measured params/MACs, placeholders) overridden by ``meta``."""
    macs = count_macs(slim, META_LR_SIZE)
    out: dict[str, Any] = {
        "method": "ssl",
        "arch": "basicvsr-slim" if plan["arch"]["bidirectional"] else "basicvsr-uni-slim",
        "ratio": None,  # the selection ratio asked for; the trainer fills it in
        "kept_fraction": round(kept_fraction(plan), 6),  # what the plan actually keeps of all gate entries
        "params": count_params(slim),
        "macs_per_frame": {"lr_size": macs["lr_size"], "total": macs["total"], "spynet": macs["spynet"],
                           "without_spynet": macs["without_spynet"]},
        "teacher": None,  # source dense checkpoint
        "recipe": None,  # training recipe (sparsity + fine-tuning settings), filled by the trainer
    }
    out.update(meta or {})
    return out


def export_slim(model: GatedModel, plan: dict[str, Any], out_dir: str | Path,
                meta: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors``, ``plan.json`` and ``meta.json`` for the slim form of ``model`` under
    ``plan`` into ``out_dir`` (created) and return it. The slim model is built and loaded strictly before
    anything is written, so a plan that does not fit fails here, not at load time."""
    state = slim_state_dict(model, plan)
    slim = build_slim(plan)
    slim.load_state_dict(state, strict=True)
    return save_pruned(out_dir, state, plan, build_meta(slim, plan, meta))
