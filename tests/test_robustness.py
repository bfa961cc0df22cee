"""Files nobody here made (issue #20): each test makes its own hostile case with PyAV and runs `vsrapp upscale`
on it. Expected outcomes are tabled in docs/ROBUSTNESS.md."""

from __future__ import annotations

import os
import signal
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import (
    RATE,
    X264,
    H,
    W,
    _audio_stream,
    _video_stream,
    _write_audio,
    picture,
    sine,
    write_pictures,
    write_planes,
)

from vsrapp import pipeline
from vsrapp.cli import EXIT_INTERRUPTED, EXIT_TERMINATED, main
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


# --- 2. metadata that is not UTF-8 ----------------------------------------------------------------------------


def make_latin1_tags(path: Path, n: int = 10) -> Path:
    """H.264 + MP2 whose tags are written as Latin-1 bytes, as DVB captures and old tools do: a service name and
    title with accented letters, and an audio language and title that are not UTF-8."""
    with av.open(str(path), "w", metadata_encoding="latin-1") as out:
        out.metadata.update({"title": "Caf\xe9 \xe0 la t\xe9l\xe9", "service_name": "Cha\xeene 5"})
        v = _video_stream(out, "libx264", "yuv420p", options=X264)
        a = _audio_stream(out, "mp2")
        a.metadata.update({"language": "fr\xe9", "title": "fran\xe7ais"})
        _write_audio(out, a, sine(n / 25))
        write_pictures(out, v, n)
    return path


@pytest.mark.parametrize("ext,out_ext", [(".mkv", ".mkv"), (".ts", ".mp4")])
def test_tags_that_are_not_utf8_are_read_cleaned_and_kept(tmp_path, capsys, ext, out_ext):
    src, out = make_latin1_tags(tmp_path / f"tuner{ext}"), tmp_path / f"out{out_ext}"
    with pytest.raises(UnicodeDecodeError):  # what PyAV does by default: the case is real
        av.open(str(src)).close()
    before = src.read_bytes()
    assert upscale(src, out) == 0, capsys.readouterr().err
    assert src.read_bytes() == before
    with av.open(str(out)) as c:  # strict UTF-8 reading: the output's tags are clean
        assert c.streams.audio and sum(1 for _ in c.decode(video=0)) == 10
        audio_title = c.streams.audio[0].metadata.get("title")
        container = dict(c.metadata)
    if ext == ".mkv":  # matroska holds any tag; MPEG-TS only the language (and the service in its tables)
        assert audio_title == "français"
        assert container["title"] == "Café à la télé" and container["SERVICE_NAME"] == "Chaîne 5"


# --- 3. broadcast MPEG-TS: clocks hours in, cut mid-GOP -------------------------------------------------------

TS_START = 5 * 3600 * 90000  # 5 h on the 90 kHz MPEG-TS clock


def make_broadcast_ts(path: Path, n: int = 40, gop: int = 8, drop: int = 3) -> Path:
    """H.264 + MP2 in MPEG-TS whose timestamps start 5 h in, as a tuner writes them, and whose first ``drop``
    video packets are missing, so the capture starts mid-GOP: nothing before the second keyframe decodes."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, 25), 25
    enc.options = {**X264, "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
    video = []
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(picture(i), format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i, Fraction(1, 25)
        video += enc.encode(frame)
    video += enc.encode(None)
    with av.open(str(path), "w", format="mpegts") as out:
        v = out.add_stream("h264", rate=25)
        v.width, v.height = W, H
        a = out.add_stream("mp2", rate=RATE)
        a.codec_context.layout = "mono"
        samples = (sine(n / 25) * 32767).astype(np.int16)
        audio = []
        for start in range(0, len(samples), 1152):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1152], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            audio += a.encode(frame)
        audio += a.encode(None)
        for packet, stream in [(p, v) for p in video[drop:]] + [(p, a) for p in audio]:
            pts = Fraction(packet.pts) * packet.time_base
            dts = Fraction(packet.dts) * packet.time_base
            packet.pts, packet.dts = TS_START + round(pts * 90000), TS_START + round(dts * 90000)
            packet.time_base, packet.stream = Fraction(1, 90000), stream
            out.mux(packet)
    return path


def starts(path: Path) -> tuple[float, float, float]:
    """(first decoded picture's time, audio start, container duration) in seconds."""
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        first = next(c.decode(video=0))
        return float(first.time), float(a.start_time * a.time_base), c.duration / av.time_base


@pytest.mark.parametrize("out_ext", [".mp4", ".mkv", ".ts"])
def test_broadcast_ts_starts_at_zero_in_sync_with_only_decodable_frames(tmp_path, capsys, out_ext):
    src, out = make_broadcast_ts(tmp_path / "capture.ts"), tmp_path / f"capture-x4{out_ext}"
    v_in, a_in, duration_in = starts(src)
    assert v_in > 5 * 3600 and duration_in < 2  # the case: hours of clock, under two seconds of video
    assert upscale(src, out) == 0, capsys.readouterr().err
    v_out, a_out, duration_out = starts(out)
    frame = 1 / 25
    assert min(v_out, a_out) == pytest.approx(0, abs=frame)  # starts at zero...
    assert v_out - a_out == pytest.approx(v_in - a_in, abs=frame)  # ...with audio and video moved together
    assert duration_out == pytest.approx(duration_in, abs=2 * frame)
    # exactly the pictures a plain decode delivers: nothing from before the first keyframe
    assert decoded_count(out) == decoded_count(src) == 32


# --- 4. a truncated file with one decodable frame -------------------------------------------------------------


def make_truncated_flv(path: Path, n: int = 10) -> Path:
    """H.264 + AAC in FLV, cut a little way into the audio packet that follows the first video packet: one
    picture decodes, and FLV's reader takes the cut tag for a phantom 5512 Hz PCM stream without packets."""
    full = path.with_name("full.flv")
    with av.open(str(full), "w") as out:
        v = _video_stream(out, "libx264", "yuv420p", options=X264)
        _write_audio(out, _audio_stream(out, "aac"), sine(n / 25))
        write_pictures(out, v, n)
    with av.open(str(full)) as c:
        packets = [(p.stream.type, p.pos) for p in c.demux() if p.size]
    first_video = next(k for k, (kind, _) in enumerate(packets) if kind == "video")
    audio_after = next(pos for kind, pos in packets[first_video + 1:] if kind == "audio")
    path.write_bytes(full.read_bytes()[:audio_after + 11])
    return path


def test_truncated_flv_with_one_frame_gives_that_frame(tmp_path, capsys):
    src, out = make_truncated_flv(tmp_path / "cut.flv"), tmp_path / "cut.mp4"
    assert decoded_count(src) == 1
    assert upscale(src, out) == 0, capsys.readouterr().err
    assert "joining segments failed" not in capsys.readouterr().err
    info = probe(out)
    assert decoded_count(out) == 1 and (info.width, info.height) == (4 * W, 4 * H)
    assert [a.codec for a in info.audio] == ["aac"]  # the real audio is kept; the phantom stream is not
    assert not job_dir_for(out).exists()


def test_transport_stream_output_takes_h264_and_aac(media, tmp_path, capsys):
    """PyAV's codec query lists only MPEG-2 video and MP2 audio for MPEG-TS (the muxer has no codec-tag table);
    broadcast H.264 + AAC must still be writable there."""
    out = tmp_path / "out.ts"
    assert main(["upscale", str(media.h264_aac), str(out), "--model", "bicubic", "-q"]) == 0, capsys.readouterr().err
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"


# --- 5. HDR: 10-bit PQ and HLG keep their depth, tags and levels ---------------------------------------------

HDR_W, HDR_H, HDR_FRAMES = 128, 32, 3
PQ, HLG = 16, 18  # AVColorTransferCharacteristic: smpte2084, arib-std-b67
BT2020 = 9  # bt2020 primaries and bt2020nc matrix share the value


def hdr_ramp(full_range: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """10-bit Y, U, V planes (4:2:0): a horizontal luma ramp over the whole legal range in the top half (neutral
    chroma: black and white levels), and a mid-range luma ramp under smooth, in-gamut colour in the bottom half."""
    lo, hi = (0, 1023) if full_range else (64, 940)
    x = np.arange(HDR_W) / (HDR_W - 1)
    y = np.empty((HDR_H, HDR_W))
    y[: HDR_H // 2] = lo + (hi - lo) * x
    y[HDR_H // 2:] = lo + (hi - lo) * (0.35 + 0.3 * x)
    cx, cy = np.meshgrid(np.arange(HDR_W // 2) / (HDR_W // 2 - 1), np.arange(HDR_H // 2) / (HDR_H // 2 - 1))
    colour = (cy >= 0.5) * (full_range and 1.0 or 896 / 1023)  # chroma swing scales with the range
    u = 512 + colour * (60 * cx - 30)
    v = 512 + colour * (40 - 80 * cx)
    return tuple(np.rint(p).astype(np.uint16) for p in (y, u, v))


def make_hdr(path: Path, transfer: int, full_range: bool) -> Path:
    """HEVC (lossless x265) yuv420p10le tagged BT.2020 primaries and matrix with the given transfer, as phones and
    HDR masters write it: the decoded code values are exactly :func:`hdr_ramp`'s."""
    planes = hdr_ramp(full_range)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx265", rate=25, options={"preset": "ultrafast",
                                                        "x265-params": "lossless=1:log-level=error"})
        s.width, s.height, s.pix_fmt = HDR_W, HDR_H, "yuv420p10le"
        ctx = s.codec_context
        ctx.colorspace = ctx.color_primaries = BT2020
        ctx.color_trc, ctx.color_range = transfer, 2 if full_range else 1
        write_planes(out, s, planes, HDR_FRAMES)
    return path


def decoded_planes(path: Path) -> tuple[tuple, list[list[np.ndarray]]]:
    """(pix_fmt, primaries, transfer, matrix, range) of the video stream, and every frame's planes as code
    values."""
    frames = []
    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        tags = (ctx.pix_fmt, ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range)
        for f in c.decode(video=0):
            assert f.format.name == "yuv420p10le", f.format.name
            frames.append([np.frombuffer(p, np.uint16).reshape(p.height, p.line_size // 2)[:, : p.width]
                           .astype(float) for p in f.planes])
    return tags, frames


def level_errors(source: list[np.ndarray], upscaled: list[np.ndarray]) -> list[tuple[float, float]]:
    """Per plane (Y, U, V): mean absolute and mean signed error in 10-bit codes between the source and the x4
    output averaged back over each 4x4 block (exact for bicubic on a linear ramp). Left out: two columns at each
    side and two rows either side of the colour edge in mid-picture, where bicubic clamps or rings by design."""
    errors = []
    for src, up in zip(source, upscaled, strict=True):
        h, w = src.shape
        diff = up.reshape(h, 4, w, 4).mean(axis=(1, 3)) - src
        rows = np.r_[0: h // 2 - 2, h // 2 + 2: h]
        inner = diff[rows][:, 2:-2]
        errors.append((float(np.abs(inner).mean()), float(inner.mean())))
    return errors


# Bounds in 10-bit codes (of 1023): lossy encoders add about one code of noise and a few tenths of bias on these
# tiny frames; a lossless output measures vsrapp's own conversion, which must be nearly exact.
@pytest.mark.parametrize("transfer,full_range,out_ext,codec,mae_bound,bias_bound", [
    (PQ, False, ".mp4", None, 2.0, 1.0),  # the default encoder (H.264 High 10)
    (HLG, False, ".mp4", "libx265", 2.0, 1.0),  # the phone case: HLG in HEVC
    (HLG, True, ".mkv", "ffv1", 0.5, 0.3),  # lossless: only vsrapp's own conversion is measured
], ids=["pq-h264", "hlg-hevc", "hlg-full-ffv1"])
def test_hdr_keeps_ten_bits_tags_and_levels(tmp_path, capsys, transfer, full_range, out_ext, codec, mae_bound,
                                           bias_bound):
    src, out = make_hdr(tmp_path / "hdr.mkv", transfer, full_range), tmp_path / f"hdr-x4{out_ext}"
    tags_in, frames_in = decoded_planes(src)
    assert tags_in == ("yuv420p10le", BT2020, transfer, BT2020, 2 if full_range else 1)
    assert upscale(src, out, *(["--codec", codec] if codec else [])) == 0, capsys.readouterr().err
    tags_out, frames_out = decoded_planes(out)
    assert tags_out == tags_in  # 10-bit, same primaries, transfer, matrix and range
    assert len(frames_out) == HDR_FRAMES
    for k, planes in enumerate(frames_out):
        for name, (mae, bias) in zip("YUV", level_errors(frames_in[k], planes), strict=True):
            print(f"frame {k} {name}: MAE {mae:.2f} codes, bias {bias:+.2f}")
            assert mae < mae_bound, (k, name, mae)
            assert abs(bias) < bias_bound, (k, name, bias)  # no shift of levels: HDR tools' visible failure


# --- 6. weights that fail their hash or shape, or hold more than weights --------------------------------------


def weights_error_line(capsys, src: Path, out: Path, model: str) -> str:
    """Run with ``model``: exit 2 and one error line, before any output or job folder exists."""
    assert upscale(src, out, "--model", model) == 2
    line = one_error_line(capsys)
    assert not out.exists() and not job_dir_for(out).exists()
    return line


def test_checkpoint_that_would_run_code_is_refused_unread(media, tmp_path, capsys):
    import torch

    marker = tmp_path / "ran"

    class Payload:  # what a booby-trapped .pth holds: unpickling it calls a function of the attacker's choice
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "trap.pth"
    torch.save({"params": {"conv.weight": torch.zeros(1)}, "extra": Payload()}, bad)
    line = weights_error_line(capsys, media.h264_aac, tmp_path / "out.mp4", str(bad))
    assert not marker.exists()  # nothing was run
    assert "not weights" in line and "was not loaded" in line


def test_checkpoint_of_the_wrong_shape_or_kind_is_one_line(media, tmp_path, capsys):
    import torch

    from vsrapp_models.basicvsr import BasicVSRUni

    state = BasicVSRUni().state_dict()
    name = "forward_trunk.main.0.weight"
    state[name] = torch.zeros(8, 3, 3, 3)
    wrong = tmp_path / "wrong_shape.pth"
    torch.save({"params": state}, wrong)
    line = weights_error_line(capsys, media.h264_aac, tmp_path / "out.mp4", str(wrong))
    # which tensor, and both shapes: enough to see that it is another network's checkpoint
    assert f"size mismatch for {name}" in line and "[8, 3, 3, 3]" in line and "does not fit BasicVSR" in line
    junk = tmp_path / "notes.pth"
    junk.write_text("not a checkpoint\n" * 50)
    assert "not a PyTorch checkpoint" in weights_error_line(capsys, media.h264_aac, tmp_path / "o.mp4", str(junk))


def test_zoo_weights_with_the_wrong_hash_are_refused(media, tmp_path, capsys, monkeypatch):
    from vsrapp import zoo

    entry = zoo.get_entry("basicvsr-vimeo-bi")
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / entry.weights.file).write_bytes(b"\0" * 4096)  # a download cut short, or another file by that name
    monkeypatch.setenv(zoo.ENV_WEIGHTS, str(folder))
    line = weights_error_line(capsys, media.h264_aac, tmp_path / "out.mp4", "basicvsr-vimeo-bi")
    assert "corrupt or a different file" in line and entry.weights.sha256[:12] in line and "fetch-weights" in line


def test_bundled_and_pruned_weights_that_are_damaged_are_one_line(media, tmp_path, capsys, monkeypatch):
    """A bundled model whose file fails its sha256 (the zoo knows it), and a pruned-model folder (no hash)
    whose tensor has the wrong shape or whose file is cut short."""
    import shutil

    from safetensors.torch import load_file, save_file

    from vsrapp import zoo

    bundled = tmp_path / "bundled"
    shutil.copytree(zoo.BUNDLED_DIR, bundled)
    weights = bundled / "ssl-uni" / "model.safetensors"
    state = load_file(str(weights))
    weights.write_bytes(weights.read_bytes()[:-64] + b"\0" * 64)
    monkeypatch.setattr(zoo, "BUNDLED_DIR", bundled)
    line = weights_error_line(capsys, media.h264_aac, tmp_path / "out.mp4", "ssl-uni")
    assert "the bundled model 'ssl-uni' is corrupt" in line and "reinstall" in line

    folder = tmp_path / "my-pruned"
    shutil.copytree(zoo.BUNDLED_DIR / "ssl-uni", folder)  # the intact copy's plan and meta
    name = next(k for k, v in state.items() if v.ndim == 4)
    save_file({**state, name: state[name][:, :1].contiguous()}, str(folder / "model.safetensors"))
    line = weights_error_line(capsys, media.h264_aac, tmp_path / "out.mp4", str(folder))
    assert line.startswith(f"vsrapp: error: cannot load pruned model from {folder}") and name in line
    save_file(state, str(folder / "model.safetensors"))
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert "cannot load pruned model" in weights_error_line(capsys, media.h264_aac, tmp_path / "out.mp4",
                                                            str(folder))


# --- 7. faults: an unwritable folder, a full disk, a signal mid-job -------------------------------------------


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(name, size, read_only)`` -> a folder on a tmpfs of that size, unmounted at the end: a full disk or
    a read-only folder that holds for root too. Skips where mounting is not allowed (not root, a container
    without the capability)."""
    import shutil
    import subprocess

    mounted: list[Path] = []

    def mount(name: str, size: str = "512k", read_only: bool = False) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                              text=True) if os.geteuid() == 0 and shutil.which("mount") else None
        if done is None or done.returncode:
            pytest.skip("cannot mount a size-limited tmpfs here (needs root and the mount capability): "
                        + (done.stderr.strip() if done else "not root"))
        mounted.append(folder)
        return folder

    def resize(folder: Path, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)

    mount.resize = resize  # type: ignore[attr-defined]
    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def all_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray() for f in c.decode(video=0)]


def test_unwritable_output_folder_is_one_line_and_leaves_nothing(media, tmp_path, capsys, tmpfs):
    if os.geteuid() == 0:  # root ignores permission bits: a read-only mount is what stops it
        folder = tmpfs("readonly", read_only=True)
    else:
        folder = tmp_path / "readonly"
        folder.mkdir()
        folder.chmod(0o555)
    out = folder / "out.mp4"
    assert upscale(media.h264_aac, out) == 2
    line = one_error_line(capsys)
    assert ("Read-only file system" in line or "Permission denied" in line) and "run again" in line
    assert list(folder.iterdir()) == []
    # an output folder still to be made inside it
    assert upscale(media.h264_aac, folder / "new" / "out.mp4") == 2
    assert "cannot create the output folder" in one_error_line(capsys)
    assert list(folder.iterdir()) == []
    # the same under --ray: refused before any Ray work starts
    assert upscale(media.h264_aac, folder / "new" / "out.mp4", "--ray") == 2
    assert "cannot create the output folder" in one_error_line(capsys)
    assert list(folder.iterdir()) == []


def test_full_disk_is_one_line_and_leaves_nothing(media, tmp_path, capsys, tmpfs):
    disk = tmpfs("full", "512k")  # the lossless x4 of 2 s of 64x48 needs about 3 MB
    out = disk / "out.mkv"
    assert upscale(media.h264_aac, out, "--codec", "ffv1") == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "free some space and run again" in line
    assert list(disk.iterdir()) == []  # no output, no partial file, no job folder: the space is given back


def test_full_disk_keeps_finished_segments_and_resume_completes_them(media, tmp_path, capsys, tmpfs):
    options = ("--codec", "ffv1", "--segment-frames", "5")
    reference = tmp_path / "reference.mkv"
    assert upscale(media.h264_aac, reference, *options) == 0
    disk = tmpfs("full", "512k")
    out = disk / "out.mkv"
    assert upscale(media.h264_aac, out, *options) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "--resume" in line and "frames done are kept" in line
    assert not out.exists() and job_dir_for(out).is_dir()
    tmpfs.resize(disk, "16M")  # the user frees some space
    assert upscale(media.h264_aac, out, *options, "--resume") == 0, capsys.readouterr().err
    got, expected = all_frames(out), all_frames(reference)
    assert len(got) == len(expected) == 50
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))  # lossless: the same frames
    assert sorted(p.name for p in disk.iterdir()) == ["out.mkv"]


def make_long(path: Path, n: int = 100, w: int = 96, h: int = 72) -> Path:
    """H.264 + AAC, 4 s of 96x72: long enough (10 segments of 10 frames) that a signal lands mid-job."""
    with av.open(str(path), "w") as out:
        v = _video_stream(out, "libx264", "yuv420p", w, h, options=X264)
        _write_audio(out, _audio_stream(out), sine(n / 25))
        write_pictures(out, v, n, period=50)
    return path


SIGNAL_JOB = ["--model", "bicubic", "-q", "--codec", "ffv1", "--segment-frames", "10", "--threads", "1"]


@pytest.fixture(scope="module")
def long_job(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """The long input and the frames of its uninterrupted run (lossless, so "the same frames" is exact)."""
    folder = tmp_path_factory.mktemp("long_job")
    src, reference = make_long(folder / "long.mp4"), folder / "reference.mkv"
    assert main(["upscale", str(src), str(reference), *SIGNAL_JOB]) == 0
    return src, all_frames(reference)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_signal_mid_job_leaves_a_job_that_resume_completes(tmp_path, long_job, signum):
    import json
    import subprocess
    import sys
    import time

    src, expected = long_job
    out = tmp_path / "out.mkv"
    cmd = [sys.executable, "-m", "vsrapp.cli", "upscale", str(src), str(out), *SIGNAL_JOB]
    # SIGINT as a terminal delivers it: a shell without job control starts background commands (a CI run under
    # `cmd &`) with SIGINT ignored, which the child would inherit, and Python keeps an ignored SIGINT ignored.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    manifest = job_dir_for(out) / "manifest.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:  # wait for the second finished segment
        try:
            if len(json.loads(manifest.read_text())["segments"]) >= 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    assert proc.poll() is None, "the job ended before the signal; make the input longer"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    if signum == signal.SIGKILL:  # kill -9: the process ends at once; the job folder holds what was finished
        assert proc.returncode == -signum
    else:  # Ctrl-C and a polite SIGTERM: the CLI stops cleanly and says how to continue, in one line
        status = EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_TERMINATED
        assert proc.returncode == status, err
        hint = [line for line in err.splitlines() if "--resume" in line]
        assert len(hint) == 1 and hint[0].strip().startswith(f"vsrapp upscale {src} {out} --resume"), err
    assert not out.exists() and job_dir_for(out).is_dir()
    done = len(json.loads(manifest.read_text())["segments"])
    assert 2 <= done < 10  # interrupted mid-job, with finished segments to keep
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    got = all_frames(out)
    assert len(got) == len(expected) == 100
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))  # the same frames
    assert not job_dir_for(out).exists()


def test_the_sigterm_handler_lives_only_while_the_command_runs(tmp_path, capsys):
    """``main`` turns SIGTERM into a clean stop while a command runs and gives the old handler back after, so a
    program (or this test run) that calls it in-process keeps its own."""
    seen: list[object] = []

    def ours(signum, frame) -> None:  # pragma: no cover - never called
        pass

    previous = signal.signal(signal.SIGTERM, ours)
    try:
        # Fails at once (no such input): the handler must be restored on the error path too.
        assert main(["upscale", str(tmp_path / "missing.mp4"), str(tmp_path / "out.mp4")]) == 2
        seen.append(signal.getsignal(signal.SIGTERM))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [ours]
    assert "no such file" in capsys.readouterr().err


# --- 5. more of the corpus: two audio tracks + anamorphic, interlaced, a phone file, webm ---------------------


def audio_samples(path: Path) -> list[tuple[str | None, int]]:
    """(language, decoded samples) of every audio track, each read in a pass of its own."""
    with av.open(str(path)) as c:
        count = len(c.streams.audio)
    tracks = []
    for k in range(count):
        with av.open(str(path)) as c:
            a = c.streams.audio[k]
            tracks.append((a.metadata.get("language"), sum(f.samples for f in c.decode(a))))
    return tracks


def video_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        return {"size": (v.width, v.height), "n": len(frames), "codec": v.codec_context.name,
                "sar": v.sample_aspect_ratio, "field_order": v.codec_context.field_order,
                "interlaced": [f.interlaced_frame for f in frames], "rotation": frames[0].rotation,
                "range": frames[0].color_range, "matrix": frames[0].colorspace,
                "pts": [f.time for f in frames], "duration": c.duration / av.time_base}


def make_two_audio_anamorphic_ts(path: Path, n: int = 20) -> Path:
    """H.264 in MPEG-TS with a 16:11 sample aspect ratio (PAL 4:3 on a 720-wide raster) and two MP2 tracks,
    English and German, as a broadcast with a second language writes them."""
    with av.open(str(path), "w", format="mpegts") as out:
        v = _video_stream(out, "libx264", "yuv420p", options=X264)
        v.codec_context.sample_aspect_ratio = Fraction(16, 11)
        tracks = []
        for lang in ("eng", "deu"):
            a = out.add_stream("mp2", rate=RATE)
            a.codec_context.layout = "mono"
            a.metadata["language"] = lang
            tracks.append(a)
        for a, freq in zip(tracks, (440.0, 660.0), strict=True):
            _write_audio(out, a, sine(n / 25, freq=freq))
        write_pictures(out, v, n)
    return path


@pytest.mark.parametrize("out_ext", [".mp4", ".ts"])
def test_broadcast_with_two_audio_tracks_and_anamorphic_video_keeps_both(tmp_path, capsys, out_ext):
    src, out = make_two_audio_anamorphic_ts(tmp_path / "two-lang.ts"), tmp_path / f"two-lang-x4{out_ext}"
    before, tracks_in = video_facts(src), audio_samples(src)
    assert before["sar"] == Fraction(16, 11) and [lang for lang, _ in tracks_in] == ["eng", "deu"]
    assert all(samples > 0 for _, samples in tracks_in)
    assert upscale(src, out) == 0, capsys.readouterr().err
    after = video_facts(out)
    assert after["size"] == (4 * W, 4 * H) and after["n"] == before["n"] == 20
    assert after["sar"] == Fraction(16, 11)  # the picture is still shown 16:11 wide, not squeezed
    assert after["duration"] == pytest.approx(before["duration"], abs=1 / 25)
    assert audio_samples(out) == tracks_in  # both tracks, in order, languages and every sample kept


FIELD_ORDERS = {"tff": 2, "bff": 3, "prog": 1}  # setfield's modes -> AVFieldOrder (TT, BB, progressive)


def write_field_coded(path: Path, images, width: int, height: int, pix_fmt: str, mode: str,
                      options: dict[str, str] | None = None) -> Path:
    """H.264 in MPEG-TS at 25 fps from RGB ``images``, each frame marked by FFmpeg's ``setfield`` (``tff``,
    ``bff`` or ``prog``), as a capture card or a broadcast encoder marks them; interlaced modes are coded as
    fields (x264 ``+ildct+ilme``) with the stream's field order set to match."""
    graph = av.filter.Graph()
    chain = [graph.add_buffer(width=width, height=height, format=pix_fmt, time_base=Fraction(1, 25)),
             graph.add("setfield", mode), graph.add("buffersink")]
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    graph.configure()
    opts = {**X264, **(options or {}), **({"flags": "+ildct+ilme"} if mode != "prog" else {})}
    with av.open(str(path), "w", format="mpegts") as out:
        v = out.add_stream("libx264", rate=25, options=opts)
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        v.codec_context.field_order = FIELD_ORDERS[mode]
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = i, Fraction(1, 25)
            graph.push(frame)
            out.mux(v.encode(graph.pull()))
        out.mux(v.encode(None))
    return path


def make_interlaced(path: Path, n: int = 10) -> Path:
    """Interlaced H.264 (field-coded, top field first) in MPEG-TS, as a 576i broadcast: frames marked
    interlaced + TFF by FFmpeg's ``setfield`` filter, x264 in interlaced mode, the stream's field order TT."""
    return write_field_coded(path, (picture(i) for i in range(n)), W, H, "yuv420p", "tff")


@pytest.mark.parametrize("out_ext", [".mp4", ".mkv"])
def test_interlaced_input_gives_every_frame_as_progressive(tmp_path, capsys, out_ext):
    src, out = make_interlaced(tmp_path / "576i.ts"), tmp_path / f"576i-x4{out_ext}"
    before = video_facts(src)
    assert before["field_order"] == 2 and all(before["interlaced"])  # the case: TFF fields in every frame
    assert upscale(src, out) == 0, capsys.readouterr().err
    after = video_facts(out)
    assert after["size"] == (4 * W, 4 * H) and after["n"] == before["n"] == 10
    assert after["pts"] == pytest.approx(before["pts"], abs=1e-3)
    # Each woven frame (both fields) is upscaled as one picture, which mixes the fields: the result is no
    # longer two fields, and the output says so (progressive), rather than claiming a field order it lost.
    assert after["field_order"] == 1 and not any(after["interlaced"])


PHONE_GAPS = [33, 33, 34, 50, 17, 66, 33, 40, 25, 33]  # ms: a phone's camera slowing down and catching up


def make_phone(path: Path) -> Path:
    """What a phone writes: H.264 + AAC in mp4, a 90° display matrix, variable frame rate (17..66 ms) and full
    range BT.709, all at once."""
    pts = np.concatenate([[0], np.cumsum(PHONE_GAPS)[:-1]]).tolist()
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=30, options=X264)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        ctx = v.codec_context
        ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = 1, 2, 1, 1
        v.set_display_rotation(90)
        a = _audio_stream(out)
        _write_audio(out, a, sine(sum(PHONE_GAPS) / 1000))
        for i, t in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(picture(i), format="rgb24").reformat(
                format="yuv420p", src_colorspace="ITU709", dst_colorspace="ITU709", src_color_range=2,
                dst_color_range=2)
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return path


def test_phone_file_keeps_rotation_timestamps_and_full_range_together(tmp_path, capsys):
    src, out = make_phone(tmp_path / "phone.mp4"), tmp_path / "phone-x4.mp4"
    before = video_facts(src)
    assert before["rotation"] == 90 and before["range"] == 2 and len(set(PHONE_GAPS)) > 5
    assert upscale(src, out) == 0, capsys.readouterr().err
    after = video_facts(out)
    assert after["size"] == (4 * W, 4 * H) and after["n"] == before["n"] == len(PHONE_GAPS)
    assert after["rotation"] == 90  # still shown upright
    assert after["range"] == 2 and after["matrix"] == 1  # full range BT.709: not washed out or crushed
    assert after["pts"] == pytest.approx(before["pts"], abs=1e-3)  # every irregular timestamp kept
    assert after["duration"] == pytest.approx(before["duration"], abs=0.07)
    assert audio_samples(out) == audio_samples(src)


def make_webm(path: Path, n: int = 10) -> Path:
    """VP9 + Opus in WebM, as a browser records or a site serves."""
    with av.open(str(path), "w") as out:
        vp9 = {"deadline": "realtime", "cpu-used": "8", "threads": "1"}
        v = _video_stream(out, "libvpx-vp9", "yuv420p", options=vp9)
        a = out.add_stream("libopus", rate=RATE)
        a.codec_context.layout = "mono"
        samples = sine(n / 25)
        for start in range(0, len(samples), 960):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 960], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            out.mux(a.encode(frame))
        out.mux(a.encode(None))
        write_pictures(out, v, n)
    return path


def test_webm_in_and_out_is_vp9_and_opus(tmp_path, capsys):
    src, out = make_webm(tmp_path / "clip.webm"), tmp_path / "clip-x4.webm"
    before = video_facts(src)
    assert upscale(src, out) == 0, capsys.readouterr().err  # before: "the webm container cannot hold h264"
    after = video_facts(out)
    assert after["codec"] == "vp9" and after["size"] == (4 * W, 4 * H) and after["n"] == before["n"] == 10
    assert after["pts"] == pytest.approx(before["pts"], abs=1e-3)
    assert after["duration"] == pytest.approx(before["duration"], abs=1 / 25)
    with av.open(str(out)) as c:
        assert [a.codec_context.name for a in c.streams.audio] == ["opus"]
    assert audio_samples(out) == audio_samples(src)
