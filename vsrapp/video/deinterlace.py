"""Deinterlacing on decode: FFmpeg's ``bwdif`` filter (bundled with PyAV), one progressive frame per frame.

An interlaced frame holds two fields taken 1/50 s (or 1/60 s) apart. Upscaled as one picture, every moving edge
keeps its combing, four times larger. ``bwdif`` (Bob Weaver: motion-adaptive, with a w3fdif-style
interpolation of the missing lines) rebuilds each frame from its own fields and its neighbours'. It runs in
``send_frame`` mode, so the frame count and every timestamp stay as they were: sound stays in sync and a
resumed job numbers its frames the same way. Each output depends on the frames just before and after it: the
reader feeds every decoded frame through the filter (also those it drops before a segment's first frame), and
a segment that starts at a keyframe decodes from the keyframe before it (:func:`seek_index`), so a frame comes
out the same whether the whole video or one segment is read.

``--deinterlace auto`` (the default) deinterlaces what the probe finds interlaced (the stream's field order or
the first frame's flag, :attr:`vsrapp.video.info.VideoInfo.interlaced`); ``on`` forces it (a file whose flags
lie); ``off`` upscales woven frames as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from fractions import Fraction

import av

from .info import VideoInfo

MODES = ("auto", "on", "off")

# bwdif's parity option by the probe's field order; without one, the frames' own flags decide ("auto").
_PARITY = {"top field first": "tff", "bottom field first": "bff"}


def wanted(mode: str, info: VideoInfo) -> bool:
    """Whether a job in ``mode`` deinterlaces the input ``info`` describes."""
    if mode not in MODES:
        raise ValueError(f"deinterlace must be one of {', '.join(MODES)}, not {mode!r}")
    return mode == "on" or (mode == "auto" and info.interlaced is not None)


def seek_index(first: int, deinterlace: bool) -> int:
    """The frame whose keyframe a segment starting at ``first`` must seek to: the one before when
    deinterlacing, since ``bwdif`` reads the previous frame too."""
    return max(0, first - 1) if deinterlace else first


class Deinterlacer:
    """``bwdif`` over a stream of decoded frames: :meth:`run` yields one deinterlaced frame per input frame, in
    order, one frame late (the filter waits for the next frame), each with its input's pts, time base and
    duration, and in its input's pixel format (so colour conversion is what it would have been without it)."""

    def __init__(self, parity: str = "auto", time_base: Fraction = Fraction(1, 90000)) -> None:
        self.parity = parity
        self.time_base = time_base  # for frames that carry none (the decoder's are often unset)
        self._graph: av.filter.Graph | None = None
        self._shape: tuple[int, int, str] | None = None
        self._pending: deque[av.VideoFrame] = deque()  # inputs whose output has not come out yet

    @classmethod
    def for_input(cls, info: VideoInfo) -> Deinterlacer:
        return cls(_PARITY.get(info.interlaced or "", "auto"), info.time_base or Fraction(1, 90000))

    def run(self, frames: Iterable[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        for frame in frames:
            shape = (frame.width, frame.height, frame.format.name)
            if shape != self._shape:  # the first frame, or the stream changed size or format: a new graph
                yield from self._drain()
                self._configure(frame, shape)
            self._pending.append(frame)
            self._graph.push(frame)
            yield from self._pull()
        yield from self._drain()

    def _configure(self, frame: av.VideoFrame, shape: tuple[int, int, str]) -> None:
        graph = av.filter.Graph()
        source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                                  time_base=frame.time_base or self.time_base)
        chain = [source, graph.add("bwdif", f"mode=send_frame:parity={self.parity}:deint=all"),
                 # back to the input's pixel format: bwdif takes planar formats only, and a packed input
                 # (yuyv422, rgb24) gets FFmpeg's lossless repacking on the way in
                 graph.add("format", f"pix_fmts={frame.format.name}"), graph.add("buffersink")]
        for a, b in zip(chain, chain[1:]):
            a.link_to(b)
        graph.configure()
        self._graph, self._shape = graph, shape

    def _pull(self) -> Iterator[av.VideoFrame]:
        while self._pending:
            try:
                out = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            src = self._pending.popleft()
            # bwdif counts time in fields (half the input's time base): the input's own timing is what holds
            out.pts, out.duration = src.pts, src.duration
            if src.time_base is not None:
                out.time_base = src.time_base
            yield out

    def _drain(self) -> Iterator[av.VideoFrame]:
        if self._graph is None:
            return
        self._graph.push(None)
        yield from self._pull()
        # Nothing should be left (one output per input); if the filter kept a frame, pass it through as decoded
        # rather than lose it.
        while self._pending:
            yield self._pending.popleft()
        self._graph, self._shape = None, None
