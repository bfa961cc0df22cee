"""What a media file holds: :func:`probe` -> :class:`VideoInfo`, and :func:`list_packets` for tests and tools."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction

import av

from ._common import VideoError, _short, open_input
from .colour import ColourInfo, read_tags, resolve
from .hdr import HdrMetadata, read_dynamic_hdr, read_hdr
from .tags import clean_tag, content_tags


@dataclass(frozen=True)
class StreamSummary:
    """A non-video stream: enough to tell the user what will be copied."""

    index: int
    type: str  # "audio", "subtitle", "data", "attachment"
    codec: str  # FFmpeg's canonical codec name ("subrip", not the decoder name "srt")
    language: str | None = None
    time_base: Fraction | None = None
    sample_rate: int | None = None
    channels: int | None = None
    tags: dict[str, str] = field(default_factory=dict)  # cleaned, content only (see vsrapp.video.tags)


@dataclass(frozen=True)
class VideoInfo:
    """Everything the pipeline needs to know about the input's video stream.

    ``colour`` is what the file says (possibly "unknown"); ``colour_used`` is what vsrapp decodes with and tags
    the output with (see :mod:`vsrapp.video.colour`). ``frame_count`` is exact when ``frame_count_exact``,
    otherwise an estimate from duration x fps (or None). ``rotation`` is counter-clockwise degrees from the
    display matrix, as PyAV reports it.
    """

    path: str
    container: str
    stream_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    time_base: Fraction
    fps: Fraction | None
    frame_count: int | None
    frame_count_exact: bool
    duration: float | None
    start_pts: int | None
    colour: ColourInfo
    colour_used: ColourInfo
    rotation: int = 0
    sample_aspect_ratio: Fraction | None = None
    audio: list[StreamSummary] = field(default_factory=list)
    subtitles: list[StreamSummary] = field(default_factory=list)
    other: list[StreamSummary] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # the container's, cleaned (see vsrapp.video.tags)
    start_offset: Fraction = Fraction(0)  # seconds every output stream is moved earlier by (see _start_offset)
    video_tags: dict[str, str] = field(default_factory=dict)  # the main video stream's, cleaned
    interlaced: str | None = None  # "top field first", "bottom field first" or "interlaced"; None: progressive
    hdr: HdrMetadata | None = None  # mastering display and content light level (see vsrapp.video.hdr)
    dynamic_hdr: str | None = None  # "HDR10+", "Dolby Vision", "HDR Vivid": per-scene metadata the output loses


@dataclass(frozen=True)
class PacketRecord:
    """One demuxed packet, copied out of FFmpeg's buffers."""

    pts: int | None
    dts: int | None
    duration: int | None
    time_base: Fraction
    is_keyframe: bool
    data: bytes


@dataclass(frozen=True)
class Keyframe:
    """A frame decoding can start from: its pts and its 0-based index in presentation order."""

    pts: int
    index: int


@dataclass(frozen=True)
class Timeline:
    """Where the frames and keyframes of the main video stream are, read from packet headers alone (no decode).

    ``seekable`` is False when frame numbers cannot be derived from timestamps (packets without pts, repeated
    pts, or a count that disagrees with the container's): such a file can only be read from the start.
    """

    frames: int
    keyframes: tuple[Keyframe, ...]
    seekable: bool

    def keyframe_at_or_before(self, index: int) -> Keyframe | None:
        best = None
        for key in self.keyframes:
            if key.index > index:
                break
            best = key
        return best


def timeline(path: str | os.PathLike, info: VideoInfo | None = None) -> Timeline:
    """Demux (without decoding) the main video stream: frame count and keyframe positions in display order."""
    name = os.fspath(path)
    info = info or probe(name)
    pts: list[int] = []
    key_pts: set[int] = set()
    missing = False
    with open_input(name) as container:
        stream = container.streams[info.stream_index]
        try:
            for packet in container.demux(stream):
                if not packet.size or packet.is_discard:
                    continue
                if packet.pts is None:
                    missing = True
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    key_pts.add(packet.pts)
        except av.error.FFmpegError:
            missing = True  # a damaged file: let the reader decode it from the start, with its error handling
    order = sorted(pts)
    repeated = len(set(order)) != len(order)
    disagrees = info.frame_count_exact and info.frame_count != len(order)
    seekable = bool(order) and not (missing or repeated or disagrees)
    keys = tuple(Keyframe(p, i) for i, p in enumerate(order) if p in key_pts) if seekable else ()
    return Timeline(len(order), keys, seekable)


@dataclass(frozen=True)
class Headers:
    """What the container says about its main video stream before any of it is decoded; None where it is silent."""

    width: int | None
    height: int | None
    duration: float | None  # seconds, as :func:`probe` reads it


def read_headers(path: str | os.PathLike) -> Headers:
    """The main video stream's size and duration from the headers alone: no packet is demuxed, no frame decoded.

    Why: a server checks its size and length limits with this before :func:`probe` decodes a first frame, so a
    huge or endless upload costs it nothing. (FFmpeg's stream analysis when a file is opened may still decode a
    little of a stream whose headers lack its parameters; that is bounded by its probe size.)
    """
    name = os.fspath(path)
    with open_input(name) as container:
        stream = _main_video_stream(container, name)
        ctx = stream.codec_context
        return Headers(ctx.width or None, ctx.height or None, _duration(container, stream))


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a file's headers and decode its first video frame (for rotation and to prove it decodes)."""
    name = os.fspath(path)
    with open_input(name) as container:
        stream = _main_video_stream(container, name)
        first = _first_frame(container, stream, name)
        return _build_info(name, container, stream, first)


def list_packets(path: str | os.PathLike, stream_index: int) -> list[PacketRecord]:
    """Every non-empty packet of one stream, in file order (used to compare copied streams bit for bit)."""
    name = os.fspath(path)
    with open_input(name) as container:
        if not 0 <= stream_index < len(container.streams):
            raise VideoError(f"{name}: no stream #{stream_index}")
        stream = container.streams[stream_index]
        return [
            PacketRecord(p.pts, p.dts, p.duration, p.time_base, p.is_keyframe, bytes(p))
            for p in container.demux(stream)
            if p.size
        ]


def _main_video_stream(container: av.container.InputContainer, name: str) -> av.video.stream.VideoStream:
    """The first video stream that is a real video, not cover art."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise VideoError(f"{name}: no video stream (streams: {_stream_kinds(container)})")


def _stream_kinds(container: av.container.InputContainer) -> str:
    kinds = [f"{s.type}/{s.codec_context.name if s.codec_context else '?'}" for s in container.streams]
    return ", ".join(kinds) or "none"


def _first_frame(container, stream, name: str) -> av.VideoFrame:
    stream.thread_type = "SLICE"  # frame threading would need a full drain before close (PyAV #1849)
    try:
        for packet in container.demux(stream):
            for frame in stream.decode(packet if packet.size else None):
                return frame
    except av.error.FFmpegError as exc:
        raise VideoError(f"{name}: video stream is truncated or undecodable ({_short(exc)})") from exc
    raise VideoError(f"{name}: video stream has no decodable frame (truncated or corrupt)")


def _build_info(name, container, stream, first: av.VideoFrame) -> VideoInfo:
    ctx = stream.codec_context
    pix_fmt = ctx.pix_fmt or first.format.name
    fmt = av.VideoFormat(pix_fmt)
    tb = stream.time_base or Fraction(1, 90000)
    fps = stream.average_rate or stream.guessed_rate or None
    duration = _duration(container, stream)
    count, exact = _frame_count(stream, duration, fps)
    tags = read_tags(ctx)
    return VideoInfo(
        path=name,
        container=container.format.name,
        stream_index=stream.index,
        codec=stream.codec.canonical_name if stream.codec else ctx.name,
        width=ctx.width or first.width,
        height=ctx.height or first.height,
        pix_fmt=pix_fmt,
        bit_depth=max((c.bits for c in fmt.components), default=8),
        time_base=Fraction(tb),
        fps=Fraction(fps) if fps else None,
        frame_count=count,
        frame_count_exact=exact,
        duration=duration,
        start_pts=stream.start_time,
        colour=tags,
        colour_used=resolve(tags, ctx.height or first.height, is_rgb=fmt.is_rgb),
        rotation=int(round(first.rotation or 0)),
        sample_aspect_ratio=_sar(stream),
        audio=[_summary(s) for s in container.streams.audio],
        subtitles=[_summary(s) for s in container.streams.subtitles],
        other=[_summary(s) for s in container.streams if s.type in ("data", "attachment")],
        start_offset=_start_offset(container, stream),
        tags=content_tags(container.metadata),
        video_tags=content_tags(stream.metadata),
        interlaced=_interlacing(ctx, first),
        hdr=read_hdr(first),
        dynamic_hdr=read_dynamic_hdr(first),
    )


# AVFieldOrder: 0 unknown, 1 progressive, then TT, BB, TB, BT (field coded first, field shown first).
_FIELD_ORDERS = {2: "top field first", 3: "bottom field first", 4: "bottom field first", 5: "top field first"}


def _interlacing(ctx, first: av.VideoFrame) -> str | None:
    """How the input is interlaced, from the stream's field order or the first frame's flag; None if progressive."""
    order = _FIELD_ORDERS.get(int(ctx.field_order or 0))
    if order is None and first.interlaced_frame:
        order = "interlaced"
    return order


def _start_offset(container, video) -> Fraction:
    """Where the earliest stream the output carries (this video, audio, subtitles) starts, in seconds, if
    later than zero. Broadcast captures start hours in (the tuner's clock) and MPEG-TS files at least 1.4 s in;
    the output starts at zero instead, every stream moved by this same amount, so their sync is kept. Negative
    starts (audio priming) are left alone: players handle those."""
    carried = [video, *container.streams.audio, *container.streams.subtitles]
    starts = [Fraction(s.start_time) * s.time_base for s in carried if s.start_time is not None and s.time_base]
    return max(Fraction(0), min(starts)) if starts else Fraction(0)


def _duration(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _frame_count(stream, duration: float | None, fps) -> tuple[int | None, bool]:
    if stream.frames:
        return stream.frames, True
    if duration and fps:
        return round(duration * float(fps)), False
    return None, False


def _sar(stream) -> Fraction | None:
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return Fraction(sar) if sar else None  # 0/1 means unknown in FFmpeg, i.e. square pixels


def _summary(stream) -> StreamSummary:
    ctx = stream.codec_context
    codec = stream.codec.canonical_name if ctx is not None and stream.codec else "unknown"
    return StreamSummary(
        index=stream.index,
        type=stream.type,
        codec=codec,
        language=clean_tag(stream.language) if stream.language else None,
        time_base=Fraction(stream.time_base) if stream.time_base else None,
        sample_rate=getattr(ctx, "sample_rate", None) if stream.type == "audio" else None,
        channels=getattr(ctx, "channels", None) if stream.type == "audio" else None,
        tags=content_tags(stream.metadata),
    )
