"""Files nobody here made (issue #20): each test makes its own hostile case with PyAV and runs `vsrapp upscale`
on it. Expected outcomes are tabled in docs/ROBUSTNESS.md."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from media import X264, picture

from vsrapp import pipeline
from vsrapp.cli import main
from vsrapp.pipeline import job_dir_for
from vsrapp.video import VideoReader, probe
from vsrapp.video.limits import MAX_PICTURE_SAMPLES, check_output_size, largest_scale, output_size

pytestmark = pytest.mark.timeout(300)


def upscale(src: Path, out: Path, *extra: str) -> int:
    return main(["upscale", str(src), str(out), "--model", "bicubic", "-q", "--preset", "ultrafast", *extra])


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("vsrapp: error: ") and "Traceback" not in lines[0]
    return lines[0]


def decoded_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


# --- 1. outputs too large to encode ---------------------------------------------------------------------------


def make_large(path: Path, w: int = 4096, h: int = 2200) -> Path:
    """One flat grey frame, larger than 4K: cheap to encode and to probe."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25, options=X264)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        frame = av.VideoFrame(w, h, "yuv420p")
        for plane in frame.planes:
            np.frombuffer(plane, np.uint8)[:] = 128
        frame.pts = 0
        out.mux(s.encode(frame))
        out.mux(s.encode(None))
    return path


def test_output_beyond_codec_limits_is_refused_before_any_decoding(tmp_path, capsys, monkeypatch):
    src, out = make_large(tmp_path / "big.mp4"), tmp_path / "out.mp4"

    def no_work(self):
        raise AssertionError("frames were decoded or upscaled for a job that must be refused")

    monkeypatch.setattr(pipeline._Run, "execute", no_work)
    assert upscale(src, out) == 2
    line = one_error_line(capsys)
    assert "16384x8800" in line and "--scale 1.75" in line  # why, and what to do
    assert not out.exists() and not job_dir_for(out).exists()
    assert not list(tmp_path.glob(".out*"))  # no partial file either


def test_limits_accept_8k_and_name_a_scale_that_fits():
    assert output_size(3840, 2160, 2) == (7680, 4320)
    assert largest_scale(3840, 2160) == 2  # a 4K phone recording fits as 8K
    check_output_size("in.mp4", 3840, 2160, 2, "libx265")  # does not raise
    w, h = output_size(4096, 2200, largest_scale(4096, 2200))
    assert w * h <= MAX_PICTURE_SAMPLES and w % 2 == 0 and h % 2 == 0


def test_scale_option_resizes_the_x4_result(media, tmp_path, capsys):
    out = tmp_path / "half.mp4"
    assert upscale(media.h264_aac, out, "--scale", "2") == 0
    a, b = probe(media.h264_aac), probe(out)
    assert (b.width, b.height) == (2 * a.width, 2 * a.height)
    assert b.frame_count == a.frame_count and b.audio
    with VideoReader(out) as reader:
        frame = next(reader.frames(start=7))
    # the picture is the source's, at twice its size (lossy twice, so roughly)
    expected = picture(7).repeat(2, 0).repeat(2, 1).astype(int)
    assert np.abs(frame.image.astype(int) - expected).mean() < 8
    assert upscale(media.h264_aac, tmp_path / "up.mp4", "--scale", "5") == 2
    assert "at most the model's scale" in one_error_line(capsys)
