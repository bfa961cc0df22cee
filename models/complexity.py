"""Parameter and MAC counts of BasicVSR-family models (dense, gated or slim).

MACs are counted by forward hooks on every ``nn.Conv2d`` while one frame of the recurrence runs, on the
``meta`` device (shapes only: no memory, no arithmetic, so 180x320 costs nothing). One frame of the recurrence
is what a video costs per frame in steady state:

- bidirectional: two SpyNet flows (one per direction for the new frame pair), one backward and one forward
  trunk step, one reconstruction;
- forward-only: one flow, one forward step, one reconstruction.

Only convolutions are counted (``out_elems * C_in/groups * k*k``), as in ssl.md §2.3 and §10; activations,
warping, pixel shuffle, gather/scatter and the bilinear skip are left out (they are a fraction of a percent).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .contract import SPYNET, block_name, part_of, trunk_names


def count_params(model: nn.Module) -> dict[str, int]:
    """``{"total", "spynet", "without_spynet"}`` (weights and biases; buffers such as SpyNet's mean/std
    excluded)."""
    total = spynet = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if part_of(name) == SPYNET:
            spynet += p.numel()
    return {"total": total, "spynet": spynet, "without_spynet": total - spynet}


@torch.no_grad()
def count_macs(model: nn.Module, lr_size: tuple[int, int] = (180, 320)) -> dict:
    """MACs of one frame of the recurrence at LR size ``lr_size`` (h, w).

    Returns ``{"lr_size", "total", "spynet", "without_spynet", "by_part"}``; ``by_part`` maps each top-level
    part (``spynet``, ``backward_trunk``, ``forward_trunk``, ``fusion``, ``upconv1``, ...) to its MACs.
    """
    meta = copy.deepcopy(model).to("meta")
    by_part: dict[str, int] = {}
    handles = []

    def hook(name: str):
        def count(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
            k = module.kernel_size[0] * module.kernel_size[1]
            macs = (output.numel() // output.shape[0]) * (module.in_channels // module.groups) * k
            by_part[part_of(name)] = by_part.get(part_of(name), 0) + macs
        return count

    for name, module in meta.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(hook(name)))
    try:
        h, w = lr_size
        lr = torch.zeros(1, 3, h, w, device="meta")
        feat = torch.zeros(1, meta.num_feat, h, w, device="meta")
        flow = meta.flow(lr, lr)
        feat_f = meta.forward_step(lr, feat, flow)
        if meta.bidirectional:
            flow = meta.flow(lr, lr)  # the other direction's flow for the same pair
            feat_b = meta.backward_step(lr, feat, flow)
            meta.reconstruct(lr, feat_b, feat_f)
        else:
            meta.reconstruct(lr, feat_f)
    finally:
        for handle in handles:
            handle.remove()
    total = sum(by_part.values())
    spynet = by_part.get(SPYNET, 0)
    return {"lr_size": [h, w], "total": total, "spynet": spynet, "without_spynet": total - spynet,
            "by_part": by_part}


def plan_macs_formula(plan: dict, lr_size: tuple[int, int] = (180, 320)) -> int:
    """MACs per frame without SpyNet from a slim plan by the closed form of ssl.md §10 (a cross-check of
    :func:`count_macs`, written independently of the hooks)."""
    arch, kept = plan["arch"], plan["kept"]
    nf = arch["num_feat"]
    hw = lr_size[0] * lr_size[1]
    trunks = trunk_names(arch["bidirectional"])
    lr_part = len(trunks) * (nf + 3) * nf * 9
    for trunk in trunks:
        for j in range(arch["num_block"]):
            p, m, o = (len(kept[f"{block_name(trunk, j)}.{s}"]) for s in ("conv1.in", "conv1.out", "conv2.out"))
            lr_part += 9 * (p * m + m * o)
    f, g1, g2, k = (len(kept[n]) for n in ("fusion.out", "upconv1.out", "upconv2.out", "conv_hr.out"))
    lr_part += len(trunks) * nf * f + 9 * f * 4 * g1
    return hw * lr_part + 4 * hw * 9 * g1 * 4 * g2 + 16 * hw * 9 * (g2 * k + 3 * k)
