"""The source's audio and subtitle streams, read by a second demuxer and muxed beside the video as it is made, and
its attachments.

Packets are pulled one at a time and muxed up to the timestamp of the video packet about to be written, so the
file is interleaved in one pass and memory stays bounded whatever the file's length.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import av

from ._common import _short, container_holds, log, open_input
from .info import VideoInfo

# Audio that mp4 can technically hold but that players refuse (FFmpeg writes PCM as the rare 'ipcm' entry).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac", "mp2"}
_AUDIO_TARGETS = ("aac", "libopus", "opus", "flac")  # first the container takes wins
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_TEXT_SUBS = {"subrip", "ass", "ssa", "webvtt", "mov_text", "text"}
_TEXT_TARGETS = ("mov_text", "subrip", "webvtt")


class SideStreams:
    """Routes every audio and subtitle packet of the source to the output (copy, transcode, convert or drop), and
    copies its attachments (fonts, cover art) where the container holds them."""

    def __init__(self, out: av.container.OutputContainer, info: VideoInfo, out_path: str) -> None:
        self.out = out
        self.out_path = out_path
        self.src = open_input(info.path)
        self.routes: dict[int, _Route] = {}
        for stream in self.src.streams:
            route = self._plan(stream, info)
            if route is not None:
                self.routes[stream.index] = route
        wanted = [self.src.streams[i] for i in self.routes]
        self.packets = self.src.demux(wanted) if wanted else iter(())
        self.pending: av.Packet | None = None
        self.offset = info.start_offset
        for index, route in self.routes.items():
            route.shift = shift_ticks(self.offset, self.src.streams[index].time_base)

    def pump_until(self, seconds: Fraction) -> None:
        """Mux every side packet whose output time is at or before ``seconds``."""
        while True:
            packet = self._peek()
            if packet is None:
                return
            when = _time_of(packet)
            if when is not None and when - self.offset > seconds:
                return
            self.pending = None
            self.routes[packet.stream.index].handle(packet)

    def finish(self) -> None:
        """Mux everything left and flush any transcoder."""
        while (packet := self._peek()) is not None:
            self.pending = None
            self.routes[packet.stream.index].handle(packet)
        for route in self.routes.values():
            route.flush()

    def close(self) -> None:
        self.src.close()

    def _peek(self) -> av.Packet | None:
        while self.pending is None:
            try:
                packet = next(self.packets)
            except StopIteration:
                return None
            except av.error.FFmpegError as exc:
                log.warning("%s: source side streams end early (%s)", self.out_path, _short(exc))
                self.packets = iter(())
                return None
            if packet.size:  # empty packets only mark end of stream
                self.pending = packet
        return self.pending

    def _plan(self, stream, info: VideoInfo) -> _Route | None:
        kind = stream.type
        if kind == "video":
            if stream.index != info.stream_index:
                log.warning("%s: extra video stream #%d (%s) not copied", self.out_path, stream.index,
                            stream.codec_context.name)
            return None
        if kind == "attachment":
            self._attach(stream)
            return None
        if kind not in ("audio", "subtitle"):
            log.info("%s: %s stream #%d not copied", self.out_path, kind, stream.index)
            return None
        if stream.codec_context is None:  # the file names no codec FFmpeg knows (damaged header): nothing to copy
            log.warning("%s: %s stream #%d has no known codec; not copied", self.out_path, kind, stream.index)
            return None
        codec = stream.codec.canonical_name if stream.codec else "unknown"
        if self._holds(kind, codec):
            route = _Copy(self.out, self.out.add_stream_from_template(stream))
        elif kind == "audio":
            route = self._audio_fallback(stream, codec)
        else:
            route = self._subtitle_fallback(stream, codec)
        if route is not None:  # language, title...: the source's tags, cleaned (probe read them)
            summary = next((s for s in info.audio + info.subtitles if s.index == stream.index), None)
            route.out_stream.metadata.update(summary.tags if summary else {})
        return route

    def _attach(self, stream) -> None:
        # Matroska files carry fonts (the styled ASS subtitles of most anime releases render with them) and cover
        # art as attachments: written into the header, so they must be added before the first packet.
        name = stream.name or stream.metadata.get("filename") or f"attachment-{stream.index}"
        data = stream.data
        if not data:
            log.warning("%s: attachment #%d (%s) is empty; not copied", self.out_path, stream.index, name)
        elif self.out.format.name != "matroska":
            log.warning("%s: attachment %r dropped: %s cannot hold attachments (subtitles that use an attached font "
                        "render with another one); use .mkv to keep it", self.out_path, name, self.out.format.name)
        else:
            mimetype = stream.mimetype or stream.metadata.get("mimetype") or "application/octet-stream"
            self.out.add_attachment(name, mimetype, bytes(data))

    def _holds(self, kind: str, codec: str) -> bool:
        if not container_holds(self.out, codec):
            return False
        return not (kind == "audio" and self.out.format.name == "mp4" and codec not in _MP4_AUDIO)

    def _audio_fallback(self, stream, codec: str) -> _Route | None:
        for target in _AUDIO_TARGETS:
            if target in av.codecs_available and self._holds("audio", av.codec.Codec(target, "w").canonical_name):
                refused = _encoder_refuses(target, stream)
                if refused:
                    # An output stream cannot be taken back once added, and its encoder opens only at the first
                    # write, where it would end the whole job: so ask first. Seen on truncated FLV files, whose
                    # cut tag header reads as a phantom 5512 Hz PCM stream without packets.
                    log.warning("%s: audio stream #%d (%s, %s Hz) dropped: the %s encoder refuses it (%s); a "
                                "damaged file, or a sample rate it cannot take", self.out_path, stream.index, codec,
                                stream.codec_context.sample_rate, target, refused)
                    return None
                log.warning("%s: audio stream #%d (%s) cannot go in %s; transcoding to %s", self.out_path,
                            stream.index, codec, self.out.format.name, target)
                return _Transcode(self.out, stream, target)
        log.warning("%s: audio stream #%d (%s) dropped: %s holds none of %s", self.out_path, stream.index,
                    codec, self.out.format.name, ", ".join(_AUDIO_TARGETS))
        return None

    def _subtitle_fallback(self, stream, codec: str) -> _Route | None:
        if codec in _TEXT_SUBS:
            for target in _TEXT_TARGETS:
                if container_holds(self.out, target):
                    log.warning("%s: subtitle stream #%d (%s) cannot go in %s; converting to %s (text only, "
                                "styling dropped)", self.out_path, stream.index, codec, self.out.format.name,
                                target)
                    return _TextConvert(self.out, stream, codec, target)
        why = "no text subtitle format fits it" if codec in _TEXT_SUBS else "bitmap subtitles cannot be converted"
        log.warning("%s: subtitle stream #%d (%s) dropped: the %s container cannot hold it and %s; use .mkv to "
                    "keep it", self.out_path, stream.index, codec, self.out.format.name, why)
        return None


def _standard_layout(ctx) -> av.AudioLayout | str:
    """Some demuxers give an order-less layout ("1 channels") that encoders refuse: use the standard one."""
    layout = ctx.layout
    if layout.name.endswith("channels"):
        return _DEFAULT_LAYOUTS.get(layout.nb_channels, layout.name)
    return layout


def _encoder_refuses(target: str, stream) -> str | None:
    """Why the ``target`` encoder will not open for this audio stream's rate and layout, or None if it does."""
    src = stream.codec_context
    try:
        enc = av.CodecContext.create(target, "w")
        enc.sample_rate, enc.layout = src.sample_rate, _standard_layout(src)
        enc.format = enc.codec.audio_formats[0]
        enc.time_base = Fraction(1, src.sample_rate or 1)
        enc.open()
    except (av.error.FFmpegError, ValueError) as exc:
        return _short(exc)
    return None


def shift_ticks(offset: Fraction, time_base: Fraction | None) -> int:
    """``offset`` seconds in ``time_base`` ticks, rounded down so no stream's first timestamp goes negative."""
    return int(offset // time_base) if offset and time_base else 0


def _shifted(ts: int | None, shift: int) -> int | None:
    return None if ts is None else ts - shift


def _time_of(packet: av.Packet) -> Fraction | None:
    ts = packet.dts if packet.dts is not None else packet.pts
    if ts is None or packet.time_base is None:
        return None
    return ts * packet.time_base


class _Route:
    out_stream: av.stream.Stream
    shift = 0  # ticks of the source stream's time base taken off every timestamp (VideoInfo.start_offset)

    def handle(self, packet: av.Packet) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass


class _Copy(_Route):
    """Packet for packet, payload and timestamps untouched (only a non-increasing dts is nudged)."""

    def __init__(self, out, out_stream) -> None:
        self.out = out
        self.out_stream = out_stream
        self.last_dts: int | None = None

    def handle(self, packet: av.Packet) -> None:
        step = self._step(packet)
        if packet.dts is not None and self.last_dts is not None and packet.dts < self.last_dts + step:
            # Muxers reject non-increasing dts and would end the job (seen in the wild: jasna #352).
            log.warning("stream #%d: dts %d not increasing; nudged", packet.stream.index, packet.dts)
            packet.dts = self.last_dts + step
            if packet.pts is not None and packet.pts < packet.dts:
                packet.pts = packet.dts
        self.last_dts = packet.dts if packet.dts is not None else self.last_dts
        packet.pts, packet.dts = _shifted(packet.pts, self.shift), _shifted(packet.dts, self.shift)
        packet.stream = self.out_stream
        self.out.mux(packet)

    def _step(self, packet: av.Packet) -> int:
        """Source ticks that make at least one tick of the output stream: the muxer rescales timestamps (MPEG-TS
        1/90000 audio becomes 1/48000 in mp4, 1/1000 in mkv), so a dts nudged by one source tick can round back
        onto the previous one and the muxer refuses it (found by tests/test_fuzz.py: a TS with swapped
        packets)."""
        out_tb, in_tb = self.out_stream.time_base, packet.time_base
        if not out_tb or not in_tb:
            return 1
        return max(1, math.ceil(Fraction(out_tb) / Fraction(in_tb)))


class _Transcode(_Route):
    """Decode the source audio and encode it with a codec the container holds."""

    def __init__(self, out, stream, target: str) -> None:
        self.out = out
        self.src = stream
        ctx = stream.codec_context
        self.out_stream = out.add_stream(target, rate=ctx.sample_rate)
        self.out_stream.codec_context.layout = _standard_layout(ctx)
        self.out_stream.time_base = Fraction(1, ctx.sample_rate)

    def handle(self, packet: av.Packet) -> None:
        try:
            frames = self.src.decode(packet)
        except av.error.FFmpegError as exc:
            log.warning("audio stream #%d: undecodable packet skipped (%s)", self.src.index, _short(exc))
            return
        for frame in frames:
            self._encode(frame)

    def flush(self) -> None:
        for frame in self.src.decode(None):
            self._encode(frame)
        self.out.mux(self.out_stream.encode(None))

    def _encode(self, frame: av.AudioFrame) -> None:
        frame.pts = _shifted(frame.pts, self.shift)  # decoded frames keep the packets' time base
        self.out.mux(self.out_stream.encode(frame))


class _TextConvert(_Route):
    """Re-wrap each text subtitle packet in the target format's payload; timing is copied."""

    def __init__(self, out, stream, source_codec: str, target: str) -> None:
        self.out = out
        self.source_codec = source_codec
        self.target = target
        self.out_stream = out.add_mux_stream(target)
        self.out_stream.time_base = stream.time_base

    def handle(self, packet: av.Packet) -> None:
        text = subtitle_text(self.source_codec, bytes(packet)).encode("utf-8")
        payload = len(text).to_bytes(2, "big") + text if self.target == "mov_text" else text
        new = av.Packet(payload)
        new.pts, new.dts = _shifted(packet.pts, self.shift), _shifted(packet.dts, self.shift)
        new.duration = packet.duration
        new.time_base = packet.time_base
        new.stream = self.out_stream
        self.out.mux(new)


_TAG = re.compile(r"<[^>]*>")
_ASS_OVERRIDE = re.compile(r"\{[^}]*\}")


def subtitle_text(codec: str, payload: bytes) -> str:
    """The plain text of one text-subtitle packet (styling removed)."""
    if codec == "mov_text":
        size = int.from_bytes(payload[:2], "big")
        return payload[2:2 + size].decode("utf-8", "replace")
    text = payload.decode("utf-8", "replace")
    if codec in ("ass", "ssa"):
        # Matroska-style ASS packet: ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text
        text = text.split(",", 8)[-1]
        text = _ASS_OVERRIDE.sub("", text).replace("\\N", "\n").replace("\\n", "\n").replace("\\h", " ")
        return text.strip()
    return _TAG.sub("", text).strip()
