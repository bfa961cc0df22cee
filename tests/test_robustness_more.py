"""More files nobody here made (issue #20, the gaps left after tests/test_robustness.py): an explicit codec the
output's container cannot hold, interlaced input, bitmap subtitles (DVD, DVB, Blu-ray PGS), HDR10 static
metadata, and a full disk under ``--ray``. Each test makes its own case with PyAV; expected outcomes are tabled
in docs/ROBUSTNESS.md."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import X264, H, W, make_hdr10plus, picture, write_planes
from test_robustness import (
    HDR_FRAMES,
    HDR_H,
    HDR_W,
    PQ,
    all_frames,
    hdr_ramp,
    make_interlaced,
    make_phone,
    one_error_line,
    tmpfs,  # noqa: F401 - the fixture, used by the Ray full-disk tests
    upscale,
)

from vsrapp import pipeline
from vsrapp.cli import main
from vsrapp.pipeline import job_dir_for
from vsrapp.video import VideoError, probe
from vsrapp.video.codecs import choose_video_codec
from vsrapp.video.hdr import HdrMetadata, MasteringDisplay, encoder_options

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def warnings_logged():
    """The one-line warnings vsrapp logs (the command line prints them on stderr), as a list of messages."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Keep(logging.WARNING)
    logger = logging.getLogger("vsrapp")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


# --- 1. an explicit codec the output's container cannot hold -------------------------------------------------


@pytest.mark.parametrize("codec,ext,fits", [("libx264", ".webm", (".mp4", ".mkv")),
                                            ("libx265", ".webm", (".mp4", ".mkv")),
                                            ("libvpx-vp9", ".ts", (".mp4", ".mkv"))])
def test_explicit_codec_the_container_cannot_hold_is_refused_before_any_work(media, tmp_path, capsys, monkeypatch,
                                                                            codec, ext, fits):
    def no_work(self):
        raise AssertionError("frames were decoded or upscaled for a job that must be refused")

    monkeypatch.setattr(pipeline._Run, "execute", no_work)
    out = tmp_path / f"out{ext}"
    assert upscale(media.h264_aac, out, "--codec", codec) == 2  # before: switched to VP9 without a word
    line = one_error_line(capsys)
    assert "cannot hold" in line and f"--codec {codec}" in line and all(e in line for e in fits)
    assert list(tmp_path.iterdir()) == []  # no output, no partial file, no job folder


def test_no_codec_picks_one_the_container_holds_and_a_fitting_one_is_kept(tmp_path):
    assert choose_video_codec(None, tmp_path / "a.webm") == "libvpx-vp9"  # unchanged: the automatic choice
    assert choose_video_codec(None, tmp_path / "a.mp4") == choose_video_codec(None, "a.mkv") == "libx264"
    assert choose_video_codec("libsvtav1", tmp_path / "a.webm") == "libsvtav1"  # asked for, and it fits
    assert choose_video_codec("ffv1", tmp_path / "a.mkv") == "ffv1"
    assert choose_video_codec("no_such_encoder", tmp_path / "a.mp4") == "no_such_encoder"  # the writer says why
    with pytest.raises(VideoError, match=r"cannot hold prores .*use \.mkv or \.mov"):
        choose_video_codec("prores_ks", tmp_path / "a.webm")
    assert list(tmp_path.iterdir()) == []  # asking the muxer creates no file


# --- 2. interlaced input: works, with one warning line that says what to do -----------------------------------


def test_interlaced_input_gives_one_warning_line_on_stderr(tmp_path):
    src, out = make_interlaced(tmp_path / "576i.ts"), tmp_path / "576i-x4.mp4"
    cmd = [sys.executable, "-m", "vsrapp.cli", "upscale", str(src), str(out), "--model", "bicubic", "-q",
           "--preset", "ultrafast", "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr  # a warning, not an error
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines  # before: nothing at all
    assert "interlaced (top field first)" in lines[0] and "bwdif" in lines[0] and "error" not in lines[0]
    assert probe(out).frame_count == 10


def test_progressive_input_gives_no_interlace_warning(tmp_path, warnings_logged):
    src = make_phone(tmp_path / "phone.mp4")
    assert probe(src).interlaced is None
    assert upscale(src, tmp_path / "phone-x4.mp4") == 0
    assert not [m for m in warnings_logged if "interlaced" in m]


# --- 3. bitmap subtitles: DVD (VobSub), DVB, Blu-ray PGS ------------------------------------------------------
# No PyAV API makes a bitmap subtitle from pixels (SubtitleSet.create takes text), so the DVD subpicture and the
# PGS display set are written here byte by byte from their formats, and the DVB packets are made by FFmpeg's own
# dvbsub encoder from the decoded DVD subpicture. FFmpeg has no PGS encoder. Every packet is checked to decode.

SUB_BOX = (8, 30, 40, 10)  # x, y, width, height on the 64x48 picture
SUB_FRAMES = (2, 12)  # frames at which a subtitle appears (0.08 s, 0.48 s)
LANGUAGES = {"dvd_subtitle": "eng", "dvb_subtitle": "deu", "hdmv_pgs_subtitle": "fra"}


def dvd_subpicture(x: int, y: int, w: int, h: int, colour: int = 1, duration_ms: int = 200) -> bytes:
    """A DVD subpicture unit (SPU): a w x h box of palette entry ``colour`` at (x, y), shown for duration_ms.

    Layout: size, offset of the first control sequence, the run-length coded lines (top field, then bottom
    field; each line one code "this colour to the end of the line"), then two control sequences: show (palette,
    contrast, area, line offsets) and, after the delay, hide."""
    line = bytes([0x00, colour & 3])
    top, bottom = line * ((h + 1) // 2), line * (h // 2)
    top_at = 4
    bottom_at = top_at + len(top)
    first = bottom_at + len(bottom)
    area = (x << 12 | (x + w - 1)).to_bytes(3, "big") + (y << 12 | (y + h - 1)).to_bytes(3, "big")
    show = (bytes([0x03, 0x01, 0x23, 0x04, 0xFF, 0xF0, 0x05]) + area + bytes([0x06])
            + struct.pack(">HH", top_at, bottom_at) + bytes([0x01, 0xFF]))
    second = first + 4 + len(show)
    body = (top + bottom + struct.pack(">HH", 0, second) + show
            + struct.pack(">HH", round(duration_ms * 90 / 1024), second) + bytes([0x02, 0xFF]))
    return struct.pack(">HH", 4 + len(body), first) + body


def pgs_display_set(x: int, y: int, w: int, h: int, colour: int = 1) -> bytes:
    """A Blu-ray PGS display set: presentation composition (the 64x48 canvas, one object), window, palette, one
    object (run-length coded lines: colour ``colour`` for w pixels, then end of line) and end."""
    def segment(kind: int, payload: bytes) -> bytes:
        return bytes([kind]) + struct.pack(">H", len(payload)) + payload

    composition = struct.pack(">HHBHBBBB", W, H, 0x10, 0, 0x80, 0, 0, 1) + struct.pack(">HBBHH", 0, 0, 0, x, y)
    window = bytes([1]) + struct.pack(">BHHHH", 0, x, y, w, h)
    palette = bytes([0, 0, colour, 235, 128, 128, 255])
    lines = (bytes([0x00, 0x80 | w, colour, 0x00, 0x00])) * h  # w < 64: the short form of a coloured run
    data = struct.pack(">HH", w, h) + lines
    obj = struct.pack(">HBB", 0, 0, 0xC0) + len(data).to_bytes(3, "big") + data
    return (segment(0x16, composition) + segment(0x17, window) + segment(0x14, palette) + segment(0x15, obj)
            + segment(0x80, b""))


def dvb_subtitle(spu: bytes) -> bytes:
    """The same box as a DVB subtitle display set, by FFmpeg's dvbsub encoder from the decoded subpicture."""
    dec = av.CodecContext.create("dvdsub", "r")
    packet = av.Packet(spu)
    packet.pts = 0
    enc = av.CodecContext.create("dvbsub", "w")
    enc.time_base = Fraction(1, 90000)
    enc.open()
    return bytes(enc.encode_subtitle(dec.decode2(packet)))


def make_bitmap_subtitles(path: Path, fmt: str, kinds: tuple[str, ...], n: int = 20) -> Path:
    """H.264 with one subtitle track of each of ``kinds`` (two subtitles each), in Matroska or MPEG-TS."""
    spu = dvd_subpicture(*SUB_BOX)
    payload = {"dvd_subtitle": spu, "dvb_subtitle": dvb_subtitle(spu), "hdmv_pgs_subtitle": pgs_display_set(*SUB_BOX)}
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream("libx264", rate=25, options=X264)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        tracks = []
        for kind in kinds:
            s = out.add_mux_stream(kind)
            s.time_base = Fraction(1, 1000) if fmt == "matroska" else Fraction(1, 90000)
            s.metadata["language"] = LANGUAGES[kind]
            tracks.append((kind, s))
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(picture(i), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(v.encode(frame))
            if i in SUB_FRAMES:
                for kind, s in tracks:
                    packet = av.Packet(payload[kind])
                    packet.pts = packet.dts = int(Fraction(i, 25) / s.time_base)
                    packet.duration = int(Fraction(1, 5) / s.time_base)
                    packet.time_base, packet.stream = s.time_base, s
                    out.mux(packet)
        out.mux(v.encode(None))
    return path


def subtitle_tracks(path: Path) -> dict[str, dict]:
    """Per subtitle codec: language, packet payloads, times (s, from the video's first frame) and what each
    packet decodes to (the bitmap's box)."""
    with av.open(str(path)) as c:
        video_start = c.streams.video[0].start_time * c.streams.video[0].time_base
        streams = [(s.index, s.codec.canonical_name, s.language) for s in c.streams.subtitles]
    tracks = {}
    for index, codec, language in streams:
        with av.open(str(path)) as c:
            s = c.streams[index]
            packets, times, boxes = [], [], []
            for packet in c.demux(s):
                if not packet.size:
                    continue
                packets.append(bytes(packet))
                times.append(round(float(packet.pts * packet.time_base - video_start), 3))
                boxes += [(r.x, r.y, r.width, r.height) for r in s.decode(packet)]
        tracks[codec] = {"language": language, "packets": packets, "times": times, "boxes": boxes}
    return tracks


@pytest.fixture(scope="module")
def bitmap_sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bitmap_subs")
    return {"mkv": make_bitmap_subtitles(folder / "subs.mkv", "matroska", tuple(LANGUAGES)),
            "ts": make_bitmap_subtitles(folder / "dvb.ts", "mpegts", ("dvb_subtitle",))}


# (source, output extension) -> the subtitle codecs the output keeps; the others are dropped with one warning each
BITMAP_CASES = {
    ("mkv", ".mkv"): {"dvd_subtitle", "dvb_subtitle", "hdmv_pgs_subtitle"},  # before: all three dropped
    ("mkv", ".mp4"): {"dvd_subtitle"},  # MP4 holds VobSub ('mp4s'), not DVB or PGS
    ("mkv", ".ts"): {"dvb_subtitle"},  # MPEG-TS holds DVB subtitles only
    ("ts", ".mkv"): {"dvb_subtitle"},  # before: dropped
    ("ts", ".ts"): {"dvb_subtitle"},
    ("ts", ".mp4"): set(),
}


@pytest.mark.parametrize("source,out_ext", list(BITMAP_CASES), ids=[f"{s}-to-{e[1:]}" for s, e in BITMAP_CASES])
def test_bitmap_subtitles_are_kept_where_the_container_holds_them_else_dropped_with_one_line(
        bitmap_sources, tmp_path, capsys, warnings_logged, source, out_ext):
    src, out = bitmap_sources[source], tmp_path / f"out{out_ext}"
    before = subtitle_tracks(src)
    assert all(t["boxes"] == [SUB_BOX] * 2 for t in before.values())  # the case: real, decodable bitmaps
    assert upscale(src, out) == 0, capsys.readouterr().err
    assert "Traceback" not in capsys.readouterr().err
    after = subtitle_tracks(out)
    kept = BITMAP_CASES[(source, out_ext)]
    assert set(after) == kept
    for codec in kept:
        # byte for byte, same language, same time relative to the picture, and still decodable; positions stay
        # on the source's canvas (the PGS composition says 64x48, DVB's default is 720x576), which players
        # scale to the picture
        assert after[codec]["packets"] == before[codec]["packets"]
        assert after[codec]["language"] == before[codec]["language"]
        assert after[codec]["times"] == pytest.approx(before[codec]["times"], abs=0.002)
        assert after[codec]["boxes"] == [SUB_BOX] * 2
    dropped = set(before) - kept
    lines = [m for m in warnings_logged if "subtitle" in m]
    assert len(lines) == len(dropped), lines  # one line per dropped track, none for a kept one
    for codec in dropped:
        [line] = [m for m in lines if f"({codec})" in m]
        assert "dropped" in line and ("use .mkv" in line) == (out_ext != ".mkv")
    assert probe(out).frame_count == 20


# --- 4. HDR10 static metadata: mastering display and content light level --------------------------------------

# A P3-D65 grading display of 1000 cd/m² (the usual HDR10 master), in SEI units: xy in 1/50000, luminance in
# 1/10000 cd/m²; content light level 1000/400 cd/m².
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
EXPECTED_HDR = HdrMetadata(
    MasteringDisplay(red=(Fraction(34000, 50000), Fraction(16000, 50000)),
                     green=(Fraction(13250, 50000), Fraction(34500, 50000)),
                     blue=(Fraction(7500, 50000), Fraction(3000, 50000)),
                     white=(Fraction(15635, 50000), Fraction(16450, 50000)),
                     min_luminance=Fraction(50, 10000), max_luminance=Fraction(1000)),
    max_cll=1000, max_fall=400)


def make_hdr10(path: Path) -> Path:
    """10-bit PQ HEVC with BT.2020 tags and HDR10 static metadata in its SEI, as an HDR10 master or phone writes
    it (the ramp of tests/test_robustness.py, lossless)."""
    planes = hdr_ramp(False)
    with av.open(str(path), "w") as out:
        params = f"lossless=1:log-level=error:master-display={MASTER_DISPLAY}:max-cll=1000,400"
        s = out.add_stream("libx265", rate=25, options={"preset": "ultrafast", "x265-params": params})
        s.width, s.height, s.pix_fmt = HDR_W, HDR_H, "yuv420p10le"
        ctx = s.codec_context
        ctx.colorspace = ctx.color_primaries = 9
        ctx.color_trc, ctx.color_range = PQ, 1
        write_planes(out, s, planes, HDR_FRAMES)
    return path


def close_hdr(a: HdrMetadata, b: HdrMetadata, tol: float) -> bool:
    """Equal within ``tol`` (SVT-AV1 stores chromaticities in 1/65536 and luminance in 1/256 or 1/16384)."""
    ma, mb = a.mastering, b.mastering
    pairs = [(x, y) for p, q in zip((ma.red, ma.green, ma.blue, ma.white), (mb.red, mb.green, mb.blue, mb.white),
                                    strict=True) for x, y in zip(p, q, strict=True)]
    pairs += [(ma.min_luminance, mb.min_luminance), (ma.max_luminance / 1000, mb.max_luminance / 1000)]
    return all(abs(float(x - y)) <= tol for x, y in pairs) and (a.max_cll, a.max_fall) == (b.max_cll, b.max_fall)


@pytest.fixture(scope="module")
def hdr10_source(tmp_path_factory) -> Path:
    return make_hdr10(tmp_path_factory.mktemp("hdr10") / "hdr10.mkv")


@pytest.mark.parametrize("codec,ext,options", [
    (None, ".mp4", ("--preset", "ultrafast")),  # the default encoder: H.264 High 10
    ("libx265", ".mkv", ("--preset", "ultrafast")),
    ("libsvtav1", ".mkv", ("--preset", "12")),
], ids=["h264", "hevc", "av1"])
def test_hdr10_mastering_display_and_light_level_are_carried(hdr10_source, tmp_path, capsys, warnings_logged,
                                                             codec, ext, options):
    if codec and codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")
    assert probe(hdr10_source).hdr == EXPECTED_HDR  # the case: read from the first frame's side data
    out = tmp_path / f"hdr10-x4{ext}"
    args = ["upscale", str(hdr10_source), str(out), "--model", "bicubic", "-q", *options]
    assert main(args + (["--codec", codec] if codec else [])) == 0, capsys.readouterr().err
    got = probe(out).hdr
    assert got is not None  # before: the output had neither
    if codec == "libsvtav1":
        assert close_hdr(got, EXPECTED_HDR, 2e-4), got
    else:
        assert got == EXPECTED_HDR  # exact: the SEI's own units
    assert not [m for m in warnings_logged if "HDR" in m]


def test_hdr10_metadata_an_encoder_cannot_carry_is_one_warning_line(hdr10_source, tmp_path, warnings_logged):
    out = tmp_path / "hdr10-x4.mkv"
    assert upscale(hdr10_source, out, "--codec", "ffv1") == 0
    assert probe(out).hdr is None  # FFV1 has no place for it
    [line] = [m for m in warnings_logged if "HDR" in m]
    assert "mastering display and content light level" in line and "ffv1" in line and "libx265" in line


def test_hdr10plus_dynamic_metadata_that_cannot_be_carried_is_one_warning_line(tmp_path, warnings_logged):
    """HDR10+ (per-scene ST 2094-40 in every picture) is lost on encoding: the job works, keeps 10-bit PQ BT.2020,
    and says so in one line instead of nothing."""
    src = make_hdr10plus(tmp_path / "hdr10plus.mkv")
    info = probe(src)
    assert info.dynamic_hdr == "HDR10+" and info.bit_depth == 10
    out = tmp_path / "hdr10plus-x4.mkv"
    assert upscale(src, out, "--codec", "libx265") == 0
    after = probe(out)
    assert after.frame_count == 6 and after.bit_depth == 10 and after.dynamic_hdr is None
    assert (after.colour_used.primaries, after.colour_used.transfer) == (9, 16)  # BT.2020, PQ
    [line] = [m for m in warnings_logged if "dynamic" in m]
    assert "HDR10+" in line and "cannot write" in line and "transfer tags" in line
    assert probe(make_phone_hdr_free(tmp_path)).dynamic_hdr is None


def make_phone_hdr_free(tmp_path: Path) -> Path:
    from test_robustness import make_phone

    return make_phone(tmp_path / "plain.mp4")


def test_hdr_encoder_options_only_for_what_is_there():
    light_only = HdrMetadata(None, 400, 100)
    assert encoder_options("libx265", light_only) == {"x265-params": "max-cll=400,100"}
    assert encoder_options("libx264", EXPECTED_HDR) == {"x264-params": f"mastering-display={MASTER_DISPLAY}:"
                                                                       "cll=1000,400"}
    assert encoder_options("ffv1", light_only) is None and encoder_options("ffv1", None) == {}


# --- 6. a full disk under --ray -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


RAY_JOB = ("--ray", "--model", "bicubic", "-q", "--codec", "ffv1")


def test_ray_full_disk_is_one_line_and_leaves_nothing(ray_local, media, tmpfs, capsys):  # noqa: F811
    disk = tmpfs("full", "512k")  # the lossless x4 of 2 s of 64x48 needs about 3 MB
    out = disk / "out.mkv"
    assert main(["upscale", str(media.h264_aac), str(out), *RAY_JOB, "--segment-frames", "50"]) == 2  # one segment
    line = one_error_line(capsys)  # before: a traceback
    assert "No space left on device" in line and "free some space and run again" in line
    assert list(disk.iterdir()) == []  # no output, no partial file, no job folder: the space is given back


def test_ray_full_disk_keeps_finished_segments_and_resume_completes_them(
        ray_local, media, tmp_path, tmpfs, capsys):  # noqa: F811 - tmpfs: the fixture imported above
    job = (*RAY_JOB, "--segment-frames", "10")
    reference = tmp_path / "reference.mkv"
    assert main(["upscale", str(media.h264_aac), str(reference), *job]) == 0
    size = reference.stat().st_size
    disk = tmpfs("full", f"{size // 2 // 1024}k")  # room for some segments, not for all and the output
    out = disk / "out.mkv"
    assert main(["upscale", str(media.h264_aac), str(out), *job]) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "--resume" in line and "frames done are kept" in line
    assert not out.exists() and job_dir_for(out).is_dir()
    assert not [p for p in job_dir_for(out).iterdir() if p.name.endswith(".partial")]
    tmpfs.resize(disk, "16M")  # the user frees some space
    assert main(["upscale", str(media.h264_aac), str(out), *job, "--resume"]) == 0, capsys.readouterr().err
    got, expected = all_frames(out), all_frames(reference)
    assert len(got) == len(expected) == 50
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert sorted(p.name for p in disk.iterdir()) == ["out.mkv"]


def test_ray_explicit_codec_the_container_cannot_hold_is_one_line(ray_local, media, tmp_path, capsys):
    out = tmp_path / "out.webm"
    assert main(["upscale", str(media.h264_aac), str(out), "--ray", "--model", "bicubic", "-q",
                 "--codec", "libx264"]) == 2
    assert "cannot hold h264" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []
