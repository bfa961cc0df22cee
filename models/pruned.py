"""One loader for every pruned-model export folder, whatever method made it (never imports ``pruning``).

An export folder holds ``model.safetensors`` (plain tensors, nothing pickled), ``plan.json`` (what the network
looks like) and ``meta.json`` (``method``, params, MACs per 180x320 frame, recipe, ...).
:func:`load_pruned` dispatches on ``meta.json["method"]``:

- ``ssl``: SSL's RSC network, :func:`models.slim.load_slim`;
- ``gassl``: the narrow-stream network, :func:`models.gassl_slim.load_gassl`;
- ``nm``: dense-shaped BasicVSR holding N:M-masked weights, :func:`models.nm_sparse.load_nm` (dense on the CPU;
  :func:`models.nm_sparse.accelerate` swaps 2:4 layers to semi-structured sparse kernels on a capable GPU);
- ``issp``: dense-shaped BasicVSR holding unstructured zeros (:func:`models.dense_shaped.load_dense_shaped`).

The dense-shaped plan format (``nm``, ``issp``) is described in :mod:`models.dense_shaped`; its names
stay importable from here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .dense_shaped import (
    SPARSE_PLAN_FORMAT,
    SPARSE_PLAN_VERSION,
    build_dense,
    load_dense_shaped,
    validate_sparse_plan,
)
from .gassl_slim import load_gassl
from .nm_sparse import load_nm
from .slim import load_slim

# The plan names are re-exported: pruning/ and older callers import them from here.
__all__ = ["META_LR_SIZE", "METHODS", "SPARSE_PLAN_FORMAT", "SPARSE_PLAN_VERSION", "build_dense",
           "load_dense_shaped", "load_pruned", "read_meta", "save_pruned", "validate_sparse_plan"]

META_LR_SIZE = (180, 320)  # the LR frame size every meta.json quotes MACs at
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


def load_pruned(directory: str | Path) -> nn.Module:
    """The model in a pruned export folder, for any method in :data:`METHODS` (eval mode, CPU)."""
    method = read_meta(directory).get("method")
    if method == "ssl":
        return load_slim(directory)
    if method == "gassl":
        return load_gassl(directory)
    if method == "nm":
        return load_nm(directory)
    if method == "issp":
        return load_dense_shaped(directory, "unstructured")
    raise ValueError(f"{directory}: unknown pruning method {method!r} (known: {METHODS})")
