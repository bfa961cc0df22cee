"""Measurement primitives for ``vsrapp bench``: the recurrence timed part by part, achievable conv throughput
(the roofline's ceiling), peak memory, and an operator profile.

Everything here works on the CPU and on CUDA; nothing fails when CUDA is absent. Device work is asynchronous,
so every timer synchronises the device before it reads the host clock.

The recurrence is the engine's own schedule (:func:`vsrapp.engine.recurrence.run_clip`: the models' step API, ``flow``,
``backward_step``, ``forward_step``, ``reconstruct``; or ``step`` for stateless models such as bicubic) over a
whole clip in one window, which is ``model(clip)`` exactly; a :class:`PartTimer` handed to it charges the time
of each call to one of three parts:

- ``spynet``: the optical flow (two SpyNet calls per frame for bidirectional models, one for forward-only);
- ``trunks``: the propagation steps (warping the hidden state, the concatenation and the residual trunk);
- ``upsampler``: the reconstruction (fusion, the two pixel-shuffle stages, ``conv_hr``, ``conv_last``, the
  bilinear skip), or the whole ``step`` of a stateless model.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from vsrapp_models.contract import traits

from ..engine.recurrence import PARTS, run_clip  # the part names are the schedule's


def sync(device: torch.device | str) -> None:
    """Wait for queued device work (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class PartTimer:
    """Seconds and calls per part; ``enabled=False`` times nothing (and never synchronises)."""

    def __init__(self, device: torch.device | str, enabled: bool = True) -> None:
        self.device = torch.device(device)
        self.enabled = enabled
        self.seconds: dict[str, float] = {p: 0.0 for p in PARTS}
        self.calls: dict[str, int] = {p: 0 for p in PARTS}

    @contextlib.contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        sync(self.device)
        start = time.perf_counter()
        yield
        sync(self.device)
        self.seconds[part] += time.perf_counter() - start
        self.calls[part] += 1


def run_sequence(steps: Any, lrs: Sequence[torch.Tensor], timer: PartTimer | None = None,
                 keep: bool = False) -> list[torch.Tensor]:
    """Upscale the clip ``lrs`` (frames of shape (1, 3, h, w)) with ``steps`` (a model, or anything with its
    step API) through the engine's schedule (:func:`vsrapp.engine.recurrence.run_clip`), charging each call to a part
    of ``timer``. Returns the outputs if ``keep`` (else nothing, so long clips at 4K do not hold every HR
    frame)."""
    return run_clip(steps, lrs, timer=timer or PartTimer("cpu", enabled=False), keep=keep)


@dataclass
class SequenceTiming:
    frames: int
    seconds: float
    parts_seconds: dict[str, float] = field(default_factory=dict)
    parts_calls: dict[str, int] = field(default_factory=dict)

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.seconds / self.frames

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"frames": self.frames, "seconds": round(self.seconds, 4),
                               "ms_per_frame": round(self.ms_per_frame, 3), "fps": round(self.fps, 3)}
        if self.parts_seconds:
            total = sum(self.parts_seconds.values()) or 1.0
            out["parts_ms_per_frame"] = {p: round(1000.0 * s / self.frames, 3)
                                         for p, s in self.parts_seconds.items()}
            out["parts_share"] = {p: round(s / total, 4) for p, s in self.parts_seconds.items()}
        if self.parts_calls:
            # A clip of T frames has T-1 flows per direction; in a long stream every frame costs one flow per
            # direction. Per-call times times the calls per frame in steady state remove that edge effect.
            per_call = {p: 1000.0 * self.parts_seconds[p] / n for p, n in self.parts_calls.items() if n}
            steady = {p: per_call[p] * -(-n // self.frames) for p, n in self.parts_calls.items() if n}
            out["parts_ms_per_call"] = {p: round(v, 3) for p, v in per_call.items()}
            out["steady_ms_per_frame"] = round(sum(steady.values()), 3)
            out["steady_parts_share"] = {p: round(v / (sum(steady.values()) or 1.0), 4) for p, v in steady.items()}
        return out


def time_sequence(steps: Any, lrs: Sequence[torch.Tensor], device: torch.device | str,
                  autocast_dtype: torch.dtype | None = None, parts: bool = True,
                  repeats: int = 1) -> SequenceTiming:
    """Best-of-``repeats`` wall-clock time of :func:`run_sequence` over ``lrs`` (already on ``device``), under
    ``torch.inference_mode`` and, for fp16/bf16, autocast. With ``parts`` each call is also timed (the
    synchronisation per call costs a little on CUDA: time the headline figure with ``parts=False``)."""
    device = torch.device(device)
    best: SequenceTiming | None = None
    for _ in range(max(1, repeats)):
        timer = PartTimer(device, enabled=parts)
        autocast = torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                                  enabled=autocast_dtype is not None and autocast_dtype != torch.float32)
        with torch.inference_mode(), autocast:
            sync(device)
            start = time.perf_counter()
            run_sequence(steps, lrs, timer)
            sync(device)
            seconds = time.perf_counter() - start
        timing = SequenceTiming(len(lrs), seconds, dict(timer.seconds) if parts else {},
                                dict(timer.calls) if parts else {})
        if best is None or timing.seconds < best.seconds:
            best = timing
    assert best is not None
    return best


# ------------------------------------------------------------------------------------------- roofline
def conv_throughput(device: torch.device | str, dtype: torch.dtype = torch.float32, size: tuple[int, int] = (180, 320),
                    channels: int = 64, batch: int = 1, channels_last: bool = False, repeats: int = 5,
                    warmup: int = 2) -> dict[str, Any]:
    """Achieved multiply-accumulates per second of a 3x3 ``channels -> channels`` convolution (BasicVSR's
    trunk layer) on ``batch x channels x size``: the ceiling the roofline divides by. Median of ``repeats``."""
    device = torch.device(device)
    h, w = size
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(batch, channels, h, w, generator=gen).to(device, dtype).contiguous(memory_format=memory_format)
    weight = (torch.rand(channels, channels, 3, 3, generator=gen) - 0.5).to(device, dtype)
    weight = weight.contiguous(memory_format=memory_format)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync(device)
            start = time.perf_counter()
            F.conv2d(x, weight, padding=1)
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    seconds = sorted(times)[len(times) // 2]
    macs = conv3x3_macs(batch, channels, channels, h, w)
    return {"shape": [batch, channels, h, w], "dtype": str(dtype).removeprefix("torch."),
            "channels_last": channels_last, "macs_per_call": macs, "seconds": round(seconds, 6),
            "macs_per_s": macs / seconds}


def conv3x3_macs(batch: int, c_in: int, c_out: int, h: int, w: int) -> int:
    """MACs of a stride-1, 'same'-padded 3x3 convolution: one MAC per output element per input tap."""
    return batch * c_out * h * w * c_in * 9


# ------------------------------------------------------------------------------------------- memory
_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"


def _status_kb(key: str) -> int | None:
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_cpu_peak() -> bool:
    """Reset the process's resident-set high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


class PeakMemory:
    """Peak memory of the code inside ``with``.

    CUDA: ``torch.cuda.max_memory_allocated`` (tensors only, not the allocator's cache or cuDNN workspaces
    held outside it). CPU: the process's peak resident set size (``VmHWM``, reset on entry through
    ``/proc/self/clear_refs``), so it includes the interpreter, torch and the weights; ``delta_mb`` is the
    growth over the resident size on entry. Where the reset is impossible, ``ru_maxrss`` is the process's
    high-water mark since it started and the result says so (``kind``).
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.result: dict[str, Any] = {}

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self._kind = "cuda_max_memory_allocated"
        elif _reset_cpu_peak():
            self._base = (_status_kb("VmRSS") or 0) * 1024
            self._kind = "cpu_peak_rss"
        else:
            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self._kind = "cpu_ru_maxrss_since_start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            sync(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._kind == "cpu_peak_rss":
            peak = (_status_kb("VmHWM") or 0) * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.result = {"kind": self._kind, "peak_mb": round(peak / 2**20, 1),
                       "delta_mb": round(max(0, peak - self._base) / 2**20, 1)}


# ------------------------------------------------------------------------------------------- op profile
def top_ops(fn: Callable[[], object], device: torch.device | str, top: int = 12) -> list[dict[str, Any]]:
    """Run ``fn`` once under ``torch.profiler`` and return the ``top`` operators by self time (device time
    on CUDA, CPU time otherwise)."""
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(device)
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    rows = []
    for ev in prof.key_averages():
        dev_us = getattr(ev, "self_device_time_total", 0.0) or 0.0
        rows.append({"op": ev.key, "calls": ev.count, "self_cpu_ms": round(ev.self_cpu_time_total / 1000, 3),
                     "self_device_ms": round(dev_us / 1000, 3)})
    key = "self_device_ms" if device.type == "cuda" else "self_cpu_ms"
    rows.sort(key=lambda r: r[key], reverse=True)
    total = sum(r[key] for r in rows) or 1.0
    for r in rows:
        r["share"] = round(r[key] / total, 4)
    return rows[:top]


# ------------------------------------------------------------------------------------------- speed variants
PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
STEP_NAMES = ("flow", "backward_step", "forward_step", "reconstruct", "step")


@dataclass(frozen=True)
class Variant:
    """One way of running the network, for the ``--gpu-opts`` experiment.

    ``cast``: ``autocast`` (weights stay fp32 and are cast on every call, as :class:`vsrapp.Upscaler` does) or
    ``weights`` (the model is converted once with ``model.to(dtype)``; inputs in the same dtype).
    ``cuda_graphs``: every step (flow, each branch's trunk step, reconstruction) is captured once per shape
    and replayed (:class:`GraphedSteps`). ``compile``: ``torch.compile`` of each step function.
    """

    name: str
    precision: str = "fp32"
    cast: str = "autocast"
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False

    def unavailable(self, device: torch.device | str) -> str | None:
        """Why this variant cannot run on ``device`` (None if it can)."""
        kind = torch.device(device).type
        if self.cuda_graphs and kind != "cuda":
            return "CUDA graphs need a CUDA device"
        if self.precision == "fp16" and kind != "cuda":
            return "fp16 convolutions are emulated (slow) on CPUs without AVX512-FP16/AMX"
        if self.compile and not _compiler_available():
            return "torch.compile needs a working C++ compiler (inductor) on this machine"
        return None

    @property
    def dtype(self) -> torch.dtype:
        return PRECISION_DTYPES[self.precision]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


VARIANTS: tuple[Variant, ...] = (
    Variant("fp32"),
    Variant("fp32-cl", channels_last=True),
    Variant("bf16-cl", "bf16", "weights", channels_last=True),
    Variant("fp16-autocast", "fp16"),
    Variant("fp16-autocast-cl", "fp16", channels_last=True),  # the Upscaler's CUDA default
    Variant("fp16-cl", "fp16", "weights", channels_last=True),
    Variant("fp16-cl-graphs", "fp16", "weights", channels_last=True, cuda_graphs=True),
    Variant("fp16-cl-compile", "fp16", "weights", channels_last=True, compile=True),
    Variant("fp16-cl-compile-graphs", "fp16", "weights", channels_last=True, compile=True, cuda_graphs=True),
)


def get_variant(name: str) -> Variant:
    for v in VARIANTS:
        if v.name == name:
            return v
    raise ValueError(f"unknown variant {name!r}; known: {', '.join(v.name for v in VARIANTS)}")


def _compiler_available() -> bool:
    import shutil

    return any(shutil.which(c) for c in ("c++", "g++", "clang++", "cc", "gcc"))


class StepTable:
    """The step API of ``model`` as plain attributes, so that each step can be replaced (compiled, graphed)
    without touching the model."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.bidirectional = traits(model).bidirectional  # which schedule runs it (vsrapp.engine.recurrence)
        for name in STEP_NAMES:
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))


def prepare_variant(model: torch.nn.Module, variant: Variant, device: torch.device | str,
                    ) -> tuple[StepTable, torch.dtype | None, torch.dtype]:
    """``(steps, autocast dtype or None, input dtype)`` to run ``model`` as ``variant`` on ``device``.

    The model is moved (and, for ``cast='weights'``, converted) in place; pass a copy to keep the original.
    """
    reason = variant.unavailable(device)
    if reason:
        raise RuntimeError(f"variant {variant.name}: {reason}")
    device = torch.device(device)
    model = model.eval().to(device)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
    autocast: torch.dtype | None = None
    if variant.cast == "weights":
        model = model.to(variant.dtype)
        input_dtype = variant.dtype
    else:
        autocast = variant.dtype if variant.dtype != torch.float32 else None
        input_dtype = torch.float32
    steps = StepTable(model)
    if variant.compile:
        for name in STEP_NAMES:
            if hasattr(steps, name):
                setattr(steps, name, torch.compile(getattr(steps, name), dynamic=False))
    if variant.cuda_graphs:
        steps = GraphedSteps(steps, device, autocast)
    return steps, autocast, input_dtype


def make_inputs(frames: Sequence[torch.Tensor], device: torch.device | str, dtype: torch.dtype,
                channels_last: bool) -> list[torch.Tensor]:
    """(1, 3, h, w) float frames on ``device`` in ``dtype`` and layout, made before any timing starts."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return [f.to(device, dtype).contiguous(memory_format=fmt) for f in frames]


class GraphedSteps:
    """CUDA graphs for the recurrent steps: each step function is captured once per input signature (which
    arguments are None, shapes, dtypes) and replayed with its inputs copied into the captured buffers.

    Calls with a ``None`` argument (the first frame, which has no hidden state or flow), every call off CUDA,
    and steps that cannot be captured (listed in ``eager`` with the reason) run eagerly, so the wrapper is
    transparent on the CPU. Outputs are cloned out of the graph's pool,
    since the next replay overwrites them and the recurrence keeps them (backward features, flows). Each graph
    has its own memory pool (a few activations of one step), so replay order does not matter.
    """

    def __init__(self, steps: Any, device: torch.device | str, autocast: torch.dtype | None = None,
                 warmup: int = 2) -> None:
        self.inner = steps
        self.device = torch.device(device)
        self.autocast = autocast
        self.warmup = warmup
        self.graphs: dict[tuple, tuple[Any, list[torch.Tensor], torch.Tensor] | None] = {}
        self.eager: dict[str, str] = {}  # steps whose capture failed (they run eagerly), with the reason
        self.bidirectional = traits(steps).bidirectional
        for name in STEP_NAMES:
            if hasattr(steps, name):
                setattr(self, name, self._wrap(name, getattr(steps, name)))

    def _wrap(self, name: str, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def call(*args: torch.Tensor | None) -> torch.Tensor:
            if self.device.type != "cuda" or name == "step" or any(a is None for a in args):
                return fn(*args)
            key = (name,) + tuple((tuple(a.shape), a.dtype, a.stride()) for a in args)  # type: ignore[union-attr]
            if key not in self.graphs:
                try:
                    self.graphs[key] = self._capture(fn, args)  # type: ignore[arg-type]
                except RuntimeError as exc:  # e.g. a host-to-device copy inside the step: run it eagerly
                    self.graphs[key] = None
                    self.eager[name] = str(exc).splitlines()[0][:160]
                    torch.cuda.synchronize(self.device)
            if self.graphs[key] is None:
                return fn(*args)
            graph, static_in, static_out = self.graphs[key]
            for buf, a in zip(static_in, args):
                buf.copy_(a)  # type: ignore[arg-type]
            graph.replay()
            return static_out.clone()
        return call

    def _capture(self, fn: Callable[..., torch.Tensor], args: Sequence[torch.Tensor]) -> tuple:
        static_in = [a.clone() for a in args]
        ctx = torch.autocast("cuda", dtype=self.autocast) if self.autocast else contextlib.nullcontext()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), ctx:
            for _ in range(self.warmup):  # also triggers lazy init, cuDNN autotuning and compilation
                fn(*static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), ctx:  # a private memory pool per graph: replays may come in any order
            static_out = fn(*static_in)
        return graph, static_in, static_out


def cpu_threads() -> int:
    return torch.get_num_threads() if hasattr(torch, "get_num_threads") else (os.cpu_count() or 1)
