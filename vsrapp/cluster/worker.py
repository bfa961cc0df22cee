"""Upscale one segment of a video: what one Ray task of :mod:`vsrapp.cluster.driver` runs on a worker.

It needs no Ray, so it is tested and usable on its own. Where segments are cut (warm-up, look-ahead, keyframes)
is the job's segment plan, :mod:`vsrapp.jobs.segments`, the same one a single-process job uses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..jobs.segments import Segment
from ..upscaler import Upscaler
from ..video import Frame, VideoError, VideoInfo, VideoReader, VideoWriter

__all__ = ["SegmentResult", "upscale_segment"]


@dataclass
class SegmentResult:
    frames: int
    seconds: float
    network_seconds: float
    reader_errors: list[str]


def upscale_segment(info: VideoInfo, segment: Segment, out_path: str | os.PathLike, model: str | nn.Module, *,
                    upscaler_options: dict[str, Any] | None = None, writer_options: dict[str, Any] | None = None,
                    progress: Callable[[int], None] | None = None) -> SegmentResult:
    """Upscale ``segment`` of the video ``info.path`` into the video-only file ``out_path``.

    ``progress(frames_written)`` is called as frames are written. Raises VideoError for a broken input.
    """
    started = time.perf_counter()
    upscaler = Upscaler(model, **(upscaler_options or {}))
    options = {"scale": upscaler.scale, **(writer_options or {})}
    pending: list[Frame] = []  # decoded frames whose output has not come back yet, in order
    written = 0
    network = 0.0
    with VideoReader(info.path) as reader, VideoWriter(out_path, info, copy_streams=False, **options) as writer:

        def emit(images: list) -> None:
            nonlocal written
            for image in images:
                src = pending.pop(0)
                if segment.first <= src.index < segment.end:
                    writer.write(Frame(image, src.pts, src.time_base, src.index, src.duration))
                    written += 1
                    if progress:
                        progress(written)

        for frame in reader.frames(start=segment.decode_from, seek=segment.seek):
            if frame.index >= segment.decode_to:
                break
            pending.append(frame)
            t0 = time.perf_counter()
            outs = upscaler.push(frame.image)
            network += time.perf_counter() - t0
            emit(outs)
            if written == segment.frames:
                break  # the look-ahead frames after the last window that matters need no network pass
        if written < segment.frames:
            t0 = time.perf_counter()
            outs = upscaler.flush()
            network += time.perf_counter() - t0
            emit(outs)
        errors = list(reader.errors)
    if written != segment.frames:
        # the file has fewer frames than its packet headers promised (damaged mid-way)
        raise VideoError(f"{info.path}: segment {segment.index} expected frames {segment.first}..{segment.end - 1} "
                         f"but decoded only {written} of them")
    return SegmentResult(written, time.perf_counter() - started, network, errors)

