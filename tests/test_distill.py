"""Teacher-anchored recovery (pruning.distill) on tiny models: the teacher cache, the distillation losses (the
unpruned model is their fixed point), EMA, warm-up, snapshots and exact resume; and the CLI's errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_data_clips import write_stills
from test_training import TINY, tiny_dense, tiny_slim

from vsrapp_models.slim import load_slim
from vsrapp_pruning.distill import (
    CacheConfig,
    CachedClips,
    DistillObjective,
    DistillWeights,
    WeightEMA,
    build_cache,
    clip_path,
    train_distill,
)
from vsrapp_pruning.losses import charbonnier_loss
from vsrapp_pruning.train import FIT_PROBE_STEPS, TrainConfig, fitted_iters, lr_factor

CACHE = CacheConfig(clips=3, frames=3, lr_size=8, seed=5, real_prob=0.0)
CACHE_CONFIG = {"clips": 3, "frames": 3, "lr_size": 8, "seed": 5, "real_prob": 0.0}  # as cache.json records it


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_stills(tmp_path_factory.mktemp("train"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory, data) -> Path:
    return build_cache(tiny_dense(), data, tmp_path_factory.mktemp("cache") / "c", CACHE, teacher_name="tiny")


def config(out: Path, **kw) -> TrainConfig:
    base = dict(phase="finetune", data="", out=str(out), iters=4, frames=0, lr=5e-3, schedule="cosine",
                spynet_frozen_iters=-1, ckpt_every=100, log_every=2, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_cache_holds_the_teachers_pass_and_is_resumable(cache, data):
    info = json.loads((cache / "cache.json").read_text())
    assert info["config"]["clips"] == 3 and info["teacher"] == "tiny" and info["bidirectional"]
    record = torch.load(clip_path(cache, 0), weights_only=True)
    assert record["lr"].dtype == torch.uint8 and record["lr"].shape == (3, 3, 8, 8)
    assert record["gt"].shape == (3, 3, 32, 32)
    assert record["out"].dtype == torch.float16 and record["out"].shape == (3, 3, 32, 32)
    assert record["fwd"].shape == record["bwd"].shape == (3, TINY["num_feat"], 8, 8)
    assert record["to_next"].shape == record["to_prev"].shape == (2, 2, 8, 8)
    # The cached output is what the teacher makes of the cached (8-bit) LR frames.
    with torch.no_grad():
        again = tiny_dense()(record["lr"][None].float().div(255))[0]
    torch.testing.assert_close(record["out"].float(), again, atol=2e-3, rtol=0)

    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("clip_*.pt")}
    build_cache(tiny_dense(), data, cache, CACHE, teacher_name="tiny")  # nothing to do: all clips are there
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("clip_*.pt")} == before
    with pytest.raises(ValueError, match="different cache"):
        build_cache(tiny_dense(), data, cache, CacheConfig(clips=3, frames=4, lr_size=8), teacher_name="tiny")


def test_cached_clips_serve_float_targets(cache):
    clips = CachedClips(cache, length=7)
    lr, targets = clips[4]  # sample 4 is clip 4 mod 3
    record = torch.load(clip_path(cache, 1), weights_only=True)
    torch.testing.assert_close(lr, record["lr"].float() / 255)
    assert set(targets) == {"gt", "out", "fwd", "bwd", "to_next", "to_prev"}
    assert all(v.dtype == torch.float32 for v in targets.values())
    short = CachedClips(cache, length=1, frames=2)[0]
    assert short[0].shape[0] == 2 and short[1]["to_prev"].shape[0] == 1


def _batch(cache: Path, i: int = 0):
    lr, targets = CachedClips(cache, length=3)[i]
    return lr[None], {k: v[None] for k, v in targets.items()}


def test_the_teacher_is_a_fixed_point_of_the_teacher_targets_not_of_the_ground_truth(cache):
    """The recipe cannot damage what pruning did not change: for the unpruned model the teacher-target loss and
    the temporal term are zero (up to the cache's fp16 rounding), while the ground-truth loss is not."""
    lr, targets = _batch(cache)
    kd, parts = DistillObjective(tiny_dense(), DistillWeights(out=1.0, gt=0.0, tf=1.0))(lr, targets, 0)
    assert float(kd.detach()) < 1e-3 and float(parts["tf"]) < 1e-3
    gt, _ = DistillObjective(tiny_dense(), DistillWeights(out=0.0, gt=1.0))(lr, targets, 0)
    assert float(gt.detach()) > 20 * float(kd.detach())


@pytest.mark.parametrize("bf16_cpu", [False, True], ids=["fp32", "bf16-autocast"])
def test_distillation_moves_a_pruned_student_towards_the_teacher(cache, tmp_path, bf16_cpu):
    """... in fp32 and under bf16 autocast on the CPU (AMX's 2.4x a step), which keeps fp32 weights and says so."""
    student = tiny_slim()
    lr, targets = _batch(cache, 1)

    def gap(model: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(charbonnier_loss(model.eval()(lr), targets["out"]))

    before = gap(student)
    out, result = train_distill(config(tmp_path / "d", iters=12, bf16_cpu=bf16_cpu), student, cache,
                                DistillWeights(out=1.0, tf=0.5), {"method": "ssl", "ratio": 0.5})
    assert gap(result) < 0.9 * before, (before, gap(result))
    meta = json.loads((out / "meta.json").read_text())
    entry = meta["recipe"]["distill"]
    assert entry["weights"] == {"out": 1.0, "gt": 0.0, "tf": 0.5} and entry["steps_done"] == 12
    assert entry["cache"]["teacher"] == "tiny"
    assert entry["config"]["bf16_cpu"] is bf16_cpu and entry["device"].endswith("bf16)") is bf16_cpu
    assert all(p.dtype == torch.float32 for p in result.parameters())  # autocast computes in bf16, stores fp32
    assert gap(load_slim(out)) == pytest.approx(gap(result), rel=1e-5)
    # SpyNet is the teacher's, frozen: its flows are the cached ones.
    torch.testing.assert_close(result.spynet.state_dict(), tiny_slim().spynet.state_dict(), rtol=0, atol=0)


def test_ema_snapshots_and_resume_give_the_straight_run(cache, tmp_path):
    kw = dict(iters=4, lr=1e-2, warmup=2)
    weights = DistillWeights(out=1.0, gt=0.2, tf=0.5)
    _, straight = train_distill(config(tmp_path / "a", **kw), tiny_slim(), cache, weights, {"method": "ssl"},
                                ema_decay=0.5, snapshot_every=2)
    snapshot = tmp_path / "a" / "snapshots" / "step2"
    assert (snapshot / "model.safetensors").is_file() and (tmp_path / "a" / "model.safetensors").is_file()
    assert json.loads((snapshot / "meta.json").read_text())["recipe"]["distill"]["steps_done"] == 2

    train_distill(config(tmp_path / "b", stop_at=3, **kw), tiny_slim(), cache, weights, {"method": "ssl"},
                  ema_decay=0.5)
    assert not (tmp_path / "b" / "model.safetensors").exists()  # stopped early: no export yet
    perturbed = tiny_slim()
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(0.01)
    _, resumed = train_distill(config(tmp_path / "b", **kw), perturbed, cache, weights, {"method": "ssl"},
                               ema_decay=0.5, resume=True)
    for name, tensor in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    # What is saved is the average, not the last weights.
    assert not torch.equal(load_slim(tmp_path / "a").conv_last.weight, tiny_slim().conv_last.weight)


def test_ema_averages_with_a_warming_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = WeightEMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.after_step(model, 0)  # decay min(0.9, 1/10) = 0.1: the average jumps most of the way
    assert float(ema.shadow["weight"]) == pytest.approx(0.9)
    ema.after_step(model, 100)  # decay 0.9 from here on
    assert float(ema.shadow["weight"]) == pytest.approx(0.9 * 0.9 + 0.1)


def test_a_time_budget_fits_the_schedule_and_a_resume_keeps_it(cache, tmp_path):
    """--fit-seconds: the steps after the probe are what the budget leaves (here nothing: one more step), the
    cosine schedule ends there with an export, and a resumed run keeps the fitted length, not --iters."""
    probe_end = FIT_PROBE_STEPS[1]
    cfg = config(tmp_path / "f", iters=1000, fit_seconds=1e-6, lr=1e-3, warmup=2)
    out, _ = train_distill(cfg, tiny_slim(), cache, DistillWeights(out=1.0), {"method": "ssl"})
    entry = json.loads((out / "meta.json").read_text())["recipe"]["distill"]
    assert entry["steps_done"] == probe_end + 1 and entry["config"]["fitted_iters"] == probe_end + 1
    (out / "model.safetensors").unlink()
    again, _ = train_distill(config(tmp_path / "f", iters=1000, fit_seconds=1e-6), tiny_slim(), cache,
                             DistillWeights(out=1.0), {"method": "ssl"}, resume=True)
    assert json.loads((again / "meta.json").read_text())["recipe"]["distill"]["steps_done"] == probe_end + 1


def test_fitted_iters_spend_the_budget_left_and_never_pass_the_data():
    cfg = TrainConfig(phase="finetune", data="", out="", iters=1000, fit_seconds=100.0)
    assert fitted_iters(cfg, step=40, seconds_per_step=0.5, elapsed=30.0) == 40 + 140
    assert fitted_iters(cfg, step=40, seconds_per_step=0.01, elapsed=30.0) == 1000  # --iters bounds it
    assert fitted_iters(cfg, step=40, seconds_per_step=0.5, elapsed=120.0) == 41  # over budget: stop next step


def test_warmup_ramps_the_learning_rate():
    cfg = TrainConfig(phase="finetune", data="", out="", iters=100, warmup=10, schedule="constant")
    assert lr_factor(cfg, 0) == pytest.approx(0.1) and lr_factor(cfg, 9) == 1.0 and lr_factor(cfg, 50) == 1.0
    cosine = TrainConfig(phase="finetune", data="", out="", iters=100, warmup=10, schedule="cosine")
    assert lr_factor(cosine, 4) == pytest.approx(0.5 * lr_factor(TrainConfig(
        phase="finetune", data="", out="", iters=100, schedule="cosine"), 4))


def test_finetune_on_a_missing_cache_is_one_clear_line(tmp_path, capsys):
    from vsrapp.cli import main

    slim_dir = tmp_path / "slim"
    from vsrapp_pruning.train import save_slim

    save_slim(tiny_slim(), slim_dir, {"ratio": 0.5})
    # The message alone on stderr and status 1: what SystemExit(message) gave before pruning stopped exiting.
    assert main(["finetune", "--model", str(slim_dir), "--cache", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "o"), "--iters", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a teacher cache" in err[0]



def test_finetune_reads_several_caches_as_one_pool(cache, data, tmp_path, capsys):
    """``vsrapp finetune --cache A B``: synthetic-motion and real-clip caches in one run, as pruning.blocks does;
    a bad one among them is refused before training, in one line."""
    from vsrapp.cli import main
    from vsrapp_pruning.train import save_slim

    other = build_cache(tiny_dense(), data, tmp_path / "other", CacheConfig(clips=2, frames=3, lr_size=8, seed=9,
                                                                            real_prob=0.0), teacher_name="tiny")
    slim_dir = tmp_path / "slim"
    save_slim(tiny_slim(), slim_dir, {"ratio": 0.5})
    out = tmp_path / "ft"
    assert main(["finetune", "--model", str(slim_dir), "--cache", str(cache), str(other), "--out", str(out),
                 "--iters", "2", "--threads", "1"]) == 0
    assert (out / "model.safetensors").is_file()
    source = next(line for line in (out / "train.log").read_text().splitlines() if " distill from " in line)
    assert str(other) in source and str(cache) in source
    capsys.readouterr()
    assert main(["finetune", "--model", str(slim_dir), "--cache", str(cache), str(tmp_path / "nope"), "--out",
                 str(tmp_path / "o"), "--iters", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a teacher cache" in err[0]

def test_gpu_recipe_resumes_across_calls_on_a_tiny_cpu_configuration(tmp_path, official_weights_dir):
    """pruning/recipes/gpu_distill.sh as the device runs it, on the CPU: a call cut short by its time budget
    returns a split checkpoint, `collect` keeps it, and the next call resumes and exports the model."""
    import os
    import subprocess

    from vsrapp.zoo import load_basicsr_state

    repo = Path(__file__).resolve().parents[1]
    gpu = tmp_path / "gpu"
    write_stills(gpu / "train", n=2, size=(200, 240))
    state = load_basicsr_state(official_weights_dir / "BasicVSR_Vimeo90K_BIx4.pth")
    torch.save({"params": {k: v.half() for k, v in state.items()}}, gpu / "teacher-fp16.pth")
    env = {**os.environ, "GPU_DIR": str(gpu), "RUN_DIR": str(tmp_path / "run"), "TINY": "1", "TINY_ITERS": "3",
           "COLLECT_TO": str(tmp_path / "model"), "OMP_NUM_THREADS": "1"}
    script = str(repo / "pruning" / "recipes" / "gpu_distill.sh")

    def call(name: str, seconds: str) -> Path:
        out = tmp_path / name
        run = subprocess.run([script, "train"], env={**env, "OUT": str(out), "TINY_SECONDS": seconds}, cwd=repo,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        subprocess.run(["rm", "-rf", env["RUN_DIR"]], check=True)  # a fresh machine every call
        collect = subprocess.run([script, "collect", str(out)], env=env, cwd=repo, capture_output=True, text=True)
        assert collect.returncode == 0, collect.stderr
        return out

    def archive(out: Path) -> list[str]:
        parts = sorted(out.glob("distill.tar.part-*"))
        assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)  # below one returned file's limit
        listing = subprocess.run(f"cat {' '.join(map(str, parts))} | tar -tf -", shell=True, capture_output=True,
                                 text=True, check=True)
        return listing.stdout.split()

    first = call("out1", "0.1")  # the budget stops it after one step: the checkpoint comes back, no model
    assert "checkpoints/last.pt" in archive(first) and "model.safetensors" not in archive(first)
    assert (gpu / "state" / "last.pt").is_file()
    second = call("out2", "600")
    assert "model.safetensors" in archive(second) and "checkpoints/last.pt" not in archive(second)
    log = (tmp_path / "model" / "train.log").read_text()
    assert "resumed from" in log and "it 3/3" in log
    assert not (gpu / "state" / "last.pt").exists()  # a finished schedule leaves nothing to resume
    model = load_slim(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert meta["recipe"]["distill"]["steps_done"] == 3 and meta["recipe"]["distill"]["cache"]["live_teacher"]
    assert model(torch.rand(1, 2, 3, 16, 16)).shape == (1, 2, 3, 64, 64)


def test_select_kinds_prunes_only_those_kinds_with_rounded_widths():
    from vsrapp_pruning.gates import add_gates
    from vsrapp_pruning.selection import gate_kind, importance_scores, select_kinds

    gated = add_gates(tiny_dense())
    scores = importance_scores(gated)
    masks = select_kinds(scores, 0.6, {"trunk.conv1.out", "conv_hr.out"}, multiple=4)
    for name, mask in masks.items():
        kept = int((~mask).sum())
        if gate_kind(name) in {"trunk.conv1.out", "conv_hr.out"}:
            assert kept % 4 == 0 and 4 <= kept < mask.numel(), (name, kept)
            # The kept entries are the best-scoring ones of their gate.
            assert float(scores[name][~mask].min()) >= float(scores[name][mask].max())
        else:
            assert kept == mask.numel(), name  # stream reads/writes, fusion, upconvs: untouched
    with pytest.raises(ValueError, match="no gate"):
        select_kinds(scores, 0.5, {"nothing"})


def test_anchored_sparsity_fits_the_teacher_and_removes_exactly_the_marked_entries(cache, data, tmp_path):
    """SSL's sparsity phase held to the teacher: the loss is the gap to the cached teacher output (so at step 0,
    with the gates at 1, it is ~0), the stream is never pruned, widths come out rounded, and the export drops
    the entries the penalty drove down."""
    from vsrapp_pruning.distill import Anchor
    from vsrapp_pruning.ssl import Ssl
    from vsrapp_pruning.train import train_method

    anchor = Anchor(str(cache), DistillWeights(out=1.0), frozenset({"trunk.conv1.out", "conv_hr.out"}), 4)
    cfg = TrainConfig(phase="sparsity", data=str(data), out=str(tmp_path / "s"), iters=6, frames=0, lr=1e-3,
                      gate_lr=5e-2, ratio=0.5, reg_delta=0.5, reg_interval=1, reg_ceiling=2.0, log_every=1,
                      threads=1)
    out = train_method(cfg, tiny_dense(), Ssl.from_config(cfg, anchor), teacher_name="tiny")
    log = (out / "train.log").read_text()
    first = next(line for line in log.splitlines() if " it 1/6 " in line)
    assert float(first.split(" kd ")[1].split()[0]) < 1e-3  # the unpruned start fits its own teacher
    plan = json.loads((out / "plan.json").read_text())
    for name, kept in plan["kept"].items():
        if "trunk" in name and name.endswith(("conv1.in", "conv2.out")):
            assert kept == list(range(TINY["num_feat"])), name
        if name.endswith("conv1.out") or name == "conv_hr.out":
            assert len(kept) % 4 == 0, name
    hidden = [len(v) for k, v in plan["kept"].items() if k.endswith("conv1.out")]
    assert sum(hidden) < len(hidden) * TINY["num_feat"] and len(plan["kept"]["conv_hr.out"]) < 64
    meta = json.loads((out / "meta.json").read_text())
    described = meta["recipe"]["sparsity"]["anchor"]
    assert described["multiple"] == 4 and described["teacher"] == "tiny"
    assert load_slim(out)(torch.rand(1, 3, 3, 8, 8)).shape == (1, 3, 3, 32, 32)


@pytest.mark.parametrize("option", [["--kd-weight", "1"], ["--prune-kinds", "trunk.conv1.out"]])
def test_prune_anchor_options_without_a_cache_are_one_clear_line(tmp_path, option, capsys):
    from vsrapp.cli import main

    assert main(["prune", "--method", "ssl", "--out", str(tmp_path / "o"), *option]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs --cache" in err[0]
    assert main(["prune", "--method", "nm", "--cache", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cache does not apply to --method nm" in err[0]


# ------------------------------------------------------------------------------------------ block pruning
def test_block_pruning_keeps_the_largest_residuals_and_resumes_the_same_blocks(cache, tmp_path):
    from vsrapp_models.loading import load_model
    from vsrapp_pruning import blocks

    teacher = tiny_dense().eval()
    n = len(teacher.forward_trunk.main[2])
    # Keeping every block is the teacher itself: the renumbering and the weight copy lose nothing.
    whole = blocks.block_student(teacher, {t: list(range(n)) for t in blocks.TRUNKS}).eval()
    lr = CachedClips(cache, length=1)[0][0][None]
    with torch.no_grad():
        assert torch.equal(whole(lr), teacher(lr))
    ratios = {"backward_trunk": [0.3, 0.1, 0.2], "forward_trunk": [0.1, 0.5, 0.4]}
    assert blocks.select_blocks(ratios, 2) == {"backward_trunk": [0, 2], "forward_trunk": [1, 2]}
    with pytest.raises(ValueError, match="keep must be in 1..3"):
        blocks.select_blocks(ratios, 4)

    out = tmp_path / "b"
    cfg = config(out, iters=2, stop_at=1)
    first = blocks.prepare(teacher, cache, out, keep=n - 1)
    selection = json.loads((out / blocks.SELECTION).read_text())
    assert len(first.forward_trunk.main[2]) == n - 1 and all(len(v) == n - 1 for v in selection["kept"].values())
    # The student's blocks are the teacher's kept ones, in order.
    kept = selection["kept"]["forward_trunk"]
    assert torch.equal(first.forward_trunk.main[2][0].conv1.weight, teacher.forward_trunk.main[2][kept[0]].conv1.weight)
    blocks.run(teacher, cache, out, n - 1, cfg)  # stops after step 1 with a checkpoint
    path = blocks.run(teacher, cache, out, n - 1, config(out, iters=2))  # resumes to the end
    assert json.loads((out / blocks.SELECTION).read_text())["kept"] == selection["kept"]
    student = load_model(path)  # a BasicSR checkpoint with the pruned shape
    assert len(student.backward_trunk.main[2]) == n - 1 and student.num_feat == teacher.num_feat


def test_teacher_agreement_is_infinite_for_the_teacher_and_finite_for_a_pruned_student(cache):
    from vsrapp_pruning import blocks
    from vsrapp_pruning.distill import teacher_agreement

    teacher = tiny_dense().eval()
    # The cache holds fp16 outputs: the teacher agrees with itself to within that rounding (far above 60 dB).
    assert min(teacher_agreement(teacher, cache)) > 60
    n = len(teacher.forward_trunk.main[2])
    student = blocks.block_student(teacher, {t: list(range(n - 1)) for t in blocks.TRUNKS})
    scores = teacher_agreement(student, cache)
    assert len(scores) == CACHE.clips and max(scores) < min(teacher_agreement(teacher, cache))


def test_a_block_pruned_run_exports_a_folder_that_loads_as_the_same_network(cache, tmp_path):
    from vsrapp_models.loading import load_model
    from vsrapp_models.pruned import read_meta
    from vsrapp_pruning import blocks

    teacher = tiny_dense().eval()
    n = len(teacher.forward_trunk.main[2])
    out = tmp_path / "b"
    path = blocks.run(teacher, cache, out, n - 1, config(out, iters=1))
    folder = out / blocks.EXPORT  # written by the run itself
    meta = read_meta(folder)
    assert meta["method"] == "blocks" and meta["kept_blocks"] == n - 1
    kept = json.loads((out / blocks.SELECTION).read_text())["kept"]
    assert json.loads((folder / "plan.json").read_text())["kept"] == kept
    lr = CachedClips(cache, length=1)[0][0][None]
    with torch.no_grad():
        assert torch.equal(load_model(folder)(lr), load_model(path)(lr))
    assert blocks.main(["export", str(out), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    # A further stretch starts from the export folder as well as from the .pth (the bundled model is a folder).
    again = blocks.run(teacher, cache, tmp_path / "c", n - 1, config(tmp_path / "c", iters=1), init=folder)
    assert len(load_model(again).forward_trunk.main[2]) == n - 1
    # Its recipe is the whole chain: the first run's stretch, then its own, each with the cache it read.
    stages = read_meta(tmp_path / "c" / blocks.EXPORT)["recipe"]["stages"]
    assert [s["iters"] for s in stages] == [1, 1] and stages[0] == meta["recipe"]["stages"][0]
    assert stages[1]["data"] == [{k: CACHE_CONFIG[k] for k in ("clips", "frames", "lr_size", "seed", "real_prob")}]
    # ... also when it continues from a run's model.pth, and on several caches taken in turn.
    third = tmp_path / "d"
    blocks.run(teacher, [cache, cache], third, n - 1, config(third, iters=1), init=again)
    stages = read_meta(third / blocks.EXPORT)["recipe"]["stages"]
    assert [s["iters"] for s in stages] == [1, 1, 1] and len(stages[2]["data"]) == 2


def test_several_caches_are_one_pool_taken_in_turn(cache, data, tmp_path):
    """Synthetic-motion and real-clip caches mix in one run: their clips alternate, so every stretch sees both."""
    other = build_cache(tiny_dense(), data, tmp_path / "other", CacheConfig(clips=2, frames=3, lr_size=8, seed=9,
                                                                            real_prob=0.0), teacher_name="tiny")
    pool = CachedClips([cache, other], length=10)
    assert pool.paths == [clip_path(cache, 0), clip_path(other, 0), clip_path(cache, 1), clip_path(other, 1),
                          clip_path(cache, 2)]
    lr, _ = pool[3]
    torch.testing.assert_close(lr, torch.load(clip_path(other, 1), weights_only=True)["lr"].float() / 255)
    assert [c["directory"] for c in pool.info["caches"]] == [str(cache), str(other)]
    foreign = tmp_path / "foreign"
    build_cache(tiny_dense(), data, foreign, CacheConfig(clips=1, frames=3, lr_size=8, real_prob=0.0),
                teacher_name="another")
    with pytest.raises(ValueError, match="different teachers"):
        CachedClips([cache, foreign], length=1)


def test_gradual_pruning_cuts_a_trained_block_model_further_and_its_upsampler(cache, tmp_path):
    """15 -> 10 blocks from the trained 15-block model, not from the teacher; the upsampler's high-resolution
    channels cut to the most used ones; the result exports as a slim ``blocks`` folder that loads as itself."""
    from vsrapp_models.basicvsr import BasicVSR
    from vsrapp_models.loading import load_model
    from vsrapp_models.pruned import read_meta
    from vsrapp_models.slim import HR_FEAT, SlimBasicVSR
    from vsrapp_pruning import blocks

    torch.manual_seed(0)
    teacher = BasicVSR(TINY["num_feat"], 3).eval()  # the cache's targets are another tiny model's: only the steps count
    n = 3
    lr = CachedClips(cache, length=1)[0][0][None]
    # Keeping every high-resolution channel is the network itself: the slicing into a slim plan loses nothing.
    every = {"upconv2": list(range(HR_FEAT)), "conv_hr": list(range(HR_FEAT))}
    with torch.no_grad():
        assert torch.allclose(blocks.slim_upsampler(teacher, every).eval()(lr), teacher(lr), atol=1e-6)
    assert blocks.select_upsampler({"upconv2": [0.1, 0.9, 0.5], "conv_hr": [0.7, 0.2, 0.3]}, 2) == \
        {"upconv2": [1, 2], "conv_hr": [0, 2]}
    with pytest.raises(ValueError, match="upsampler channels must be in"):
        blocks.select_upsampler({"conv_hr": [1.0]}, HR_FEAT + 1)

    first = tmp_path / "b1"
    blocks.run(teacher, cache, first, n - 1, config(first, iters=1))
    parent_kept = json.loads((first / blocks.SELECTION).read_text())["kept"]
    parent = load_model(first / blocks.EXPORT)

    second = tmp_path / "b2"
    student = blocks.prepare(teacher, cache, second, n - 2, upsampler=32, parent=parent, parent_kept=parent_kept)
    selection = json.loads((second / blocks.SELECTION).read_text())
    assert selection["from_blocks"] == n - 1 and all(len(v) == 32 for v in selection["upsampler"].values())
    # The blocks are the parent's (its trained weights), named by the teacher's indices in the plan.
    local = selection["local"]["forward_trunk"]
    assert selection["kept"]["forward_trunk"] == [parent_kept["forward_trunk"][i] for i in local]
    assert torch.equal(student.forward_trunk.main[2][0].conv1.weight,
                       parent.forward_trunk.main[2][local[0]].conv1.weight)
    kept_hr = selection["upsampler"]["conv_hr"]
    groups = selection["upsampler"]["upconv2"]
    assert isinstance(student, SlimBasicVSR)
    assert torch.equal(student.conv_hr.weight, parent.conv_hr.weight[kept_hr][:, groups])

    path = blocks.run(teacher, cache, second, n - 2, config(second, iters=1), init=first / blocks.EXPORT, upsampler=32)
    folder = second / blocks.EXPORT
    meta, plan = read_meta(folder), json.loads((folder / "plan.json").read_text())
    assert meta["method"] == "blocks" and meta["kept_blocks"] == n - 2 and meta["upsampler_channels"] == 32
    assert plan["blocks"] == selection["kept"] and meta["recipe"]["selection"]["from_blocks"] == n - 1
    model = load_model(folder)
    assert isinstance(model, SlimBasicVSR) and model.conv_hr.out_channels == 32
    assert meta["macs_per_frame"]["total"] < read_meta(first / blocks.EXPORT)["macs_per_frame"]["total"]
    trained = blocks.slim_upsampler(blocks.block_student(parent, selection["local"]), selection["upsampler"])
    trained.load_state_dict(torch.load(path)["params"])
    with torch.no_grad():
        assert torch.equal(model(lr), trained.eval()(lr))
    # A further stretch of the same network keeps its blocks and channels (the export names them, not a
    # re-ranking on the teacher) and starts from its weights.
    third = tmp_path / "b2-more"
    blocks.run(teacher, cache, third, n - 2, config(third, iters=1), init=folder)
    again = json.loads((third / blocks.EXPORT / "plan.json").read_text())
    assert again["blocks"] == plan["blocks"] and again["kept"] == plan["kept"]
    assert [s["iters"] for s in read_meta(third / blocks.EXPORT)["recipe"]["stages"]] == [1, 1, 1]
    # A slim model's blocks are not cut further: the upsampler is pruned last.
    with pytest.raises(ValueError, match="prune blocks before the upsampler"):
        blocks.run(teacher, cache, tmp_path / "b3", n - 3, config(tmp_path / "b3", iters=1), init=folder)
    # Its upsampler is: 32 -> 16 of its own high-resolution channels, starting from its trained weights, the
    # selection naming the teacher's channels (what the export's plan records).
    fourth = tmp_path / "b2-u16"
    state = blocks._cut_upsampler(folder, model, fourth, cache, 16)
    cut = json.loads((fourth / blocks.SELECTION).read_text())
    assert cut["from_upsampler"] == 32 and cut["kept"] == plan["blocks"]
    for layer in ("upconv2", "conv_hr"):
        of_parent = plan["kept"][f"{layer}.out"]
        assert cut["upsampler"][layer] == [of_parent[i] for i in cut["upsampler_local"][layer]]
    local_hr, local_groups = cut["upsampler_local"]["conv_hr"], cut["upsampler_local"]["upconv2"]
    assert torch.equal(state["conv_hr.weight"], model.conv_hr.weight[local_hr][:, local_groups].float())
    blocks.run(teacher, cache, fourth, n - 2, config(fourth, iters=1), init=folder, upsampler=16)
    smaller = load_model(fourth / blocks.EXPORT)
    assert smaller.conv_hr.out_channels == 16 and smaller.plan["kept"]["conv_hr.out"] == cut["upsampler"]["conv_hr"]
    assert read_meta(fourth / blocks.EXPORT)["recipe"]["selection"]["from_upsampler"] == 32
    with pytest.raises(ValueError, match="separate stretches"):
        blocks.run(teacher, cache, tmp_path / "b5", n - 1, config(tmp_path / "b5", iters=1), init=folder,
                   upsampler=16)


def test_a_forward_only_student_takes_the_forward_trunks_blocks_and_half_of_fusion(cache, tmp_path):
    """``--forward-only``: a live-input BasicVSRUni made of the bidirectional teacher's best forward blocks (and
    the forward half of ``fusion``), distilled to the teacher's output; it exports as a forward-only ``blocks``
    folder (slim when the upsampler is cut too) that loads and steps frame by frame as itself."""
    from vsrapp_models.basicvsr import BasicVSRUni, uni_state_from_bidirectional
    from vsrapp_models.loading import load_model
    from vsrapp_models.pruned import read_meta
    from vsrapp_models.slim import SlimBasicVSRUni
    from vsrapp_pruning import blocks

    teacher = tiny_dense().eval()
    n = len(teacher.forward_trunk.main[2])
    lr = CachedClips(cache, length=1)[0][0][None]
    # Every forward block kept is exactly the uni network initialised from the teacher.
    whole = blocks.block_student(teacher, {"forward_trunk": list(range(n))}).eval()
    reference = BasicVSRUni(teacher.num_feat, n).eval()
    reference.load_state_dict(uni_state_from_bidirectional(teacher.state_dict(), teacher.num_feat))
    with torch.no_grad():
        assert isinstance(whole, BasicVSRUni) and torch.equal(whole(lr), reference(lr))

    out = tmp_path / "uni"
    path = blocks.run(teacher, cache, out, n - 1, config(out, iters=1), upsampler=32, forward_only=True)
    selection = json.loads((out / blocks.SELECTION).read_text())
    assert selection["forward_only"] and set(selection["kept"]) == {"forward_trunk"}
    assert len(selection["residual_ratios"]["backward_trunk"]) == n  # ranked inside the bidirectional network
    folder = out / blocks.EXPORT
    meta, model = read_meta(folder), load_model(folder)
    assert meta["arch"] == "basicvsr-uni" and meta["upsampler_channels"] == 32
    assert isinstance(model, SlimBasicVSRUni) and not model.bidirectional and len(model.forward_trunk.main[2]) == n - 1
    assert not any(k.startswith("backward_trunk") for k in torch.load(path)["params"])
    # Frame by frame (the live path) gives the clip's output.
    state, frames = None, []
    with torch.no_grad():
        for i in range(lr.shape[1]):
            frame, state = model.step(lr[:, i], state)
            frames.append(frame)
        torch.testing.assert_close(torch.stack(frames, 1), model(lr))
    # A further stretch from the export stays forward-only and keeps its blocks.
    more = tmp_path / "uni-more"
    blocks.run(teacher, cache, more, n - 1, config(more, iters=1), init=folder)
    assert json.loads((more / blocks.EXPORT / "plan.json").read_text())["blocks"] == selection["kept"]
    assert not load_model(more / blocks.EXPORT).bidirectional


def test_a_fine_tuned_folder_lists_its_fine_tuning_as_a_stage_after_its_block_stages(tmp_path):
    """A block model fine-tuned on a GPU (pruning/recipes/gpu_distill.sh) and continued by the block recipe keeps
    every stretch in its recipe: the GPU one is not dropped from the bundled meta.json."""
    from vsrapp_pruning.blocks import stages_before

    cpu = {"iters": 600, "batch": 1, "lr_size": 64, "lr": 1e-4, "data": [{"clips": 72}]}
    gpu = {"config": {"iters": 705, "batch": 8, "lr_size": 64, "lr": 1e-4, "warmup": 200, "out": "/tmp/x"},
           "device": "NVIDIA H100", "steps_done": 705, "seconds": 297.4, "cache": {"live_teacher": "t.pth"}}
    (tmp_path / "meta.json").write_text(json.dumps({"recipe": {"stages": [cpu], "distill": gpu, "script": "s.sh"}}))
    stages = stages_before(tmp_path)
    assert stages[0] == cpu and len(stages) == 2
    assert stages[1]["iters"] == 705 and stages[1]["batch"] == 8 and stages[1]["device"] == "NVIDIA H100"
    assert stages[1]["data"] == [{"live_teacher": "t.pth"}] and "out" not in stages[1]


def test_a_student_with_a_cheaper_flow_trains_with_it_and_its_export_keeps_it(cache, tmp_path):
    """``--flow-skip 1`` (issue #18's cheaper flow): the student's SpyNet stops a level early, the objective runs
    the student on that flow rather than the teacher's cached one, the export's plan records it so the loaded
    model runs it, a further stretch keeps it, and a resumed run refuses another setting."""
    from vsrapp_models.loading import load_model
    from vsrapp_models.pruned import read_meta
    from vsrapp_pruning import blocks
    from vsrapp_pruning.distill import DistillObjective
    from vsrapp_pruning.losses import run_with_states

    teacher = tiny_dense().eval()
    n = len(teacher.forward_trunk.main[2])
    out = tmp_path / "coarse"
    blocks.run(teacher, cache, out, n - 1, config(out, iters=1), upsampler=32, forward_only=True, flow_skip=1)
    folder = out / blocks.EXPORT
    assert json.loads((folder / "plan.json").read_text())["arch"]["skip_finest"] == 1
    model = load_model(folder)
    assert model.spynet.skip_finest == 1

    lr, targets = CachedClips(cache, length=1)[0]
    lr, targets = lr[None], {k: v[None] for k, v in targets.items()}
    objective = DistillObjective(model, DistillWeights())
    with torch.no_grad():
        loss, _ = objective(lr, targets, step=0)
        own = charbonnier_loss(run_with_states(model, lr).outputs.float(), targets["out"])
        cached = charbonnier_loss(run_with_states(model, lr, (None, targets["to_prev"])).outputs.float(),
                                  targets["out"])
    assert float(loss) == pytest.approx(float(own), rel=1e-6)
    assert float(own) != pytest.approx(float(cached), rel=1e-6)  # the coarse flow is not the teacher's

    more = tmp_path / "coarse-more"
    blocks.run(teacher, cache, more, n - 1, config(more, iters=1), init=folder, augment=True)
    assert load_model(more / blocks.EXPORT).spynet.skip_finest == 1
    stages = read_meta(more / blocks.EXPORT)["recipe"]["stages"]
    assert "augment" not in stages[0] and stages[-1]["augment"] == "symmetry16"  # the recipe says how it trained
    with pytest.raises(ValueError, match="keeps its flow"):
        blocks.run(teacher, cache, more, n - 1, config(more, iters=1), init=folder, flow_skip=0)


def test_symmetry_moves_the_flows_with_the_frames_and_reverses_time():
    """The augmentation's 16 symmetries keep a cached clip consistent: warping the moved next frame with the moved
    flow gives the moved warp (so a student sees a real motion, not a broken one), and time reversal swaps the
    flow directions frame for frame."""
    from vsrapp_models.warp import flow_warp
    from vsrapp_pruning.distill import symmetry

    g = torch.Generator().manual_seed(0)
    lr = torch.rand(3, 3, 12, 12, generator=g)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(2, 2, 12, 12, generator=g) * 3, 5, 1, 2)
    targets = {"out": torch.rand(3, 3, 48, 48, generator=g), "to_next": smooth, "to_prev": -smooth.flip(0)}
    warped = flow_warp(lr[1:], targets["to_next"])  # frame i+1 onto frame i
    seen = set()
    for k in range(8):
        moved_lr, moved = symmetry(lr, targets, k)
        expected, _ = symmetry(warped, {}, k)
        torch.testing.assert_close(flow_warp(moved_lr[1:], moved["to_next"]), expected, atol=1e-5, rtol=0)
        assert moved["out"].shape == (3, 3, 48, 48)
        seen.add(tuple(moved_lr.flatten()[:5].tolist()))
    assert len(seen) == 8  # eight different views
    reversed_lr, reversed_targets = symmetry(lr, targets, 8)
    torch.testing.assert_close(reversed_lr, lr.flip(0))
    torch.testing.assert_close(reversed_targets["to_prev"], targets["to_next"].flip(0))
    torch.testing.assert_close(reversed_targets["to_next"], targets["to_prev"].flip(0))
    assert symmetry(lr, targets, 16)[0].equal(lr)  # k mod 16


def test_a_fitted_stretch_records_the_steps_it_ran_not_the_upper_bound(tmp_path):
    """`--fit-seconds` shortens --iters; the recipe a bundled model carries must say how long it really trained,
    and a resumed stretch (the same config logged again) is still one stage."""
    from vsrapp_pruning import blocks

    source = '{"caches": [{"config": {"clips": 8, "frames": 10, "lr_size": 64, "seed": 1}}], "augment": "symmetry16"}'
    config = '{"iters": 8000, "batch": 1, "lr_size": 64, "lr": 0.0001, "warmup": 20, "fitted_iters": null}'
    log = tmp_path / "train.log"
    log.write_text("\n".join([
        f"2026-12-06 04:40:00 distill from {source}; weights {{'out': 1.0}}",
        f"2026-12-06 04:40:00 config {config}",
        "2026-12-06 04:41:07 schedule fitted to 4800 s of training: 0.847 s/step -> 5665 steps",
        f"2026-12-06 05:00:00 distill from {source}; weights {{'out': 1.0}}",  # resumed
        f"2026-12-06 05:00:00 config {config}",
    ]) + "\n")
    stages = blocks.logged_stages(log)
    assert len(stages) == 1
    assert stages[0]["iters"] == 5665 and stages[0]["augment"] == "symmetry16"
    assert stages[0]["data"] == [{"clips": 8, "frames": 10, "lr_size": 64, "seed": 1}]
