"""The small zoo/evaluation interface of pruning: the one module under ``pruning/`` that imports the application
beyond :mod:`vsrapp.errors` (docs/DESIGN.md), so that the rest of pruning depends on ``models/`` and on these
few names only.

- :func:`get_model`, :func:`dense_teacher`: a model by zoo name or path (the teachers of ``vsrapp prune`` and
  ``finetune``, ``python -m pruning.distill cache``, ``pruning.refit``, ``pruning.measure``), with the weights
  folder falling back to the repository's ``../shared/weights`` when ``$VSRAPP_WEIGHTS`` is unset;
- :data:`BUNDLED_DIR`, :func:`sha256_of`: where bundled models ship and the checksum their zoo entry quotes
  (:mod:`vsrapp_pruning.bundle`);
- :func:`evaluate`: the Vid4 score of a model (:mod:`vsrapp_pruning.measure`).

Callers use these through the module (``zoo.dense_teacher(name)``), so a test swaps a teacher in one place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from vsrapp import zoo as _app_zoo
from vsrapp.errors import UsageError

BUNDLED_DIR: Path = _app_zoo.BUNDLED_DIR
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights"


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, as the zoo's entries quote it."""
    return _app_zoo.sha256_of(path)


def use_default_weights() -> None:
    """``$VSRAPP_WEIGHTS`` (where the zoo looks for downloaded weights) set to ``../shared/weights`` when unset
    and that folder exists: training runs on this machine find their teachers without being told."""
    if not os.environ.get("VSRAPP_WEIGHTS") and DEFAULT_WEIGHTS.is_dir():
        os.environ["VSRAPP_WEIGHTS"] = str(DEFAULT_WEIGHTS)


def get_model(name: str) -> nn.Module:
    """A model by zoo name, checkpoint path or pruned-model folder (``vsrapp.zoo.get_model``)."""
    use_default_weights()
    return _app_zoo.get_model(name)


def dense_teacher(name: str) -> nn.Module:
    """The dense BasicVSR (either direction) named ``name``; a pruned model is refused (:class:`UsageError`)."""
    model = get_model(name)
    if not hasattr(model, "forward_trunk") or hasattr(model, "plan"):
        raise UsageError(f"teacher {name!r} is not a dense BasicVSR")
    return model


def evaluate(model: nn.Module, name: str, root: Path, **options: Any) -> Any:
    """Vid4 BI x4 PSNR/SSIM on the Y channel (``vsrapp.evaluation.evaluate``; options as there)."""
    from vsrapp.evaluation import evaluate as vid4  # OpenCV and the metrics only when something is scored

    return vid4(model, name, root, **options)
