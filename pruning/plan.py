"""Pruning plans: the JSON-serialisable result of a selection (kept-index lists per gate + arch info).

The format is defined and validated by :mod:`vsrapp_models.slim` (which must load plans without importing
``pruning``); this module only turns selection masks into plans and back.
"""

from __future__ import annotations

from typing import Any

import torch

from vsrapp_models.slim import PLAN_FORMAT, PLAN_VERSION, SCALE, validate_plan

from .gates import GatedModel


def plan_from_masks(model: GatedModel, pruned: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A plan keeping every entry of ``model``'s gates that ``pruned`` does not mark (missing gates: keep
    all)."""
    kept: dict[str, list[int]] = {}
    for name, g in model.named_gates().items():
        mask = pruned.get(name)
        if mask is None:
            mask = torch.zeros(g.numel(), dtype=torch.bool)
        if mask.numel() != g.numel():
            raise ValueError(f"mask for {name} has {mask.numel()} entries, the gate {g.numel()}")
        kept[name] = torch.nonzero(~mask.to(torch.bool).cpu()).flatten().tolist()
    plan = {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "arch": {"bidirectional": bool(model.bidirectional), "num_feat": model.num_feat,
                 "num_block": model.num_block, "scale": SCALE},
        "kept": kept,
    }
    validate_plan(plan)
    return plan


def full_plan(model: GatedModel) -> dict[str, Any]:
    """The plan that keeps everything (the slim network is then the dense one)."""
    return plan_from_masks(model, {})


def masks_from_plan(model: GatedModel, plan: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`plan_from_masks`: gate name -> bool vector, True = pruned."""
    masks = {}
    for name, g in model.named_gates().items():
        mask = torch.ones(g.numel(), dtype=torch.bool)
        mask[plan["kept"][name]] = False
        masks[name] = mask
    return masks


def kept_fraction(plan: dict[str, Any]) -> float:
    """Fraction of all gate entries the plan keeps (1 - the achieved global ratio)."""
    arch = plan["arch"]
    sizes = {"upconv2.out": 64, "conv_hr.out": 64}
    total = kept = 0
    for name, idx in plan["kept"].items():
        total += sizes.get(name, arch["num_feat"])
        kept += len(idx)
    return kept / total
