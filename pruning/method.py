"""The one interface of the pruning methods: what the training loop (:func:`vsrapp_pruning.train.train_method`) and
``vsrapp prune --method NAME`` (:data:`vsrapp_pruning.commands.METHODS`, the registry) know of a method.

The methods side by side, each in its own module over the model contract (:mod:`vsrapp_models.contract`); for each:
what it attaches to the dense model (``prepare``), how it regularizes (``penalty``), when it selects (its step
hooks) and what it exports:

- ``ssl`` (:mod:`vsrapp_pruning.ssl`): scale gates; a growing L2 on the marked gates; marked once at the start and
  selected again at the end; the slim network (:mod:`vsrapp_models.slim`).
- ``gassl`` (:mod:`vsrapp_pruning.gassl`): weight-normalised trunk convs; HAIR, then SSA and a growing L2; layer counts
  at the end of HAIR, filters and stream sets after SSA; the narrow-stream network (:mod:`vsrapp_models.gassl_slim`).
- ``nm`` (:mod:`vsrapp_pruning.nm`): N:M convs with learned level scores; the soft MAC cost; N frozen once the budget is
  met; dense-shaped N:M-masked weights (:mod:`vsrapp_models.nm_sparse`).
- ``issp`` (:mod:`vsrapp_pruning.issp`): a plain copy; nothing; the smallest weights shrunk every step, then a frozen
  mask; dense-shaped unstructured zeros.

The training loop and its data stay outside the methods: a method only says what model to train, which
parameters it adds, what it adds to the loss and what it does around the optimiser steps; its state goes into
every checkpoint (:class:`StepHooks`), and at the end it writes its export format.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from .distill import Anchor

# pruning.train.TrainConfig fields that only SSL reads: its settings have always been recorded there, so the other
# methods leave them out of their recipes (they would show defaults that meant nothing to the run).
SSL_ONLY_FIELDS = ("gate_lr", "ratio", "normalise", "reg_delta", "reg_interval", "reg_ceiling", "tf_weight")


class StepHooks:
    """What the trainer calls around every optimiser step. ``step`` counts the steps done before.
    ``before_step`` returning True means the weights were reset: the optimiser state is cleared."""

    def before_step(self, model: nn.Module, step: int) -> bool:
        return False

    def after_step(self, model: nn.Module, step: int) -> None:
        pass

    def log(self, model: nn.Module, step: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class PruningMethod(StepHooks):
    """A pruning method as the training loop drives it::

        model = method.prepare(dense).to(device)     # attach: the model to train, from the dense one
        method.start(model)                          # once, on its device, before the first step
        groups = method.param_groups(model, lr)      # its own optimiser groups; the loop trains the rest
        each step: method.before_step(...); loss = fit + method.penalty(model, step); optimiser step;
                   method.after_step(...)            # where each method selects, as its schedule says
        method.export(model, out_dir, method.meta(recipe, teacher, method.done(step)))

    The defaults are those of a method that adds nothing: no start, no own parameters, no penalty, no hooks."""

    name: str = ""  # the --method value and the export's meta "method"
    # pruning.distill.Anchor: fit the teacher's cached outputs instead of the ground truth (SSL only, today).
    anchor: Anchor | None = None

    @property
    def phase(self) -> str:
        """The run's ``TrainConfig.phase``, which its checkpoints carry (so a resume cannot mix methods)."""
        return self.name

    def prepare(self, dense: nn.Module) -> nn.Module:
        raise NotImplementedError

    def start(self, model: nn.Module) -> None:
        """Called once the model is on the training device, before the first step (and before a resume)."""

    def param_groups(self, model: nn.Module, base_lr: float) -> dict[str, tuple[list[nn.Parameter], float]]:
        return {}

    def penalty(self, model: nn.Module, step: int) -> torch.Tensor:
        return torch.zeros((), device=next(model.parameters()).device)

    def done(self, step: int) -> bool:
        """Whether the method's schedule has run its course after ``step`` steps (an export made before says so)."""
        return True

    def train_config(self) -> dict[str, Any]:
        """Settings of this method that go into the run's ``TrainConfig`` (SSL's; the others keep theirs)."""
        return {}

    def meta(self, recipe: dict[str, Any], teacher: str, complete: bool) -> dict[str, Any]:
        """The export's meta from the run's recipe (``pruning.train``): the method's JSON-able settings under
        ``recipe["method"]``, SSL's ``TrainConfig`` fields left out."""
        recipe["config"] = {k: v for k, v in recipe["config"].items() if k not in SSL_ONLY_FIELDS}
        state = self.state_dict()
        recipe["method"] = {k: state[k] for k in ("config", "budget") if k in state}
        return {"teacher": teacher, "schedule_complete": complete, "recipe": {"sparsity": recipe}}

    def export(self, model: nn.Module, out_dir: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write the trained ``model`` (on its training device) in the method's format into ``out_dir``."""
        raise NotImplementedError
