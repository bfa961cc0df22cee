"""Inference backends: which runtime executes the network's steps.

- ``torch``: the model itself (PyTorch eager), on any device and precision.
- ``onnxruntime``: the graphs written by :mod:`vsrapp.export`, run by ONNX Runtime on the CPU in fp32
  (``pip install "vsrapp[onnx]"``).
- ``openvino``: the same graphs run by OpenVINO on the CPU (``pip install "vsrapp[openvino]"``): the fp32 ONNX
  graphs as exported, or the int8 graphs of :mod:`vsrapp.quantize` (an export folder whose manifest says
  ``"precision": "int8"``).
- ``auto``: for an export folder, the runtime of its graphs (OpenVINO for int8); otherwise ``torch``. Measured
  side by side on this project's idle 2-core AMD EPYC (docs/BENCHMARKS.md, "ONNX
  export and ONNX Runtime (issue #18)"): ONNX Runtime fp32 runs ssl-bi at 0.66x and ssl-uni at 0.64x the speed
  of PyTorch's channels-last path. fp32 graphs are the base for int8, not a speed-up by themselves; int8 needs
  a calibrated export, which ``auto`` cannot make on its own.

:class:`GraphModel` has the same step API as the torch models (``flow``, ``backward_step``, ``forward_step``,
``reconstruct``, ``step``), so the engine in :mod:`vsrapp.engine.recurrence` runs it unchanged: windows, look-ahead,
tiles and resume state are the torch ones. The runtimes are imported only when their backend is asked for, so
the default install needs neither.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vsrapp_models.basicvsr import ForwardState
from vsrapp_models.contract import forward_only_step

from .. import export
from .runtimes import (  # noqa: F401  (BackendError and the runtime helpers are part of this module's API)
    ONNXRUNTIME,
    OPENVINO,
    OPENVINO_EXTRA,
    BackendError,
    new_session,
    openvino_config,
    require,
    require_onnxruntime,
    require_openvino,
)

TORCH = "torch"
AUTO = "auto"
BACKENDS = (TORCH, ONNXRUNTIME, OPENVINO)
GRAPH_BACKENDS = (ONNXRUNTIME, OPENVINO)  # the ones that run exported graphs on the CPU
CHOICES = (AUTO, *BACKENDS)
INT8 = "int8"  # the precision of quantized graphs (export manifests, --precision)


def resolve_backend(name: str, model: object = None, precision: str | None = None) -> str:
    """``auto`` -> the backend to use; others are checked against ``model`` and ``precision``.

    ``auto`` is ``torch`` for a network (see the module docstring for why), and for an export folder the
    runtime that runs its graphs: OpenVINO for int8 graphs, otherwise ONNX Runtime where installed, else
    OpenVINO. An export folder cannot run in torch: asking for it is one line that names the backend to use.
    ``precision`` "int8" (graphs quantized on the fly, :mod:`vsrapp.quantize`) runs only in OpenVINO.
    """
    if name != AUTO and name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(CHOICES)}")
    if precision == INT8:
        if name not in (AUTO, OPENVINO):
            raise BackendError(f"--precision int8 runs in {OPENVINO} (--backend openvino or auto), not {name}")
        return OPENVINO
    if not (isinstance(model, (str, Path)) and export.is_export_folder(model)):
        return TORCH if name == AUTO else name
    int8 = export.read_manifest(model).get("precision", "fp32") == "int8"
    if name == AUTO:
        if int8:
            return OPENVINO
        try:
            require_onnxruntime()
            return ONNXRUNTIME
        except BackendError:
            return OPENVINO
    if name == TORCH:
        runs = OPENVINO if int8 else f"{ONNXRUNTIME} or {OPENVINO}"
        raise BackendError(f"{model} is an export folder (graphs, not torch weights): run it with --backend {runs} "
                           f"or auto")
    return name


Runner = Callable[[dict[str, np.ndarray]], np.ndarray]


def _onnxruntime_runner(path: Path, threads: int | None) -> Runner:
    if path.suffix != ".onnx":
        raise BackendError(f"{path.parent} holds OpenVINO graphs ({path.name}): run it with --backend {OPENVINO}")
    session = new_session(path, threads)
    return lambda feed: session.run(None, feed)[0]


def _openvino_runner(path: Path, threads: int | None) -> Runner:
    ov = require_openvino()
    compiled = ov.Core().compile_model(str(path), "CPU", openvino_config(threads))
    request = compiled.create_infer_request()

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        request.infer(feed)
        # A copy: the request reuses its output buffer on the next call, and the engine keeps states around.
        return np.array(request.get_output_tensor(0).data, copy=True)

    return run


class GraphModel(nn.Module):
    """An export folder run by ONNX Runtime or OpenVINO behind the torch models' step API.

    An ``nn.Module`` without parameters, so what the engine does to a model (``eval()``, ``to(device)``,
    channels-last) is harmless. Tensors come in and go out as torch CPU float32 tensors. ``on_run``, when set,
    sees every graph call's name and inputs (how :mod:`vsrapp.quantize` collects calibration data).
    """

    def __init__(self, folder: str | Path, backend: str = ONNXRUNTIME, threads: int | None = None) -> None:
        super().__init__()
        if backend not in GRAPH_BACKENDS:
            raise BackendError(f"{backend!r} does not run exported graphs; choose one of {', '.join(GRAPH_BACKENDS)}")
        self.folder = Path(folder)
        self.backend = backend
        self.manifest = export.read_manifest(self.folder)
        m = self.manifest
        self.name: str = m["model"]
        self.precision: str = m.get("precision", "fp32")
        self.bidirectional: bool = bool(m["bidirectional"])
        self.scale: int = int(m["scale"])
        self.num_feat: int = int(m["num_feat"])
        # What the Upscaler pads frames to (see vsrapp.export.MIN_SIZE for why at least 33 pixels).
        self.modulus: int = int(m["pad_multiple"])
        self.min_size: int = int(m["min_size"])
        self._inputs = {g: spec["inputs"] for g, spec in m["graphs"].items()}
        open_runner = _openvino_runner if backend == OPENVINO else _onnxruntime_runner
        self._runners = {g: open_runner(self.folder / spec["file"], threads) for g, spec in m["graphs"].items()}
        self.on_run: Callable[[str, dict[str, np.ndarray]], None] | None = None

    def _run(self, graph: str, *tensors: torch.Tensor) -> torch.Tensor:
        # contiguous(): the engine hands over channels-last tensors; the graphs read NCHW.
        feed = {name: t.detach().to("cpu", torch.float32).contiguous().numpy()
                for name, t in zip(self._inputs[graph], tensors)}
        if self.on_run is not None:
            self.on_run(graph, feed)
        return torch.from_numpy(self._runners[graph](feed))

    def flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        return self._run("flow", ref, supp)

    def _step(self, graph: str, lr: torch.Tensor, feat: torch.Tensor | None,
              flow: torch.Tensor | None) -> torch.Tensor:
        n, _, h, w = lr.shape
        if feat is None:
            # The start of a branch: zeros warped by any flow are zeros, so this is the torch model's zero state.
            feat = lr.new_zeros(n, self.num_feat, h, w, dtype=torch.float32)
        if flow is None:
            # Only at a branch's start in the engine; with a state, a zero flow samples every pixel in place.
            flow = lr.new_zeros(n, 2, h, w, dtype=torch.float32)
        return self._run(graph, lr, feat, flow)

    def backward_step(self, lr: torch.Tensor, feat: torch.Tensor | None,
                      flow: torch.Tensor | None = None) -> torch.Tensor:
        if not self.bidirectional:
            raise AttributeError("a forward-only model has no backward branch")
        return self._step("backward_step", lr, feat, flow)

    def forward_step(self, lr: torch.Tensor, feat: torch.Tensor | None,
                     flow: torch.Tensor | None = None) -> torch.Tensor:
        return self._step("forward_step", lr, feat, flow)

    def reconstruct(self, lr: torch.Tensor, *feats: torch.Tensor) -> torch.Tensor:
        return self._run("reconstruct", lr, *feats)

    def step(self, lr: torch.Tensor, state: ForwardState | None) -> tuple[torch.Tensor, ForwardState]:
        """Forward-only models: one new frame given the previous frame's state, as ``BasicVSRUni.step``."""
        return forward_only_step(self, lr, state)

    def forward(self, lrs: torch.Tensor) -> torch.Tensor:
        """A whole clip (B, T, 3, h, w) at once, as the torch models' ``forward`` (for tests and evaluation)."""
        from .recurrence import upscale_clip

        return torch.stack([upscale_clip(self, clip) for clip in lrs])

    def extra_repr(self) -> str:
        return f"{self.name}, {self.backend}, {self.precision}, {self.folder}"
