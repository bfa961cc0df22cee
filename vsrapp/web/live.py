"""Live upscaling of a camera (or any frame stream): one forward-only :class:`~vsrapp.Upscaler` per viewer.

Only forward-only models qualify: a bidirectional model needs future frames, which a live source does not
have. Frames are scaled down to ``max_side`` first (a webcam's 640x480 x4 is 2560x1920, far more than a live
view needs), then pushed; each push returns the upscaled frame at once (latency one frame).

:meth:`LiveSession.process` also says whether the hardware keeps up: the mean time per frame over the last few
frames, against the interval at which the source sends them.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import av
import numpy as np
from torch import nn

from vsrapp_models.contract import traits

from ..engine.upscaler import Upscaler
from ..errors import ModelError

WINDOW = 8  # frames averaged for the speed verdict


@dataclass(frozen=True)
class LiveStatus:
    ms_per_frame: float
    interval_ms: float
    input_size: tuple[int, int]  # (width, height) after scaling down

    @property
    def keeps_up(self) -> bool:
        return self.ms_per_frame <= self.interval_ms

    def text(self) -> str:
        w, h = self.input_size
        speed = f"{self.ms_per_frame:.0f} ms per frame ({1000 / max(self.ms_per_frame, 1e-3):.1f} frames/s) " \
                f"at {w}x{h} -> {4 * w}x{4 * h}"
        if self.keeps_up:
            return f"Live: {speed}; keeps up with one frame every {self.interval_ms:.0f} ms."
        return (f"This hardware cannot keep up: {speed}, but the camera sends one frame every "
                f"{self.interval_ms:.0f} ms, so frames are skipped and the view lags. A GPU or a smaller input "
                "size would help.")


class NotLiveCapable(ModelError, ValueError):
    """The model looks at future frames; the message is for the visitor."""


class LiveSession:
    def __init__(self, network: nn.Module, device: str = "auto", precision: str = "auto", max_side: int = 240,
                 interval: float = 0.25, threads: int | None = None) -> None:
        if traits(network).bidirectional:
            raise NotLiveCapable("This model is bidirectional (it needs future frames), so it cannot run live; "
                                 "pick a forward-only model.")
        self.upscaler = Upscaler(network, device=device, precision=precision, threads=threads)
        self.max_side = max_side
        self.interval_ms = interval * 1000
        self.times: deque[float] = deque(maxlen=WINDOW)
        self._size: tuple[int, int] | None = None

    def process(self, image: np.ndarray) -> tuple[np.ndarray, LiveStatus]:
        """Upscale one camera frame (H x W x 3 or 4, uint8); return it and the speed verdict so far."""
        started = time.perf_counter()
        small = self._shrink(np.ascontiguousarray(image[..., :3], dtype=np.uint8))
        size = (small.shape[1], small.shape[0])
        if size != self._size:  # a new camera or resolution: a new stream for the recurrent state
            self.upscaler.reset()
            self._size = size
        (out,) = self.upscaler.push(small)
        self.times.append((time.perf_counter() - started) * 1000)
        return out, LiveStatus(sum(self.times) / len(self.times), self.interval_ms, size)

    def _shrink(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if max(h, w) <= self.max_side:
            return image
        scale = self.max_side / max(h, w)
        width, height = max(1, round(w * scale)), max(1, round(h * scale))
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        return frame.reformat(width=width, height=height, interpolation="AREA").to_ndarray()
