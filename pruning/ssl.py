"""SSL (Xia et al., CVPR 2023; ssl.md §7) as a pruning method object beside GASSL, N:M and ISS-P.

Its parts have their own modules: the scale gates (:mod:`vsrapp_pruning.gates`), the importance scores and the
global selection (:mod:`vsrapp_pruning.selection`), the growing L2 (:mod:`vsrapp_pruning.regularizer`), the kept-index
plan (:mod:`vsrapp_pruning.plan`) and the slim export (:mod:`vsrapp_pruning.export`). :class:`Ssl` puts them in the
order of the sparsity phase:

- ``prepare``: the dense model with scale gates; ``start``: the lowest ``ratio`` of the gate entries is marked
  once, on the training device (with an :class:`~vsrapp_pruning.distill.Anchor`, only the gates of its kinds, widths
  rounded to its multiple);
- ``penalty``: the growing L2 on the marked scales, while the fidelity term lets the rest of the network
  re-route; the gates train in their own optimiser group (``gate_lr``);
- ``export``: the selection redone on the trained gates (held to a teacher cache: exactly the marked entries,
  which the penalty drove to zero), the plan, and the slim network.

The marked set is the method's checkpoint state, so a resumed run penalises the set it started with.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .export import export_slim
from .gates import GatedModel, add_gates
from .method import PruningMethod
from .plan import plan_from_masks
from .regularizer import GrowingL2
from .selection import importance_scores, pruned_fraction, select_global, select_kinds

if TYPE_CHECKING:
    from .distill import Anchor

LOG = logging.getLogger("vsrapp.train")  # the training log's (pruning.train.setup_logging)


@dataclass
class SslConfig:
    """SSL's settings; their names are the ``TrainConfig`` fields under which SSL recipes have recorded them."""

    ratio: float = 0.5  # share of all gate entries to prune
    normalise: str = "layer"  # score normalisation before the global sort (pruning.selection)
    gate_lr: float | None = None  # learning rate of the gates (None: the weights', as SSL)
    reg_delta: float = 1e-4  # the growing L2: lambda increment,
    reg_interval: int = 5  # iterations per increment,
    reg_ceiling: float = 0.1  # and ceiling


class Ssl(PruningMethod):
    """SSL's sparsity phase (see the module docstring)."""

    name = "ssl"
    phase = "sparsity"  # what SSL runs have always called their phase: their checkpoints and recipes say so

    def __init__(self, config: SslConfig | None = None, anchor: Anchor | None = None) -> None:
        self.cfg = config or SslConfig()
        self.anchor = anchor
        self.marked: dict[str, torch.Tensor] = {}  # gate name -> bool vector (True = marked for pruning)
        self.reg: GrowingL2 | None = None

    @classmethod
    def from_config(cls, cfg: Any, anchor: Anchor | None = None) -> Ssl:
        """The method of a ``TrainConfig`` that holds SSL's settings (as ``vsrapp prune --method ssl`` makes it)."""
        return cls(SslConfig(**{f.name: getattr(cfg, f.name) for f in fields(SslConfig)}), anchor)

    def train_config(self) -> dict[str, Any]:
        return asdict(self.cfg)

    # ---------------------------------------------------------------------------------------------- set-up
    def prepare(self, dense: nn.Module) -> GatedModel:
        return add_gates(dense)

    def start(self, model: nn.Module) -> None:
        scores = importance_scores(model, self.cfg.normalise)
        if self.anchor is None:
            self.marked = select_global(scores, self.cfg.ratio)
        else:
            self.marked = select_kinds(scores, self.cfg.ratio, self.anchor.kinds, self.anchor.multiple)
        c = self.cfg
        self.reg = GrowingL2(self.marked, c.reg_delta, c.reg_interval, c.reg_ceiling)
        LOG.info("marked %d of %d gate entries (ratio %.3f); lambda reaches %.3g at step %d",
                 sum(int(m.sum()) for m in self.marked.values()), sum(m.numel() for m in self.marked.values()),
                 c.ratio, c.reg_ceiling, self.reg.growth_steps())

    def param_groups(self, model: nn.Module, base_lr: float) -> dict[str, tuple[list[nn.Parameter], float]]:
        return {"gates": (model.gate_parameters(), self.cfg.gate_lr or base_lr)}

    # ------------------------------------------------------------------------------------------------ steps
    def penalty(self, model: nn.Module, step: int) -> torch.Tensor:
        return self.reg.penalty(model, step)

    def log(self, model: nn.Module, step: int) -> dict[str, float]:
        marked_max, free_min = self.reg.marked_magnitude(model)
        return {"lambda": self.reg.lam(step), "max|g| marked": marked_max, "min|g| free": free_min}

    def state_dict(self) -> dict[str, Any]:
        return {"marked": self.marked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "marked" in state:  # the checkpoint's marked set, not this process's fresh selection
            self.marked = state["marked"]
            self.reg.marked = {n: m for n, m in self.marked.items() if bool(m.any())}

    # ----------------------------------------------------------------------------------------------- export
    def meta(self, recipe: dict[str, Any], teacher: str, complete: bool) -> dict[str, Any]:
        # SSL's meta as it has always been: its settings are in recipe["config"], the schedule is the run's length.
        if self.anchor is not None:
            recipe["anchor"] = self.anchor.describe()
        return {"ratio": self.cfg.ratio, "teacher": teacher, "recipe": {"sparsity": recipe}}

    def export(self, model: nn.Module, out_dir: str | Path, meta: dict[str, Any] | None = None) -> Path:
        # Scores are taken where the gates trained (the device), then the slim network is cut on the CPU.
        if self.anchor is None:
            final = select_global(importance_scores(model, self.cfg.normalise), self.cfg.ratio)
        else:
            final = {n: m.clone() for n, m in self.marked.items()}
        overlap = sum(int((final[n] & self.marked[n].to(final[n].device)).sum()) for n in final)
        LOG.info("re-selection: %d pruned, %d of them were marked at the start",
                 sum(int(m.sum()) for m in final.values()), overlap)
        fractions = pruned_fraction(final)
        LOG.info("pruned fraction per gate: min %.2f max %.2f", min(fractions.values()), max(fractions.values()))
        plan = plan_from_masks(model, final)
        return export_slim(model.cpu(), plan, out_dir, meta)
