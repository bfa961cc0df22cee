"""The segment plan: where a job's segments end, one rule for a single process and for Ray.

A job's output is encoded in segments inside its job folder, so that a stopped job loses at most one segment.
The two ways of running cut the same way, and differ only in what a segment carries over:

- **one process** (:func:`vsrapp.upscale_file`) runs the frames in order and checkpoints the recurrent state
  at each segment's end; a segment is then ``length`` frames of whole windows (bidirectional models), so its
  end is exactly where a window ends and the state is exact. :meth:`SegmentPlan.ends_segment` says where.
- **Ray** (:mod:`vsrapp.cluster`) runs segments side by side, each on its own worker with a cold state, so each
  *decodes* more than it *writes* (:meth:`SegmentPlan.cut`):

  - **warm-up** before its first frame, so the forward hidden state has converged by the first written frame.
    For bidirectional models the warm-up start is rounded down to a window boundary, so the segment's windows
    fall exactly where a single-process run puts them and the backward branch sees the same frames;
  - **look-ahead** after its last frame: up to the end of the window holding that frame plus the window's
    look-ahead, which is exactly what the single-process run gave that window.

  What remains different from one process is only the forward state's starting point, which the warm-up
  makes negligible (``docs/CLUSTER.md`` has the measurement). Cuts fall on keyframes where the file has them
  near the wanted length, and every segment starts decoding at the keyframe before its warm-up, so a segment
  in the second hour of a film does not decode the first hour.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..video import Keyframe, Timeline
from ..video.deinterlace import seek_index

DEFAULT_SEGMENT_FRAMES = 480  # about 20 s of 24 fps video: what a stopped job may lose, at most
MAX_SEGMENT = DEFAULT_SEGMENT_FRAMES  # Ray: so a lost task costs no more than a single-process segment
MIN_SEGMENT = 48  # Ray: below this the warm-up would dominate
DEFAULT_WARMUP = 24


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


@dataclass(frozen=True)
class SegmentPlan:
    """Segments of about ``length`` frames for a model that is ``bidirectional`` (or not), run with ``window``
    and ``lookahead`` (the engine's options); ``warmup`` matters only to segments that start cold (Ray).
    ``deinterlace``: segments seek one frame earlier, since bwdif reads the frame before the first."""

    length: int
    bidirectional: bool
    window: int
    lookahead: int
    warmup: int = DEFAULT_WARMUP
    deinterlace: bool = False

    @classmethod
    def for_stream(cls, requested: int | None, bidirectional: bool, window: int, lookahead: int) -> SegmentPlan:
        """One process: ``requested`` frames (default 480) rounded up to whole windows."""
        return cls(stream_segment_length(requested, bidirectional, window), bidirectional, window, lookahead)

    def ends_segment(self, frames_out: int) -> bool:
        """One process: after ``frames_out`` output frames, is a segment complete (state to checkpoint)?"""
        return frames_out % self.length == 0

    def cut(self, tl: Timeline) -> list[Segment]:
        """Independent segments of a video with ``tl.frames`` frames (one segment for a file whose frame
        numbers cannot be recovered from its timestamps)."""
        n = tl.frames
        starts = cut_points(tl, max(1, self.length)) if tl.seekable else [0]
        segments = []
        for k, (first, end) in enumerate(zip(starts, starts[1:] + [n])):
            begin = max(0, first - self.warmup)
            if self.bidirectional:
                begin -= begin % self.window  # the single-process run's window grid
                stop = min(n, -(-end // self.window) * self.window + self.lookahead)
            else:
                stop = end
            seek = (tl.keyframe_at_or_before(seek_index(begin, self.deinterlace)) if tl.seekable and begin > 0
                    else None)
            segments.append(Segment(k, first, end, begin, stop, seek))
        return segments


def stream_segment_length(requested: int | None, bidirectional: bool, window: int) -> int:
    """Segments hold whole windows, so each one ends exactly where the recurrent state is checkpointed."""
    n = requested or DEFAULT_SEGMENT_FRAMES
    unit = window if bidirectional else 1
    return max(unit, -(-n // unit) * unit)


def default_segment_length(frames: int, workers: int) -> int:
    """Ray: about two segments per worker for short videos (so a slow task does not leave the rest idle), never
    below MIN_SEGMENT (the warm-up would dominate) nor above MAX_SEGMENT (so a lost task costs little)."""
    return max(MIN_SEGMENT, min(MAX_SEGMENT, -(-frames // max(1, 2 * workers))))


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
    """The Ray segments of a video, about ``target`` frames each (:meth:`SegmentPlan.cut`)."""
    return SegmentPlan(target, bidirectional, window, lookahead, warmup).cut(tl)


def segment_file_name(index: int, suffix: str) -> str:
    """A segment's file in the job folder: the same name for both ways of running."""
    return f"segment_{index:05d}{suffix}"


def expected_suffix(output: str | os.PathLike) -> str:
    """The segments' container: the output's (Matroska when it has no extension)."""
    return Path(output).suffix or ".mkv"
