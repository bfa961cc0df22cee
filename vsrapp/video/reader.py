"""Threaded decoding in presentation order, with lost frames replaced so the count and timing hold."""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator
from fractions import Fraction

import av

from ._common import Frame, VideoError, _short, log, open_input
from .colour import frame_to_rgb
from .deinterlace import Deinterlacer
from .info import Keyframe, VideoInfo, probe


class VideoReader:
    """Decode a file's main video stream to RGB :class:`Frame` s.

    ``errors`` lists, as one-line strings, every frame that could not be decoded (each was replaced by a copy
    of the previous good frame, at its own pts) and any early end of the stream. ``deinterlace``: every decoded
    frame goes through ``bwdif`` first (:mod:`vsrapp.video.deinterlace`); count and timing are unchanged.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, deinterlace: bool = False) -> None:
        self.path = os.fspath(path)
        self.threads = threads
        self.deinterlace = deinterlace
        self.info: VideoInfo = probe(self.path)
        self.errors: list[str] = []
        self._live: list[Iterator[Frame]] = []

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop every unfinished :meth:`frames` generator and release its decoder (safe to call twice)."""
        live, self._live = self._live, []
        for gen in live:
            gen.close()

    def frames(self, start: int = 0, seek: Keyframe | None = None) -> Iterator[Frame]:
        """Frames in presentation order, beginning with frame number ``start`` (earlier ones are decoded and
        dropped without colour conversion, so numbering and lost-frame handling stay identical).

        ``seek``: a keyframe at or before ``start`` (from :func:`~vsrapp.video.info.timeline`); decoding then
        begins there instead of at the first frame, which is what lets a segment of a long video start quickly.
        """
        if seek is not None and seek.index > start:
            raise ValueError(f"seek keyframe {seek.index} is after the first wanted frame {start}")
        gen = self._frames(start, seek)
        self._live.append(gen)
        return gen

    def _frames(self, start: int, seek: Keyframe | None) -> Iterator[Frame]:
        container = open_input(self.path)
        stream = container.streams[self.info.stream_index]
        # FRAME+SLICE threading; the cost is one frame of latency per thread, irrelevant here.
        stream.thread_type = "AUTO"
        stream.thread_count = self.threads or 0
        finished = False
        try:
            decoder = _Decoder(self, container, stream)
            if seek is not None:
                decoder.seek(seek)
            yield from decoder.run(start)
            finished = True
        finally:
            _shutdown(container, stream, drain=not finished)

    def _record(self, message: str) -> None:
        self.errors.append(message)
        log.warning("%s: %s", self.path, message)


def _shutdown(container, stream, drain: bool) -> None:
    """Close a decoder that may be mid-stream.

    Closing a frame-threaded decoder that still holds frames deadlocks when any Python log callback is installed
    (PyAV #1849/#1861; older torchvision installs one on import): the worker threads wait for the GIL that the
    closing thread holds. Sending EOF first lets the threads finish their frames, after which closing is safe.
    """
    if drain:
        try:
            stream.decode(None)
        except av.error.FFmpegError:
            pass
    container.close()


class _Decoder:
    """One pass over the stream. Knows which packet timestamps were sent, so frames the decoder loses are found.

    Frames leave a decoder in increasing pts order, so when a frame with pts P comes out, every sent packet
    with a smaller pts that has not come out is lost. Lost frames are replaced (previous image, own pts) only
    when the decoder reported an error, so frames FFmpeg drops on purpose (edit lists) are not invented.

    A stream cut mid-GOP (a broadcast capture, a stream joined late) begins with packets that reference
    pictures the file does not hold. They still go to the decoder, which delivers what it can, but until the
    first keyframe packet (or the first delivered frame) they are not counted as sent and their errors are not
    counted: they were never pictures of this file, so nothing is invented in their place.
    """

    def __init__(self, reader: VideoReader, container, stream) -> None:
        self.reader = reader
        self.container = container
        self.stream = stream
        self.info = reader.info
        self.deep = reader.info.bit_depth > 8
        self.sent: list[int] = []  # heap of packet pts not yet matched by a frame
        self.unexplained_errors = 0
        self.index = 0
        self.start = 0
        self.last: Frame | None = None
        self.last_image = None
        self.last_pts: int | None = None
        self.skip_below: int | None = None  # after a seek: packets and frames before the keyframe are not ours
        self.keyed = False  # a keyframe packet was sent or a frame came out: the stream has really begun

    def seek(self, keyframe: Keyframe) -> None:
        """Jump to ``keyframe``; frames then count from its known index. Leading pictures of an open GOP (pts
        before the keyframe's) and anything before it that FFmpeg's seek lands on are decoded and dropped."""
        self.container.seek(keyframe.pts, stream=self.stream, backward=True, any_frame=False)
        self.index = keyframe.index
        self.skip_below = keyframe.pts
        self.keyed = True

    def _ours(self, pts: int | None) -> bool:
        return self.skip_below is None or pts is None or pts >= self.skip_below

    def run(self, start: int) -> Iterator[Frame]:
        self.start = start
        frames = self._decoded()
        if self.reader.deinterlace:  # before the bookkeeping: frames come out one late, pts and order as decoded
            frames = Deinterlacer.for_input(self.info).run(frames)
        for decoded in frames:
            yield from self._kept(self._emit(decoded))
        yield from self._kept(self._tail())
        self._check_count()

    def _kept(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        return (f for f in frames if f.index >= self.start)

    def _decoded(self) -> Iterator[av.VideoFrame]:
        try:
            for packet in self.container.demux(self.stream):
                yield from self._decode(packet)
        except av.error.FFmpegError as exc:  # the demuxer itself failed: a truncated or damaged file
            self.reader._record(f"stream ends early after frame {self.index} ({_short(exc)})")
            if self.index == 0:
                raise VideoError(f"{self.reader.path}: truncated or undecodable ({_short(exc)})") from exc
            yield from self._decode(None)

    def _decode(self, packet) -> list[av.VideoFrame]:
        if packet is not None and packet.size == 0:
            packet = None  # demux's end-of-stream marker: flush
        if packet is not None and packet.is_keyframe:
            self.keyed = True
        if (self.keyed and packet is not None and packet.pts is not None and not packet.is_discard
                and self._ours(packet.pts)):
            heapq.heappush(self.sent, packet.pts)
        try:
            return self.stream.decode(packet)
        except av.error.FFmpegError as exc:
            # With frame threading the error may belong to an earlier packet; _emit finds which frame is gone.
            self.unexplained_errors += self.keyed
            log.warning("%s: decode error near pts %s: %s", self.reader.path,
                        getattr(packet, "pts", None), _short(exc))
            return []

    def _emit(self, vf: av.VideoFrame) -> Iterator[Frame]:
        pts = vf.pts
        if not self._ours(pts):
            return
        self.keyed = True
        if pts is not None:
            while self.sent and self.sent[0] < pts:
                yield from self._lost(heapq.heappop(self.sent))
            if self.sent and self.sent[0] == pts:
                heapq.heappop(self.sent)
            if self.last_pts is not None and pts <= self.last_pts:
                log.warning("%s: dropping frame with non-increasing pts %s", self.reader.path, pts)
                return
        elif self.last_pts is not None:
            pts = self.last_pts + self._nominal_duration()  # no timestamp: continue at the nominal rate
        yield self._make(vf, pts)

    def _lost(self, pts: int) -> Iterator[Frame]:
        if self.unexplained_errors == 0:
            return  # dropped by the decoder on purpose, not an error
        self.unexplained_errors -= 1
        if self.last is None:
            self.reader._record(f"frame at pts {pts} undecodable before any good frame; dropped")
            return
        self.reader._record(f"frame {self.index} (pts {pts}) undecodable; repeated the previous frame")
        yield self._repeat(pts)

    def _tail(self) -> Iterator[Frame]:
        while self.sent:
            pts = heapq.heappop(self.sent)
            if self.last_pts is None or pts > self.last_pts:
                yield from self._lost(pts)

    def _make(self, vf: av.VideoFrame, pts: int | None) -> Frame:
        # Frames before `start` are dropped unconverted; the one just before is converted in case the next
        # frame is lost and must repeat it.
        if self.index >= self.start - 1:
            image = frame_to_rgb(vf, self.info.colour_used, self.deep)
        else:
            image = None
        frame = Frame(image, pts, self.info.time_base, self.index, vf.duration or None)
        return self._advance(frame)

    def _repeat(self, pts: int) -> Frame:
        prev = self.last
        # A copy of the image we decoded, not prev.image: the consumer may have replaced or changed that.
        frame = Frame(self.last_image.copy(), pts, prev.time_base, self.index, prev.duration)
        return self._advance(frame)

    def _advance(self, frame: Frame) -> Frame:
        self.index += 1
        self.last = frame
        self.last_image = frame.image
        self.last_pts = frame.pts
        return frame

    def _nominal_duration(self) -> int:
        fps = self.info.fps or Fraction(25)
        return max(1, round(1 / (fps * self.info.time_base)))

    def _check_count(self) -> None:
        expected = self.info.frame_count if self.info.frame_count_exact else None
        if expected is not None and self.index < expected:
            self.reader._record(f"stream ended after {self.index} of {expected} frames (truncated?)")
        if self.index == 0:
            raise VideoError(f"{self.reader.path}: no frame could be decoded (truncated or corrupt)")
