"""Export a recurrent VSR model to ONNX as the few graphs its recurrence is made of.

The streaming engine (:mod:`vsrapp.engine.recurrence`) drives a model through its step API, and the export keeps that
split, one graph per step (batch, height and width dynamic; NCHW float32, RGB in [0, 1])::

    flow.onnx            ref (N,3,H,W), supp (N,3,H,W)               -> flow (N,2,H,W)    SpyNet
    backward_step.onnx   lr (N,3,H,W), feat_in (N,C,H,W), flow (N,2,H,W) -> feat (N,C,H,W)  warp + trunk
    forward_step.onnx    lr, feat_in, flow                               -> feat             warp + trunk
    reconstruct.onnx     lr, feat_backward, feat_forward              -> hr (N,3,4H,4W)    upsampler
                         (forward-only models: lr, feat_forward)

Why this split and not one graph per frame: the flows of a window are computed once and reused (the backward flow
of a look-ahead pair serves the next window too), the backward branch runs a whole window before the forward
one, and tiles and resumed streams carry their hidden state between calls. All of that scheduling stays in
Python, exactly as for the torch model, and each graph is a straight line that any ONNX runtime can optimise.
A graph for "forward step + reconstruct" would save one hand-over of the hidden state per frame, which costs
microseconds against a trunk's hundreds of milliseconds; keeping the step API one-to-one lets the ONNX Runtime
wrapper (:mod:`vsrapp.engine.backends`) stand in for the torch model with no change to the engine.

The first step of a branch has no previous hidden state: the graphs are fed zeros for ``feat_in`` and ``flow``,
which is exact (warping zeros gives zeros, so the trunk sees the same input as the torch model's zero state).

A folder written by :func:`export_onnx` holds the graphs and ``vsrapp-onnx.json`` (:data:`MANIFEST`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsrapp_models.contract import traits

from .engine.runtimes import ONNX_EXTRA, new_session
from .errors import ModelError

MANIFEST = "vsrapp-onnx.json"
MANIFEST_FORMAT = "vsrapp-onnx"
MANIFEST_VERSION = 1
DEFAULT_OPSET = 17  # GridSample needs opset 16; 17 is well supported by ONNX Runtime, OpenVINO and TensorRT
# Flow warps inside SpyNet divide pixel coordinates by (size - 1) of each pyramid level. The torch code
# guards a 1-pixel level with max(size - 1, 1), a Python branch that tracing records for the size it saw.
# Frames at least 33 pixels high and wide give a coarsest level of at least 2 pixels (SpyNet works at the
# next multiple of 32, five halvings down), so the recorded branch is the right one for every input the
# engine sends once it pads frames to this size (Upscaler reads ``min_size`` from the model).
MIN_SIZE = 33
# Traced at a size that is not a multiple of 32 and not square, so that no shape-dependent branch can be
# recorded for a special case (square frames, or SpyNet's resize being the identity).
TRACE_SIZE = (40, 56)
CHECK_SIZE = (37, 70)  # a second size for the check: the graphs must really be dynamic
# Largest difference to torch allowed by the export check, relative to the output's magnitude: fp32 graphs
# that compute the same thing agree to about 1e-6 relative; a wrong graph is off by whole percent.
CHECK_RTOL = 1e-4
EXPORTER = "torch.onnx.export(dynamo=False), TorchScript tracer"
PHOTOS = "the bundled photographs"  # what --int8 calibrates on without --calibrate (quantize.photo_clips)
EXTRA = ONNX_EXTRA  # pip install "vsrapp[onnx]": onnx and onnxruntime


class ExportError(ModelError, RuntimeError):
    """The model cannot be exported, or the export does not agree with torch; the message says why."""


def require(module: str) -> Any:
    """Import an optional dependency of the ONNX path, or raise one line that names the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"{module} is not installed: pip install \"vsrapp[{EXTRA}]\"") from None


# ------------------------------------------------------------------------------------------- graphs
class _FlowGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        return self.model.flow(ref, supp)


class _StepGraph(nn.Module):
    def __init__(self, model: nn.Module, direction: str) -> None:
        super().__init__()
        self.model = model
        self.direction = direction

    def forward(self, lr: torch.Tensor, feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, f"{self.direction}_step")(lr, feat, flow)


class _ReconstructGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, lr: torch.Tensor, *feats: torch.Tensor) -> torch.Tensor:
        return self.model.reconstruct(lr, *feats)


def graph_specs(bidirectional: bool) -> dict[str, dict[str, list[str]]]:
    """Graph name (= the step API method it implements) -> its input and output names, in call order."""
    specs = {"flow": {"inputs": ["ref", "supp"], "outputs": ["flow"]}}
    if bidirectional:
        specs["backward_step"] = {"inputs": ["lr", "feat_in", "flow"], "outputs": ["feat"]}
    specs["forward_step"] = {"inputs": ["lr", "feat_in", "flow"], "outputs": ["feat"]}
    feats = ["feat_backward", "feat_forward"] if bidirectional else ["feat_forward"]
    specs["reconstruct"] = {"inputs": ["lr", *feats], "outputs": ["hr"]}
    return specs


def _graph_module(model: nn.Module, name: str) -> nn.Module:
    if name == "flow":
        return _FlowGraph(model)
    if name in ("backward_step", "forward_step"):
        return _StepGraph(model, name.removesuffix("_step"))
    return _ReconstructGraph(model)


def sample_inputs(model: nn.Module, size: tuple[int, int], seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Inputs for every graph at ``size``: two smooth frames that differ by a small shift (so the flow has
    something to find), a real flow between them and hidden states from a real first step."""
    h, w = size
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 4), max(2, w // 4) + 1, generator=g)
    big = torch.nn.functional.interpolate(coarse, size=(h, w + 4), mode="bicubic", align_corners=False).clamp(0, 1)
    a, b = big[..., :w].contiguous(), big[..., 2:w + 2].contiguous()
    with torch.no_grad():
        flow = model.flow(a, b)
        feat_f = model.forward_step(a, None)
        feat_b = model.backward_step(b, None) if model.bidirectional else None
    step = {"lr": a, "feat_in": feat_f, "flow": flow}
    out = {"flow": {"ref": a, "supp": b}, "forward_step": step}
    if model.bidirectional:
        out["backward_step"] = {"lr": a, "feat_in": feat_b, "flow": flow}
        out["reconstruct"] = {"lr": a, "feat_backward": feat_b, "feat_forward": feat_f}
    else:
        out["reconstruct"] = {"lr": a, "feat_forward": feat_f}
    return out


def _export_graph(module: nn.Module, inputs: dict[str, torch.Tensor], outputs: list[str], path: Path,
                  opset: int) -> None:
    dims = {0: "batch", 2: "height", 3: "width"}
    dynamic = {name: dims for name in [*inputs, *outputs]}
    with warnings.catch_warnings():
        # The tracer warns about every Python-level shape check it freezes (they are all size-independent here:
        # see MIN_SIZE) and the index_add of slim blocks about duplicate indices (plans hold unique ones).
        warnings.simplefilter("ignore")
        # The TorchScript exporter, not the dynamo one (torch's default since 2.9): in torch 2.14 the dynamo
        # exporter took 18 s for SpyNet alone, its graph disagreed with torch by 2 pixels of flow even at the
        # traced size, and at other sizes its Resize failed in ONNX Runtime. The tracer records shape
        # arithmetic as graph ops (dynamic H/W work), and maps grid_sample to GridSample and pixel_shuffle to
        # DepthToSpace directly; its graphs agree with torch to ~1e-6.
        torch.onnx.export(module, tuple(inputs.values()), str(path), input_names=list(inputs), output_names=outputs,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True)


def model_digest(model: nn.Module, opset: int = DEFAULT_OPSET) -> str:
    """sha256 of what the exported graphs depend on: the class, every parameter and buffer (slim models keep
    their channel indices in non-persistent buffers, so ``state_dict`` alone would miss them), the opset and
    the manifest version."""
    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}|{opset}|{MANIFEST_VERSION}".encode())
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        # Flattened first: a contiguous tensor may still carry an odd stride on a size-1 last axis.
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_exportable(model: nn.Module) -> None:
    missing = [m for m in ("flow", "forward_step", "reconstruct") if not hasattr(model, m)]
    if traits(model).bidirectional and not hasattr(model, "backward_step"):
        missing.append("backward_step")
    if missing:
        raise ExportError(f"{type(model).__name__} has no step API ({', '.join(missing)} missing): only recurrent "
                          "networks export (the bicubic baseline needs no export)")
    if traits(model).scale != 4:
        raise ExportError("only x4 models export")


def export_onnx(model: nn.Module, out: str | Path, name: str | None = None, opset: int = DEFAULT_OPSET,
                check: bool = True, overwrite: bool = False) -> Path:
    """Write the graphs of ``model`` and their manifest into the folder ``out`` and return it.

    The folder appears under its name only when complete (written under a temporary name, then renamed), so
    an interrupted export never leaves a half-written model where the backend would load it. With ``check``,
    every graph is run in ONNX Runtime at a second frame size and compared with torch before the rename;
    an export that disagrees raises :class:`ExportError`.
    """
    _check_exportable(model)
    require("onnx")  # the TorchScript exporter imports it to write the file
    if check:
        require("onnxruntime")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")
    model = model.eval().cpu()
    shape = traits(model)
    specs = graph_specs(shape.bidirectional)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        inputs = sample_inputs(model, TRACE_SIZE)
        for graph, spec in specs.items():
            _export_graph(_graph_module(model, graph), inputs[graph], spec["outputs"], tmp / f"{graph}.onnx", opset)
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
            "model": name or type(model).__name__,
            "bidirectional": bool(shape.bidirectional),
            "scale": int(shape.scale),
            "num_feat": int(model.num_feat),
            # The engine pads frames (edge replication) to a multiple of pad_multiple and to at least min_size
            # on both sides, then crops the output; SpyNet resizes to multiples of 32 inside the flow graph.
            "pad_multiple": int(shape.modulus),
            "min_size": max(MIN_SIZE, int(shape.min_size)),
            "layout": "NCHW float32, RGB in [0, 1]; batch, height and width dynamic",
            "first_step": "feed zeros for feat_in and flow",
            "opset": opset,
            "exporter": EXPORTER,
            "torch": torch.__version__,
            "source_sha256": model_digest(model, opset),
            "graphs": {g: {"file": f"{g}.onnx", **spec} for g, spec in specs.items()},
        }
        if check:
            manifest["check"] = check_export(model, tmp, manifest)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        publish(tmp, out, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished folder ``tmp`` to ``out``; an existing ``out`` is replaced only with ``overwrite``."""
    if out.exists():
        if not overwrite:
            raise ExportError(f"{out} already exists")
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def check_export(model: nn.Module, folder: Path, manifest: dict[str, Any],
                 size: tuple[int, int] = CHECK_SIZE) -> dict[str, Any]:
    """Run every graph in ONNX Runtime at ``size`` on :func:`sample_inputs` and compare with torch; raise
    :class:`ExportError` when a graph is off by more than :data:`CHECK_RTOL` of its output's magnitude.
    Returns the size and the largest absolute difference per graph (for the manifest)."""
    inputs = sample_inputs(model, size, seed=1)
    diffs = {}
    for graph, spec in manifest["graphs"].items():
        feed = inputs[graph]
        with torch.no_grad():
            ref = _graph_module(model, graph)(*feed.values())
        session = new_session(folder / spec["file"], threads=1)
        got = session.run(None, {k: v.numpy() for k, v in feed.items()})[0]
        diff = float((torch.from_numpy(got) - ref).abs().max())
        if not diff <= CHECK_RTOL * max(1.0, float(ref.abs().max())):
            raise ExportError(f"exported {graph} graph disagrees with torch at {size[0]}x{size[1]}: largest "
                              f"difference {diff:.3g}")
        diffs[graph] = diff
    return {"size": list(size), "max_abs_diff": diffs}


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an export folder; :class:`ExportError` if the folder is not one this version reads."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ExportError(f"{folder} is not an ONNX export folder ({MANIFEST} missing)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("version") != MANIFEST_VERSION:
        raise ExportError(f"{path}: not a {MANIFEST_FORMAT} v{MANIFEST_VERSION} manifest")
    files = [f for g in manifest["graphs"].values() for f in (g["file"], g.get("weights")) if f]
    missing = [f for f in files if not (Path(folder) / f).is_file()]
    if missing:
        raise ExportError(f"{folder}: graph files missing: {', '.join(missing)}")
    return manifest


def is_export_folder(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def cache_dir() -> Path:
    """Where on-the-fly exports are kept: ``$XDG_CACHE_HOME/vsrapp/onnx`` (default ``~/.cache``)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "vsrapp" / "onnx"


def cached_export(model: nn.Module, name: str | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """The export folder of ``model`` in :func:`cache_dir`, exporting (and checking) it first if there is none.

    The folder is named after the model and :func:`model_digest`, so new weights get a new export and a stale
    one is never used. Two processes exporting at once each write their own temporary folder; the first
    rename wins and the other's work is discarded.
    """
    label = "".join(c if c.isalnum() or c in "-_." else "_" for c in (name or type(model).__name__))[-48:]
    folder = cache_dir() / f"{label}-{model_digest(model, opset)[:16]}"
    if is_export_folder(folder):
        return folder
    try:
        return export_onnx(model, folder, name=name, opset=opset, check=True)
    except (ExportError, OSError):
        if is_export_folder(folder):  # another process finished first
            return folder
        raise
