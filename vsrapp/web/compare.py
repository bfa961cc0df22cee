"""One frame of a video upscaled two ways (bicubic and a model), for a side-by-side look.

A recurrent model's output for frame k depends on its neighbours, so the model sees ``context`` frames on each
side of k (only earlier ones matter to a forward-only model, but later ones cost little here). With the default
of 7 the result is within a hair of what the whole-video run gives for that frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from torch import nn

from vsrapp_models.bicubic import Bicubic

from ..engine.upscaler import Upscaler
from ..video import VideoReader

DEFAULT_CONTEXT = 7


@dataclass(frozen=True)
class FramePair:
    index: int
    seconds: float
    bicubic: np.ndarray
    model: np.ndarray


def compare_frame(path: str | os.PathLike, seconds: float, network: nn.Module, *, device: str = "auto",
                  precision: str = "auto", context: int = DEFAULT_CONTEXT, threads: int | None = None) -> FramePair:
    """The frame shown at ``seconds`` (clamped to the video), upscaled by bicubic and by ``network``."""
    with VideoReader(path) as reader:
        fps = reader.info.fps or Fraction(25)
        wanted = max(0, round(seconds * fps))
        if reader.info.frame_count:
            wanted = min(wanted, reader.info.frame_count - 1)
        first = max(0, wanted - context)
        clip = []
        for frame in reader.frames(start=first):
            clip.append(frame.image)
            if frame.index >= wanted + context:
                break
    # A file shorter than its header says: take its last frame.
    position = min(wanted - first, len(clip) - 1)
    upscaler = Upscaler(network, device=device, precision=precision, threads=threads)
    outputs = list(upscaler.upscale_frames(clip))
    baseline = Upscaler(Bicubic(), device="cpu", threads=threads).push(clip[position])[0]
    index = first + position
    return FramePair(index, float(index / fps), np.asarray(baseline), np.asarray(outputs[position]))
