"""GASSL = HAIR ratio selection + ASSL with Sparsity Structure Alignment, on the BasicVSR trunks
(frame_pruning.md §A; re-derived from the official ASSL code's behaviour, nothing copied).

What is pruned. Every trunk conv is weight-normalised, ``W_c = g_c * V_c / |V_c|``, and the scale ``g`` is both
the importance score and what is regularised (with the bias, so a removed channel carries no offset). Per trunk:

- the *aligned* group A = the input conv ``main.0`` and every block's ``conv2``: they all add into the residual
  stream, so they must drop the same channels S. The stream and the hidden state become narrower;
- the *free* layers = every block's ``conv1`` (its own hidden filters M_j, its own ratio).

Schedule (step counts from :class:`GasslConfig`; everything is a pure function of the step plus the selections,
which :meth:`Gassl.state_dict` carries for exact resume):

1. HAIR ``[0, H)``: one scalar L2 weight shared by every scale and bias, growing by ``hair_delta`` every
   ``hair_interval`` steps up to ``hair_ceiling``. A slow uniform ramp shrinks loss-insensitive filters most, so
   afterwards |g| is comparable across layers.
2. At step H (:meth:`Gassl.before_step`): one global threshold on all |g| at ``ratio`` gives each layer its
   count; the aligned group of all trunks gets the mean count of its members. Optionally the model is reset
   to the pretrained weights (the official RegPrune restarts from them; then ``before_step`` returns True so
   the loop can clear the optimiser state).
3. SSA ``[H, H + T_ssa)``: ``w_ssa * Omega_SSA`` over each trunk's aligned scales, and the growing L2 on the
   free layers' chosen filters (the K smallest |g|).
4. At ``H + T_ssa``: filters re-chosen on the current |g|; the aligned group gets one set per trunk (see
   ``align_by``), imposed on every member.
5. Growing L2 on every layer's chosen filters up to ``reg_ceiling``, then ``stabilize_steps`` at the ceiling.

``Omega_SSA``: soft keep masks ``s_l = sigmoid((g_l - t_l) / T)`` with ``t_l`` the value at sorted position K of
``g_l`` (a live element, so it gets gradient, as in the official code). The official ``-mean(S @ S.T)`` (maximise
the masks' pairwise overlap) is ``ssa_form="overlap"``; the default is the masks' variance across the group,
which measurably aligns kept sets where the official form does not (see :func:`ssa_loss`).

The loop (``pruning.train``) drives it as::

    method = Gassl(ratio=0.5, config=GasslConfig(...))
    model = method.prepare(dense)                         # a WN copy; step API of the dense model
    groups += method.param_groups(model, lr)              # {"scales": (g vectors, lr)}; weights = the rest
    for step in range(method.total_steps()):
        if method.before_step(model, step): optimizer.state.clear()
        loss = rec + method.penalty(model, step)          # inside the DDP-wrapped objective
        loss.backward(); optimizer.step()
        method.after_step(model, step)
    method.export(model, out_dir, meta)                   # narrow network, models.gassl_slim format
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsrapp_models.basicvsr import SCALE, BasicVSR, BasicVSRUni
from vsrapp_models.complexity import count_macs, count_params
from vsrapp_models.contract import TRUNK_INPUT, block_name
from vsrapp_models.contract import num_blocks as _num_blocks
from vsrapp_models.gassl_slim import GASSL_PLAN_FORMAT, GASSL_PLAN_VERSION, build_gassl, trunk_names
from vsrapp_models.pruned import META_LR_SIZE, save_pruned

from .convs import require_plain_conv
from .method import PruningMethod


class WNConv2d(nn.Conv2d):
    """Weight-normalised conv: ``weight`` holds the direction V, ``scale`` [C_out] the filter norms g."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, 1, padding)
        self.scale = nn.Parameter(torch.ones(out_channels))

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> WNConv2d:
        require_plain_conv(conv, "weight-normalised")
        wn = cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.padding[0])
        wn.to(device=conv.weight.device, dtype=conv.weight.dtype)
        wn.load_dense(conv.weight, conv.bias)
        return wn

    @torch.no_grad()
    def load_dense(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Re-parameterise a dense (W, b): g = |W_c|. Always recompute g after loading weights (the official
        code's "SERIOUS bug" was a stale g after loading a pretrained model)."""
        self.weight.copy_(weight)
        self.bias.copy_(bias)
        self.scale.copy_(weight.flatten(1).norm(dim=1))

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The plain conv's (weight, bias)."""
        norm = self.weight.flatten(1).norm(dim=1).clamp_min(1e-12)
        return self.weight * (self.scale / norm).view(-1, 1, 1, 1), self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.effective()
        return F.conv2d(x, weight, bias, self.stride, self.padding)


def trunk_layers(trunk: str, num_block: int) -> tuple[list[str], list[str]]:
    """(aligned layers, free layers) of one trunk, in module order."""
    aligned = [f"{trunk}.{TRUNK_INPUT}"] + [f"{block_name(trunk, j)}.conv2" for j in range(num_block)]
    free = [f"{block_name(trunk, j)}.conv1" for j in range(num_block)]
    return aligned, free


def model_trunks(model: nn.Module) -> tuple[str, ...]:
    return trunk_names(bool(model.bidirectional))


def num_blocks(model: nn.Module) -> int:
    return _num_blocks(model)  # the contract's rule; the name stays importable from here


def add_wn(dense: BasicVSR | BasicVSRUni) -> BasicVSR | BasicVSRUni:
    """A copy of ``dense`` whose trunk convs are :class:`WNConv2d` (same function, same parameter names plus
    ``.scale``): it is still a BasicVSR, so the step API, SpyNet and the trainer work unchanged."""
    model = copy.deepcopy(dense)
    for trunk in model_trunks(model):
        aligned, free = trunk_layers(trunk, num_blocks(model))
        for name in aligned + free:
            parent, _, child = name.rpartition(".")
            owner = model.get_submodule(parent)
            setattr(owner, child, WNConv2d.from_conv(getattr(owner, child)))
    return model


def wn_layers(model: nn.Module) -> dict[str, WNConv2d]:
    return {n: m for n, m in model.named_modules() if isinstance(m, WNConv2d)}


@torch.no_grad()
def load_dense_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a dense BasicSR-named state into a WN model (g recomputed from the loaded weights)."""
    layers = wn_layers(model)
    plain = {k: v for k, v in state.items() if k.rpartition(".")[0] not in layers}
    missing, unexpected = model.load_state_dict(plain, strict=False)
    wanted = {f"{n}.{p}" for n in layers for p in ("weight", "bias", "scale")}
    if unexpected or set(missing) - wanted:
        raise ValueError(f"state does not fit: missing {sorted(set(missing) - wanted)[:3]}, "
                         f"unexpected {unexpected[:3]}")
    for name, conv in layers.items():
        conv.load_dense(state[f"{name}.weight"].to(conv.weight), state[f"{name}.bias"].to(conv.bias))


# ------------------------------------------------------------------------------------------ selection
def hair_counts(scales: dict[str, torch.Tensor], ratio: float, aligned: list[str],
                normalise: bool = False, multiple: int = 1) -> dict[str, int]:
    """HAIR's global selection: how many filters each layer drops.

    One threshold at the ``ratio`` quantile of all |g| pooled; layer l drops ``n_l = #{|g| < tau}`` (at most
    C-1). Every layer in ``aligned`` gets the mean count of that group (one stream width). ``normalise``
    divides each layer's |g| by its mean first (not in the official code; an option for short HAIR runs).
    ``multiple`` rounds each kept count to the nearest multiple (>= multiple), e.g. 8 for tensor cores.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio {ratio} must be in [0, 1)")
    mags = {n: s.detach().abs().float().cpu() for n, s in scales.items()}
    if normalise:
        mags = {n: m / m.mean().clamp_min(1e-12) for n, m in mags.items()}
    pooled = torch.cat(list(mags.values()))
    k = int(round(ratio * pooled.numel()))
    tau = torch.sort(pooled).values[k] if k < pooled.numel() else math.inf
    counts = {n: min(int((m < tau).sum()), m.numel() - 1) for n, m in mags.items()}
    if aligned:
        mean = round(sum(counts[n] for n in aligned) / len(aligned))
        counts.update({n: mean for n in aligned})

    def rounded(n: str) -> int:
        size = mags[n].numel()
        kept = max(multiple, int(round((size - counts[n]) / multiple)) * multiple)
        return size - min(size, kept)

    return {n: rounded(n) for n in mags}


def smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the k smallest entries (ties by position)."""
    mask = torch.zeros(values.numel(), dtype=torch.bool)
    mask[torch.argsort(values.detach().float().cpu(), stable=True)[:k]] = True
    return mask


def ssa_loss(scales: list[torch.Tensor], k: int, temperature: float = 1.0, detach_threshold: bool = False,
             form: str = "variance") -> torch.Tensor:
    """Sparsity Structure Alignment over the aligned layers' scales (each C long, K = ``k`` to drop).

    Soft keep masks ``s_l = sigmoid((g_l - g_l_sorted[k]) / T)``, stacked into S (|A| x C).

    - ``"overlap"`` (the official code): ``-mean(S @ S.T)``. Its gradient raises every scale almost uniformly,
      so the order within a layer barely changes: on random scales with Adam it aligned nothing (4 layers of 16,
      K = 8, 200 steps, lr 0.01-1, T 1 or 0.1: 4 distinct kept sets in every run; SGD likewise).
    - ``"variance"`` (default): ``sum_l |s_l - mean_l s_l|**2`` averaged over channels, i.e. the overlap term
      plus the masks' own norms. It is 0 exactly when the soft masks agree and pulls each layer's mask towards
      the group's mean, which reorders the scales: the same test with Adam aligned all 4 layers in every run at
      T = 1 (lr 0.01-1, threshold live or detached, 24 runs) and at T = 0.1 with lr <= 0.1; it failed at T = 0.1,
      lr 1.
    """
    rows = []
    for g in scales:
        t = torch.sort(g).values[k]
        rows.append(torch.sigmoid((g - (t.detach() if detach_threshold else t)) / temperature))
    s = torch.stack(rows)
    if form == "overlap":
        return -(s @ s.t()).mean()
    if form == "variance":
        return (s - s.mean(dim=0, keepdim=True)).pow(2).sum(dim=0).mean()
    raise ValueError(f"unknown SSA form {form!r}")


# ------------------------------------------------------------------------------------------ the method
@dataclass
class GasslConfig:
    """Official values (frame_pruning.md §A.5) are the defaults; for BasicVSR they mean ~250k iterations, so a
    real run shortens them (larger deltas, shorter intervals) and says so in its recipe."""

    hair_delta: float = 1e-4
    hair_interval: int = 20
    hair_ceiling: float = 0.05
    hair_stabilize: int = 1
    hair_normalise: bool = False
    restart: bool = True  # RegPrune restarts from the pretrained weights with HAIR's ratios
    ssa_weight: float = 1.0
    ssa_steps: int = 17_260
    ssa_temperature: float = 1.0
    ssa_detach_threshold: bool = False
    ssa_form: str = "variance"  # "overlap" = the official sign and form (see ssa_loss for why not the default)
    align_by: str = "reference"  # "reference": the trunk's main.0 |g| (official); "sum": mean of normalised |g|
    reg_delta: float = 1e-4
    reg_interval: int = 30
    reg_ceiling: float = 0.5
    stabilize_steps: int = 86_300
    multiple: int = 1  # kept counts rounded to a multiple of this (8 or 16 suit GPU tensor cores)
    # The official lambdas act against an L1 loss on 0-255 pixels (EDSR code, rgb_range 255); our losses are on
    # 0-1, so the same balance needs every lambda (and the SSA weight) divided by 255. Step counts are unchanged.
    penalty_scale: float = 1.0 / 255.0

    def growth(self, delta: float, interval: int, ceiling: float) -> int:
        return math.ceil(ceiling / delta - 1e-9) * interval

    def hair_steps(self) -> int:
        return self.growth(self.hair_delta, self.hair_interval, self.hair_ceiling) + self.hair_stabilize


def _ramp(step: int, start: int, delta: float, interval: int, ceiling: float) -> float:
    return 0.0 if step < start else min(ceiling, delta * ((step - start) // interval))


class Gassl(PruningMethod):
    """HAIR + ASSL + SSA as a method object for the shared training loop (see the module docstring)."""

    name = "gassl"

    def __init__(self, ratio: float, config: GasslConfig | None = None) -> None:
        self.ratio = ratio
        self.cfg = config or GasslConfig()
        if self.cfg.align_by not in ("reference", "sum"):
            raise ValueError("align_by must be 'reference' or 'sum'")
        self.counts: dict[str, int] | None = None  # filters to drop per layer (HAIR)
        self.pruned: dict[str, torch.Tensor] = {}  # chosen filters per layer (True = pruned)
        self.reg_start: dict[str, int] = {}  # step at which each layer's growing L2 starts
        self._pretrained: dict[str, torch.Tensor] | None = None

    # ---------------------------------------------------------------------------------------------- set-up
    def prepare(self, dense: BasicVSR | BasicVSRUni) -> BasicVSR | BasicVSRUni:
        """The model to train: a WN copy of ``dense`` (kept for the restart after HAIR)."""
        self._pretrained = {k: v.detach().cpu().clone() for k, v in dense.state_dict().items()}
        return add_wn(dense)

    def param_groups(self, model: nn.Module, base_lr: float) -> dict[str, tuple[list[nn.Parameter], float]]:
        """``scales``: the g vectors at ``base_lr`` (the loop puts every other parameter in its weights group)."""
        return {"scales": ([m.scale for m in wn_layers(model).values()], base_lr)}

    @property
    def h(self) -> int:
        return self.cfg.hair_steps()

    def ssa_end(self) -> int:
        return self.h + self.cfg.ssa_steps

    def total_steps(self) -> int:
        c = self.cfg
        return self.ssa_end() + c.growth(c.reg_delta, c.reg_interval, c.reg_ceiling) + c.stabilize_steps

    def groups(self, model: nn.Module) -> tuple[dict[str, list[str]], list[str]]:
        """(aligned layers per trunk, all free layers)."""
        aligned, free = {}, []
        for trunk in model_trunks(model):
            a, f = trunk_layers(trunk, num_blocks(model))
            aligned[trunk] = a
            free += f
        return aligned, free

    # ------------------------------------------------------------------------------------------ selections
    def select_ratios(self, model: nn.Module) -> dict[str, int]:
        """HAIR's counts on the model's current scales (also what step H does)."""
        aligned, _ = self.groups(model)
        scales = {n: m.scale for n, m in wn_layers(model).items()}
        all_aligned = [n for names in aligned.values() for n in names]
        return hair_counts(scales, self.ratio, all_aligned, self.cfg.hair_normalise, self.cfg.multiple)

    def _choose(self, model: nn.Module, layers: list[str]) -> None:
        """Each free layer's K smallest |g| (K from HAIR)."""
        wn = wn_layers(model)
        for n in layers:
            self.pruned[n] = smallest(wn[n].scale.abs(), self.counts[n])

    def _choose_aligned(self, model: nn.Module) -> None:
        """One stream set per trunk, imposed on every aligned layer of it."""
        wn = wn_layers(model)
        aligned, _ = self.groups(model)
        for names in aligned.values():
            if self.cfg.align_by == "reference":
                score = wn[names[0]].scale.detach().abs().float().cpu()
            else:
                score = sum(s / s.mean().clamp_min(1e-12)
                            for s in (wn[n].scale.detach().abs().float().cpu() for n in names))
            mask = smallest(score, self.counts[names[0]])
            self.pruned.update({n: mask.clone() for n in names})

    # ------------------------------------------------------------------------------------------------ hooks
    def before_step(self, model: nn.Module, step: int) -> bool:
        """Phase changes. Returns True when the weights were reset (the loop should clear optimiser state)."""
        reset = False
        if step == self.h and self.counts is None:
            self.counts = self.select_ratios(model)
            if self.cfg.restart and self._pretrained is not None:
                load_dense_state(model, self._pretrained)
                reset = True
            _, free = self.groups(model)
            self._choose(model, free)
            self.reg_start.update({n: self.h for n in free})
        if step == self.ssa_end() and not any(n.endswith("main.0") for n in self.reg_start):
            _, free = self.groups(model)
            self._choose(model, free)
            self._choose_aligned(model)
            aligned, _ = self.groups(model)
            self.reg_start.update({n: step for names in aligned.values() for n in names})
        return reset

    def lam(self, layer: str, step: int) -> float:
        c = self.cfg
        return _ramp(step, self.reg_start.get(layer, 1 << 62), c.reg_delta, c.reg_interval, c.reg_ceiling)

    def penalty(self, model: nn.Module, step: int) -> torch.Tensor:
        """The loss term at ``step`` (differentiable scalar)."""
        wn = wn_layers(model)
        device = next(iter(wn.values())).scale.device
        total = torch.zeros((), device=device)
        if step < self.h:
            c = self.cfg
            lam = _ramp(step, 0, c.hair_delta, c.hair_interval, c.hair_ceiling)
            if lam > 0:
                total = total + 0.5 * lam * self.cfg.penalty_scale * sum(
                    m.scale.pow(2).sum() + m.bias.pow(2).sum() for m in wn.values())
            return total
        for name, mask in self.pruned.items():
            lam = self.lam(name, step)
            if lam > 0 and mask.any():
                m = mask.to(device)
                total = total + 0.5 * lam * self.cfg.penalty_scale * (
                    wn[name].scale[m].pow(2).sum() + wn[name].bias[m].pow(2).sum())
        if self.counts is not None and step < self.ssa_end() and self.cfg.ssa_weight > 0:
            aligned, _ = self.groups(model)
            for names in aligned.values():
                k = self.counts[names[0]]
                total = total + self.cfg.ssa_weight * self.cfg.penalty_scale * ssa_loss(
                    [wn[n].scale for n in names], k, self.cfg.ssa_temperature, self.cfg.ssa_detach_threshold,
                    self.cfg.ssa_form)
        return total

    def done(self, step: int) -> bool:
        return step >= self.total_steps()

    @torch.no_grad()
    def log(self, model: nn.Module, step: int) -> dict[str, float]:
        """Progress numbers for the log line: the largest chosen |g| and the smallest kept |g|."""
        wn = wn_layers(model)
        chosen = [float(wn[n].scale[m.to(wn[n].scale.device)].abs().max()) for n, m in self.pruned.items()
                  if m.any()]
        kept = [float(wn[n].scale[~m.to(wn[n].scale.device)].abs().min()) for n, m in self.pruned.items()]
        return {"max_g_pruned": max(chosen, default=0.0), "min_g_kept": min(kept, default=0.0)}

    # ------------------------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "config": asdict(self.cfg), "counts": self.counts,
                "pruned": {n: m.clone() for n, m in self.pruned.items()}, "reg_start": dict(self.reg_start)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ratio = state["ratio"]
        self.cfg = GasslConfig(**state["config"])
        self.counts = state["counts"]
        self.pruned = {n: m.to(torch.bool) for n, m in state["pruned"].items()}
        self.reg_start = dict(state["reg_start"])

    # ----------------------------------------------------------------------------------------------- export
    def plan(self, model: nn.Module) -> dict[str, Any]:
        """The narrow network's plan from the current selections (made on the spot if the schedule has not
        got there yet: HAIR counts on the current scales, filters and stream sets chosen now)."""
        if self.counts is None:
            self.counts = self.select_ratios(model)
        aligned, free = self.groups(model)
        if any(n not in self.pruned for n in free):
            self._choose(model, free)
        if any(n not in self.pruned for names in aligned.values() for n in names):
            self._choose_aligned(model)
        return plan_from_pruned(model, self.pruned)

    def export(self, model: nn.Module, out_dir: str | Path, meta: dict[str, Any] | None = None) -> Path:
        model = model.cpu()  # the selections are made on the CPU's copy of the scales, as they always were
        plan = self.plan(model)
        extra = {"ratio": self.ratio, "hair_counts": self.counts, "recipe_method": asdict(self.cfg)}
        extra.update(meta or {})
        return export_gassl(model, plan, out_dir, extra)


def plan_from_pruned(model: nn.Module, pruned: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A GASSL plan from per-layer pruned masks (aligned layers of a trunk must agree)."""
    trunks = model_trunks(model)
    stream, kept = {}, {}
    for trunk in trunks:
        aligned, free = trunk_layers(trunk, num_blocks(model))
        sets = {tuple(torch.nonzero(~pruned[n]).flatten().tolist()) for n in aligned}
        if len(sets) != 1:
            raise ValueError(f"{trunk}: aligned layers keep different channels")
        stream[trunk] = list(sets.pop())
        for n in free:
            kept[f"{n}.out"] = torch.nonzero(~pruned[n]).flatten().tolist()
    arch = {"bidirectional": bool(model.bidirectional), "num_feat": int(model.num_feat),
            "num_block": num_blocks(model), "scale": SCALE}
    return {"format": GASSL_PLAN_FORMAT, "version": GASSL_PLAN_VERSION, "arch": arch, "stream_kept": stream,
            "kept": kept}


@torch.no_grad()
def apply_masks(model: nn.Module, plan: dict[str, Any]) -> None:
    """Zero the scale and bias of every pruned filter: the *masked* model, which computes exactly what the
    narrow network does (pruned stream channels stay 0 through the trunk, the warp and the recurrence)."""
    wn = wn_layers(model)
    for trunk in model_trunks(model):
        aligned, free = trunk_layers(trunk, num_blocks(model))
        for name in aligned + free:
            keep = plan["stream_kept"][trunk] if name in aligned else plan["kept"][f"{name}.out"]
            mask = torch.ones(wn[name].out_channels, dtype=torch.bool)
            mask[keep] = False
            wn[name].scale[mask.to(wn[name].scale.device)] = 0.0
            wn[name].bias[mask.to(wn[name].bias.device)] = 0.0


@torch.no_grad()
def gassl_state_dict(model: nn.Module, plan: dict[str, Any]) -> dict[str, torch.Tensor]:
    """State dict of ``models.gassl_slim.build_gassl(plan)``: WN folded, every trunk conv sliced on both
    sides, fusion's inputs sliced by the stream sets; everything else copied (CPU tensors)."""
    wn = wn_layers(model)
    trunks = model_trunks(model)
    nf = plan["arch"]["num_feat"]
    state: dict[str, torch.Tensor] = {}

    def put(name: str, out_idx: list[int], in_idx: list[int]) -> None:
        w, b = wn[name].effective()
        o = torch.tensor(out_idx, device=w.device)
        state[f"{name}.weight"] = w.index_select(0, o).index_select(1, torch.tensor(in_idx, device=w.device))
        state[f"{name}.bias"] = b.index_select(0, o)

    for trunk in trunks:
        s = plan["stream_kept"][trunk]
        put(f"{trunk}.main.0", s, [0, 1, 2] + [3 + c for c in s])
        for j in range(num_blocks(model)):
            base = block_name(trunk, j)
            m = plan["kept"][f"{base}.conv1.out"]
            put(f"{base}.conv1", m, s)
            put(f"{base}.conv2", s, m)
    # fusion reads cat([backward, forward]) (or the forward state alone).
    fusion_in = [i * nf + c for i, t in enumerate(trunks) for c in plan["stream_kept"][t]]
    state["fusion.weight"] = model.fusion.weight.index_select(1, torch.tensor(fusion_in,
                                                                              device=model.fusion.weight.device))
    for name, tensor in model.state_dict().items():
        layer = name.rpartition(".")[0]
        if layer not in wn and name not in state:
            state[name] = tensor
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def export_gassl(model: nn.Module, plan: dict[str, Any], out_dir: str | Path,
                 meta: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` + ``plan.json`` + ``meta.json`` for the narrow network (built and loaded
    strictly first, so a bad plan fails here rather than in the app)."""
    slim = build_gassl(plan)
    state = gassl_state_dict(model, plan)
    slim.load_state_dict(state, strict=True)
    macs = count_macs(slim, META_LR_SIZE)
    width = len(next(iter(plan["stream_kept"].values())))
    full: dict[str, Any] = {
        "method": "gassl",
        "arch": "basicvsr-gassl" if plan["arch"]["bidirectional"] else "basicvsr-uni-gassl",
        "ratio": None,
        "stream_width": width,
        "hidden_widths": {n: len(v) for n, v in plan["kept"].items()},
        "params": count_params(slim),
        "macs_per_frame": {k: macs[k] for k in ("lr_size", "total", "spynet", "without_spynet")},
        "teacher": None,
        "recipe": None,
    }
    full.update(meta or {})
    return save_pruned(out_dir, state, plan, full)
