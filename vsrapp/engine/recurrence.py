"""Driving a recurrent VSR network over a stream of frames, a window at a time.

The networks in ``models/`` expose per-frame steps (``flow``, ``backward_step``, ``forward_step``,
``reconstruct``). Here those steps are scheduled so that a video of any length runs in bounded memory:

- Forward-only models (and the stateless bicubic baseline): one frame in, one frame out (:class:`StreamRunner`).
- Bidirectional models (:class:`WindowRunner`): frames arrive in windows. The forward hidden state is carried
  exactly from window to window, so the forward branch is the same as on the whole clip. The backward branch of
  each window starts from zeros at the end of ``lookahead`` extra frames whose outputs are dropped (they are output
  by the next window); by the time it reaches the window, the missing future has faded from the hidden state.
  A window with no lookahead that holds the whole clip is exactly ``model(clip)``.
- The flow of every adjacent frame pair is computed once: backward flows of look-ahead pairs are kept for the
  next window, and the forward flow into a window's first frame uses the previous window's last frame.

Tensors here are (B, 3, h, w) float in [0, 1] on the model's device; conversion, padding and tiling live in
:mod:`vsrapp.engine.upscaler`. What a model must offer is the contract of :mod:`vsrapp_models.contract`.

This is the one copy of the schedule: ``vsrapp bench`` times it (:mod:`vsrapp.bench.profiling`) by handing the
runners a :data:`PartTimer`, under which every step call is charged to one of :data:`PARTS`: ``spynet``
(``flow``), ``trunks`` (``backward_step``/``forward_step``), ``upsampler`` (``reconstruct``, or the whole
``step`` of a stateless model).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from vsrapp_models.contract import ForwardState, is_network, traits

StepCallback = Callable[[float], None]
# part name -> a context manager around one step call (vsrapp.bench.profiling.PartTimer); None: nothing is timed.
PartTimer = Callable[[str], contextlib.AbstractContextManager[Any]]
PARTS = ("spynet", "trunks", "upsampler")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}  # torch's arithmetic


def precision_name(dtype: torch.dtype) -> str:
    """The option's name ("fp32", "fp16", "bf16") of a torch dtype of :data:`PRECISIONS`."""
    return next(name for name, known in PRECISIONS.items() if known == dtype)


def autocast_to(device: torch.device, dtype: torch.dtype) -> torch.autocast:
    """The autocast a precision runs under (none for fp32): the Upscaler's and ``vsrapp eval``'s, one rule."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def _untimed(part: str) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


class StreamRunner:
    """Forward-only models: ``step(frame) -> output`` with the hidden state carried inside.

    ``timer`` (profiling): a network's ``step`` is run as its parts (flow, forward step, reconstruction; the
    contract says that is what ``step`` is), so that each is timed on its own.
    """

    def __init__(self, model: Any, timer: PartTimer | None = None) -> None:
        self.model = model
        self.state = None
        self.timer = timer
        self._by_parts = timer is not None and is_network(model)

    def step(self, lr: torch.Tensor) -> torch.Tensor:
        if self._by_parts:
            return self._step_by_parts(lr)
        with (self.timer or _untimed)("upsampler"):
            out, self.state = self.model.step(lr, self.state)
        return out

    def _step_by_parts(self, lr: torch.Tensor) -> torch.Tensor:
        model, timer, state = self.model, self.timer or _untimed, self.state
        flow = None
        if state is not None:
            with timer("spynet"):
                flow = model.flow(lr, state.lr)
        with timer("trunks"):
            feat = model.forward_step(lr, None if state is None else state.feat, flow)
        with timer("upsampler"):
            out = model.reconstruct(lr, feat)
        self.state = ForwardState(lr, feat)
        return out

    def get_state(self) -> dict[str, torch.Tensor]:
        """The carried state as tensors (empty for stateless models), for checkpoints that resume a stream."""
        if self.state is None:
            return {}
        return {"lr": self.state.lr, "feat": self.state.feat}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.state = ForwardState(state["lr"], state["feat"]) if state else None


class WindowRunner:
    """Bidirectional models over consecutive windows of one stream (see the module docstring)."""

    def __init__(self, model: Any, timer: PartTimer | None = None) -> None:
        self.model = model
        self.timer = timer or _untimed
        self.prev_lr: torch.Tensor | None = None  # last frame output by the previous window
        self.feat_forward: torch.Tensor | None = None  # forward hidden state after that frame
        self.backward_flows: dict[int, torch.Tensor] = {}  # global pair index i -> flow warping i+1 onto i
        self.frames_done = 0  # global index of the next frame to output

    def get_state(self) -> dict[str, torch.Tensor]:
        """The forward state at the window boundary: all a resumed stream needs to continue exactly."""
        if self.feat_forward is None:
            return {}
        return {"lr": self.prev_lr, "feat": self.feat_forward}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.prev_lr, self.feat_forward = (state["lr"], state["feat"]) if state else (None, None)
        self.backward_flows.clear()

    def _backward_flow(self, i: int, lr_i: torch.Tensor, lr_next: torch.Tensor) -> torch.Tensor:
        if i not in self.backward_flows:
            with self.timer("spynet"):
                self.backward_flows[i] = self.model.flow(lr_i, lr_next)
        return self.backward_flows[i]

    def run(self, frames: Sequence[torch.Tensor], n_out: int, on_step: StepCallback | None = None,
            keep: bool = True) -> list[torch.Tensor]:
        """Output the first ``n_out`` of ``frames``; the rest are look-ahead for the backward branch.

        ``frames[0]`` must be the frame right after the last one output by the previous call.
        ``on_step`` is called with a fraction of a frame after each half step (progress reporting).
        ``keep=False`` drops the outputs as they are made and returns none (profiling long clips at 4K).
        """
        if not 0 < n_out <= len(frames):
            raise ValueError(f"n_out={n_out} must be in 1..{len(frames)}")
        start = self.frames_done
        model, timer = self.model, self.timer

        # Backward branch, from the end of the look-ahead down to the window's first frame.
        feats_backward: list[torch.Tensor | None] = [None] * n_out
        feat = None
        for k in range(len(frames) - 1, -1, -1):
            flow = None if feat is None else self._backward_flow(start + k, frames[k], frames[k + 1])
            with timer("trunks"):
                feat = model.backward_step(frames[k], feat, flow)
            if k < n_out:
                feats_backward[k] = feat
                if on_step:
                    on_step(0.5)

        # Forward branch, continuing the state carried from the previous window.
        outputs = []
        feat, prev = self.feat_forward, self.prev_lr
        for k in range(n_out):
            flow = None
            if feat is not None:
                with timer("spynet"):
                    flow = model.flow(frames[k], prev)
            with timer("trunks"):
                feat = model.forward_step(frames[k], feat, flow)
            with timer("upsampler"):
                out = model.reconstruct(frames[k], feats_backward[k], feat)
            feats_backward[k] = None  # used once: a long window need not hold every backward state to its end
            if keep:
                outputs.append(out)
            prev = frames[k]
            if on_step:
                on_step(0.5)

        self.feat_forward, self.prev_lr = feat, prev
        self.frames_done = start + n_out
        # Flows of pairs before the next window's first frame are never needed again.
        for i in [i for i in self.backward_flows if i < self.frames_done]:
            del self.backward_flows[i]
        return outputs


def run_clip(model: Any, frames: Sequence[torch.Tensor], on_step: StepCallback | None = None,
             timer: PartTimer | None = None, keep: bool = True) -> list[torch.Tensor]:
    """Every frame of a clip (each (B, 3, h, w)) through ``model`` in one window, which is ``model(clip)``
    exactly; the outputs if ``keep``. ``on_step``, ``timer``: as for the runners."""
    if traits(model).bidirectional:
        return WindowRunner(model, timer).run(frames, len(frames), on_step, keep=keep)
    runner = StreamRunner(model, timer)
    outs = []
    for f in frames:
        out = runner.step(f)
        if keep:
            outs.append(out)
        if on_step:
            on_step(1.0)
    return outs


def upscale_clip(model: Any, lrs: torch.Tensor, on_step: StepCallback | None = None) -> torch.Tensor:
    """The whole clip ``lrs`` (T, 3, h, w) through the network in one window: ``model(lrs[None])[0]`` exactly,
    with progress callbacks. Returns (T, 3, s*h, s*w)."""
    return torch.cat(run_clip(model, [f[None] for f in lrs], on_step), dim=0)
