"""`upscale_file` and `vsrapp upscale` end to end on real media files: segments, join, resume, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nets import tiny_net

from vsrapp import Upscaler, upscale_file
from vsrapp.cli import main
from vsrapp.pipeline import job_dir_for
from vsrapp.video import VideoError, VideoReader, list_packets, probe

pytestmark = pytest.mark.timeout(300)


def tiny_upscaler(**kwargs) -> Upscaler:
    kwargs.setdefault("window", 4)
    kwargs.setdefault("lookahead", 2)
    return Upscaler(tiny_net(num_block=1), device="cpu", **kwargs)


def frames_of(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [f.image for f in reader.frames()]


def video_pts(path: Path) -> list[int]:
    info = probe(path)
    return sorted(p.pts for p in list_packets(path, info.stream_index))


def side_packets(path: Path, kind: str) -> list[tuple[int, bytes]]:
    info = probe(path)
    streams = info.audio if kind == "audio" else info.subtitles
    assert streams, f"{path} has no {kind} stream"
    return [(p.pts, p.data) for p in list_packets(path, streams[0].index)]


def test_mp4_with_audio_keeps_count_timing_and_bit_identical_audio(media, tmp_path):
    src, out = media.h264_aac, tmp_path / "out.mp4"
    report = upscale_file(src, out, upscaler=tiny_upscaler(), segment_frames=12, preset="ultrafast")
    a, b = probe(src), probe(out)
    assert report.frames == a.frame_count == b.frame_count == 50
    assert (b.width, b.height) == (4 * a.width, 4 * a.height)
    assert abs(b.duration - a.duration) < 1 / float(a.fps)
    assert video_pts(out) == video_pts(src)
    assert side_packets(out, "audio") == side_packets(src, "audio")
    assert not job_dir_for(out).exists()  # the job folder is cleaned up after the join


def test_variable_frame_rate_timestamps_survive(media, tmp_path):
    out = tmp_path / "vfr.mp4"
    upscale_file(media.vfr, out, upscaler=tiny_upscaler(), segment_frames=4, preset="ultrafast")
    assert video_pts(out) == video_pts(media.vfr)


def test_mkv_subtitles_odd_size_rotation_and_colour_survive(media, tmp_path):
    out = tmp_path / "subs.mkv"
    upscale_file(media.subtitles, out, "bicubic", preset="ultrafast")
    assert [t for _, t in side_packets(out, "subtitle")] == [t for _, t in side_packets(media.subtitles, "subtitle")]

    odd = tmp_path / "odd.mkv"
    upscale_file(media.odd_size, odd, "bicubic", codec="ffv1", pix_fmt="yuv444p")
    assert (probe(odd).width, probe(odd).height) == (140, 108)

    rot = tmp_path / "rot.mp4"
    upscale_file(media.rotated, rot, "bicubic", preset="ultrafast")
    assert probe(rot).rotation == probe(media.rotated).rotation != 0
    assert probe(rot).sample_aspect_ratio == probe(media.rotated).sample_aspect_ratio

    tagged = tmp_path / "709.mp4"
    upscale_file(media.bt709, tagged, "bicubic", preset="ultrafast")
    src_c, out_c = probe(media.bt709).colour, probe(tagged).colour
    assert (out_c.matrix, out_c.primaries, out_c.transfer, out_c.range) == \
        (src_c.matrix, src_c.primaries, src_c.transfer, src_c.range)


def test_10bit_input_gives_10bit_output(media, tmp_path):
    out = tmp_path / "deep.mkv"
    upscale_file(media.ten_bit, out, "bicubic")
    info = probe(out)
    assert info.bit_depth == 10 and info.pix_fmt.startswith("yuv420p10")
    first = frames_of(out)[0]
    assert first.dtype == np.uint16


def test_interrupted_job_resumes_to_the_same_frames_without_redoing_finished_segments(media, tmp_path):
    src = media.h264_aac
    reference = tmp_path / "reference.mp4"
    upscale_file(src, reference, upscaler=tiny_upscaler(), segment_frames=12, preset="ultrafast")

    out = tmp_path / "resumed.mp4"

    def crash_after_20(done: int, total: int | None) -> None:
        if done == 20:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a run

    with pytest.raises(KeyboardInterrupt):
        upscale_file(src, out, upscaler=tiny_upscaler(), segment_frames=12, preset="ultrafast",
                     progress=crash_after_20)
    assert not out.exists()
    assert not list(tmp_path.glob(".resumed*.partial*"))  # no half-written file anywhere
    job = job_dir_for(out)
    assert (job / "manifest.json").is_file() and len(list(job.glob("segment_*"))) == 1

    with pytest.raises(VideoError, match="--resume"):  # a new run must not silently throw the work away
        upscale_file(src, out, upscaler=tiny_upscaler(), segment_frames=12, preset="ultrafast")

    seen = []
    report = upscale_file(src, out, upscaler=tiny_upscaler(), segment_frames=12, preset="ultrafast", resume=True,
                          progress=lambda done, total: seen.append(done))
    assert report.resumed_from == 12 and seen[0] == 13  # the finished segment was not redone
    assert side_packets(out, "audio") == side_packets(src, "audio")
    assert video_pts(out) == video_pts(reference)
    # The recurrent state was restored exactly: the decoded frames equal the uninterrupted run's.
    assert all(np.array_equal(a, b) for a, b in zip(frames_of(out), frames_of(reference)))


def test_resume_refuses_other_settings(media, tmp_path):
    out = tmp_path / "o.mp4"

    def crash(done: int, total: int | None) -> None:
        if done == 14:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_file(media.h264_aac, out, upscaler=tiny_upscaler(), segment_frames=12, progress=crash)
    with pytest.raises(VideoError, match="other settings"):
        upscale_file(media.h264_aac, out, upscaler=tiny_upscaler(), segment_frames=12, crf=30, resume=True)


@pytest.mark.parametrize("name", ["not_video", "truncated", "audio_only"])
def test_bad_input_is_one_line_nonzero_exit_and_no_output(media, tmp_path, capsys, name):
    out = tmp_path / "out.mp4"
    code = main(["upscale", str(getattr(media, name)), str(out), "--model", "bicubic", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("vsrapp: error:") and "Traceback" not in err[0]
    assert str(getattr(media, name)) in err[0]
    assert list(tmp_path.iterdir()) == []


def test_corrupt_frame_mid_stream_keeps_count_and_warns(media, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert main(["upscale", str(media.corrupt), str(out), "--model", "bicubic", "-q"]) == 0
    assert probe(out).frame_count == probe(media.corrupt).frame_count
    assert "warning" in capsys.readouterr().err


def test_refuses_to_overwrite_input_or_existing_output(media, tmp_path, capsys):
    src = tmp_path / "in.mp4"
    src.write_bytes(media.h264_aac.read_bytes())
    assert main(["upscale", str(src), str(src), "--model", "bicubic", "-q"]) != 0
    assert src.read_bytes() == media.h264_aac.read_bytes()
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"keep me")
    assert main(["upscale", str(src), str(existing), "--model", "bicubic", "-q"]) != 0
    assert existing.read_bytes() == b"keep me"
    assert "--overwrite" in capsys.readouterr().err


def test_folder_input_upscales_every_video_into_the_output_folder(media, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.mp4").write_bytes(media.h264_aac.read_bytes())
    (folder / "sub" / "b.mkv").write_bytes(media.subtitles.read_bytes())
    (folder / "notes.txt").write_text("not a video")
    assert main(["upscale", str(folder), str(tmp_path / "out"), "--model", "bicubic", "-q"]) == 0
    assert probe(tmp_path / "out" / "a.mp4").frame_count == 50
    assert probe(tmp_path / "out" / "sub" / "b.mkv").subtitles


def test_real_default_model_on_a_few_frames(media, tmp_path, weights_env):
    src = tmp_path / "short.mp4"
    upscale_file(media.h264_aac, tmp_path / "cut.mp4", "bicubic")  # (only to have a second real file around)
    with VideoReader(media.h264_aac) as reader:
        from vsrapp.video import VideoWriter

        with VideoWriter(src, reader, scale=1, preset="ultrafast") as writer:
            for frame in reader.frames():
                if frame.index == 6:
                    break
                writer.write(frame)
    out = tmp_path / "real.mp4"
    assert main(["upscale", str(src), str(out), "-q"]) == 0  # the default model
    sr, bic = frames_of(out), frames_of(tmp_path / "cut.mp4")[:6]
    assert len(sr) == 6 and sr[0].shape == (192, 256, 3)
    assert side_packets(out, "audio")
    # A real network output, not bicubic in disguise.
    assert np.abs(sr[3].astype(int) - bic[3].astype(int)).mean() > 0.5


@pytest.mark.parametrize("codec,preset,ext", [("libx265", "ultrafast", ".mp4"), ("libsvtav1", "12", ".mkv")])
def test_other_encoders(media, tmp_path, codec, preset, ext):
    out = tmp_path / f"out{ext}"
    assert main(["upscale", str(media.h264_aac), str(out), "--model", "bicubic", "--codec", codec,
                 "--preset", preset, "--crf", "35", "-q"]) == 0
    info = probe(out)
    assert info.codec in {"hevc", "av1"} and info.audio
    assert len(list_packets(out, info.stream_index)) == 50  # mkv stores no frame count: count the packets
