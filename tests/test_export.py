"""ONNX export and the ONNX Runtime backend on tiny networks (CPU, seconds): every graph agrees with torch at
frame sizes other than the traced one, the backend gives the torch frames through the engine (windows,
look-ahead, tiles, resumed streams), the manifest describes the graphs, exports are atomic and cached, and a
missing extra is one line that says what to install."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nets import psnr, smooth_frames, tiny_net

from vsrapp import Upscaler, export
from vsrapp.bench.run import random_plan
from vsrapp.cli import main
from vsrapp.engine import backends
from vsrapp_models.slim import build_slim

pytestmark = pytest.mark.usefixtures("one_thread", "private_cache")


def tiny_slim(seed: int = 0):
    """A slim (RSC) network of a random plan: gathers and scatters channels like the bundled ssl models."""
    torch.manual_seed(seed)
    return build_slim(random_plan(0.5, seed=3, num_feat=8, num_block=2)).eval()


MODELS = {
    "dense-bi": lambda: tiny_net(True, num_feat=8, num_block=2),
    "dense-uni": lambda: tiny_net(False, num_feat=8, num_block=2),
    "slim-bi": tiny_slim,
}


@pytest.fixture(scope="module")
def exported(ort, tmp_path_factory):
    """Each tiny model and its export folder (exported once per module)."""
    out = {}
    for name, make in MODELS.items():
        model = make()
        out[name] = (model, export.export_onnx(model, tmp_path_factory.mktemp("onnx") / name, name=name))
    return out


# ------------------------------------------------------------------------------------------- the graphs
@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("size", [(36, 45), (64, 100)])
def test_every_graph_agrees_with_torch_at_untraced_sizes(exported, name, size):
    model, folder = exported[name]
    manifest = export.read_manifest(folder)
    inputs = export.sample_inputs(model, size, seed=5)
    assert size != export.TRACE_SIZE
    for graph, spec in manifest["graphs"].items():
        feed = inputs[graph]
        assert list(feed) == spec["inputs"]
        with torch.no_grad():
            ref = getattr(model, graph)(*feed.values())
        got = backends.new_session(folder / spec["file"], threads=1).run(None, {k: v.numpy() for k, v in feed.items()})
        assert len(got) == 1 and got[0].shape == tuple(ref.shape)
        assert np.abs(got[0] - ref.numpy()).max() <= 1e-4 * max(1.0, float(ref.abs().max())), graph
    assert tuple(inputs["reconstruct"]["lr"].shape[-2:]) == size
    assert ref.shape[-2:] == (4 * size[0], 4 * size[1])


@pytest.mark.parametrize("name", list(MODELS))
def test_manifest_describes_the_graphs(exported, ort, name):
    model, folder = exported[name]
    m = json.loads((folder / export.MANIFEST).read_text())
    bidirectional = name.endswith("-bi")
    assert (m["format"], m["version"], m["model"]) == ("vsrapp-onnx", 1, name)
    assert (m["bidirectional"], m["scale"], m["num_feat"]) == (bidirectional, 4, 8)
    assert m["pad_multiple"] == 1 and m["min_size"] == export.MIN_SIZE and m["opset"] == export.DEFAULT_OPSET
    expected = ["flow", "backward_step", "forward_step", "reconstruct"] if bidirectional else \
        ["flow", "forward_step", "reconstruct"]
    assert list(m["graphs"]) == expected
    assert sorted(p.name for p in folder.iterdir()) == sorted([export.MANIFEST, *(f"{g}.onnx" for g in expected)])
    assert m["graphs"]["reconstruct"]["inputs"] == (["lr", "feat_backward", "feat_forward"] if bidirectional
                                                    else ["lr", "feat_forward"])
    assert m["source_sha256"] == export.model_digest(model)
    assert max(m["check"]["max_abs_diff"].values()) < 1e-4
    for spec in m["graphs"].values():
        session = backends.new_session(folder / spec["file"], threads=1)
        assert [i.name for i in session.get_inputs()] == spec["inputs"]
        assert [o.name for o in session.get_outputs()] == spec["outputs"]
        # Batch, height and width are named (dynamic) dimensions, not the traced numbers.
        assert all(isinstance(d, str) for i in session.get_inputs() for d in (i.shape[0], i.shape[2], i.shape[3]))


# ------------------------------------------------------------------------------------------- the backend
@pytest.mark.parametrize("name,size,tile", [("dense-bi", (36, 44), None), ("dense-uni", (36, 44), None),
                                            ("slim-bi", (37, 90), 48)])
def test_onnxruntime_backend_gives_the_torch_frames(exported, name, size, tile):
    model, folder = exported[name]
    frames = smooth_frames(9, *size)
    kw = dict(device="cpu", window=3, lookahead=2, tile=tile, tile_overlap=8, threads=1)
    want = list(Upscaler(model, **kw).upscale_frames(frames))
    for source in (model, str(folder)):  # exported on the fly into the cache, and an export folder as it is
        up = Upscaler(source, backend="onnxruntime", **kw)
        assert isinstance(up.model, backends.GraphModel) and up.model.backend == "onnxruntime"
        got = list(up.upscale_frames(frames))
        assert len(got) == len(want) == 9
        for a, b in zip(got, want):
            assert a.shape == b.shape == (4 * size[0], 4 * size[1], 3) and a.dtype == np.uint8
            assert psnr(a, b) >= 50 and np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["dense-bi", "dense-uni"])
def test_onnxruntime_stream_resumes_from_torch_state(exported, name):
    """A stream cut at a window boundary by the torch backend continues on ONNX Runtime with the same frames."""
    model, folder = exported[name]
    frames = smooth_frames(8, 36, 44, seed=2)
    kw = dict(device="cpu", window=3, lookahead=2, threads=1)
    want = list(Upscaler(model, **kw).upscale_frames(frames))
    first = Upscaler(model, **kw)
    done = [out for f in frames[:5] for out in first.push(f)]
    assert len(done) == (3 if name == "dense-bi" else 5)
    resumed = Upscaler(str(folder), backend="onnxruntime", **kw)
    resumed.load_state_dict(first.state_dict(), len(done))
    rest = list(resumed.upscale_frames(frames[len(done):]))
    assert len(done) + len(rest) == len(frames)
    for a, b in zip(done + rest, want):
        assert psnr(a, b) >= 50


def test_on_the_fly_export_is_cached_by_weights(ort, tmp_path):
    model = tiny_net(True, num_feat=8, num_block=1)
    Upscaler(model, backend="onnxruntime", device="cpu", threads=1)
    cache = export.cache_dir()
    first = list(cache.iterdir())
    assert len(first) == 1 and export.is_export_folder(first[0])
    stamp = (first[0] / export.MANIFEST).stat().st_mtime_ns
    Upscaler(model, backend="onnxruntime", device="cpu", threads=1)
    assert list(cache.iterdir()) == first and (first[0] / export.MANIFEST).stat().st_mtime_ns == stamp
    with torch.no_grad():
        model.conv_last.bias.add_(0.5)  # new weights: a new export, never the stale one
    up = Upscaler(model, backend="onnxruntime", device="cpu", threads=1)
    assert len(list(cache.iterdir())) == 2 and up.model.folder != first[0]


def test_backend_choice_and_limits(ort):
    assert backends.resolve_backend("auto") == "torch"
    assert Upscaler(tiny_net(False, num_block=1), device="cpu", backend="auto").backend == "torch"
    with pytest.raises(backends.BackendError, match="unknown backend"):
        Upscaler(tiny_net(False, num_block=1), device="cpu", backend="tensorrt")
    with pytest.raises(backends.BackendError, match="runs on the CPU"):
        Upscaler(tiny_net(False, num_block=1), device="cpu", precision="bf16", backend="onnxruntime")
    # The bicubic baseline has no network to export: it runs as it is.
    up = Upscaler("bicubic", device="cpu", backend="onnxruntime")
    assert not isinstance(up.model, backends.GraphModel)



def test_auto_precision_on_an_amx_cpu_is_the_graphs_own_for_a_graph_backend(ort, monkeypatch, tmp_path):
    """Where torch would autocast to bf16 (AMX), a graph backend still runs its fp32 graphs: no error."""
    from vsrapp.engine import hardware

    monkeypatch.setattr(hardware, "has_amx_bf16", lambda: True)
    model = tiny_net(False, num_block=1)
    assert Upscaler(model, device="cpu").precision == "bf16"
    up = Upscaler(model, device="cpu", backend="onnxruntime", threads=1)
    assert isinstance(up.model, backends.GraphModel) and up.precision == "fp32"


# ------------------------------------------------------------------------------------------- CLI and errors
def test_backend_not_installed_is_one_line_naming_the_extra(tmp_path, hide_module, capsys):
    hide_module("onnxruntime")
    src = tmp_path / "in.mp4"
    src.write_bytes(b"not read: the backend is checked first")
    code = main(["upscale", str(src), str(tmp_path / "out.mp4"), "--backend", "onnxruntime", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert err[0].startswith("vsrapp: error:") and 'pip install "vsrapp[onnx]"' in err[0]
    assert not (tmp_path / "out.mp4").exists()
    with pytest.raises(backends.BackendError, match=r"vsrapp\[onnx\]"):
        Upscaler(tiny_net(False, num_block=1), device="cpu", backend="onnxruntime")


def test_export_without_onnx_is_one_line(tmp_path, hide_module, capsys):
    hide_module("onnx", "onnxruntime")
    code = main(["export", "ssl-uni", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and 'pip install "vsrapp[onnx]"' in err[0]
    assert list(tmp_path.iterdir()) == []


def test_export_cli_of_a_pruned_folder_is_atomic_and_keeps_existing_output(ort, tmp_path, capsys):
    from safetensors.torch import save_file

    src = tmp_path / "pruned"
    src.mkdir()
    model = tiny_slim()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(src / "model.safetensors"))
    (src / "plan.json").write_text(json.dumps(model.plan))
    out = tmp_path / "exports" / "pruned-onnx"
    assert main(["export", str(src), str(out), "--format", "onnx"]) == 0
    assert "checked in ONNX Runtime" in capsys.readouterr().out
    manifest = export.read_manifest(out)
    assert manifest["model"] == "pruned" and manifest["bidirectional"]
    assert [p.name for p in out.parent.iterdir()] == ["pruned-onnx"]  # no temporary folder left behind
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    assert main(["export", str(src), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    assert main(["export", str(src), str(out), "--overwrite", "--no-check"]) == 0
    assert "check" not in export.read_manifest(out)
    assert [p.name for p in out.parent.iterdir()] == ["pruned-onnx"]

    assert main(["export", "bicubic", str(tmp_path / "bicubic")]) == 2
    assert "needs no export" in capsys.readouterr().err
    assert not (tmp_path / "bicubic").exists()


def test_export_cli_refuses_unknown_model_in_one_line(capsys, tmp_path):
    assert main(["export", "no-such-model", str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model" in err[0]
