"""The web UI's parts, without a server: the streaming-preview generator, the input checks, the model menu,
the live session and the frame comparison."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time

import av
import numpy as np
import pytest

from vsrapp.errors import UsageError
from vsrapp.video import probe
from vsrapp.web import guard
from vsrapp.web.preview import Chunk, ChunkWriter, Done, Progress, stream_upscale

pytestmark = pytest.mark.timeout(300)


def _ffprobe() -> str:
    """Gradio probes every streamed chunk with the ffprobe binary, so the tests do too; CI must have it."""
    path = shutil.which("ffprobe")
    if path is None:
        message = "ffprobe not on PATH (Debian package ffmpeg; Gradio's streaming video output needs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _probe_chunk(path) -> dict:
    out = subprocess.run([_ffprobe(), "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                          "-count_frames", str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def _events(src, tmp_path, chunk_seconds: float, **kw):
    return list(stream_upscale(src, tmp_path / "out.mp4", "bicubic", tmp_path / "preview", device="cpu",
                               chunk_seconds=chunk_seconds, threads=1, pix_fmt="yuv420p", **kw))


# ---------------------------------------------------------------------------------------------- preview
@pytest.mark.parametrize("chunk_seconds, frames", [(1.0, [25, 25]), (0.8, [20, 20, 10])])
def test_preview_chunks_are_h264_segments_that_add_up(media, tmp_path, chunk_seconds, frames):
    src = media.h264_aac
    events = _events(src, tmp_path, chunk_seconds)
    chunks = [e for e in events if isinstance(e, Chunk)]
    assert [c.frames for c in chunks] == frames
    total = 0.0
    for c in chunks:
        data = _probe_chunk(c.path)
        assert data["format"]["format_name"] == "mpegts"
        (stream,) = data["streams"]  # video only: the audio is in the final file
        assert stream["codec_name"] == "h264" and stream["pix_fmt"] == "yuv420p"
        assert (stream["width"], stream["height"]) == (256, 192)
        assert int(stream["nb_read_frames"]) == c.frames
        assert float(stream["duration"]) == pytest.approx(c.frames / 25, abs=1e-3) == pytest.approx(c.seconds)
        with av.open(str(c.path)) as container:  # each chunk decodes on its own, from a key frame
            first = next(container.demux(video=0))
            assert first.is_keyframe
        total += float(stream["duration"])
    assert total == pytest.approx(probe(src).duration, abs=1e-3)
    # Then the full-quality file, with its audio, comes last.
    assert isinstance(events[-1], Done)
    final = probe(events[-1].path)
    assert (final.width, final.height, final.frame_count) == (256, 192, 50)
    assert [a.codec for a in final.audio] == ["aac"]
    assert events[-1].report.frames == 50
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].done == progress[-1].total == 50
    assert "frames 50/50" in progress[-1].text()


def test_preview_is_scaled_down_and_even(tmp_path):
    writer = ChunkWriter(tmp_path, fps=25, chunk_seconds=0.2, max_side=100)
    image = np.zeros((150, 202, 3), np.uint8)
    chunk = None
    while chunk is None:
        chunk = writer.add(image)
    with av.open(str(chunk.path)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.width, s.codec_context.height) == (100, 74)
    assert chunk.frames == 5


@pytest.mark.parametrize("with_preview", [True, False])
def test_closing_the_generator_stops_the_job(media, tmp_path, with_preview):
    from webui_support import SLOW_STEP, slow_bicubic

    before = {t.name for t in threading.enumerate()}
    gen = stream_upscale(media.h264_aac, tmp_path / "out.mp4", slow_bicubic(), tmp_path / "preview" if with_preview
                         else None, device="cpu", chunk_seconds=0.2, threads=1, progress_every=0.05)
    started = next(e for e in gen if isinstance(e, Chunk) or (isinstance(e, Progress) and e.done > 0))
    assert not isinstance(started, Done)
    t0 = time.monotonic()
    gen.close()  # the visitor left: the worker must stop and nothing may appear under the final name
    assert time.monotonic() - t0 < 20 * SLOW_STEP  # at once, not after the remaining frames
    assert "vsrapp-web-job" not in {t.name for t in threading.enumerate()} - before
    assert not (tmp_path / "out.mp4").exists()


def test_no_preview_gives_progress_and_the_file(media, tmp_path):
    events = list(stream_upscale(media.h264_aac, tmp_path / "out.mp4", "bicubic", None, device="cpu", threads=1))
    assert not any(isinstance(e, Chunk) for e in events)
    assert isinstance(events[-1], Done) and probe(events[-1].path).frame_count == 50
    assert not (tmp_path / "preview").exists()


def test_pipeline_errors_reach_the_caller(media, tmp_path):
    (tmp_path / "out.mp4").write_bytes(b"x")  # upscale_file refuses to overwrite
    with pytest.raises(Exception, match="already exists"):
        _events(media.h264_aac, tmp_path, 1.0)


# ---------------------------------------------------------------------------------------------- input checks
def test_check_video_accepts_a_good_clip(media):
    info = guard.check_video(media.h264_aac, [media.h264_aac.parent], guard.Limits())
    assert info.frame_count == 50


@pytest.mark.parametrize("limits, message", [
    (guard.Limits(max_seconds=1.5), "The video lasts 2.0 s; this server takes videos up to 2 s"),
    (guard.Limits(max_upload_mb=0), "this server takes videos up to 0 MB"),
    (guard.Limits(max_pixels=64 * 47), "The video is 64x48; this server takes up to 3,008 pixels per frame"),
])
def test_check_video_limits(media, limits, message):
    with pytest.raises(guard.Rejected, match=message):
        guard.check_video(media.h264_aac, [media.h264_aac.parent], limits)


@pytest.mark.parametrize("name", ["not_video", "audio_only", "truncated"])
def test_check_video_refuses_non_videos(media, name):
    path = getattr(media, name)
    with pytest.raises(guard.Rejected, match="This is not a video this server can read"):
        guard.check_video(path, [path.parent], guard.Limits())


def test_no_path_outside_the_roots(media, tmp_path):
    root = tmp_path / "uploads"
    root.mkdir()
    (root / "link.mp4").symlink_to(media.h264_aac)  # a symlink out of the root is outside too
    for path in [media.h264_aac, root / "link.mp4", root / ".." / "x.mp4", "/etc/passwd"]:
        with pytest.raises(guard.Rejected, match=guard.OUTSIDE):
            guard.check_video(path, [root], guard.Limits())
    for empty in [None, ""]:
        with pytest.raises(guard.Rejected, match=guard.NO_VIDEO):
            guard.check_video(empty, [root], guard.Limits())


# ---------------------------------------------------------------------------------------------- model menu
def test_zoo_menu_marks_missing_weights(tmp_path, monkeypatch):
    from vsrapp import zoo
    from vsrapp.web.menu import ModelMenu, UnknownModel, zoo_choices

    monkeypatch.setenv(zoo.ENV_WEIGHTS, str(tmp_path))  # an empty weights folder
    menu = ModelMenu(zoo_choices())
    assert set(menu.names()) == {e.name for e in zoo.list_models()}
    shipped_live = [e.name for e in zoo.list_models() if e.bundled and not e.bidirectional]
    assert menu.names(forward_only=True) == ["bicubic", *shipped_live]
    sharpest_bundled = max((e for e in zoo.list_models() if e.bundled), key=lambda e: e.metrics["vid4_bi_psnr_y"])
    assert menu.default() == sharpest_bundled.name  # the best one that runs with nothing downloaded
    sharpest_live = max((e for e in zoo.list_models() if e.bundled and not e.bidirectional),
                        key=lambda e: e.metrics["vid4_bi_psnr_y"])
    assert menu.default(forward_only=True) == sharpest_live.name == "basicvsr-uni-b7-hr16"
    assert "23.78 dB" in menu.info("bicubic") and "weights missing" in menu.choices["basicvsr-vimeo-bi"].label()
    with pytest.raises(UnknownModel, match="cannot run here: the weights of 'basicvsr-vimeo-bi' are missing"):
        menu.network("basicvsr-vimeo-bi")
    with pytest.raises(UnknownModel, match="Unknown model"):
        menu.network("/etc/passwd")  # a path is never a model name here


def test_zoo_menu_prefers_the_best_installed_model(official_weights_dir, monkeypatch):
    from vsrapp import zoo
    from vsrapp.web.menu import ModelMenu, zoo_choices

    monkeypatch.setenv(zoo.ENV_WEIGHTS, str(official_weights_dir))
    menu = ModelMenu(zoo_choices())
    assert menu.default() == "basicvsr-vimeo-bi"
    assert "27.24 dB" in menu.info("basicvsr-vimeo-bi")


# ---------------------------------------------------------------------------------------------- live
def test_live_session_upscales_and_reports_speed():
    from vsrapp import zoo
    from vsrapp.web.live import LiveSession

    session = LiveSession(zoo.get_model("bicubic"), device="cpu", max_side=80, interval=10.0, threads=1)
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 4), dtype=np.uint8)  # RGBA, as browsers send
    out, status = session.process(frame)
    assert out.shape == (240, 320, 3) and out.dtype == np.uint8  # 80x60 x4
    assert status.keeps_up and "keeps up" in status.text()
    slow = LiveSession(zoo.get_model("bicubic"), device="cpu", max_side=80, interval=1e-6, threads=1)
    _, status = slow.process(frame)
    assert not status.keeps_up and "cannot keep up" in status.text()
    out, _ = session.process(frame[:100, :100])  # the camera changed: a new stream
    assert out.shape == (320, 320, 3)


def test_live_input_with_a_bidirectional_pick_uses_the_best_forward_only_model(tmp_path):
    from webui_support import fast_models

    from vsrapp.web.guard import Limits
    from vsrapp.web.menu import ModelMenu
    from vsrapp.web.ui import WebApp

    app = WebApp(ModelMenu(fast_models()), Limits(webcam_max_side=40), tmp_path, None, threads=1)
    assert app.menu.default(forward_only=True) == "bicubic"  # the only forward-only one with a score
    frame = np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    out, status, session = app.live_frame(frame, "tiny-basicvsr", "cpu", "auto", None)
    assert out.shape == (120, 160, 3)  # 40x30 x4
    assert status.startswith("Live input uses bicubic (the selected model needs future frames).")
    out, status, _ = app.live_frame(frame, "slow", "cpu", "auto", session)  # a forward-only pick is kept
    assert "Live input uses" not in status


def test_live_session_refuses_bidirectional_models():
    from vsrapp.web.live import LiveSession, NotLiveCapable
    from vsrapp_models.basicvsr import BasicVSR

    with pytest.raises(NotLiveCapable, match="cannot run live"):
        LiveSession(BasicVSR(num_feat=8, num_block=1), device="cpu")


# ---------------------------------------------------------------------------------------------- compare
def test_compare_frame(media):
    from vsrapp.web.compare import compare_frame
    from vsrapp_models.basicvsr import BasicVSR

    pair = compare_frame(media.h264_aac, 1.0, BasicVSR(num_feat=8, num_block=1), device="cpu", threads=1, context=2)
    assert pair.index == 25 and pair.seconds == pytest.approx(1.0)
    assert pair.bicubic.shape == pair.model.shape == (192, 256, 3)
    late = compare_frame(media.h264_aac, 99.0, BasicVSR(num_feat=8, num_block=1), device="cpu", threads=1,
                         context=2)
    assert late.index == 49  # clamped to the last frame


# ---------------------------------------------------------------------------------------------- command line
def test_serve_subcommand_options(capsys):
    import argparse

    from vsrapp.web.cli import cmd_serve, register_cli, serve_kwargs

    parser = argparse.ArgumentParser(prog="vsrapp")
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--port", "7999", "--max-seconds", "30", "--queue-size", "2", "--models",
                              "bicubic", "--threads", "1"])
    assert args.func is cmd_serve and args.port == 7999 and args.host == "127.0.0.1"
    kw = serve_kwargs(args)
    assert kw["limits"].max_seconds == 30 and kw["limits"].queue_size == 2
    assert kw["limits"].max_upload_mb == guard.Limits().max_upload_mb
    assert [m.name for m in kw["models"]] == ["bicubic"] and kw["threads"] == 1
    with pytest.raises(UsageError, match="unknown model"):
        serve_kwargs(parser.parse_args(["serve", "--models", "nope"]))
    # The command itself: the one line it always printed, status 1, and no Gradio server.
    assert cmd_serve(parser.parse_args(["serve", "--models", "nope"])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vsrapp: error: unknown model(s) nope; known: ")


def test_serve_options_do_not_import_gradio():
    """``vsrapp``'s parser registers ``serve``; that must not cost every subcommand Gradio's import time."""
    import sys

    code = ("import argparse, sys; from vsrapp.web.cli import register_cli; "
            "register_cli(argparse.ArgumentParser().add_subparsers()); print('gradio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
