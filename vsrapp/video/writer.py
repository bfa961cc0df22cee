"""Encode upscaled frames and remux the source's audio and subtitles in the same write."""

from __future__ import annotations

import os
from fractions import Fraction

import av

from ._common import Frame, VideoError, _short, container_holds, log
from .colour import rgb_to_frame
from .hdr import encoder_options as hdr_options
from .info import VideoInfo
from .limits import output_size
from .reader import VideoReader
from .streams import SideStreams, shift_ticks


class VideoWriter:
    """Write frames ``scale`` times the source size to ``path``, keeping timing, colour, audio and subtitles.

    ``source`` is the :class:`VideoReader` (or its :class:`VideoInfo`, whose ``path`` names the source file).
    Encoder options go on the stream: ``crf``/``preset`` as the codec names them (libsvtav1 takes a number
    for preset). ``out_scale`` (at most ``scale``) resizes the frames, which are still written at ``scale``
    times the source size, to that multiple with Lanczos before encoding. The file appears under ``path`` only
    when :meth:`close` succeeds.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        source: VideoReader | VideoInfo,
        scale: int = 4,
        codec: str = "libx264",
        crf: int | None = None,
        preset: str | None = None,
        pix_fmt: str | None = None,
        copy_streams: bool = True,
        threads: int | None = None,
        out_scale: float | None = None,
    ) -> None:
        self.info = source.info if isinstance(source, VideoReader) else source
        self.path = os.fspath(path)
        _refuse_overwriting_input(self.path, self.info.path)
        self.frame_shape = (self.info.height * scale, self.info.width * scale)
        self.width, self.height = output_size(self.info.width, self.info.height, out_scale or scale)
        self.codec = _check_codec(codec, self.path)
        self.pix_fmt = pix_fmt or _default_pix_fmt(self.codec, self.info.bit_depth)
        _check_pix_fmt(self.codec, self.pix_fmt, self.width, self.height, self.path)
        self.tmp_path = _partial_path(self.path)
        self._out = _open_output(self.tmp_path, self.path)
        self._done = False
        self._last_pts: int | None = None
        # The output starts at zero: source timestamps are moved by the same time as every side stream's.
        self._shift = shift_ticks(self.info.start_offset, self.info.time_base)
        self._count = 0
        try:
            self._check_container_holds(self.codec)
            self._out.metadata.update(self.info.tags)
            self._stream = self._add_video_stream(crf, preset, threads)
            self._stream.metadata.update(self.info.video_tags)
            self._side = SideStreams(self._out, self.info, self.path) if copy_streams else None
            self._out.start_encoding()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, av.error.FFmpegError):
                raise VideoError(f"{self.path}: cannot set up the output ({_short(exc)})") from exc
            raise

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def frames_written(self) -> int:
        return self._count

    def write(self, frame: Frame) -> None:
        """Encode one upscaled frame; its pts and time base are those of the source frame it came from."""
        if self._done:
            raise VideoError(f"{self.path}: writer is already closed")
        image = frame.image
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != self.frame_shape:
            raise ValueError(f"frame {frame.index}: expected {self.frame_shape[0]}x{self.frame_shape[1]}x3, "
                             f"got {image.shape}")
        vf = rgb_to_frame(image, self.pix_fmt, self.info.colour_used, size=(self.width, self.height))
        vf.pts = self._pts_for(frame)
        vf.time_base = self.info.time_base
        if frame.duration:
            vf.duration = int(frame.duration * frame.time_base / self.info.time_base)
        self._mux_video(self._encode(vf))
        self._count += 1

    def close(self) -> None:
        """Flush the encoder, copy the rest of the side streams, and move the file to its final name."""
        if self._done:
            return
        try:
            self._mux_video(self._encode(None))
            if self._side is not None:
                self._side.finish()
            self._out.close()
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._close_side()
        if self._count == 0:
            _remove(self.tmp_path)
            raise VideoError(f"{self.path}: no frames were written; output not created")
        os.replace(self.tmp_path, self.path)

    def abort(self) -> None:
        """Stop writing and delete the partial file; nothing appears under the final name."""
        if self._done:
            return
        self._done = True
        try:
            self._out.close()
        except Exception as exc:  # closing half a file may fail; the file goes anyway
            log.debug("closing aborted output %s: %s", self.tmp_path, exc)
        self._close_side()
        _remove(self.tmp_path)

    # --- helpers -------------------------------------------------------------------------------------------

    def _check_container_holds(self, codec: str) -> None:
        canonical = av.codec.Codec(codec, "w").canonical_name
        if not container_holds(self._out, canonical):
            raise VideoError(
                f"{self.path}: the {self._out.format.name} container cannot hold {canonical} video; "
                "pick another codec or extension")

    def _add_video_stream(self, crf, preset, threads) -> av.video.stream.VideoStream:
        info = self.info
        stream = self._out.add_stream(self.codec, rate=info.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, self.pix_fmt
        # Same time base as the input: every source pts is representable, so VFR timing survives exactly.
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        colour = info.colour_used
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_range = colour.matrix, colour.range
        ctx.color_primaries, ctx.color_trc = colour.primaries, colour.transfer
        if info.sample_aspect_ratio:
            ctx.sample_aspect_ratio = info.sample_aspect_ratio
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        ctx.thread_count = threads or 0
        options = {}
        if crf is not None:
            options["crf"] = str(crf)
        if preset is not None:
            options["preset"] = str(preset)
        # HDR10 mastering display / content light level, written into the bitstream (see vsrapp.video.hdr).
        options.update(hdr_options(self.codec, info.hdr) or {})
        stream.options = options  # on the stream: av.open(options=) never reaches the encoder (PyAV #371)
        return stream

    def _pts_for(self, frame: Frame) -> int:
        if frame.pts is None:
            fps = self.info.fps or Fraction(25)
            pts = round(frame.index / (fps * self.info.time_base))
        else:
            pts = frame.pts * frame.time_base / self.info.time_base
            pts = (int(pts) if pts.denominator == 1 else round(pts)) - self._shift
        if self._last_pts is not None and pts <= self._last_pts:
            raise VideoError(f"{self.path}: frame {frame.index} has pts {pts} after {self._last_pts}; "
                             "frames must arrive in presentation order")
        self._last_pts = pts
        return pts

    def _encode(self, vf) -> list[av.Packet]:
        try:
            return self._stream.encode(vf)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.path}: {self.codec} encoder failed ({_short(exc)})") from exc

    def _mux_video(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if self._side is not None:
                when = packet.dts if packet.dts is not None else packet.pts
                if when is not None:
                    self._side.pump_until(when * packet.time_base)
            self._out.mux(packet)

    def _close_side(self) -> None:
        if getattr(self, "_side", None) is not None:
            self._side.close()


def _refuse_overwriting_input(out_path: str, in_path: str) -> None:
    same = os.path.abspath(out_path) == os.path.abspath(in_path)
    if not same and os.path.exists(out_path):
        same = os.path.samefile(out_path, in_path)
    if same:
        raise VideoError(f"{out_path}: refusing to write over the input file")
    if os.path.isdir(out_path):
        raise VideoError(f"{out_path}: is a directory")


def _check_codec(codec: str, path: str) -> str:
    if codec not in av.codecs_available:
        raise VideoError(f"{path}: encoder {codec!r} is not available in this FFmpeg build")
    try:
        av.codec.Codec(codec, "w")
    except Exception as exc:
        raise VideoError(f"{path}: {codec!r} is not an encoder") from exc
    return codec


def _default_pix_fmt(codec: str, bit_depth: int) -> str:
    formats = [f.name for f in av.codec.Codec(codec, "w").video_formats or ()]
    wanted = ["yuv420p10le", "yuv420p"] if bit_depth > 8 else ["yuv420p"]
    for name in wanted:
        if not formats or name in formats:
            return name
    return formats[0]


def _check_pix_fmt(codec: str, pix_fmt: str, width: int, height: int, path: str) -> None:
    formats = [f.name for f in av.codec.Codec(codec, "w").video_formats or ()]
    if formats and pix_fmt not in formats:
        raise VideoError(f"{path}: {codec} cannot encode pix_fmt {pix_fmt} (it takes {', '.join(formats)})")
    fmt = av.VideoFormat(pix_fmt)
    # Subsampled chroma (4:2:0, 4:2:2...) needs the luma size to divide evenly; the encoder fails otherwise.
    step_w = 8 // max(1, fmt.chroma_width(8))
    step_h = 8 // max(1, fmt.chroma_height(8))
    if width % step_w or height % step_h:
        raise VideoError(f"{path}: output size {width}x{height} does not fit {pix_fmt} chroma subsampling "
                         f"(width must be a multiple of {step_w}, height of {step_h})")


def _partial_path(path: str) -> str:
    head, tail = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(tail)
    return os.path.join(head, f".{stem}.partial{ext}")


def _open_output(tmp_path: str, final_path: str) -> av.container.OutputContainer:
    ext = os.path.splitext(final_path)[1].lower()
    try:
        return av.open(tmp_path, "w")
    except (av.error.FFmpegError, ValueError) as exc:
        raise VideoError(f"{final_path}: cannot write a {ext or 'file without extension'} container "
                         f"({_short(exc)})") from exc
    except OSError as exc:
        raise VideoError(f"{final_path}: cannot create output ({exc.strerror or exc})") from exc


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
