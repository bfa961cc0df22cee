"""Cut a video into independent segments that one worker each can upscale, and upscale one of them.

This is the unit of work of :mod:`vsrapp.cluster`; it needs no Ray, so it is tested and usable on its own.

A recurrent network carries state from frame to frame, so a segment cannot simply start cold at its first
frame. Each segment therefore *decodes* more than it *writes*:

- **warm-up** before its first frame, so the forward hidden state has converged by the first written frame.
  For bidirectional models the warm-up start is rounded down to a window boundary, so the segment's windows
  fall exactly where a single-process run puts them and the backward branch sees the same frames;
- **look-ahead** after its last frame: up to the end of the window holding that frame plus the window's
  look-ahead, which is exactly what the single-process run gave that window.

What remains different from one process is only the forward state's starting point, which the warm-up makes
negligible (``docs/CLUSTER.md`` has the measurement). Cuts fall on keyframes where the file has them near
the wanted length, and every segment starts decoding at the keyframe before its warm-up, so a segment in the
second hour of a film does not decode the first hour.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .upscaler import Upscaler
from .video import Frame, Keyframe, Timeline, VideoError, VideoInfo, VideoReader, VideoWriter

DEFAULT_WARMUP = 24
MIN_SEGMENT = 48


@dataclass(frozen=True)
class Segment:
    """Frames ``[first, end)`` are written; frames ``[decode_from, decode_to)`` go through the network."""

    index: int
    first: int
    end: int
    decode_from: int
    decode_to: int
    seek: Keyframe | None

    @property
    def frames(self) -> int:
        return self.end - self.first

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Segment:
        seek = Keyframe(**d["seek"]) if d.get("seek") else None
        return cls(d["index"], d["first"], d["end"], d["decode_from"], d["decode_to"], seek)


def cut_points(tl: Timeline, target: int) -> list[int]:
    """Segment starts: the keyframe nearest each multiple of ``target`` if one lies within half a segment of
    it, else the frame itself (the segment then decodes from the keyframe before). No segment is shorter than
    half the target, except when the whole video is."""
    n, keys = tl.frames, [k.index for k in tl.keyframes]
    starts = [0]
    while True:
        want = starts[-1] + target
        if n - want < max(1, target // 2):
            return starts
        near = [k for k in keys if abs(k - want) <= target // 2 and k - starts[-1] >= max(1, target // 2)
                and n - k >= max(1, target // 2)]
        starts.append(min(near, key=lambda k: (abs(k - want), k)) if near else want)


def plan_segments(tl: Timeline, target: int, *, bidirectional: bool, window: int, lookahead: int,
                  warmup: int = DEFAULT_WARMUP) -> list[Segment]:
    """The segments of a video with ``tl.frames`` frames, about ``target`` frames each (one segment for a file
    whose frame numbers cannot be recovered from its timestamps)."""
    n = tl.frames
    starts = cut_points(tl, max(1, target)) if tl.seekable else [0]
    ends = starts[1:] + [n]
    segments = []
    for k, (first, end) in enumerate(zip(starts, ends)):
        begin = max(0, first - warmup)
        if bidirectional:
            begin -= begin % window  # the single-process run's window grid
            stop = min(n, -(-end // window) * window + lookahead)
        else:
            stop = end
        seek = tl.keyframe_at_or_before(begin) if tl.seekable and begin > 0 else None
        segments.append(Segment(k, first, end, begin, stop, seek))
    return segments


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


def segment_file_name(index: int, suffix: str) -> str:
    return f"segment_{index:05d}{suffix}"


def expected_suffix(output: str | os.PathLike) -> str:
    return Path(output).suffix or ".mkv"
