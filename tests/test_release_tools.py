"""The tools that turn training runs into shipped models and published figures: `pruning.bundle` (an export
into package data) and `benchmarks/pareto.py` (bench + eval JSONs into the speed/quality table and plot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vsrapp.bench.run import random_plan
from vsrapp.zoo import load_slim_export
from vsrapp_models.slim import build_slim
from vsrapp_pruning.bundle import bundle

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_export(tmp_path) -> Path:
    """A pruned-model export as training writes it, with this machine's paths in its recipe."""
    from vsrapp_models.pruned import save_pruned

    plan = random_plan(0.5, seed=3, num_feat=8, num_block=2)
    torch.manual_seed(0)
    model = build_slim(plan)
    meta = {"method": "ssl", "params": {"total": sum(p.numel() for p in model.parameters())},
            "recipe": {"sparsity": {"config": {"data": "/root/.cache/vsrapp/train", "out": "runs/x", "iters": 3}}},
            "source_model": "/work/main/runs/x"}
    return save_pruned(tmp_path / "export", model.state_dict(), plan, meta)


def test_bundle_stores_half_precision_without_local_paths_and_loads_equivalent(tiny_export, tmp_path):
    out = bundle(tiny_export, "tiny-ssl", target_root=tmp_path / "weights")
    assert out == tmp_path / "weights" / "tiny-ssl"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["recipe"]["sparsity"]["config"] == {"data": "train", "out": "x", "iters": 3}
    assert meta["source_model"] == "x" and meta["stored_dtype"] == "float16" and meta["bundled_as"] == "tiny-ssl"
    assert (out / "model.safetensors").stat().st_size < 0.6 * (tiny_export / "model.safetensors").stat().st_size

    original, shipped = load_slim_export(tiny_export), load_slim_export(out)
    lr = torch.rand(1, 3, 3, 16, 16)
    with torch.inference_mode():
        a, b = original(lr), shipped(lr)
    assert 0 < (a - b).abs().max() < 1e-2  # fp16 rounding of the weights: visible, but far below one 8-bit level
    with pytest.raises(ValueError, match="lower-case"):
        bundle(tiny_export, "../escape", target_root=tmp_path / "weights")


def _vid4_json(path: Path, psnr: float, ssim: float, clips: int = 4) -> Path:
    names = ["calendar", "city", "foliage", "walk"][:clips]
    path.write_text(json.dumps({"psnr_y": psnr, "ssim_y": ssim,
                                "clips": [{"name": n, "psnr_y": psnr, "ssim_y": ssim,
                                           "psnr_y_per_frame": [psnr + 1, psnr - 1]} for n in names]}))
    return path


def test_pareto_joins_bench_and_eval_into_table_and_plot(tiny_export, tmp_path):
    bench_json = tmp_path / "bench.json"
    parser_args = ["--models", str(tiny_export), "bicubic", "--size", "16x24", "--frames", "2", "--warmup", "0",
                   "--device", "cpu", "--threads", "1", "--no-e2e", "--json", str(bench_json), "-q"]
    assert subprocess.run([sys.executable, "-m", "vsrapp.cli", "bench", *parser_args], cwd=REPO).returncode == 0
    plot = tmp_path / "pareto.png"
    cmd = [sys.executable, str(REPO / "benchmarks" / "pareto.py"), "--bench", str(bench_json),
           "--row", "bicubic", "bicubic", str(_vid4_json(tmp_path / "b.json", 23.78, 0.6347)),
           "--row", "tiny SSL", str(tiny_export), str(_vid4_json(tmp_path / "t.json", 24.5, 0.7)),
           "--point", "shipped", str(tiny_export), str(_vid4_json(tmp_path / "s.json", 24.8, 0.71)),
           "--plot", str(plot), "--json", str(tmp_path / "p.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "| tiny SSL |" in done.stdout and "24.50 / 0.7000 | 23.50 |" in done.stdout
    assert "23.78 / 0.6347" in done.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    points = json.loads((tmp_path / "p.json").read_text())["points"]
    assert [p["kind"] for p in points] == ["reference", "curve", "point"] and points[1]["gmacs"] > 0

    partial = _vid4_json(tmp_path / "two.json", 25.0, 0.7, clips=2)
    cmd = cmd[:4] + ["--row", "cut", "bicubic", str(partial)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert done.returncode != 0 and "not a whole-Vid4 result" in done.stderr


def _write_clip(folder: Path, frames: int = 4, h: int = 32, w: int = 48) -> Path:
    import cv2
    import numpy as np
    from media import write_png_frames

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (h, w + 3 * frames, 3), dtype=np.uint8), (5, 5), 1.5)
    return write_png_frames(folder, [base[:, 3 * i:3 * i + w] for i in range(frames)])  # a pan of 3 px per frame


def test_stability_plays_the_clip_ping_pong_and_scores_every_frame(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import stability
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert list(stability.ping_pong(3, 9)) == [0, 1, 2, 1, 0, 1, 2, 1, 0]
    with pytest.raises(ValueError):
        list(stability.ping_pong(1, 3))
    clip = _write_clip(tmp_path / "clip")
    out = tmp_path / "stability.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "stability.py"), "--model", "bicubic", "--clip", str(clip),
           "--frames", "10", "--threads", "1", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert len(result["psnr_y_per_frame"]) == 10 and result["clip_frame_order"][:7] == [0, 1, 2, 3, 2, 1, 0]
    # Bicubic against itself: every frame exactly at the reference, so no blow-up.
    assert result["worst_margin_over_bicubic"]["db"] == 0.0
    assert result["psnr_y_per_frame"][0] == result["psnr_y_per_frame"][6]  # the same clip frame, no state
    bad = subprocess.run(cmd[:5] + [str(tmp_path / "missing")], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "error" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_bundling_is_byte_reproducible(tiny_export, tmp_path):
    """The zoo pins each bundled file by sha256, so bundling the same export again, in a fresh process, must
    give the same bytes (safetensors orders a multi-entry metadata map differently from run to run)."""
    digests = set()
    for k in range(3):
        code = ("import sys, hashlib; from pathlib import Path; from pruning.bundle import bundle; "
                "out = bundle(sys.argv[1], 'tiny-ssl', target_root=Path(sys.argv[2])); "
                "print(hashlib.sha256((out / 'model.safetensors').read_bytes()).hexdigest())")
        done = subprocess.run([sys.executable, "-c", code, str(tiny_export), str(tmp_path / f"w{k}")],
                              capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stderr
        digests.add(done.stdout.strip())
    assert len(digests) == 1
