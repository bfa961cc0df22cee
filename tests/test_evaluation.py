"""The evaluation protocol: degradation, Y-channel metrics, and `vsrapp eval` end to end on a short clip."""

from __future__ import annotations

import json
import math

import numpy as np

from vsrapp.cli import main
from vsrapp.evaluation import bicubic_degrade, y_metrics


def test_psnr_is_on_bt601_luma_of_rgb_input():
    """Raising only red by 10 codes changes Y by 10 * 65.481 / 255; a channel-order mix-up (basicsr wants BGR)
    would see the blue weight 24.966 instead, and a wrong PSNR."""
    rng = np.random.default_rng(0)
    gt = rng.integers(20, 200, size=(48, 64, 3), dtype=np.uint8)
    out = gt.copy()
    out[..., 0] += 10
    psnr, ssim = y_metrics(out, gt)
    expected = 10 * math.log10(255**2 / (10 * 65.481 / 255) ** 2)
    assert abs(psnr - expected) < 1e-6
    assert 0.0 < ssim < 1.0
    assert y_metrics(gt, gt)[1] > 0.9999


def test_bi_degradation_is_a_quarter_size_and_8_bit():
    gt = np.full((144, 176, 3), 128, dtype=np.uint8)
    lr = bicubic_degrade(gt)
    assert lr.shape == (36, 44, 3) and lr.dtype == np.uint8 and np.all(lr == 128)


def test_cli_eval_on_a_short_real_clip_writes_table_and_json(vid4_root, weights_env, tmp_path, capsys):
    out = tmp_path / "res.json"
    code = main(["eval", "--model", "basicvsr-vimeo-bi", "--data", str(vid4_root), "--clips", "walk",
                 "--max-frames", "3", "--device", "cpu", "--json", str(out), "-q"])
    assert code == 0
    table = capsys.readouterr().out
    assert "walk" in table and "average" in table
    result = json.loads(out.read_text())
    clip = result["clips"][0]
    assert clip["name"] == "walk" and clip["frames"] == 3 and len(clip["psnr_y_per_frame"]) == 3
    # BasicVSR beats bicubic on Vid4 'walk' by well over a decibel (26.1 dB for bicubic over the whole clip).
    assert clip["psnr_y"] > 28.0 and 0.8 < clip["ssim_y"] < 1.0

    main(["eval", "--model", "bicubic", "--data", str(vid4_root), "--clips", "walk", "--max-frames", "3",
          "--json", str(out), "-q"])
    assert json.loads(out.read_text())["psnr_y"] < clip["psnr_y"] - 1.0


def test_cli_eval_scores_the_precision_upscale_runs(vid4_root, weights_env, tmp_path):
    """--precision bf16 scores the network under the Upscaler's autocast and says so: close to fp32, not equal."""
    scores = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.json"
        assert main(["eval", "--model", "basicvsr-uni-b7-hr16", "--data", str(vid4_root), "--clips", "walk",
                     "--max-frames", "3", "--device", "cpu", "--precision", precision, "--json", str(out), "-q"]) == 0
        result = json.loads(out.read_text())
        assert result["precision"] == precision
        scores[precision] = result["clips"][0]["psnr_y_per_frame"]
    assert scores["bf16"] != scores["fp32"]
    assert all(abs(a - b) < 0.3 for a, b in zip(scores["bf16"], scores["fp32"]))
