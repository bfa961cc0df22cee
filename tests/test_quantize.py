"""The OpenVINO backend and int8 export on tiny networks (CPU, seconds): OpenVINO runs the fp32 graphs with the
torch frames; an int8 export calibrated on clips the test writes (a folder of frames, a video file) is an export
folder the engine runs behind the same step API and stays close to torch; ONNX Runtime refuses int8 graphs in one
line; mistakes on the command line and a missing extra are one line and leave nothing behind."""

from __future__ import annotations

import av
import pytest
import torch
from media import write_png_frames, write_video
from nets import psnr, smooth_frames, tiny_net

from vsrapp import Upscaler, export, quantize
from vsrapp.cli import main
from vsrapp.engine import backends

pytestmark = pytest.mark.usefixtures("one_thread", "private_cache")


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    """A calibration folder: two clips as frame folders and one as a video file."""
    root = tmp_path_factory.mktemp("calib")
    write_png_frames(root / "a", smooth_frames(6, 40, 48, seed=11))
    write_png_frames(root / "b", smooth_frames(6, 52, 60, seed=12))
    write_video(root / "c.mp4", smooth_frames(6, 48, 64, seed=13))
    (root / "ATTRIBUTION.md").write_text("made by the test\n")  # notes beside the clips are not clips
    return root


def test_calibration_clips_from_frames_and_videos(calib):
    clips = quantize.calibration_clips(calib, frames=5, size=44)
    assert len(clips) == 3
    assert [tuple(c.shape) for c in clips] == [(5, 3, 40, 44), (5, 3, 44, 44), (5, 3, 44, 44)]
    assert all(c.dtype == torch.float32 and 0 <= float(c.min()) and float(c.max()) <= 1 for c in clips)
    assert len(quantize.calibration_clips(calib / "a")) == 1  # one folder of frames is one clip
    assert len(quantize.calibration_clips(calib / "c.mp4")) == 1
    assert len(quantize.calibration_clips(calib, max_clips=2)) == 2


def test_calibration_without_clips_is_one_line(tmp_path):
    still = tmp_path / "one"
    write_png_frames(still, smooth_frames(1, 40, 40))
    with pytest.raises(quantize.QuantizeError, match="no clip of at least 2 frames"):
        quantize.calibration_clips(still)
    with pytest.raises(quantize.QuantizeError, match="no such file"):
        quantize.calibration_clips(tmp_path / "missing")


@pytest.mark.parametrize("bidirectional", [True, False])
def test_openvino_fp32_gives_the_torch_frames(ov, bidirectional):
    model = tiny_net(bidirectional, num_feat=8, num_block=2)
    frames = smooth_frames(7, 36, 44)
    kw = dict(device="cpu", window=3, lookahead=2, threads=1)
    want = list(Upscaler(model, **kw).upscale_frames(frames))
    up = Upscaler(model, backend="openvino", **kw)
    assert isinstance(up.model, backends.GraphModel) and up.model.backend == "openvino"
    got = list(up.upscale_frames(frames))
    assert len(got) == len(want) == 7
    assert min(psnr(a, b) for a, b in zip(got, want)) >= 50


@pytest.fixture(scope="module")
def int8_export(ov, calib, tmp_path_factory):
    """A tiny bidirectional model, its fp32 export and its int8 export calibrated on ``calib``."""
    torch.manual_seed(0)
    model = tiny_net(True, num_feat=8, num_block=2).eval()
    root = tmp_path_factory.mktemp("int8")
    fp32 = export.export_onnx(model, root / "fp32", name="tiny")
    clips = quantize.calibration_clips(calib, frames=5, size=40)
    out = quantize.quantize_export(fp32, root / "int8", clips, samples=12, threads=1, calibration="calib")
    return model, fp32, out


def test_int8_export_runs_behind_the_step_api_close_to_torch(int8_export):
    model, _, folder = int8_export
    manifest = export.read_manifest(folder)
    assert manifest["precision"] == "int8" and manifest["runtime"] == "openvino"
    assert manifest["quantization"]["clips"] == 3 and manifest["quantization"]["fp32_graphs"] == []
    assert {g["file"] for g in manifest["graphs"].values()} == {f"{g}.xml" for g in manifest["graphs"]}
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    frames = smooth_frames(8, 40, 52, seed=5)
    kw = dict(device="cpu", window=4, lookahead=2, threads=1)
    want = list(Upscaler(model, **kw).upscale_frames(frames))
    up = Upscaler(str(folder), backend="openvino", **kw)
    assert up.model.precision == "int8"
    got = list(up.upscale_frames(frames))
    assert len(got) == 8 and all(a.shape == b.shape for a, b in zip(got, want))
    # int8 changes the numbers a little, never the picture: a broken quantization (wrong ranges, a graph fed the
    # wrong input) is off by tens of levels, below 25 dB.
    worst = min(psnr(a, b) for a, b in zip(got, want))
    assert 30 <= worst < 80


def test_int8_export_keeps_named_graphs_in_fp32(int8_export, calib, tmp_path):
    _, fp32, _ = int8_export
    clips = quantize.calibration_clips(calib, frames=4, size=40, max_clips=2)
    out = quantize.quantize_export(fp32, tmp_path / "mixed", clips, keep_fp32=["flow"], samples=6, threads=1)
    graphs = export.read_manifest(out)["graphs"]
    assert graphs["flow"]["file"] == "flow.onnx" and graphs["reconstruct"]["file"] == "reconstruct.xml"
    with pytest.raises(quantize.QuantizeError, match="no graph named warp"):
        quantize.quantize_export(fp32, tmp_path / "bad", clips, keep_fp32=["warp"])
    assert not (tmp_path / "bad").exists()


def test_onnxruntime_refuses_int8_graphs_in_one_line(int8_export, capsys, tmp_path):
    _, _, folder = int8_export
    with pytest.raises(backends.BackendError, match="--backend openvino"):
        Upscaler(str(folder), backend="onnxruntime", device="cpu")


def test_export_cli_int8_mistakes_are_one_line(ov, calib, tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        (["--int8", "--calibrate", str(calib)], "--int8 needs --format openvino"),
        (["--format", "openvino"], "--format openvino is for int8 graphs"),
        (["--format", "openvino", "--int8", "--calibrate", str(tmp_path / "none")], "no such file or folder"),
    ]
    for extra, message in cases:
        assert main(["export", "ssl-uni", str(out), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("vsrapp: error:") and message in err[0]
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_openvino_not_installed_is_one_line_naming_the_extra(hide_module, tmp_path, capsys):
    hide_module("openvino")
    src = tmp_path / "in.mp4"
    src.write_bytes(b"not read: the backend is checked first")
    code = main(["upscale", str(src), str(tmp_path / "out.mp4"), "--backend", "openvino", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and 'pip install "vsrapp[openvino]"' in err[0]
    assert not (tmp_path / "out.mp4").exists()


def test_int8_graphs_leave_coordinates_residuals_and_concats_in_fp32(int8_export):
    """What the measurements of docs/RESULTS.md "int8" keep in fp32: no quantizer feeds a GridSample, a Gather
    (sampling coordinates), an Add (the residual stream), or a convolution that reads a Concat (the LR frame beside
    features on another scale); every other convolution reads a quantized input."""
    import openvino

    _, fp32, folder = int8_export
    core = openvino.Core()
    step = core.read_model(str(fp32 / "backward_step.onnx"))
    concat_fed = quantize.concat_fed_convolutions(step)
    assert len(concat_fed) == 1 and "main.0" in concat_fed[0]  # the trunk's first conv: concat(lr, warped feat)
    model = core.read_model(str(folder / "backward_step.xml"))
    quantized_consumers = set()
    for op in model.get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            for port in op.output(0).get_target_inputs():
                node = port.get_node()
                quantized_consumers.add((node.get_type_name(), node.get_friendly_name()))
    kinds = {kind for kind, _ in quantized_consumers}
    assert kinds.isdisjoint({"GridSample", "Gather", "Add"})
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    int8_convs = {name for kind, name in quantized_consumers if kind == "Convolution"}
    assert len(convs) - len(int8_convs) == 1 and not any("main.0" in n for n in int8_convs)


def test_cli_runs_an_int8_folder_with_the_default_backend(int8_export, tmp_path, capsys):
    """`vsrapp upscale --model FOLDER` needs no --backend: auto runs int8 graphs in OpenVINO; asking for torch is
    one line that names the backend, and leaves no output."""
    _, fp32, folder = int8_export
    src = tmp_path / "in.mp4"
    write_video(src, smooth_frames(5, 40, 48, seed=21))
    assert backends.resolve_backend("auto", str(folder)) == "openvino"
    assert backends.resolve_backend("auto", str(fp32)) == "onnxruntime"
    assert main(["upscale", str(src), str(tmp_path / "out.mp4"), "--model", str(folder), "-q"]) == 0
    with av.open(str(tmp_path / "out.mp4")) as c:
        frames = [f for f in c.decode(video=0)]
    assert len(frames) == 5 and (frames[0].height, frames[0].width) == (160, 192)
    capsys.readouterr()
    code = main(["upscale", str(src), str(tmp_path / "out2.mp4"), "--model", str(folder), "--backend", "torch", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--backend openvino" in err[0]
    assert not (tmp_path / "out2.mp4").exists()


def test_export_cli_int8_without_clips_calibrates_on_the_bundled_photographs(ov, tmp_path, capsys):
    clips = quantize.photo_clips(5, frames=4, size=40)
    assert [tuple(c.shape)[:2] for c in clips] == [(4, 3)] * 5 and not torch.equal(clips[0], clips[4])
    assert all(c.shape[2] == c.shape[3] <= 40 for c in clips)  # square, no larger than asked (a small photo: less)
    assert all(0.05 < float(c.mean()) < 0.95 and float(c.std()) > 0.02 for c in clips)  # pictures, not blanks
    assert all(float((c[1:] - c[:-1]).abs().mean()) > 0 for c in clips if c.shape[2] > 8)  # the camera moves
    out = tmp_path / "ssl-uni-int8"
    assert main(["export", "ssl-uni", str(out), "--format", "openvino", "--int8", "--calibration-clips", "1",
                 "--threads", "1"]) == 0
    assert f"calibrated on 1 clips of {export.PHOTOS}" in capsys.readouterr().out
    manifest = export.read_manifest(out)
    assert manifest["precision"] == "int8" and manifest["quantization"]["calibration"] == export.PHOTOS


def test_the_calibration_photographs_ship_with_their_licences():
    photos = sorted(p.name for p in quantize.PHOTOS_DIR.glob("*.jpg"))
    attribution = (quantize.PHOTOS_DIR / "ATTRIBUTION.md").read_text()
    assert len(photos) >= 3 and all(f"`{name}`" in attribution for name in photos)
