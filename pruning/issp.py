"""ISS-P: iterative soft shrinkage of the smallest weights, then a frozen mask and fine-tuning
(frame_pruning.md §C; re-derived from the official "IST" pruner's behaviour, nothing copied).

Pruning stage, steps ``[0, prune_steps)``: after every optimiser step, in every trunk conv, the ``ratio`` share of
weights with the smallest |w| (exact per-layer ranking) is multiplied by ``alpha`` instead of being zeroed. They
keep their gradients, so a weight the loss needs can grow back over the threshold: the set is re-chosen every
step. At step ``prune_steps`` the mask is frozen (the same ranking, now zeroed) and from then on every step
re-applies it (fine-tuning). ``alpha = 0`` is plain iterative hard thresholding.

What it buys: storage only. The network keeps its dense shapes; PyTorch's CPU and GPU convs compute the zeros
(frame_pruning.md §C.6), so there is no speed-up in this app. The export is dense-shaped (safetensors with
zeros); its meta reports the sparsity and two sizes: the file gzip-compressed (what a download costs) and a
bitmap estimate (fp32 values of the non-zeros + 1 bit per trunk weight, the rest dense).

The loop drives it as::

    method = Issp(ratio=0.9, alpha=0.95, prune_steps=K)
    model = method.prepare(dense)        # a plain copy
    each step: method.before_step(model, step); loss = rec + method.penalty(model, step) (= 0); backward;
               optimizer.step(); method.after_step(model, step)
    method.export(model, out_dir, meta)  # dense-shaped zeros (models.pruned.load_pruned)
"""

from __future__ import annotations

import copy
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsrapp_models.basicvsr import SCALE, BasicVSR, BasicVSRUni
from vsrapp_models.complexity import count_macs, count_params
from vsrapp_models.contract import TRUNK_INPUT, block_name, blocks_of, num_blocks, trunk_names
from vsrapp_models.pruned import META_LR_SIZE, SPARSE_PLAN_FORMAT, SPARSE_PLAN_VERSION, save_pruned

from .method import PruningMethod

MAX_LAYER_SPARSITY = 0.995  # the official exact mode never empties a layer beyond this


def safetensors_bytes(state: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save(state)


def trunk_convs(model: nn.Module, include_input: bool = True) -> dict[str, nn.Conv2d]:
    """The frame-wise trunk convs (input conv optional, then every block's conv1/conv2)."""
    out: dict[str, nn.Conv2d] = {}
    for t in trunk_names(bool(model.bidirectional)):
        trunk = model.get_submodule(t)
        if include_input:
            out[f"{t}.{TRUNK_INPUT}"] = trunk.main[0]
        for j, block in enumerate(blocks_of(trunk)):
            out[f"{block_name(t, j)}.conv1"] = block.conv1
            out[f"{block_name(t, j)}.conv2"] = block.conv2
    return out


def lowest(weight: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask (weight-shaped) of the k smallest |w| (exact; ties by position)."""
    flat = weight.detach().abs().flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if k > 0:
        mask[torch.argsort(flat, stable=True)[:k]] = True
    return mask.view_as(weight)


@dataclass
class IsspConfig:
    ratio: float = 0.9
    alpha: float = 0.95  # every README command of the official repo (code default 0.99)
    prune_steps: int = 100_000
    include_input: bool = True  # also the trunks' 67 -> 64 input convs


class Issp(PruningMethod):
    name = "issp"

    def __init__(self, config: IsspConfig | None = None) -> None:
        self.cfg = config or IsspConfig()
        if not 0.0 <= self.cfg.ratio <= MAX_LAYER_SPARSITY or not 0.0 <= self.cfg.alpha < 1.0:
            raise ValueError(f"ratio must be in [0, {MAX_LAYER_SPARSITY}] and alpha in [0, 1)")
        self.keep: dict[str, torch.Tensor] | None = None  # frozen masks (True = kept), None while pruning

    def prepare(self, dense: BasicVSR | BasicVSRUni) -> BasicVSR | BasicVSRUni:
        return copy.deepcopy(dense)

    def layers(self, model: nn.Module) -> dict[str, nn.Conv2d]:
        return trunk_convs(model, self.cfg.include_input)

    def count(self, weight: torch.Tensor) -> int:
        return int(self.cfg.ratio * weight.numel())

    # ------------------------------------------------------------------------------------------------ hooks
    @torch.no_grad()
    def freeze(self, model: nn.Module) -> None:
        """Fix the mask on the current ranking and zero the pruned weights."""
        self.keep = {}
        for name, conv in self.layers(model).items():
            keep = ~lowest(conv.weight, self.count(conv.weight))
            conv.weight.mul_(keep)
            self.keep[name] = keep.cpu()

    def before_step(self, model: nn.Module, step: int) -> bool:
        if step >= self.cfg.prune_steps and self.keep is None:
            self.freeze(model)
        return False

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        if self.keep is None and step < self.cfg.prune_steps:
            for conv in self.layers(model).values():
                shrink = lowest(conv.weight, self.count(conv.weight))
                conv.weight[shrink] *= self.cfg.alpha
            return
        if self.keep is None:
            self.freeze(model)
        for name, conv in self.layers(model).items():
            conv.weight.mul_(self.keep[name].to(conv.weight.device))

    def done(self, step: int) -> bool:
        """The pruning stage is over (the mask is frozen, or will be at the next step or at export)."""
        return self.keep is not None or step >= self.cfg.prune_steps

    @torch.no_grad()
    def sparsity(self, model: nn.Module) -> dict[str, float]:
        """Fraction of exact zeros per layer."""
        return {n: float((c.weight == 0).float().mean()) for n, c in self.layers(model).items()}

    def log(self, model: nn.Module, step: int) -> dict[str, float]:
        layers = self.layers(model).values()
        small = sum(int(lowest(c.weight, self.count(c.weight)).sum()) for c in layers)
        mass = sum(float(c.weight.detach().abs()[lowest(c.weight, self.count(c.weight))].sum()) for c in layers)
        return {"mean_abs_pruned": mass / max(1, small), "zeros": sum(self.sparsity(model).values())
                / max(1, len(self.sparsity(model)))}

    # ------------------------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"config": vars(self.cfg).copy(), "keep": self.keep}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cfg = IsspConfig(**state["config"])
        self.keep = state["keep"]

    # ----------------------------------------------------------------------------------------------- export
    def export(self, model: nn.Module, out_dir: str | Path, meta: dict[str, Any] | None = None) -> Path:
        from vsrapp_models.pruned import build_dense

        model = model.cpu()  # the mask is frozen on the CPU's copy of the weights, as it always was
        if self.keep is None:
            self.freeze(model)
        layers = self.layers(model)
        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        spec = {n: {"numel": c.weight.numel(), "nnz": int((c.weight != 0).sum())} for n, c in layers.items()}
        arch = {"bidirectional": bool(model.bidirectional), "num_feat": int(model.num_feat),
                "num_block": num_blocks(model), "scale": SCALE}
        plan = {"format": SPARSE_PLAN_FORMAT, "version": SPARSE_PLAN_VERSION, "arch": arch,
                "pattern": "unstructured", "layers": spec}
        dense = build_dense(arch)
        dense.load_state_dict(state, strict=True)
        params = count_params(dense)
        macs = count_macs(dense, META_LR_SIZE)
        numel = sum(s["numel"] for s in spec.values())
        nnz = sum(s["nnz"] for s in spec.values())
        dense_bytes = 4 * sum(v.numel() for v in state.values())
        full: dict[str, Any] = {
            "method": "issp",
            "arch": "basicvsr-issp" if arch["bidirectional"] else "basicvsr-uni-issp",
            "ratio": self.cfg.ratio,
            "alpha": self.cfg.alpha,
            "trunk_sparsity": round(1 - nnz / numel, 6),
            "params": params,
            "nonzero_params_without_spynet": params["without_spynet"] - (numel - nnz),
            "macs_per_frame": {k: macs[k] for k in ("lr_size", "total", "spynet", "without_spynet")},
            "speedup": "none: dense convs compute the zeros (no sparse conv runtime in this app)",
            "bytes": {"dense_fp32": dense_bytes,
                      "bitmap_estimate": dense_bytes - 4 * (numel - nnz) + numel // 8},
            "teacher": None,
            "recipe": None,
        }
        full.update(meta or {})
        # What the file costs gzip-compressed (zeros compress; a dense model barely does).
        blob = safetensors_bytes(state)
        full["bytes"]["safetensors"] = len(blob)
        full["bytes"]["safetensors_gzip"] = len(gzip.compress(blob, 6))
        return save_pruned(out_dir, state, plan, full)
