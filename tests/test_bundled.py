"""Models that ship inside the package: present and verified after install, the default model whether or not
the official weights are installed, and their model-card numbers reproducible with `vsrapp eval`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import av
import pytest
import torch

from vsrapp import zoo
from vsrapp.cli import main

REPO = Path(__file__).resolve().parents[1]
BUNDLED = [e for e in zoo.list_models() if e.bundled]
# Measured, not chosen: the bundled bidirectional model fastest in torch on the CPU (docs/MODELS.md), 1.19x
# ssl-bi's speed at +0.43 dB on Vid4.
CPU_DEFAULT = "basicvsr-b8-hr32"


def test_the_project_ships_a_bidirectional_and_a_forward_only_model():
    assert zoo.best_bundled() in {e.name for e in BUNDLED}
    assert any(e.bidirectional for e in BUNDLED) and any(not e.bidirectional for e in BUNDLED)


@pytest.mark.parametrize("entry", BUNDLED, ids=lambda e: e.name)
def test_bundled_model_is_verified_small_and_loads(entry, one_thread):
    from safetensors.torch import load_file

    assert zoo.weights_status(entry) == "bundled"
    path = zoo.weights_path(entry)
    assert path.stat().st_size == entry.weights.size < 9_000_000  # "a few MB": stored in fp16
    assert {t.dtype for t in load_file(str(path)).values()} == {torch.float16}
    meta = json.loads((path.parent / "meta.json").read_text())
    assert meta["method"] in ("ssl", "blocks")
    # No local paths (a script of the repository may be named).
    assert not re.search(r'"(/|~|\.\.|runs/)', json.dumps(meta["recipe"]))

    model = zoo.get_model(entry.name)
    assert getattr(model, "bidirectional", False) == entry.bidirectional
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == meta["params"]["total"]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 storage, fp32 compute on the CPU
    lr = torch.rand(1, 3, 3, 24, 32)
    with torch.inference_mode():
        out = model(lr)
    assert out.shape == (1, 3, 3, 96, 128) and torch.isfinite(out).all()
    for key in ("vid4_bi_psnr_y", "vid4_bi_ssim_y", "params_without_spynet"):
        assert key in entry.metrics, f"{entry.name} is shipped without its measured {key}"
    assert entry.metrics["params_without_spynet"] == meta["params"]["without_spynet"]


def test_a_damaged_bundled_model_is_refused(tmp_path, monkeypatch):
    entry = zoo.get_entry(zoo.best_bundled())
    copy = tmp_path / entry.weights.file
    shutil.copytree(zoo.weights_path(entry).parent, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(zoo, "BUNDLED_DIR", tmp_path)
    assert zoo.weights_status(entry) == "corrupt"
    with pytest.raises(zoo.WeightsError, match="reinstall"):
        zoo.get_model(entry.name)


def test_auto_is_the_best_bundled_model_with_or_without_the_official_weights(tmp_path, monkeypatch, weights_env):
    assert zoo.resolve_name("auto") == zoo.best_bundled() == CPU_DEFAULT  # official weights installed
    monkeypatch.setenv("VSRAPP_WEIGHTS", str(tmp_path))  # a fresh machine: nothing fetched
    assert zoo.resolve_name("auto") == CPU_DEFAULT
    assert zoo.resolve_name("bicubic") == "bicubic"
    assert zoo.resolve_name(zoo.DENSE_REFERENCE) == zoo.DENSE_REFERENCE  # the sharper model stays one flag away


def test_auto_on_a_gpu_is_the_dense_model_when_its_weights_are_installed(tmp_path, monkeypatch, weights_env):
    """The device decides: on CUDA with the official weights the sharpest model, on a CPU (or a fresh install,
    or a damaged weights file) the bundled pruned default."""
    assert zoo.resolve_name("auto", "cuda") == zoo.resolve_name("auto", "cuda:1") == zoo.DENSE_REFERENCE
    assert zoo.resolve_name("auto", "cpu") == zoo.resolve_name("auto", torch.device("cpu")) == CPU_DEFAULT
    assert zoo.resolve_model("auto", "cuda") == (zoo.DENSE_REFERENCE, zoo.DENSE_REFERENCE)
    monkeypatch.setenv("VSRAPP_WEIGHTS", str(tmp_path))  # nothing fetched: the sharpest bundled model
    assert zoo.resolve_name("auto", "cuda") == "basicvsr-b15"
    (tmp_path / zoo.get_entry(zoo.DENSE_REFERENCE).weights.file).write_bytes(b"not the weights")
    assert zoo.resolve_name("auto", "cuda") == "basicvsr-b15"
    assert zoo.resolve_name("auto", "cpu") == CPU_DEFAULT


@pytest.mark.parametrize(("height", "width", "fps", "expected"), [
    (180, 320, 30.0, zoo.DENSE_REFERENCE),  # dense: 60.6 ms at 540x960 -> 6.7 ms here
    (360, 640, 25.0, zoo.DENSE_REFERENCE),  # 26.9 ms of a 40 ms frame
    (540, 960, 30.0, "basicvsr-b8-hr32"),  # dense 60.6 and basicvsr-b15 45.3 ms miss 33.3; b8-hr32 29.2 keeps it
    (540, 960, 20.0, "basicvsr-b15"),  # 50 ms a frame: the sharpest pruned model that keeps up
    (1080, 1920, 60.0, "basicvsr-b8-hr32"),  # nothing keeps up: the fastest bidirectional model
])
def test_auto_on_a_gpu_keeps_the_videos_pace_with_the_sharpest_model_that_can(height, width, fps, expected,
                                                                             weights_env):
    assert zoo.resolve_name("auto", "cuda", pace=zoo.Pace(height, width, fps)) == expected


def test_auto_on_a_gpu_without_the_dense_weights_keeps_pace_with_the_bundled_models(tmp_path, monkeypatch):
    monkeypatch.setenv("VSRAPP_WEIGHTS", str(tmp_path))
    assert zoo.resolve_name("auto", "cuda", pace=zoo.Pace(180, 320, 30.0)) == "basicvsr-b15"
    assert zoo.resolve_name("auto", "cpu", pace=zoo.Pace(540, 960, 30.0)) == CPU_DEFAULT  # a CPU: no GPU figures


def test_the_pace_of_a_folder_is_its_largest_frame_and_fastest_rate(media, tmp_path):
    from vsrapp.cli import _pace
    from vsrapp.video import probe

    files = [media.h264_aac, media.odd_size, media.vfr, media.not_video]  # the unreadable one is skipped
    infos = [probe(f) for f in files[:3]]
    pace = _pace([(f, tmp_path / f.name) for f in files])
    largest = max(infos, key=lambda i: i.height * i.width)
    assert (pace.height, pace.width) == (largest.height, largest.width)
    assert pace.fps == max(float(i.fps or 30) for i in infos)
    assert _pace([(media.not_video, tmp_path / "x.mp4")]) is None


def test_models_command_states_the_rule_and_this_machines_default(capsys, weights_env):
    assert main(["models"]) == 0
    rule = capsys.readouterr().out.strip().splitlines()[-2]  # the last line says the precision
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert f"on this machine ({device}): {zoo.resolve_name('auto', device)}" in rule and zoo.AUTO_RULE in rule


@pytest.mark.parametrize("fetched", [False, True], ids=["nothing-fetched", "after-setup"])
def test_upscale_uses_the_bundled_default_model(fetched, media, tmp_path, monkeypatch, capsys,
                                                     official_weights_dir):
    """`vsrapp upscale in out` on a fresh install, and after the README's set-up has fetched the official
    weights: both run the bundled CPU default from the package, say so, and write a complete x4 video."""
    weights = official_weights_dir if fetched else tmp_path / "nothing-fetched"
    monkeypatch.setenv("VSRAPP_WEIGHTS", str(weights))
    out = tmp_path / "out.mp4"
    assert main(["upscale", str(media.odd_size), str(out)]) == 0
    captured = capsys.readouterr()
    assert f"with {CPU_DEFAULT} on cpu" in captured.out and "vsrapp:" not in captured.err  # no note, no error
    with av.open(str(media.odd_size)) as src, av.open(str(out)) as dst:
        s, d = src.streams.video[0], dst.streams.video[0]
        assert (d.width, d.height) == (4 * s.width, 4 * s.height)
        assert sum(1 for _ in dst.decode(video=0)) == sum(1 for _ in src.decode(video=0))


@pytest.mark.parametrize("entry", BUNDLED, ids=lambda e: e.name)
def test_eval_reproduces_the_model_card_number(entry, vid4_root, capsys):
    """The card's per-clip figure for the smallest Vid4 clip, re-measured with the command it quotes."""
    card = json.loads((REPO / "docs" / "results" / f"vid4_{entry.name}.json").read_text())
    assert card["model"] == entry.name and len(card["clips"]) == 4
    city = next(c for c in card["clips"] if c["name"] == "city")
    assert main(["eval", "--model", entry.name, "--data", str(vid4_root), "--clips", "city", "-q"]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith("city"))
    assert int(row[1]) == city["frames"]
    assert abs(float(row[2]) - city["psnr_y"]) < 5e-3 and abs(float(row[3]) - city["ssim_y"]) < 5e-4
    assert abs(entry.metrics["vid4_bi_psnr_y"] - card["psnr_y"]) < 5e-5
    assert abs(entry.metrics["vid4_bi_ssim_y"] - card["ssim_y"]) < 5e-5
