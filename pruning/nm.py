"""SLS-style learned layer-wise N:M sparsity with a MAC budget, restricted to hardware patterns (M = 4)
(frame_pruning.md §B; re-derived from the official SLS code's behaviour, nothing copied).

Each residual-block conv of the trunks becomes an :class:`NMConv2d` (the trunks' input convs stay dense: 67
input channels do not split into groups of 4, and 603-wide GEMM rows do not fit the 2:4 kernels). Inside each
group of M = 4 consecutive input channels (fixed output filter and tap, NVIDIA's ASP layout, see
:mod:`vsrapp_models.nm_sparse`) the weights are ranked by |w|. A layer chooses N from ``levels`` (default ``(2, 4)``:
2:4 or dense, the two patterns sparse tensor cores run; ``(1, 2, 3, 4)`` is the paper's free choice) through
learnable scores ``s`` (one per step between levels, initialised to 1 = dense):

    p_k = prod_{j<=k} clip(s_j, 0, 1.03),  b_k = prod_{j<=k} [p_j > 0.5]   (ordered: no level without the ones
    below it; the official code thresholds p_k alone, which 1.03 > 1 can make unordered)
    m_k = b_k + p_k - stopgrad(p_k)          (straight-through)
    mask = [rank < levels_0] + sum_k m_k [levels_{k-1} <= rank < levels_k],   N = levels_0 + sum_k b_k * step_k

Cost: ``sum_l (N_l / M) * MACs_l / sum_l MACs_l`` (the fraction of the searched layers' dense MACs, with soft
N so the scores get its gradient), weighted by ``lam * a``. When the hard cost reaches the ``budget`` every N
is frozen for good (layers that overshot are given back, most reluctant first, while the cost stays in budget)
and training goes on as fine-tuning; until then, if the compression ratio grew by less
than ``anneal_threshold`` over ``anneal_every`` steps, ``a`` is multiplied by ``anneal_factor``. The ranking
(which weights are the largest) is recomputed every ``rerank_every`` steps, as SLS does once per epoch.

The loop drives it as::

    method = NMSparsity(budget=0.75)
    model = method.prepare(dense)                      # NM convs; step API of the dense model
    groups += method.param_groups(model, lr)           # {"scores": (scores, cfg.score_lr)}
    each step: method.before_step(model, step); loss = rec + method.penalty(model, step); backward; step;
               method.after_step(model, step)
    method.export(model, out_dir, meta)                # masked weights + pattern (models.nm_sparse.load_nm)
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsrapp_models.basicvsr import SCALE, BasicVSR, BasicVSRUni
from vsrapp_models.complexity import count_macs, count_params
from vsrapp_models.contract import block_conv_names, num_blocks
from vsrapp_models.nm_sparse import M_HW, group_ranks
from vsrapp_models.pruned import META_LR_SIZE, SPARSE_PLAN_FORMAT, SPARSE_PLAN_VERSION, save_pruned

from .convs import copy_conv_into, require_plain_conv
from .method import PruningMethod

TAU = 0.5
CLIP = 1.03  # SLS's headroom above 1, so a score can come back from just under the threshold


class NMConv2d(nn.Conv2d):
    """A conv whose weight is masked to a learned N:M pattern. Extra parameters: ``scores``; buffers: ``rank``
    (in-group rank by |w|, refreshed by :meth:`rerank`) and ``frozen_n`` (-1 while N is still learned)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int,
                 levels: tuple[int, ...], m: int = M_HW) -> None:
        super().__init__(in_channels, out_channels, kernel_size, 1, padding)
        if list(levels) != sorted(set(levels)) or levels[0] < 1 or levels[-1] != m:
            raise ValueError(f"levels must ascend from >= 1 to M={m}, got {levels}")
        self.m = m
        self.levels = tuple(levels)
        self.scores = nn.Parameter(torch.ones(len(levels) - 1))
        self.register_buffer("rank", torch.zeros(self.weight.shape, dtype=torch.uint8))
        self.register_buffer("frozen_n", torch.tensor(-1))

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, levels: tuple[int, ...], m: int = M_HW) -> NMConv2d:
        require_plain_conv(conv, "N:M sparsified")
        nm = copy_conv_into(cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.padding[0], levels, m),
                            conv)
        nm.rerank()
        return nm

    @torch.no_grad()
    def rerank(self) -> None:
        self.rank.copy_(group_ranks(self.weight, self.m))

    def keep_probs(self) -> torch.Tensor:
        return torch.cumprod(self.scores.clamp(0.0, CLIP), 0)

    def level_gates(self) -> torch.Tensor:
        """m_k: hard 0/1 forward, straight-through gradient to the scores."""
        p = self.keep_probs()
        hard = torch.cumprod((p > TAU).to(p.dtype), 0)
        return hard + p - p.detach()

    def n(self) -> int:
        """The current hard N."""
        if int(self.frozen_n) > 0:
            return int(self.frozen_n)
        steps = torch.diff(torch.tensor(self.levels))
        hard = torch.cumprod((self.keep_probs().detach().cpu() > TAU).long(), 0)
        return self.levels[0] + int((hard * steps).sum())

    def soft_n(self) -> torch.Tensor:
        """N with the straight-through gates (value = hard N, gradient to the scores)."""
        steps = torch.diff(torch.tensor(self.levels, dtype=self.scores.dtype, device=self.scores.device))
        return self.levels[0] + (self.level_gates() * steps).sum()

    def mask(self) -> torch.Tensor:
        rank = self.rank.long()
        if int(self.frozen_n) > 0:
            return (rank < int(self.frozen_n)).to(self.weight.dtype)
        gates = self.level_gates()
        mask = (rank < self.levels[0]).to(self.weight.dtype)
        for k in range(1, len(self.levels)):
            band = (rank >= self.levels[k - 1]) & (rank < self.levels[k])
            mask = mask + gates[k - 1] * band.to(self.weight.dtype)
        return mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask(), self.bias, self.stride, self.padding)


def searched_layers(model: nn.Module) -> list[str]:
    """Every residual-block conv of the trunks (the input convs' 67 channels do not split into groups of 4)."""
    return block_conv_names(bool(model.bidirectional), num_blocks(model))


def nm_layers(model: nn.Module) -> dict[str, NMConv2d]:
    return {n: m for n, m in model.named_modules() if isinstance(m, NMConv2d)}


def layer_macs(conv: nn.Conv2d) -> int:
    """MACs per LR pixel (all searched layers see the same feature size, so per pixel is enough for ratios)."""
    return conv.out_channels * conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]


@dataclass
class NMConfig:
    levels: tuple[int, ...] = (2, 4)
    m: int = M_HW
    lam: float = 1.0  # the cost is a fraction in [levels_0/M, 1], so the weight is O(loss) rather than 1e-10
    anneal_factor: float = 1.2
    anneal_threshold: float = 0.2
    anneal_every: int = 200
    rerank_every: int = 100
    score_lr: float = 1e-2  # scores move 1 -> 0.5 in ~50 Adam steps; at the weights' 1e-4 it would take ~5k


class NMSparsity(PruningMethod):
    """Learned per-layer N:M under a MAC budget (``budget`` = kept fraction of the searched layers' MACs)."""

    name = "nm"
    unused_parameters = True  # for DDP: once N is frozen the scores take no part in the loss

    def __init__(self, budget: float = 0.75, config: NMConfig | None = None) -> None:
        self.cfg = config or NMConfig()
        if self.cfg.m != M_HW:
            raise ValueError(f"only M = {M_HW} has hardware kernels")
        if not self.cfg.levels[0] / self.cfg.m <= budget <= 1.0:
            raise ValueError(f"budget {budget} is below what the lowest level ({self.cfg.levels[0]}:4) reaches")
        self.budget = budget
        self.a = 1.0
        self.last_ratio = 1.0
        self.frozen_at: int | None = None

    def prepare(self, dense: BasicVSR | BasicVSRUni) -> BasicVSR | BasicVSRUni:
        model = copy.deepcopy(dense)
        for name in searched_layers(model):
            parent, _, child = name.rpartition(".")
            owner = model.get_submodule(parent)
            setattr(owner, child, NMConv2d.from_conv(getattr(owner, child), tuple(self.cfg.levels), self.cfg.m))
        return model

    def param_groups(self, model: nn.Module, base_lr: float) -> dict[str, tuple[list[nn.Parameter], float]]:
        return {"scores": ([c.scores for c in nm_layers(model).values()], self.cfg.score_lr)}

    # ------------------------------------------------------------------------------------------------ cost
    def cost(self, model: nn.Module, soft: bool = False) -> torch.Tensor | float:
        """Kept fraction of the searched layers' dense MACs (soft: differentiable through the scores)."""
        layers = nm_layers(model).values()
        total = sum(layer_macs(c) for c in layers)
        if soft:
            return sum(c.soft_n() / c.m * layer_macs(c) for c in layers) / total
        return sum(c.n() / c.m * layer_macs(c) for c in layers) / total

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None

    # ------------------------------------------------------------------------------------------------ hooks
    @torch.no_grad()
    def freeze(self, model: nn.Module) -> None:
        """Fix every layer's N. Layers that share a cost gradient cross the threshold in the same step and can
        overshoot the budget (all trunk convs cost the same), so layers are given back one level at a time, the
        most reluctant first (highest keep probability at their next level), while the cost stays in budget."""
        layers = nm_layers(model)
        for conv in layers.values():
            conv.frozen_n.fill_(conv.n())

        def reluctance(conv: NMConv2d) -> float:
            level = conv.levels.index(int(conv.frozen_n))
            return float(conv.keep_probs()[level]) if level < len(conv.levels) - 1 else -1.0

        while True:
            candidates = [c for c in layers.values() if int(c.frozen_n) < c.m]
            if not candidates:
                return
            best = max(candidates, key=reluctance)
            old = int(best.frozen_n)
            best.frozen_n.fill_(best.levels[best.levels.index(old) + 1])
            if self.cost(model) > self.budget + 1e-9:
                best.frozen_n.fill_(old)
                return

    def before_step(self, model: nn.Module, step: int) -> bool:
        if step % self.cfg.rerank_every == 0:
            for conv in nm_layers(model).values():
                conv.rerank()
        return False

    def penalty(self, model: nn.Module, step: int) -> torch.Tensor:
        if self.frozen:
            return torch.zeros((), device=next(model.parameters()).device)
        return self.cfg.lam * self.a * self.cost(model, soft=True)

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        if self.frozen:
            return
        cost = self.cost(model)
        if cost <= self.budget + 1e-9:
            self.freeze(model)
            self.frozen_at = step
            return
        if (step + 1) % self.cfg.anneal_every == 0:
            ratio = 1.0 / cost
            if ratio / self.last_ratio - 1.0 < self.cfg.anneal_threshold:
                self.a *= self.cfg.anneal_factor
            self.last_ratio = ratio

    def done(self, step: int) -> bool:
        return self.frozen

    def log(self, model: nn.Module, step: int) -> dict[str, float]:
        ns = [c.n() for c in nm_layers(model).values()]
        return {"cost": float(self.cost(model)), "a": self.a, "sparse_layers": float(sum(n < self.cfg.m for n in ns))}

    # ------------------------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        """N, scores and rankings live in the model's state dict; this is the rest."""
        return {"budget": self.budget, "config": asdict(self.cfg), "a": self.a, "last_ratio": self.last_ratio,
                "frozen_at": self.frozen_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        cfg = dict(state["config"])
        cfg["levels"] = tuple(cfg["levels"])
        self.cfg = NMConfig(**cfg)
        self.budget, self.a, self.last_ratio = state["budget"], state["a"], state["last_ratio"]
        self.frozen_at = state["frozen_at"]

    # ----------------------------------------------------------------------------------------------- export
    @torch.no_grad()
    def masked_state(self, model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(dense-named state with masked weights, plan). The rankings are the ones the model was last trained
        with (not refreshed from the final weights), so the export computes exactly what the trained masked
        model computes. Re-ranking here could swap in weights that sat outside the mask (no gradient through
        it) since the last ranking, i.e. a function that was never trained."""
        layers = nm_layers(model)
        state = {k: v for k, v in model.state_dict().items() if k.rpartition(".")[0] not in layers}
        spec = {}
        for name, conv in layers.items():
            n = conv.n()
            weight = conv.weight * (conv.rank.long() < n).to(conv.weight.dtype)
            state[f"{name}.weight"], state[f"{name}.bias"] = weight, conv.bias
            spec[name] = {"n": n, "numel": weight.numel(), "nnz": int((weight != 0).sum())}
        arch = {"bidirectional": bool(model.bidirectional), "num_feat": int(model.num_feat),
                "num_block": num_blocks(model), "scale": SCALE}
        plan = {"format": SPARSE_PLAN_FORMAT, "version": SPARSE_PLAN_VERSION, "arch": arch, "pattern": "nm",
                "m": self.cfg.m, "layout": "groups of m consecutive input channels per (out, kh, kw)",
                "layers": spec}
        return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, plan

    def export(self, model: nn.Module, out_dir: str | Path, meta: dict[str, Any] | None = None) -> Path:
        from vsrapp_models.pruned import build_dense

        model = model.cpu()  # the searched cost below is measured on the CPU, as it always was
        state, plan = self.masked_state(model)
        dense = build_dense(plan["arch"])
        dense.load_state_dict(state, strict=True)
        macs = count_macs(dense, META_LR_SIZE)
        hw = META_LR_SIZE[0] * META_LR_SIZE[1]
        saved = sum((1 - s["n"] / plan["m"]) * s["numel"] for s in plan["layers"].values()) * hw
        two_four = [n for n, s in plan["layers"].items() if s["n"] <= 2]
        full: dict[str, Any] = {
            "method": "nm",
            "arch": "basicvsr-nm" if plan["arch"]["bidirectional"] else "basicvsr-uni-nm",
            "budget": self.budget,
            "budget_met": self.frozen,
            "searched_cost": round(float(self.cost(model)), 6),
            "n_per_layer": {n: s["n"] for n, s in plan["layers"].items()},
            "layers_2of4": len(two_four),
            "params": count_params(dense),
            "nonzero_params_without_spynet": count_params(dense)["without_spynet"]
            - sum(s["numel"] - s["nnz"] for s in plan["layers"].values()),
            "macs_per_frame": {k: macs[k] for k in ("lr_size", "total", "spynet", "without_spynet")},
            # What N:M would save if every sparse layer ran on an N:M kernel; only 2:4 layers on sm80+ GPUs can.
            "nm_macs_without_spynet": int(macs["without_spynet"] - saved),
            "teacher": None,
            "recipe": None,
        }
        full.update(meta or {})
        return save_pruned(out_dir, state, plan, full)
