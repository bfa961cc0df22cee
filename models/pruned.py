"""One loader for every pruned-model export folder, whatever method made it (never imports ``pruning``).

An export folder holds ``model.safetensors`` (plain tensors, nothing pickled), ``plan.json`` (what the network
looks like) and ``meta.json`` (``method``, params, MACs per 180x320 frame, recipe, ...).
:func:`load_pruned` dispatches on ``meta.json["method"]``:

- ``ssl``: SSL's RSC network, :func:`models.slim.load_slim`;
- ``gassl``: the narrow-stream network, :func:`models.gassl_slim.load_gassl`;
- ``nm``: dense-shaped BasicVSR holding N:M-masked weights, :func:`models.nm_sparse.load_nm` (dense on the CPU;
  :func:`models.nm_sparse.accelerate` swaps 2:4 layers to semi-structured sparse kernels on a capable GPU);
- ``issp``: dense-shaped BasicVSR holding unstructured zeros (:func:`load_dense_shaped`).

Dense-shaped plans (``nm``, ``issp``)::

    {"format": "vsrapp-sparse-plan", "version": 1,
     "arch": {"bidirectional": true, "num_feat": 64, "num_block": 30, "scale": 4},
     "pattern": "nm" | "unstructured",
     "m": 4,                                        # nm only
     "layers": {"backward_trunk.main.2.0.conv1": {"n": 2, "numel": 36864, "nnz": 18432}, ...}}

``n`` (N of N:M, nm only) is the count kept in every group of M consecutive input channels at a fixed
(output, kh, kw); ``nnz``/``numel`` are the layer's non-zero and total weights at export.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .basicvsr import SCALE, BasicVSR, BasicVSRUni

META_LR_SIZE = (180, 320)  # the LR frame size every meta.json quotes MACs at
SPARSE_PLAN_FORMAT = "vsrapp-sparse-plan"
SPARSE_PLAN_VERSION = 1
METHODS = ("ssl", "gassl", "nm", "issp")


def save_pruned(out_dir: str | Path, state: dict[str, torch.Tensor], plan: dict[str, Any],
                meta: dict[str, Any]) -> Path:
    """Write an export folder. Each file goes through a temporary name, so a crash never leaves a half-written
    file under the real name."""
    from safetensors.torch import save_file

    if meta.get("method") not in METHODS:
        raise ValueError(f"meta.method must be one of {METHODS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "model.safetensors.part"
    # One metadata entry only: safetensors writes its metadata map in an arbitrary order, so two entries would
    # make the same weights hash differently from run to run (the zoo pins bundled files by sha256). The
    # method is in meta.json.
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / "model.safetensors")
    for name, obj in (("plan.json", plan), ("meta.json", meta)):
        part = out / f"{name}.part"
        part.write_text(json.dumps(obj, indent=1) + "\n")
        os.replace(part, out / name)
    return out


def read_meta(directory: str | Path) -> dict[str, Any]:
    """``meta.json``; a folder without one (early SSL exports) counts as ``{"method": "ssl"}``."""
    path = Path(directory) / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else {"method": "ssl"}


def build_dense(arch: dict[str, Any]) -> BasicVSR | BasicVSRUni:
    if arch.get("scale", SCALE) != SCALE:
        raise ValueError(f"only x{SCALE} models are supported")
    cls = BasicVSR if arch["bidirectional"] else BasicVSRUni
    return cls(int(arch["num_feat"]), int(arch["num_block"]))


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


def load_pruned(directory: str | Path) -> nn.Module:
    """The model in a pruned export folder, for any method in :data:`METHODS` (eval mode, CPU)."""
    method = read_meta(directory).get("method")
    if method == "ssl":
        from .slim import load_slim
        return load_slim(directory)
    if method == "gassl":
        from .gassl_slim import load_gassl
        return load_gassl(directory)
    if method == "nm":
        from .nm_sparse import load_nm
        return load_nm(directory)
    if method == "issp":
        return load_dense_shaped(directory, "unstructured")
    raise ValueError(f"{directory}: unknown pruning method {method!r} (known: {METHODS})")
