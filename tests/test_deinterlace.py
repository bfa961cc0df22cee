"""Interlaced input is deinterlaced on decode (bwdif, --deinterlace auto by default): no combing, every frame and
timestamp kept, the same frames whether a video is read whole or as segments, and the job manifest says so."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_robustness import write_field_coded

from vsrapp.cli import main
from vsrapp.jobs import EncodeOptions, EngineOptions, JobSpec
from vsrapp.jobs.segments import SegmentPlan
from vsrapp.video import VideoReader, probe, timeline
from vsrapp.video.deinterlace import MODES, Deinterlacer, wanted

W, H, N = 96, 64, 12


def field_picture(t: float) -> np.ndarray:
    """A bright vertical bar on grey moving 6 px per field time: the two fields of one frame disagree by 3 px."""
    img = np.full((H, W, 3), 60, np.uint8)
    x = int(10 + 6 * t)
    img[:, x:x + 12] = 230
    return img


def woven(i: int) -> np.ndarray:
    """Frame ``i`` as an interlaced camera takes it: even lines at time 2i, odd lines half a frame later."""
    frame = field_picture(2 * i).copy()
    frame[1::2] = field_picture(2 * i + 1)[1::2]
    return frame


def make_combed(path: Path, n: int = N, gop: int = 4, field_order: int = 2) -> Path:
    """Interlaced H.264 in MPEG-TS, top field first, with real motion between the fields, a keyframe every
    ``gop`` frames; nearly lossless so the combing survives the encoder. ``field_order`` 1 writes the same
    woven frames flagged progressive (a file whose flags lie)."""
    opts = {"qp": "0", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "0"}
    return write_field_coded(path, (woven(i) for i in range(n)), W, H, "yuv444p",
                             "tff" if field_order == 2 else "prog", opts)


def combing(img: np.ndarray) -> float:
    """Mean |line - mean of its two neighbours| in luma, over interior lines: high where fields disagree."""
    y = img[..., :3].astype(np.float64).mean(-1)
    return float(np.abs(y[1:-1] - (y[:-2] + y[2:]) / 2).mean())


def decoded(path: Path, deinterlace: bool, **frames) -> list:
    with VideoReader(path, deinterlace=deinterlace) as reader:
        return list(reader.frames(**frames))


def test_modes_decide_per_input(tmp_path):
    combed = probe(make_combed(tmp_path / "i.ts"))
    flat = probe(make_combed(tmp_path / "p.ts", field_order=1))
    assert combed.interlaced == "top field first" and flat.interlaced is None
    assert [wanted(m, combed) for m in MODES] == [True, True, False]
    assert [wanted(m, flat) for m in MODES] == [False, True, False]
    with pytest.raises(ValueError, match="auto, on, off"):
        wanted("yes", combed)


def test_deinterlacing_removes_the_combing_and_keeps_every_frame_and_timestamp(tmp_path):
    src = make_combed(tmp_path / "576i.ts")
    woven_frames, clean = decoded(src, False), decoded(src, True)
    assert len(clean) == len(woven_frames) == N
    assert [f.pts for f in clean] == [f.pts for f in woven_frames]
    assert [f.index for f in clean] == list(range(N))
    before = np.mean([combing(f.image) for f in woven_frames[1:-1]])
    after = np.mean([combing(f.image) for f in clean[1:-1]])
    assert before > 8 and after < before / 3, (before, after)
    # A still area (left of the bar's path) is left as it was: bwdif touches only what moves.
    assert np.abs(clean[5].image[:, :8].astype(int) - woven_frames[5].image[:, :8].astype(int)).max() <= 2


def test_a_segment_starting_on_a_keyframe_gets_the_frames_of_a_whole_read(tmp_path):
    """bwdif reads the previous frame: a segment seeks to the keyframe before its first frame, so its frames are
    exactly those of reading the whole file."""
    src = make_combed(tmp_path / "576i.ts")
    whole = decoded(src, True)
    tl = timeline(src)
    assert [k.index for k in tl.keyframes] == [0, 4, 8]
    for deinterlace, seek in ((True, 0), (False, 4)):
        plan = SegmentPlan(4, bidirectional=False, window=4, lookahead=0, warmup=0, deinterlace=deinterlace)
        second = plan.cut(tl)[1]
        assert second.decode_from == 4 and second.seek.index == seek
    second = SegmentPlan(4, False, 4, 0, 0, True).cut(tl)[1]
    part = decoded(src, True, start=second.decode_from, seek=second.seek)
    assert [f.index for f in part] == list(range(4, N))
    for a, b in zip(part, whole[4:]):
        assert a.pts == b.pts and np.array_equal(a.image, b.image)


def test_the_cli_deinterlaces_interlaced_input_by_default_and_records_it(tmp_path, capsys):
    src = make_combed(tmp_path / "576i.ts")
    outs = {}
    for mode in ("auto", "off"):
        out = tmp_path / f"{mode}.mkv"
        assert main(["upscale", str(src), str(out), "--model", "bicubic", "-q", "--codec", "ffv1",
                     "--deinterlace", mode]) == 0
        err = capsys.readouterr().err
        assert ("deinterlaced (bwdif" in err) == (mode == "auto") and "--deinterlace" in err
        with av.open(str(out)) as c:
            outs[mode] = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(outs["auto"]) == len(outs["off"]) == N and outs["auto"][0].shape == (4 * H, 4 * W, 3)
    # Measured at the input's scale: the x4 combing of a woven frame is 4 lines tall.
    small = {m: [f[::4, ::4] for f in frames] for m, frames in outs.items()}
    assert np.mean([combing(f) for f in small["auto"][1:-1]]) < np.mean([combing(f) for f in small["off"][1:-1]]) / 2

    spec = JobSpec(str(src), str(tmp_path / "x.mkv"), "bicubic", EngineOptions(), EncodeOptions(), 480)
    assert spec.deinterlace == "auto"
    resolved = spec.for_input(probe(src))
    assert resolved.deinterlace == "on" and resolved.settings()["deinterlace"] == "on"
    back = JobSpec.from_settings(json.loads(json.dumps(resolved.settings())), None, str(src), resolved.output)
    assert back == resolved


def test_a_job_folder_from_before_deinterlacing_resumes_for_a_progressive_input(tmp_path):
    """Manifests written before --deinterlace existed have no such key: they never deinterlaced, which is what
    auto decides for a progressive input, so they still resume."""
    src = make_combed(tmp_path / "p.ts", field_order=1)
    spec = JobSpec(str(src), "", "bicubic", EngineOptions(precision="fp32"), EncodeOptions(), 480).for_input(probe(src))
    old = {k: v for k, v in spec.settings().items() if k != "deinterlace"}
    assert JobSpec.from_settings(old, None) == spec
    # ... while one for an interlaced input is not continued with frames of another kind.
    interlaced = make_combed(tmp_path / "i.ts")
    on = JobSpec(str(interlaced), "", "bicubic", EngineOptions(precision="fp32"), EncodeOptions(), 480).for_input(
        probe(interlaced))
    assert on.deinterlacing and JobSpec.from_settings(old, None) != on


def test_a_stream_that_changes_size_midway_is_deinterlaced_on_both_sides():
    frames = []
    for i, (w, h) in enumerate([(32, 24)] * 3 + [(48, 32)] * 3):
        vf = av.VideoFrame.from_ndarray(np.full((h, w, 3), 20 * i, np.uint8), format="rgb24").reformat(
            format="yuv420p")
        vf.pts, vf.time_base = i, Fraction(1, 25)
        frames.append(vf)
    out = list(Deinterlacer("tff").run(frames))
    assert [(f.pts, f.width) for f in out] == [(i, 32 if i < 3 else 48) for i in range(6)]
    assert all(f.format.name == "yuv420p" for f in out)
