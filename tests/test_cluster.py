"""Segments and the Ray scale-out (vsrapp.cluster.worker, vsrapp.cluster.driver, ``vsrapp upscale --ray``).

The segment tests need no Ray. The Ray tests start one local instance with two CPU workers for the module and
compare every output with the single-process output of the same model, encoded losslessly (x264 qp 0), so any
lost, doubled or shifted frame, or a seam, shows.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from nets import SlowBicubic, tiny_net

from vsrapp.cluster.worker import upscale_segment
from vsrapp.engine.upscaler import Upscaler
from vsrapp.jobs.segments import plan_segments
from vsrapp.pipeline import job_dir_for, upscale_file
from vsrapp.video import VideoReader, probe, timeline
from vsrapp.video.concat import join_segments

LOSSLESS = {"crf": 0}
SMALL_WINDOWS = {"window": 8, "lookahead": 4}


def decoded(path: Path) -> list[tuple[int, np.ndarray]]:
    with VideoReader(path) as reader:
        return [(f.pts, f.image.astype(np.float64)) for f in reader.frames()]


def min_psnr(a: list, b: list) -> float:
    worst = np.inf
    for (_, x), (_, y) in zip(a, b):
        mse = ((x - y) ** 2).mean()
        worst = min(worst, np.inf if mse == 0 else 10 * np.log10(255.0**2 / mse))
    return worst


def assert_same_video(out: Path, reference: Path, psnr_floor: float = np.inf) -> None:
    got, want = decoded(out), decoded(reference)
    assert [p for p, _ in got] == [p for p, _ in want], "frame count or timestamps differ"
    assert min_psnr(got, want) >= psnr_floor
    assert len(probe(out).audio) == len(probe(reference).audio)


def single_process(src: Path, dst: Path, model, **windows) -> Path:
    if not dst.exists():
        upscale_file(src, dst, model, upscaler=Upscaler(model, threads=1, **windows), **LOSSLESS)
    return dst


# ------------------------------------------------------------------------------------------- no Ray
def test_seeking_reader_gives_the_same_frames_as_decoding_from_the_start(media):
    tl = timeline(media.gop)
    assert tl.seekable and tl.frames == 120
    assert [k.index for k in tl.keyframes][:3] == [0, 12, 24]
    with VideoReader(media.gop) as reader:
        full = [(f.index, f.pts, f.image.copy()) for f in reader.frames()]
    for start in (13, 36, 119):
        key = tl.keyframe_at_or_before(start)
        assert key is not None and key.index <= start
        with VideoReader(media.gop) as reader:
            part = [(f.index, f.pts, f.image) for f in reader.frames(start=start, seek=key)]
        assert len(part) == 120 - start
        assert all(a[:2] == b[:2] and np.array_equal(a[2], b[2]) for a, b in zip(part, full[start:]))


def test_unseekable_timeline_gives_one_segment(media):
    tl = timeline(media.gop)
    from vsrapp.video import Timeline

    plain = Timeline(tl.frames, (), False)
    segs = plan_segments(plain, 30, bidirectional=True, window=8, lookahead=4)
    assert len(segs) == 1 and segs[0].first == 0 and segs[0].end == 120 and segs[0].seek is None


def test_plan_covers_every_frame_once_on_keyframes_and_window_grid(media):
    tl = timeline(media.gop)
    segs = plan_segments(tl, 30, bidirectional=True, window=8, lookahead=4, warmup=10)
    assert segs[0].first == 0 and segs[-1].end == 120
    assert all(a.end == b.first for a, b in zip(segs, segs[1:]))
    assert all(s.first % 12 == 0 for s in segs)  # cut on keyframes (every 12 frames in this file)
    for s in segs[1:]:
        assert s.decode_from % 8 == 0 and s.decode_from <= s.first - 10  # warm-up, on the window grid
        assert s.seek is not None and s.seek.index <= s.decode_from
        assert s.decode_to >= min(120, s.end + 4)


def test_segments_joined_equal_single_process(media, tmp_path, one_thread):
    """Bidirectional tiny net, no Ray: the segments' windows fall on the single-process grid, and the warm-up
    hides the cold forward state; bicubic (stateless) is exact."""
    for name, src, model, floor in (("tiny", media.gop_short, tiny_net(), 40.0),
                                    ("bicubic", media.gop, "bicubic", np.inf)):
        info, tl = probe(src), timeline(src)
        segs = plan_segments(tl, tl.frames // 3, bidirectional=name == "tiny", window=8, lookahead=4, warmup=8)
        assert len(segs) == 3
        parts = []
        for s in segs:
            parts.append(tmp_path / f"{name}_{s.index}.mkv")
            result = upscale_segment(info, s, parts[-1], model,
                                     upscaler_options={**SMALL_WINDOWS, "threads": 1}, writer_options=LOSSLESS)
            assert result.frames == s.frames
        join_segments(parts, info, tmp_path / f"{name}.mkv")
        reference = single_process(src, tmp_path / f"{name}_single.mkv", model, **SMALL_WINDOWS)
        assert_same_video(tmp_path / f"{name}.mkv", reference, floor)


# ------------------------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def worker_cache(tmp_path_factory) -> Path:
    """The workers' own cache folder: vsrapp's exports and int8 graphs must never appear in it (the driver makes
    the graphs), and nothing a worker caches goes into the user's."""
    return tmp_path_factory.mktemp("worker-cache")


@pytest.fixture(scope="module")
def ray_local(worker_cache):
    ray = pytest.importorskip("ray")
    # Workers unpickle test-only models (tests/nets.py): give them this folder on their import path.
    tests = str(Path(__file__).resolve().parent)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get(
                 "PYTHONPATH")])), "XDG_CACHE_HOME": str(worker_cache)}})
    yield ray
    ray.shutdown()


def test_ray_output_equals_single_process(ray_local, media, tmp_path):
    from vsrapp.cluster.driver import upscale_on_ray

    net = tiny_net()
    out = tmp_path / "ray.mp4"
    [report] = upscale_on_ray([(media.gop_short, out)], net, segment_frames=13, warmup=8, **SMALL_WINDOWS,
                              **LOSSLESS)
    assert report.error is None and report.segments == 3 and report.frames == 40
    assert not job_dir_for(out).exists()
    reference = single_process(media.gop_short, tmp_path / "single.mp4", net, **SMALL_WINDOWS)
    assert_same_video(out, reference, 40.0)


def test_ray_survives_a_killed_worker(ray_local, media, tmp_path):
    """SIGKILL the worker of the first running segment: Ray runs that segment again, nothing is lost or
    doubled, and the report says a segment was re-run."""
    from vsrapp.cluster.driver import upscale_on_ray

    killed: list[str] = []

    def kill_one(status) -> None:
        # Only while the first two segments (30 frames, 6 s each) are both still early: a kill that lands after
        # the segment has returned its file re-runs nothing, which is right but not what this test is about. The
        # driver reports every half second and both workers write frames, so the window must span several
        # reports (a limit of 10 frames was often passed between two reports).
        if killed or not status.running or status.frames_done >= 24:
            return
        key, worker = sorted(status.running.items())[0]
        killed.append(key)
        os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)

    out = tmp_path / "killed.mp4"
    model = SlowBicubic(delay=0.2)
    [report] = upscale_on_ray([(media.gop, out)], model, segment_frames=30, status=kill_one, **LOSSLESS)
    assert killed, "no running task was seen to kill"
    assert report.error is None and report.retried_segments >= 1
    assert_same_video(out, single_process(media.gop, tmp_path / "single.mp4", "bicubic"))


def test_ray_job_stopped_as_a_whole_resumes_from_its_manifest(ray_local, media, tmp_path):
    from vsrapp.cluster.driver import upscale_on_ray

    out = tmp_path / "resumed.mp4"

    def stop_after_first_segment(status) -> None:
        if status.frames_done >= 30 and len(status.running) < 2:
            raise KeyboardInterrupt

    kwargs = dict(segment_frames=30, **LOSSLESS)
    with pytest.raises(KeyboardInterrupt):
        upscale_on_ray([(media.gop, out)], SlowBicubic(delay=0.05), status=stop_after_first_segment, **kwargs)
    assert not out.exists() and (job_dir_for(out) / "manifest.json").exists()
    [report] = upscale_on_ray([(media.gop, out)], SlowBicubic(delay=0.0), resume=True, **kwargs)
    assert report.error is None and 0 < report.resumed_from < 120
    assert_same_video(out, single_process(media.gop, tmp_path / "single.mp4", "bicubic"))


def test_ray_cli_folder_of_mixed_files(ray_local, media, tmp_path):
    """A folder with a long file, short ones (VFR, odd size) and a broken one, through the CLI: every good file
    equals its single-process output, the broken one gets one error line and the exit code says so."""
    from vsrapp.cli import EXIT_USER_ERROR, main

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(media.gop, src / "long.mp4")
    shutil.copy(media.vfr, src / "sub" / "vfr.mp4")
    shutil.copy(media.odd_size, src / "odd.mkv")
    shutil.copy(media.not_video, src / "broken.mp4")
    rc = main(["upscale", str(src), str(tmp_path / "out"), "--ray", "--model", "bicubic", "--crf", "0",
               "--segment-frames", "40", "-q"])
    assert rc == EXIT_USER_ERROR
    (tmp_path / "ref").mkdir()
    for name in ("long.mp4", "sub/vfr.mp4", "odd.mkv"):
        reference = single_process(src / name, tmp_path / "ref" / name.replace("/", "_"), "bicubic")
        assert_same_video(tmp_path / "out" / name, reference)
    assert not (tmp_path / "out" / "broken.mp4").exists()


def test_ray_missing_gives_one_clear_line(monkeypatch, capsys, media, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    from vsrapp.cli import EXIT_USER_ERROR, main

    rc = main(["upscale", str(media.h264_aac), str(tmp_path / "o.mp4"), "--ray", "--model", "bicubic"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == EXIT_USER_ERROR and len(err) == 1 and 'pip install "vsrapp[cluster]"' in err[0]
    assert not (tmp_path / "o.mp4").exists()


# ------------------------------------------------------------------------------------------- graph backends on Ray
# A tiny network's fp32 export folder (seconds), upscaled by Ray workers with ONNX Runtime and in int8 (OpenVINO),
# against the single-process run with the same backend and precision. A warm-up that reaches back to frame 0 makes
# every segment's forward state the single-process one, so any difference would be the backend's on the workers.
GRAPH_SEGMENTS = {"segment_frames": 13, "warmup": 40, **SMALL_WINDOWS}


@pytest.fixture
def small_int8(private_cache, monkeypatch):
    """A private cache and a calibration small enough for seconds (as tests/test_int8_precision.py); every
    quantization this process makes is counted."""
    from vsrapp import quantize

    monkeypatch.setattr(quantize, "CACHED_CALIBRATION_CLIPS", 2)
    monkeypatch.setattr(quantize, "CACHED_SAMPLES", 12)
    calls: list[Path] = []
    real = quantize.quantize_export

    def counted(fp32_folder, out, *args, **kwargs):
        calls.append(Path(out))
        return real(fp32_folder, out, *args, **kwargs)

    monkeypatch.setattr(quantize, "quantize_export", counted)
    return calls


def _fp32_export(tmp_path: Path) -> Path:
    from vsrapp import export

    return export.export_onnx(tiny_net(), tmp_path / "fp32", name="tiny-bi")


def _graph_reference(src: Path, dst: Path, folder: Path, **upscaler) -> Path:
    upscale_file(src, dst, str(folder), upscaler=Upscaler(str(folder), threads=1, **SMALL_WINDOWS, **upscaler),
                 **LOSSLESS)
    return dst


def test_ray_onnxruntime_equals_single_process(ort, ray_local, media, tmp_path, private_cache, worker_cache):
    from vsrapp.cluster.driver import upscale_on_ray

    fp32 = _fp32_export(tmp_path)
    out = tmp_path / "ray.mp4"
    [report] = upscale_on_ray([(media.gop_short, out)], str(fp32), backend="onnxruntime", **GRAPH_SEGMENTS,
                              **LOSSLESS)
    assert report.error is None and report.segments == 3 and report.frames == 40
    reference = _graph_reference(media.gop_short, tmp_path / "single.mp4", fp32, backend="onnxruntime")
    assert_same_video(out, reference, 50.0)
    assert not (worker_cache / "vsrapp").exists(), "a worker exported the model itself"


def test_ray_int8_quantizes_once_on_the_driver_and_equals_single_process(ov, ray_local, media, tmp_path, small_int8,
                                                                        worker_cache, capsys):
    from vsrapp.cli import main

    fp32 = _fp32_export(tmp_path)
    out = tmp_path / "ray.mp4"
    rc = main(["upscale", str(media.gop_short), str(out), "--ray", "--model", str(fp32), "--precision", "int8",
               "--crf", "0", "--segment-frames", "13", "--warmup-frames", "40", "--window", "8", "--lookahead", "4",
               "--threads", "1", "-q"])
    assert rc == 0, capsys.readouterr().err
    assert len(small_int8) == 1, "the driver quantizes once, before any task"
    assert not (worker_cache / "vsrapp").exists(), "a worker exported or quantized the model"
    reference = _graph_reference(media.gop_short, tmp_path / "single.mp4", fp32, precision="int8")
    assert len(small_int8) == 1  # the single-process run found the same cached int8 graphs
    assert_same_video(out, reference, 50.0)


def test_ray_int8_job_records_int8_and_resumes(ov, ray_local, media, tmp_path, small_int8, capsys):
    import json

    from vsrapp.cli import main
    from vsrapp.cluster.driver import upscale_on_ray

    fp32 = _fp32_export(tmp_path)
    out = tmp_path / "resumed.mp4"
    manifest = job_dir_for(out) / "manifest.json"

    def stop_after_first_segment(status) -> None:
        # The driver stores one segment per round before it reports, so this stops with 1 of 3 segments kept.
        if manifest.is_file() and json.loads(manifest.read_text())["done"]:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_on_ray([(media.gop_short, out)], str(fp32), precision="int8", cpus_per_task=1,
                       status=stop_after_first_segment, **GRAPH_SEGMENTS, **LOSSLESS)
    recorded = json.loads(manifest.read_text())
    assert recorded["mode"] == "ray" and recorded["settings"]["precision"] == "int8"
    assert len(recorded["done"]) == 1 and not out.exists()
    # The CLI describes the same job (its spec equals the manifest's), so --resume continues it.
    rc = main(["upscale", str(media.gop_short), str(out), "--ray", "--resume", "--model", str(fp32), "--precision",
               "int8", "--crf", "0", "--segment-frames", "13", "--warmup-frames", "40", "--window", "8",
               "--lookahead", "4", "--threads", "1"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "resumed at" in captured.out
    assert len(small_int8) == 1  # the resumed run found the int8 graphs in the cache
    reference = _graph_reference(media.gop_short, tmp_path / "single.mp4", fp32, precision="int8")
    assert_same_video(out, reference, 50.0)


def test_ray_int8_with_torch_is_one_line(media, tmp_path, capsys):
    from vsrapp.cli import EXIT_USER_ERROR, main

    out = tmp_path / "o.mp4"
    rc = main(["upscale", str(media.gop_short), str(out), "--ray", "--model", "bicubic", "--precision", "int8",
               "--backend", "torch", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == EXIT_USER_ERROR and len(err) == 1 and "--precision int8 runs in openvino" in err[0], err
    assert not out.exists() and not job_dir_for(out).exists()


@pytest.mark.parametrize("amx", [False, True])
def test_the_driver_decides_auto_precision_once_for_every_worker(monkeypatch, amx):
    """Workers on CPUs with and without AMX would pick bf16 and fp32 for themselves, and a video's segments would
    differ at their seams: the driver decides ``auto`` once and the workers run what it decided."""
    from vsrapp.cluster.driver import _one_precision
    from vsrapp.engine import hardware
    from vsrapp.jobs.spec import EncodeOptions, EngineOptions, JobSpec

    monkeypatch.setattr(hardware, "has_amx_bf16", lambda: amx)
    spec = JobSpec("", "", "basicvsr-b8-hr32", EngineOptions("auto", 24, 8, None, 16), EncodeOptions())
    assert _one_precision(spec, "cpu", "torch").engine.precision == ("bf16" if amx else "fp32")
    assert _one_precision(spec, "cuda", "torch").engine.precision == "fp16"
    assert _one_precision(spec, "cpu", "openvino").engine.precision == "auto"  # the graphs' own precision
    asked = JobSpec("", "", "basicvsr-b8-hr32", EngineOptions("fp32", 24, 8, None, 16), EncodeOptions())
    assert _one_precision(asked, "cpu", "torch").engine.precision == "fp32"
