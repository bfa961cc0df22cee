"""Pruned-model export folders: writing them (:func:`save_pruned`) and loading any method's
(:func:`load_pruned`, never imports ``pruning``).

An export folder holds ``model.safetensors`` (plain tensors, nothing pickled), ``plan.json`` (what the network
looks like) and ``meta.json`` (``method``, params, MACs per 180x320 frame, recipe, ...). Which loader reads which
method (``ssl``, ``gassl``, ``nm``, ``issp``) is the one loader table of :mod:`vsrapp_models.loading`; the
dense-shaped plan format (``nm``, ``issp``) is described in :mod:`vsrapp_models.dense_shaped`. The names of both stay
importable from here.
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
from .loading import METHODS, export_format, read_meta

# The plan names and read_meta are re-exported: pruning/ and older callers import them from here.
__all__ = ["META_LR_SIZE", "METHODS", "SPARSE_PLAN_FORMAT", "SPARSE_PLAN_VERSION", "build_dense",
           "load_dense_shaped", "load_pruned", "read_meta", "save_pruned", "validate_sparse_plan"]

META_LR_SIZE = (180, 320)  # the LR frame size every meta.json quotes MACs at


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


def load_pruned(directory: str | Path) -> nn.Module:
    """The model in a pruned export folder, for any method in :data:`METHODS` (eval mode, CPU)."""
    return export_format(directory).load(directory)
