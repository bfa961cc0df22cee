"""The graph runtimes, ONNX Runtime and OpenVINO: importing them (optional extras: a missing one is one line that
names the pip extra), and a CPU session of one graph with the project's settings. The exporter checks its graphs
with these sessions and the backends run them, so this module imports neither (it sits below both)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ..errors import ResourceError

ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
ONNX_EXTRA = "onnx"  # the pip extra that brings onnx and onnxruntime: pip install "vsrapp[onnx]"
OPENVINO_EXTRA = "openvino"  # pip install "vsrapp[openvino]"


class BackendError(ResourceError, RuntimeError):
    """A backend cannot be used (not installed, or not for this device or precision); one line saying why."""


EXTRAS = {ONNXRUNTIME: ONNX_EXTRA, OPENVINO: OPENVINO_EXTRA}  # each runtime's module -> the pip extra with it


def require(backend: str) -> Any:
    """Import the runtime of a graph backend (its module has the backend's name), or raise a
    :class:`BackendError` that names the pip extra to install: a missing extra is the first thing a user is told."""
    try:
        return importlib.import_module(backend)
    except ImportError:
        raise BackendError(f"the {backend} backend is not installed: pip install \"vsrapp[{EXTRAS[backend]}]\"") \
            from None


def require_onnxruntime() -> Any:
    return require(ONNXRUNTIME)


def require_openvino() -> Any:
    return require(OPENVINO)


def new_session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for one graph, using ``threads`` cores (default: all)."""
    ort = require_onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    # The graphs are chains of convolutions: parallelism is inside each op, never between ops.
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def openvino_config(threads: int | None = None) -> dict[str, Any]:
    """OpenVINO CPU settings for one graph: ``threads`` cores, latency first, and fp32 arithmetic wherever the
    graph is not int8. OpenVINO would otherwise pick bf16 on CPUs that have it (AMX, AVX-512 BF16), a silent
    loss of precision that is not what ``--backend openvino`` promises."""
    return {"INFERENCE_NUM_THREADS": threads or os.cpu_count() or 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32"}
