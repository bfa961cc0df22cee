"""``vsrapp bench`` on tiny models on the CPU: a well-formed result file, MAC counts against hand counts, the
recurrence driver against ``model(clip)``, and the GPU variants' dtype/layout logic (skipped cleanly off CUDA)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vsrapp.bench import profiling as prof
from vsrapp.bench import run as bench
from vsrapp.engine.hardware import CPU_FEATURES
from vsrapp_models.basicvsr import BasicVSR, BasicVSRUni
from vsrapp_models.complexity import plan_macs_formula
from vsrapp_models.slim import build_slim, validate_plan

SPY_WIDTHS = [8, 32, 64, 32, 16, 2]
SPY_MACS_PER_PIXEL = 49 * sum(a * b for a, b in zip(SPY_WIDTHS[:-1], SPY_WIDTHS[1:]))


def spynet_macs_by_hand(h: int, w: int) -> int:
    h32, w32 = -(-h // 32) * 32, -(-w // 32) * 32
    return sum((h32 >> k) * (w32 >> k) for k in range(6)) * SPY_MACS_PER_PIXEL


def tiny_dense_macs_by_hand(nf: int, blocks: int, h: int, w: int) -> int:
    hw = h * w
    trunk = hw * 9 * ((nf + 3) * nf + 2 * blocks * nf * nf)
    recon = hw * 2 * nf * nf + hw * 9 * nf * 4 * nf + 4 * hw * 9 * nf * 256 + 16 * hw * 9 * (64 * 64 + 64 * 3)
    return 2 * trunk + recon + 2 * spynet_macs_by_hand(h, w)


@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread: tiny convolutions gain nothing from more, and the CI machine may be shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_slim_dir(tmp_path_factory) -> Path:
    """A pruned-model folder (plan.json + model.safetensors) of a tiny network: 8 features, 2 blocks."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny-slim")
    plan = bench.random_plan(0.5, seed=3, num_feat=8, num_block=2)
    torch.manual_seed(0)
    model = build_slim(plan)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "plan.json").write_text(json.dumps(plan))
    return folder


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vsrapp")
    bench.add_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_bench_cli_tiny_model_writes_well_formed_json(tiny_slim_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = run_cli(["bench", "--models", str(tiny_slim_dir), "bicubic", "--size", "16x24", "--frames", "3",
                  "--warmup", "1", "--device", "cpu", "--threads", "1", "--profile", "--gpu-opts", "fp32",
                  "fp32-cl", "bf16-cl", "fp16-cl-graphs", "fp16-autocast-cl", "--opts-frames", "2",
                  "--json", str(out), "-q"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "vsrapp-bench" and doc["version"] == 1
    assert doc["settings"]["device"] == "cpu" and doc["host"]["torch"] == torch.__version__
    # The figures name the CPU's int8/bf16 instruction sets, as /proc/cpuinfo lists them.
    if Path("/proc/cpuinfo").exists():
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        assert doc["host"]["cpu_features"] == [f for f in CPU_FEATURES if f in flags.split()]
    assert doc["reference"] == str(tiny_slim_dir)  # no dense BasicVSR: the first model
    assert doc["sizes"][0]["lr_size"] == [16, 24] and doc["sizes"][0]["roofline"]["macs_per_s"] > 0
    slim, bicubic = doc["results"]
    plan = json.loads((tiny_slim_dir / "plan.json").read_text())
    assert slim["macs"]["without_spynet"] == plan_macs_formula(plan, (16, 24))
    assert slim["macs"]["spynet"] == 2 * spynet_macs_by_hand(16, 24)
    assert bicubic["macs"]["total"] == 0 and bicubic["params"]["total"] == 0 and "roofline" not in bicubic
    for r in (slim, bicubic):
        assert r["out_size"] == [64, 96]
        mo = r["model_only"]
        assert mo["frames"] == 3 and mo["ms_per_frame"] > 0 and mo["fps"] > 0
        assert abs(sum(mo["parts_share"].values()) - 1) < 1e-3 and mo["dominant_part"] in prof.PARTS
        assert mo["steady_ms_per_frame"] > 0 and abs(sum(mo["steady_parts_share"].values()) - 1) < 1e-3
        assert mo["memory"]["kind"].startswith("cpu") and mo["memory"]["peak_mb"] > 0
        assert mo["top_ops"] and {"op", "calls", "self_cpu_ms", "share"} <= set(mo["top_ops"][0])
        e2e = r["e2e"]
        assert e2e["frames"] == 3 and e2e["network_only_frames"] == 3
        assert e2e["seconds"] > 0 and e2e["e2e_over_network"] == pytest.approx(
            e2e["seconds"] / e2e["network_only_seconds"], rel=1e-2)
        assert set(r["vs_reference"]) == {"params", "params_without_spynet", "macs", "model_only_speedup",
                                          "e2e_speedup"}
        opts = {v["variant"]: v for v in r["gpu_opts"]}
        assert "skipped" in opts["fp16-cl-graphs"] and "skipped" in opts["fp16-autocast-cl"]
        assert opts["fp32"]["psnr_vs_fp32_db"] > 100 and opts["fp32-cl"]["psnr_vs_fp32_db"] > 60
        assert opts["bf16-cl"]["psnr_vs_fp32_db"] > 25
    assert slim["vs_reference"]["model_only_speedup"] == 1.0
    assert slim["model_only"]["dominant_part"] in ("spynet", "trunks", "upsampler")
    assert bicubic["model_only"]["dominant_part"] == "upsampler"
    printed = capsys.readouterr().out
    assert "model ms/f" in printed and "bicubic" in printed


def test_bench_errors_are_one_line(tmp_path, capsys):
    assert run_cli(["bench", "--models", "no-such-model", "--json", str(tmp_path / "x.json")]) == 2
    assert run_cli(["bench", "--models", "bicubic", "--size", "big", "--json", str(tmp_path / "x.json")]) == 2
    assert run_cli(["bench", "--models", "bicubic", "--gpu-opts", "warp9", "--json", str(tmp_path / "x.json")]) == 2
    if not torch.cuda.is_available():
        assert run_cli(["bench", "--models", "bicubic", "--device", "cuda", "--json", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("vsrapp: error: ") for line in err)
    assert not (tmp_path / "x.json").exists()


def test_bench_api_takes_modules_and_ratios_to_dense():
    torch.manual_seed(0)
    dense = bench.BenchModel("dense-tiny", BasicVSR(8, 1).eval(), False)
    uni = bench.BenchModel("uni-tiny", BasicVSRUni(8, 1).eval(), False)
    s = bench.Settings(torch.device("cpu"), "auto", 2, 0, 24, 8, False, False, (), 2, "libx264", None, None)
    doc = bench.run_bench([uni, dense], [(16, 24)], s, progress=False)
    assert doc["reference"] == "dense-tiny"  # the dense BasicVSR, wherever it is in the list
    rows = {r["model"]: r for r in doc["results"]}
    assert rows["dense-tiny"]["macs"]["total"] == tiny_dense_macs_by_hand(8, 1, 16, 24)
    ratio = rows["uni-tiny"]["vs_reference"]["macs"]
    assert ratio == round(rows["dense-tiny"]["macs"]["total"] / rows["uni-tiny"]["macs"]["total"], 3) > 1
    assert "e2e" not in rows["uni-tiny"] and rows["uni-tiny"]["vs_reference"]["e2e_speedup"] is None


def test_steady_state_counts_one_flow_per_direction_per_frame():
    t = prof.SequenceTiming(3, 6.0, {"spynet": 4.0, "trunks": 1.5, "upsampler": 0.5},
                            {"spynet": 4, "trunks": 6, "upsampler": 3})
    d = t.as_dict()
    assert d["parts_ms_per_call"] == {"spynet": 1000.0, "trunks": 250.0, "upsampler": round(1000 / 6, 3)}
    assert d["steady_ms_per_frame"] == pytest.approx(2 * 1000 + 2 * 250 + 1000 / 6, abs=1e-2)
    assert d["ms_per_frame"] == 2000.0


def test_conv_macs_by_hand_and_throughput():
    assert prof.conv3x3_macs(2, 64, 32, 10, 20) == 2 * 32 * 10 * 20 * 64 * 9
    r = prof.conv_throughput("cpu", size=(16, 16), channels=8, repeats=1, warmup=0)
    assert r["macs_per_call"] == 8 * 8 * 9 * 256 and r["macs_per_s"] > 0 and r["shape"] == [1, 8, 16, 16]


@pytest.mark.parametrize("arch", [BasicVSR, BasicVSRUni])
def test_run_sequence_is_the_models_forward(arch):
    torch.manual_seed(1)
    model = arch(8, 1).eval()
    clip = torch.rand(1, 4, 3, 16, 24)
    timer = prof.PartTimer("cpu")
    with torch.inference_mode():
        outs = prof.run_sequence(model, list(clip.unbind(1)), timer, keep=True)
        ref = model(clip)
    torch.testing.assert_close(torch.stack(outs, 1), ref, rtol=1e-5, atol=1e-5)
    flows = 2 * 3 if arch is BasicVSR else 3
    trunk_steps = 2 * 4 if arch is BasicVSR else 4
    assert timer.calls == {"spynet": flows, "trunks": trunk_steps, "upsampler": 4}
    assert all(v > 0 for v in timer.seconds.values())


def test_variants_dtype_and_layout_logic_on_cpu():
    cpu = torch.device("cpu")
    assert prof.get_variant("fp16-cl-graphs").unavailable(cpu)
    assert prof.get_variant("fp16-cl").unavailable(cpu)
    assert prof.get_variant("fp32-cl").unavailable(cpu) is None
    with pytest.raises(ValueError):
        prof.get_variant("nope")
    with pytest.raises(RuntimeError, match="CUDA graphs"):
        prof.prepare_variant(BasicVSR(8, 1), prof.get_variant("fp16-cl-graphs"), cpu)
    steps, autocast, dtype = prof.prepare_variant(BasicVSR(8, 1), prof.get_variant("bf16-cl"), cpu)
    conv = steps.model.upconv1
    assert autocast is None and dtype is torch.bfloat16 and conv.weight.dtype is torch.bfloat16
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    steps, autocast, dtype = prof.prepare_variant(BasicVSR(8, 1), prof.Variant("x", "bf16"), cpu)
    assert autocast is torch.bfloat16 and dtype is torch.float32 and steps.model.upconv1.weight.dtype is torch.float32
    # The Upscaler's settings, as the bench models them (pure logic: no CUDA needed).
    assert bench.engine_variant(cpu, "auto") == prof.Variant("engine-fp32", "fp32", "autocast", True)
    cuda = bench.engine_variant(torch.device("cuda"), "auto")
    assert cuda.precision == "fp16" and cuda.channels_last and cuda.cast == "autocast"
    frames = prof.make_inputs([torch.rand(1, 3, 8, 8)], cpu, torch.bfloat16, True)
    assert frames[0].dtype is torch.bfloat16 and frames[0].is_contiguous(memory_format=torch.channels_last)


def test_graphed_steps_are_transparent_off_cuda():
    torch.manual_seed(2)
    model = BasicVSR(8, 1).eval()
    graphed = prof.GraphedSteps(prof.StepTable(model), "cpu")
    lrs = list(torch.rand(1, 3, 3, 16, 16).unbind(1))
    with torch.inference_mode():
        a = prof.run_sequence(graphed, lrs, keep=True)
        b = prof.run_sequence(model, lrs, keep=True)
    assert graphed.graphs == {} and all(torch.equal(x, y) for x, y in zip(a, b))


def test_random_plan_is_valid_deterministic_and_pruned():
    plan = bench.random_plan(0.5, seed=7)
    validate_plan(plan)
    assert plan == bench.random_plan(0.5, seed=7) != bench.random_plan(0.5, seed=8)
    assert all(len(v) == 32 for v in plan["kept"].values())
    with pytest.raises(bench.BenchError):
        bench.random_plan(1.0)
    m = bench.load_bench_model("random-slim:0.75")
    assert not m.trained and "untrained" in m.note


def test_synthetic_clip_moves_and_round_trips(tmp_path):
    frames = bench.synthetic_frames(4, 32, 48)
    assert frames.shape == (4, 32, 48, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, bench.synthetic_frames(4, 32, 48))
    assert np.abs(frames[1].astype(int) - frames[0]).mean() > 5  # it moves
    clip = bench.write_clip(tmp_path / "c.mp4", frames)
    decoded = bench.decode_clip(clip)
    assert decoded.shape == frames.shape
    err = np.abs(decoded.astype(int)[:, None] - frames[None].astype(int)).mean(axis=(2, 3, 4))
    assert (err.argmin(axis=1) == np.arange(4)).all() and err.diagonal().max() < 12  # in order; CRF 18, 4:2:0
    from vsrapp.video import probe

    info = probe(clip)
    assert info.codec == "h264" and [a.codec for a in info.audio] == ["aac"] and info.fps == 25


def test_peak_memory_sees_an_allocation():
    with prof.PeakMemory("cpu") as mem:
        x = torch.ones(16 * 2**20)  # 64 MB, touched
        del x
    assert mem.result["kind"].startswith("cpu") and mem.result["peak_mb"] > 0
    if mem.result["kind"] == "cpu_peak_rss":
        assert mem.result["delta_mb"] >= 48


def test_parse_size():
    assert bench.parse_size("180x320") == (180, 320)
    for bad in ("180", "axb", "4x4"):
        with pytest.raises(bench.BenchError):
            bench.parse_size(bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_variants_run(tiny_slim_dir, tmp_path):
    out = tmp_path / "g.json"
    assert run_cli(["bench", "--models", str(tiny_slim_dir), "--size", "32x48", "--frames", "4", "--device", "cuda",
                    "--gpu-opts", "fp16-cl", "fp16-cl-graphs", "--opts-frames", "4", "--json", str(out), "-q"]) == 0
    r = json.loads(out.read_text())["results"][0]
    assert r["model_only"]["memory"]["kind"] == "cuda_max_memory_allocated"
    opts = {v["variant"]: v for v in r["gpu_opts"]}
    assert opts["fp16-cl-graphs"]["psnr_vs_fp32_db"] > 30 and "trunks" not in opts["fp16-cl-graphs"]


def test_random_weights_keep_a_bundled_models_pruned_architecture():
    """``--random-weights ssl-bi`` times the pruned network (its plan), not the dense family it came from."""
    from vsrapp.bench.run import load_bench_model
    from vsrapp_models.complexity import count_params

    random_bm = load_bench_model("ssl-bi", random_weights=True)
    trained_bm = load_bench_model("ssl-bi")
    assert hasattr(random_bm.model, "plan") and not random_bm.trained
    assert count_params(random_bm.model) == count_params(trained_bm.model)
    assert random_bm.name == "ssl-bi"  # the result rows name the model as the user did, not its folder
