"""Importance scores and SSL's global selection of the units to prune (ssl.md §6).

Score. The L1 norm (mean |w|) of each unit's *scale-folded* weights (see :mod:`vsrapp_pruning.gates` for why not
|g|):

- output gate, group 1: mean |W'[i, :, :, :]|;
- upconv group g: mean |W'[4g:4g+4, :, :, :]|;
- conv1 input gate, channel c: mean |W'[:, c, :, :]| (how much the block draws on stream channel c).

Normalisation (``normalise="layer"``, the default). Every gate vector is divided by its own mean before the
global sort, so a score says "this unit relative to the average unit of its own layer". Raw L1 magnitudes
differ between layers for reasons that have little to do with importance: 1x1 fusion versus 3x3 convs, a
filter's L1 versus an input slice's, BasicSR's 0.1 init scaling of residual blocks, later blocks learning
smaller residuals. Unnormalised, a global threshold removes whole layers by their scale convention (ssl.md §6
notes the official code even mixes |g| with L1 in one list). Mean normalisation keeps the ranking global (one
threshold for all 11,776 entries, so per-layer ratios still come out unequal) while making entries comparable.
Each upconv group counts once, as in SSL.

Measured on the official Vimeo BI weights at ratio 0.5 (one-shot, before any sparsity training; RGB PSNR of
4 frames of Vid4 calendar cropped to 64x64 LR, dense 21.83 dB):

- ``"layer"``: per-gate pruned fractions 0.36-0.75 (reconstruction 0.45-0.59), 1.26 M params w/o SpyNet,
  89 GMACs w/o SpyNet at 180x320; one-shot 12.3 dB;
- ``"kind"`` (one mean per gate kind: all trunk conv1.in, all conv1.out, all conv2.out, each upsampler
  layer): 1.45 M params, one-shot 15.3 dB;
- ``"none"``: fractions 0.06-0.98 per trunk gate, fusion 0.05, upconv2 0.0; 1.71 M params, one-shot 17.6 dB.

One-shot PSNR mostly measures how much of the skip-less reconstruction path is cut; SSL does not cut one-shot
(the growing penalty lets the network re-route first), so which choice ends best after training is open.
"""

from __future__ import annotations

import torch

from vsrapp_models.contract import strip_block

from .gates import GatedModel

NORMALISATIONS = ("layer", "kind", "none")


def gate_kind(name: str) -> str:
    """``backward_trunk.main.2.7.conv1.in`` -> ``trunk.conv1.in``; reconstruction gates are their own kind."""
    return strip_block(name)


@torch.no_grad()
def importance_scores(model: GatedModel, normalise: str = "layer") -> dict[str, torch.Tensor]:
    """Score per gate entry (gate name -> 1-D float tensor on the CPU); higher = more important.
    ``normalise``: ``"layer"`` (divide by the gate's mean), ``"kind"`` (by the mean of its kind) or ``"none"``."""
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, not {normalise!r}")
    scores: dict[str, torch.Tensor] = {}
    for gate in model.gates:
        weight, _ = model.gated_conv(gate.layer).folded()
        w = weight.detach().abs().float().cpu()
        if gate.side == "in":
            s = w.mean(dim=(0, 2, 3))
        else:
            s = w.reshape(w.shape[0] // gate.group, -1).mean(dim=1)
        scores[gate.name] = s
    if normalise == "none":
        return scores
    groups: dict[str, list[str]] = {}
    for name in scores:
        groups.setdefault(name if normalise == "layer" else gate_kind(name), []).append(name)
    for names in groups.values():
        mean = torch.cat([scores[n] for n in names]).mean().clamp_min(torch.finfo(torch.float32).tiny)
        for n in names:
            scores[n] = scores[n] / mean
    return scores


def select_global(scores: dict[str, torch.Tensor], ratio: float = 0.5, min_keep: int = 1,
                  ) -> dict[str, torch.Tensor]:
    """Mark the lowest ``ratio`` of all entries of all gates together; return gate name -> bool (True =
    pruned).

    Ties break by position (stable sort), so the result is deterministic. Every gate keeps at least
    ``min_keep`` entries (its best ones), so the count pruned can fall a few short of ``ratio``.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio {ratio} must be in [0, 1)")
    names = list(scores)
    flat = torch.cat([scores[n].flatten().float() for n in names])
    n_prune = int(round(ratio * flat.numel()))
    pruned_flat = torch.zeros(flat.numel(), dtype=torch.bool)
    pruned_flat[torch.argsort(flat, stable=True)[:n_prune]] = True

    masks: dict[str, torch.Tensor] = {}
    start = 0
    for n in names:
        s = scores[n].flatten()
        mask = pruned_flat[start:start + s.numel()].clone()
        start += s.numel()
        short = min_keep - int((~mask).sum())
        if short > 0:
            # Give back the best-scoring pruned entries of a layer the threshold would have emptied.
            candidates = torch.nonzero(mask).flatten()
            best = candidates[torch.argsort(s[candidates], descending=True, stable=True)[:short]]
            mask[best] = False
        masks[n] = mask
    return masks


def pruned_fraction(masks: dict[str, torch.Tensor]) -> dict[str, float]:
    """Fraction of entries pruned per gate (the unequal per-layer ratios global selection produces)."""
    return {n: float(m.float().mean()) for n, m in masks.items()}


def select_kinds(scores: dict[str, torch.Tensor], ratio: float, kinds: set[str] | frozenset[str],
                 multiple: int = 1) -> dict[str, torch.Tensor]:
    """SSL's global selection restricted to the gates of ``kinds`` (:func:`gate_kind` names such as
    ``trunk.conv1.out``, ``upconv2.out``), with every such gate's kept count rounded to the nearest multiple of
    ``multiple`` (at least ``multiple``, at most all); every other gate keeps everything.

    Why restrict: a block whose read and write sets are the whole stream needs no gather/scatter, and the
    hidden width alone sets its cost, so the slim network runs at the dense network's efficiency per MAC
    (docs/BENCHMARKS.md measures the RSC plans at about half of it). Why round: convolution kernels run whole
    vector lanes and tiles, so a width of 8k costs about what 8k+1 costs. Kept entries are the best-scoring
    ones of each gate; ties break by position, so the result is deterministic."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, not {multiple}")
    chosen = {n: s for n, s in scores.items() if gate_kind(n) in kinds}
    if not chosen:
        raise ValueError(f"no gate of the kinds {sorted(kinds)}")
    rough = select_global(chosen, ratio)
    masks = {n: torch.zeros(s.numel(), dtype=torch.bool) for n, s in scores.items()}
    for name, mask in rough.items():
        s = chosen[name].flatten()
        keep = int((~mask).sum())
        keep = min(s.numel(), max(multiple, multiple * round(keep / multiple)))
        order = torch.argsort(s, descending=True, stable=True)
        pruned = torch.ones(s.numel(), dtype=torch.bool)
        pruned[order[:keep]] = False
        masks[name] = pruned
    return masks
