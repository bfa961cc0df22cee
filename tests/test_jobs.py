"""`vsrapp.jobs`: one job description (JobSpec) for every front end, its manifest form, the resume check, and the
one segment plan of single-process resume and Ray. Job folders written before JobSpec existed still resume, or
are refused with one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from nets import tiny_net

from vsrapp import Upscaler, upscale_file, zoo
from vsrapp.cli import main
from vsrapp.engine.upscaler import set_threads
from vsrapp.jobs import EncodeOptions, EngineOptions, JobSpec, ManifestError, SegmentPlan, job_dir_for
from vsrapp.jobs.segments import DEFAULT_SEGMENT_FRAMES, default_segment_length, stream_segment_length
from vsrapp.jobs.spec import read_manifest, source_signature
from vsrapp.video import Timeline, VideoError, VideoReader

pytestmark = pytest.mark.timeout(300)

# The keys (and their order) of a manifest's `settings`, as vsrapp wrote them before JobSpec: a single-process
# job (pipeline.JobSettings) and a Ray job (the same plus warmup and device).
LEGACY_KEYS = ["model", "precision", "window", "lookahead", "tile", "tile_overlap", "codec", "crf", "preset",
               "pix_fmt", "segment_frames", "out_scale"]
KEYS = LEGACY_KEYS + ["deinterlace"]  # since --deinterlace; a manifest without it never deinterlaced


def spec_for(src: Path, dst: Path, **encode) -> JobSpec:
    return JobSpec(str(src), str(dst), "ssl-bi", EngineOptions("auto", 8, 4, None, 16, "cpu", 1),
                   EncodeOptions(**encode), 20)


def frames_of(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [f.image for f in reader.frames()]


# ------------------------------------------------------------------------------------------ the spec
def test_single_process_spec_round_trips_through_the_legacy_settings(tmp_path):
    spec = spec_for(tmp_path / "in.mp4", tmp_path / "out.mp4", crf=18).for_stream(
        EngineOptions("fp32", 8, 4, None, 16, "cpu"), bidirectional=True)
    settings = spec.settings()
    assert list(settings) == KEYS
    assert settings["precision"] == "float32" and settings["segment_frames"] == 24  # whole windows of 8
    back = JobSpec.from_settings(json.loads(json.dumps(settings)), None)
    assert back == spec and back.settings() == settings


def test_ray_spec_round_trips_and_records_warmup_and_device(tmp_path):
    spec = replace(spec_for(tmp_path / "in.mp4", tmp_path / "out.mp4"), segment_frames=None).for_ray("cpu")
    settings = spec.settings()
    assert list(settings) == KEYS + ["warmup", "device"]
    assert settings["precision"] == "auto" and settings["segment_frames"] == 0 and settings["device"] == "cpu"
    assert JobSpec.from_settings(json.loads(json.dumps(settings)), "ray") == spec


def test_equality_decides_resume_compatibility(tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(b"x")
    spec = spec_for(src, tmp_path / "out.mp4").for_ray("cpu")
    # How fast, not what: threads, backend, the device asked for, and the paths (checked by signature) do not count.
    same = replace(spec, engine=replace(spec.engine, threads=8, backend="auto", device="auto"), output="elsewhere")
    assert same == spec
    for other in (replace(spec, encode=replace(spec.encode, crf=30)), replace(spec, model="ssl-uni"),
                  replace(spec, engine=replace(spec.engine, window=9)), replace(spec, warmup=3),
                  replace(spec, device="cuda"), replace(spec, segment_frames=21)):
        assert other != spec
        with pytest.raises(ManifestError, match="other settings"):
            other.check_resume(spec.manifest(segments=[], done={}), tmp_path)
    same.check_resume(spec.manifest(segments=[], done={}), tmp_path)  # no error


def test_a_ray_manifest_written_before_jobspec_is_accepted(tmp_path):
    """The `settings` of a Ray job as cluster.upscale_on_ray wrote them before JobSpec (JobSettings, then warmup
    and device), for `--model bicubic --segment-frames 30 --crf 0` on a CPU cluster."""
    src = tmp_path / "in.mp4"
    src.write_bytes(b"x")
    legacy = {"version": 1, "mode": "ray", "source": source_signature(src),
              "settings": {"model": "bicubic", "precision": "auto", "window": 24, "lookahead": 8, "tile": None,
                           "tile_overlap": 16, "codec": "libx264", "crf": 0, "preset": None, "pix_fmt": None,
                           "segment_frames": 30, "out_scale": None, "warmup": 24, "device": "cpu"},
              "segments": [], "done": {}}
    # deinterlace as the driver decides it for a progressive file before it opens the job folder
    spec = JobSpec(str(src), str(tmp_path / "o.mp4"), "bicubic", EngineOptions(), EncodeOptions(crf=0), 30,
                   deinterlace="off")
    spec.for_ray("cpu").check_resume(legacy, tmp_path)
    with pytest.raises(ManifestError, match="other settings {'deinterlace': 'off'}"):
        replace(spec, deinterlace="on").for_ray("cpu").check_resume(legacy, tmp_path)
    with pytest.raises(ManifestError, match="other settings {'device': 'cpu'}"):
        spec.for_ray("cuda").check_resume(legacy, tmp_path)


def test_manifests_of_the_other_mode_another_input_or_version_are_refused_in_one_line(tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(b"x")
    single = spec_for(src, tmp_path / "out.mp4").for_stream(EngineOptions("fp32", 8, 4), True)
    ray = spec_for(src, tmp_path / "out.mp4").for_ray("cpu")
    with pytest.raises(ManifestError, match="started with --ray; resume it with --ray"):
        single.check_resume(ray.manifest(), tmp_path)
    with pytest.raises(ManifestError, match="without --ray"):
        ray.check_resume(single.manifest(), tmp_path)
    changed = single.manifest()
    src.write_bytes(b"xy")
    with pytest.raises(ManifestError, match="different or changed input"):
        single.check_resume(changed, tmp_path)
    for bad in ({**single.manifest(), "version": 7}, {**single.manifest(), "settings": {"model": "x"}}):
        with pytest.raises(ManifestError) as info:
            single.check_resume(bad, tmp_path)
        assert "\n" not in str(info.value) and "start over" in str(info.value)
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(VideoError, match="no readable job manifest"):
        read_manifest(tmp_path / "manifest.json", single)


# ------------------------------------------------------------------------------------------ the segment plan
def test_one_segment_plan_for_one_process_and_for_ray():
    assert stream_segment_length(None, False, 8) == DEFAULT_SEGMENT_FRAMES
    assert stream_segment_length(12, True, 8) == 16 and stream_segment_length(3, True, 8) == 8
    plan = SegmentPlan.for_stream(12, True, 8, 4)
    assert [n for n in range(1, 50) if plan.ends_segment(n)] == [16, 32, 48]
    assert default_segment_length(100, 4) == 48 and default_segment_length(10_000, 2) == 480

    tl = Timeline(frames=100, keyframes=(), seekable=True)
    segments = SegmentPlan(30, True, 8, 4, warmup=10).cut(tl)
    assert [(s.first, s.end) for s in segments] == [(0, 30), (30, 60), (60, 100)]
    # Ray's cold segments warm up from the single-process window grid, and look ahead to their window's end.
    assert [(s.decode_from, s.decode_to) for s in segments] == [(0, 36), (16, 68), (48, 100)]
    forward = SegmentPlan(30, False, 8, 4, warmup=10).cut(tl)
    assert [(s.decode_from, s.decode_to) for s in forward] == [(0, 30), (20, 60), (50, 100)]


def test_old_import_paths_still_work():
    import vsrapp.jobs.segments as plan
    import vsrapp.pipeline as pipeline

    # pipeline is the Python API's home (upscale_file); the Ray modules moved to vsrapp.cluster with their callers.
    assert pipeline.job_dir_for is job_dir_for and pipeline.DEFAULT_SEGMENT_FRAMES == 480
    assert plan.MAX_SEGMENT == 480 and plan.MIN_SEGMENT == 48


# ------------------------------------------------------------------------------------------ threads
def test_making_an_upscaler_leaves_the_process_threads_alone():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        Upscaler("bicubic", device="cpu", threads=2)
        assert torch.get_num_threads() == 1
        set_threads(2, "cpu")  # what the entry points call
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------ front ends
def test_the_cli_resolves_and_loads_the_model_once_for_a_folder(media, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (folder / name).write_bytes(Path(media.h264_aac).read_bytes())
    calls = {"get_model": 0, "resolve_model": 0}
    real_get = zoo.get_model

    def counted_get(name):
        calls["get_model"] += 1
        return real_get(name)

    def no_resolve(*args, **kwargs):
        calls["resolve_model"] += 1
        raise AssertionError("the job already names its resolved model")

    monkeypatch.setattr(zoo, "get_model", counted_get)
    monkeypatch.setattr(zoo, "resolve_model", no_resolve)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # --threads must not leak into other tests
    assert main(["upscale", str(folder), str(tmp_path / "out"), "--model", "bicubic", "--device", "cpu",
                 "--preset", "ultrafast", "--threads", "1", "-q"]) == 0
    assert calls == {"get_model": 1, "resolve_model": 0}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "b.mp4"]


def _interrupted_job(src: Path, out: Path) -> None:
    def crash(done: int, total: int | None) -> None:
        if done == 14:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_file(src, out, upscaler=_tiny(), segment_frames=12, preset="ultrafast", progress=crash)


def _tiny() -> Upscaler:
    return Upscaler(tiny_net(num_block=1), device="cpu", window=4, lookahead=2)


def test_a_job_folder_written_before_jobspec_resumes(media, tmp_path):
    """The manifest rewritten exactly as the code before JobSpec wrote it (pipeline.JobSettings via asdict, no
    `out_scale` in the oldest ones): the job continues and gives the uninterrupted frames."""
    src, out, reference = Path(media.h264_aac), tmp_path / "resumed.mp4", tmp_path / "reference.mp4"
    upscale_file(src, reference, upscaler=_tiny(), segment_frames=12, preset="ultrafast")
    _interrupted_job(src, out)
    path = job_dir_for(out) / "manifest.json"
    segments = json.loads(path.read_text())["segments"]
    assert segments and set(segments[0]) == {"index", "first_frame", "frames", "file", "state"}
    st = src.stat()
    legacy = {"version": 1, "source": {"path": str(src.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns},
              "settings": {"model": zoo.resolve_name(zoo.AUTO, "cpu"), "precision": "float32", "window": 4,
                           "lookahead": 2, "tile": None, "tile_overlap": 16, "codec": "libx264", "crf": None,
                           "preset": "ultrafast", "pix_fmt": None, "segment_frames": 12},
              "segments": segments}
    path.write_text(json.dumps(legacy, indent=1))
    report = upscale_file(src, out, upscaler=_tiny(), segment_frames=12, preset="ultrafast", resume=True)
    assert report.resumed_from == 12
    assert all(np.array_equal(a, b) for a, b in zip(frames_of(out), frames_of(reference), strict=True))


def test_a_job_folder_this_code_cannot_continue_is_one_line_from_the_cli(media, tmp_path, capsys):
    src, out = Path(media.h264_aac), tmp_path / "o.mp4"
    job = job_dir_for(out)
    job.mkdir()
    (job / "manifest.json").write_text(json.dumps({"version": 1, "source": source_signature(src),
                                                   "settings": {"model": "bicubic", "colour": "blue"},
                                                   "segments": []}))
    code = main(["upscale", str(src), str(out), "--model", "bicubic", "--device", "cpu", "--resume", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("vsrapp: error: ")
    assert "cannot be read" in err[0] and job.is_dir() and not out.exists()
