"""Importance scores and SSL's global selection of the units to prune (ssl.md §6).

Score. The L1 norm (mean |w|) of each unit's *scale-folded* weights (see :mod:`pruning.gates` for why not
|g|):

- output gate, group 1: mean |W'[i, :, :, :]|;
- upconv group g: mean |W'[4g:4g+4, :, :, :]|;
- conv1 input gate, channel c: mean |W'[:, c, :, :]| (how much the block draws on stream channel c).

Normalisation. Every gate vector is divided by its own mean before the global sort, so a score says "this unit
relative to the average unit of its own layer". Raw L1 magnitudes differ between layers for reasons that have
nothing to do with importance: 1x1 fusion versus 3x3 convs, a filter's L1 versus an input slice's, BasicSR's
0.1 init scaling of residual blocks, later blocks learning smaller residuals. Unnormalised, a global threshold
would remove whole layers by their scale convention (ssl.md §6 notes the official code even mixes |g| with L1
in one list). Mean normalisation keeps the ranking global (one threshold for all 11,776 entries, so per-layer
ratios still come out unequal: a layer with a few dominant filters loses many, a flat layer few) while making
the entries comparable. Each upconv group counts once, as in SSL.
"""

from __future__ import annotations

import torch

from .gates import GatedModel


@torch.no_grad()
def importance_scores(model: GatedModel, normalise: bool = True) -> dict[str, torch.Tensor]:
    """Score per gate entry (gate name -> 1-D float tensor on the CPU); higher = more important."""
    scores: dict[str, torch.Tensor] = {}
    for gate in model.gates:
        weight, _ = model.gated_conv(gate.layer).folded()
        w = weight.detach().abs().float().cpu()
        if gate.side == "in":
            s = w.mean(dim=(0, 2, 3))
        else:
            s = w.reshape(w.shape[0] // gate.group, -1).mean(dim=1)
        if normalise:
            s = s / s.mean().clamp_min(torch.finfo(s.dtype).tiny)
        scores[gate.name] = s
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
