"""SSL's sparsity-inducing regularisation: a growing L2 penalty on the scales of the marked units (ssl.md §7).

``L = L_rec + sum_u 1/2 * lambda(t) * g_u**2`` over the marked entries u only; unmarked scales are free.
lambda(t) starts at 0, grows by ``delta`` every ``interval`` iterations up to ``ceiling`` and then holds
(official defaults 1e-4, 5, 0.1: about 5k iterations of growth, then SSL keeps training ~14k iterations at the
ceiling).

The official code adds ``lambda * g`` to the gradients after ``backward()``; writing it as a loss term gives
the same gradient (d/dg of 1/2 lambda g**2 = lambda g) and works with any optimiser, AMP scaler or DDP. The
official code adds conv1's *output* scale to the *input* scale's gradient (a bug hidden by C_in = C_out = 64);
here every gate is penalised with its own tensor, looked up by name, so ``*.conv1.in`` uses the input scales.
"""

from __future__ import annotations

import math

import torch

from .gates import GatedModel


class GrowingL2:
    """Growing L2 on marked scales. ``marked``: gate name -> bool vector (True = marked for pruning)."""

    def __init__(self, marked: dict[str, torch.Tensor], delta: float = 1e-4, interval: int = 5,
                 ceiling: float = 0.1) -> None:
        if delta <= 0 or interval < 1 or ceiling <= 0:
            raise ValueError("delta and ceiling must be > 0 and interval >= 1")
        self.marked = {n: m.to(torch.bool).cpu() for n, m in marked.items() if bool(m.any())}
        self.delta = delta
        self.interval = interval
        self.ceiling = ceiling

    def lam(self, step: int) -> float:
        """lambda after ``step`` iterations (0 at step 0; one increment per completed interval; capped)."""
        return min(self.ceiling, self.delta * (step // self.interval))

    def growth_steps(self) -> int:
        """First iteration at which lambda has reached the ceiling."""
        # The tolerance absorbs float noise such as 0.1 / 1e-4 = 1000.0000000000001.
        return math.ceil(self.ceiling / self.delta - 1e-9) * self.interval

    def penalty(self, model: GatedModel, step: int) -> torch.Tensor:
        """The loss term at iteration ``step`` (a scalar on the gates' device, differentiable)."""
        lam = self.lam(step)
        total = None
        for name, mask in self.marked.items():
            g = model.gate_tensor(name)
            term = g[mask.to(g.device)].pow(2).sum()
            total = term if total is None else total + term
        if total is None:
            return torch.zeros(())
        return 0.5 * lam * total

    @torch.no_grad()
    def marked_magnitude(self, model: GatedModel) -> tuple[float, float]:
        """(max |g| over marked entries, min |g| over unmarked entries): progress of the sparsity phase."""
        marked_max, free_min = 0.0, float("inf")
        for name, g in model.named_gates().items():
            mask = self.marked.get(name, torch.zeros(g.numel(), dtype=torch.bool)).to(g.device)
            if mask.any():
                marked_max = max(marked_max, float(g[mask].abs().max()))
            if (~mask).any():
                free_min = min(free_min, float(g[~mask].abs().min()))
        return marked_max, free_min
