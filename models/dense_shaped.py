"""Dense-shaped pruned exports: a BasicVSR of the dense shape whose weights hold zeros (N:M, ISS-P), or one
with fewer residual blocks per trunk and every layer whole (block pruning).

Both the N:M loader (:mod:`vsrapp_models.nm_sparse`) and the export-folder dispatcher
(:mod:`vsrapp_models.pruned`) read this format, so it lives in its own module that imports neither of them (the
two used to import each other).

Plan (``plan.json``)::

    {"format": "vsrapp-sparse-plan", "version": 1,
     "arch": {"bidirectional": true, "num_feat": 64, "num_block": 30, "scale": 4},
     "pattern": "nm" | "unstructured" | "blocks",
     "m": 4,                                        # nm only
     "layers": {"backward_trunk.main.2.0.conv1": {"n": 2, "numel": 36864, "nnz": 18432}, ...},  # nm, unstructured
     "kept": {"backward_trunk": [1, 2, ...], "forward_trunk": [...]}}  # blocks only: the teacher's block indices

``n`` (N of N:M, nm only) is the count kept in every group of M consecutive input channels at a fixed
(output, kh, kw); ``nnz``/``numel`` are the layer's non-zero and total weights at export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .basicvsr import SCALE, BasicVSR, BasicVSRUni
from .spynet import flow_levels_skipped

SPARSE_PLAN_FORMAT = "vsrapp-sparse-plan"
SPARSE_PLAN_VERSION = 1


def build_dense(arch: dict[str, Any]) -> BasicVSR | BasicVSRUni:
    if arch.get("scale", SCALE) != SCALE:
        raise ValueError(f"only x{SCALE} models are supported")
    cls = BasicVSR if arch["bidirectional"] else BasicVSRUni
    model = cls(int(arch["num_feat"]), int(arch["num_block"]))
    model.spynet.skip_finest = flow_levels_skipped(arch)  # the flow it was trained with (0: SpyNet's full depth)
    return model


def validate_sparse_plan(plan: dict[str, Any], pattern: str) -> None:
    if plan.get("format") != SPARSE_PLAN_FORMAT or plan.get("version") != SPARSE_PLAN_VERSION:
        raise ValueError(f"not a {SPARSE_PLAN_FORMAT} v{SPARSE_PLAN_VERSION} plan")
    if plan.get("pattern") != pattern:
        raise ValueError(f"plan pattern is {plan.get('pattern')!r}, expected {pattern!r}")


def load_dense_shaped(directory: str | Path, pattern: str = "unstructured") -> BasicVSR | BasicVSRUni:
    """A dense-shaped export (weights with zeros), loaded strictly, in eval mode; ``model.plan`` is set."""
    from safetensors.torch import load_file

    directory = Path(directory)
    plan = json.loads((directory / "plan.json").read_text())
    validate_sparse_plan(plan, pattern)
    model = build_dense(plan["arch"])
    model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=True)
    model.plan = plan
    return model.eval()
