"""The one loader table: from a weights file or folder to a model (never imports ``vsrapp`` or ``pruning``).

What a path can hold, and who reads it here:

==================  ==========================================================  =================================
format              on disk                                                     model
==================  ==========================================================  =================================
``basicsr``         a ``.pth`` file: BasicSR checkpoint (``params_ema``,        ``BasicVSR``
                    ``params`` or a bare state dict), official or fine-tuned    or ``BasicVSRUni`` (by its keys)
``ssl``             folder: ``plan.json`` (kept indices) + ``model.safetensors``  ``SlimBasicVSR``/``...Uni``
                    + ``meta.json`` (a folder without ``meta.json`` is ``ssl``)
``gassl``           the same files, GASSL's narrow-stream plan                  ``GasslBasicVSR``/``...Uni``
``nm``              the same files, dense-shaped N:M-masked weights             ``BasicVSR``/``...Uni`` (+ ``plan``)
``issp``            the same files, dense-shaped unstructured zeros             ``BasicVSR``/``...Uni`` (+ ``plan``)
``blocks``          the same files, BasicVSR with fewer residual blocks per     ``BasicVSR``/``...Uni`` (+ ``plan``),
                    trunk (``pruning.blocks``; the plan names the kept ones),   ``SlimBasicVSR`` for a slim plan
                    or a slim plan of whole blocks when the upsampler is pruned
==================  ==========================================================  =================================

The models bundled with vsrapp are ``ssl`` and ``blocks`` folders; a zoo name is resolved to one of these paths by
``vsrapp.zoo``, which adds the sha256 check and its own error messages. Export folders of ``vsrapp export``
(ONNX graphs) are not weights: the graph backends read them (``vsrapp.engine.backends``).

Every format can also *build* its architecture with random weights (:func:`build_model`; speed measurements
that need no trained weights read only ``plan.json``). Architectures without a weights file are in
:data:`ARCHITECTURES` (the zoo's ``arch`` names).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .basicvsr import BasicVSR, BasicVSRUni
from .bicubic import Bicubic
from .contract import is_backward
from .dense_shaped import build_dense, load_dense_shaped
from .gassl_slim import build_gassl, load_gassl
from .nm_sparse import load_nm
from .slim import PLAN_FORMAT as SLIM_PLAN_FORMAT
from .slim import build_slim, load_slim

METHODS = ("ssl", "gassl", "nm", "issp", "blocks")  # the pruning methods whose export folders load here (meta.json)

# The zoo's architecture names (``ModelEntry.arch``) -> the class built with its default shape.
ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {"basicvsr": BasicVSR, "basicvsr-uni": BasicVSRUni,
                                                     "bicubic": Bicubic}


@dataclass(frozen=True)
class WeightsFormat:
    """One row of the table: how to load a path of this format, and how to build its architecture alone."""

    name: str
    description: str
    load: Callable[[str | Path], nn.Module]  # trained weights, strict, eval mode, on the CPU
    build: Callable[[str | Path], nn.Module]  # the same architecture with random (seeded by the caller) weights


# ------------------------------------------------------------------------------------------ official .pth
# Errors are left as they come (torch's for an unreadable file, ``RuntimeError`` for weights that do not fit,
# ``ValueError`` for a file that holds no state dict): the zoo words them for users (vsrapp.zoo.WeightsError).
def read_basicsr_state(path: str | Path) -> dict[str, torch.Tensor]:
    """State dict from a BasicSR checkpoint: ``params_ema`` if present (what BasicSR tests with), else
    ``params``, else the file itself. Never unpickles code (``weights_only=True``)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("params_ema", "params"):
        if isinstance(ckpt, dict) and key in ckpt:
            return ckpt[key]
    if isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise ValueError(f"{path} holds no BasicSR state dict (expected a 'params' or 'params_ema' entry)")


def basicsr_arch(state: dict[str, torch.Tensor]) -> BasicVSR | BasicVSRUni:
    """The network a BasicSR state dict is for (random weights): bidirectional if it has a backward trunk, with
    the width and the number of residual blocks the keys say (BasicSR's ``BasicVSR(num_feat, num_block)``; the
    official checkpoints are 64 and 30, a block-pruned export has fewer blocks)."""
    prefix = "forward_trunk.main.2."
    blocks = {int(k[len(prefix):].split(".", 1)[0]) for k in state if k.startswith(prefix)}
    num_block = max(blocks) + 1 if blocks else 30
    conv = state.get("forward_trunk.main.0.weight")
    num_feat = int(conv.shape[0]) if conv is not None else 64
    arch = BasicVSR if any(is_backward(k) for k in state) else BasicVSRUni
    return arch(num_feat, num_block)


def load_basicsr(path: str | Path) -> BasicVSR | BasicVSRUni:
    """BasicVSR (bidirectional or forward-only, told by the keys) from a BasicSR ``.pth``, strict, eval mode."""
    state = read_basicsr_state(path)
    model = basicsr_arch(state)
    model.load_state_dict(state, strict=True)
    return model.eval()


# ------------------------------------------------------------------------------------------ export folders
def read_meta(directory: str | Path) -> dict[str, Any]:
    """``meta.json``; a folder without one (early SSL exports) counts as ``{"method": "ssl"}``."""
    path = Path(directory) / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else {"method": "ssl"}


def read_plan(directory: str | Path) -> dict[str, Any]:
    return json.loads((Path(directory) / "plan.json").read_text())


def _load_issp(directory: str | Path) -> nn.Module:
    return load_dense_shaped(directory, "unstructured")


def _load_blocks(directory: str | Path) -> nn.Module:
    # Whole blocks removed; with the upsampler's channels pruned too, a slim plan whose blocks are all whole.
    return load_slim(directory) if read_plan(directory).get("format") == SLIM_PLAN_FORMAT \
        else load_dense_shaped(directory, "blocks")


def _build_blocks(directory: str | Path) -> nn.Module:
    plan = read_plan(directory)
    return build_slim(plan) if plan.get("format") == SLIM_PLAN_FORMAT else build_dense(plan["arch"])


def _build_dense_shaped(directory: str | Path) -> nn.Module:
    return build_dense(read_plan(directory)["arch"])


EXPORT_FORMATS: dict[str, WeightsFormat] = {
    "ssl": WeightsFormat("ssl", "SSL's RSC network (models.slim)", load_slim,
                         lambda d: build_slim(read_plan(d))),
    "gassl": WeightsFormat("gassl", "the narrow-stream network (models.gassl_slim)", load_gassl,
                           lambda d: build_gassl(read_plan(d))),
    # Dense on the CPU; models.nm_sparse.accelerate swaps 2:4 layers to sparse kernels on a capable GPU.
    "nm": WeightsFormat("nm", "dense-shaped BasicVSR with N:M-masked weights (models.nm_sparse)", load_nm,
                        _build_dense_shaped),
    "issp": WeightsFormat("issp", "dense-shaped BasicVSR with unstructured zeros (models.dense_shaped)",
                          _load_issp, _build_dense_shaped),
    # Every layer at full width, so it runs at the dense network's efficiency and quantizes like it.
    "blocks": WeightsFormat("blocks", "BasicVSR with whole residual blocks removed (pruning.blocks)", _load_blocks,
                            _build_blocks),
}
BASICSR = WeightsFormat("basicsr", "a BasicSR checkpoint of BasicVSR (.pth)", load_basicsr,
                        lambda path: basicsr_arch(read_basicsr_state(path)))
assert tuple(EXPORT_FORMATS) == METHODS


# ------------------------------------------------------------------------------------------ the table
def export_format(directory: str | Path) -> WeightsFormat:
    """The row for an export folder, by its ``meta.json`` method; ``ValueError`` for an unknown method."""
    method = read_meta(directory).get("method")
    if method not in EXPORT_FORMATS:
        raise ValueError(f"{directory}: unknown pruning method {method!r} (known: {METHODS})")
    return EXPORT_FORMATS[method]


def weights_format(path: str | Path) -> WeightsFormat:
    """The row of the table for ``path``: a folder by its ``meta.json`` method (:func:`export_format`), a file
    as a BasicSR ``.pth``."""
    return export_format(path) if Path(path).is_dir() else BASICSR


def load_model(path: str | Path) -> nn.Module:
    """The trained model at ``path`` (any format of the table), eval mode, on the CPU."""
    return weights_format(path).load(path)


def build_model(path: str | Path) -> nn.Module:
    """The architecture of the model at ``path`` with random weights (seed torch first for repeatable ones);
    an export folder's weights file is not read."""
    return weights_format(path).build(path)


def build_arch(arch: str) -> nn.Module:
    """A zoo architecture name (``basicvsr``, ``basicvsr-uni``, ``bicubic``) with random weights."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}")
    return ARCHITECTURES[arch]()
