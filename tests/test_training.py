"""The SSL training loop on tiny models and tiny crops: sparsity + export, fine-tuning lowers the loss, exact
resume, and DDP (gloo, two processes) keeping the replicas identical."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_data_clips import write_stills

from vsrapp_models.basicvsr import BasicVSR
from vsrapp_models.slim import build_slim, load_slim
from vsrapp_pruning.data import ClipConfig, SyntheticClips
from vsrapp_pruning.gates import add_gates
from vsrapp_pruning.losses import charbonnier_loss
from vsrapp_pruning.plan import plan_from_masks
from vsrapp_pruning.selection import importance_scores, select_global
from vsrapp_pruning.ssl import Ssl
from vsrapp_pruning.train import Dist, TrainConfig, train_finetune, train_method

TINY = {"num_feat": 8, "num_block": 2}


def tiny_dense(seed: int = 0) -> BasicVSR:
    torch.manual_seed(seed)
    return BasicVSR(**TINY)


def tiny_slim(seed: int = 0):
    gated = add_gates(tiny_dense(seed))
    plan = plan_from_masks(gated, select_global(importance_scores(gated), 0.5))
    from vsrapp_pruning.export import slim_state_dict

    slim = build_slim(plan)
    slim.load_state_dict(slim_state_dict(gated, plan), strict=True)
    return slim


def config(tmp_path: Path, data: Path, phase: str, **kw) -> TrainConfig:
    base = dict(phase=phase, data=str(data), out=str(tmp_path / phase), iters=4, batch=1, frames=3, lr_size=8,
                real_prob=0.0, ckpt_every=100, log_every=2, threads=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_stills(tmp_path_factory.mktemp("train"))


def test_sparsity_phase_exports_a_loadable_slim_model(tmp_path, data):
    cfg = config(tmp_path, data, "sparsity", iters=3, reg_delta=0.05, reg_interval=1, gate_lr=1e-2)
    out = train_method(cfg, tiny_dense(), Ssl.from_config(cfg), teacher_name="tiny")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["ratio"] == 0.5 and meta["teacher"] == "tiny"
    assert meta["recipe"]["sparsity"]["config"]["iters"] == 3
    assert 0.45 <= meta["kept_fraction"] <= 0.55
    slim = load_slim(out)
    assert slim(torch.rand(1, 3, 3, 8, 8)).shape == (1, 3, 3, 32, 32)
    assert "it 2/3" in (out / "train.log").read_text()


def _fixed_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    with torch.no_grad():
        return float(charbonnier_loss(model(batch[0]), batch[1]))


@pytest.mark.parametrize("tf_weight", [0.0, 0.5])
def test_finetuning_lowers_the_loss(tmp_path, data, tf_weight):
    cfg = config(tmp_path, data, "finetune", iters=12, lr=5e-3, schedule="cosine", tf_weight=tf_weight)
    student = tiny_slim()
    held = SyntheticClips(data, ClipConfig(frames=3, lr_size=8, real_prob=0.0), seed=99)
    batch = tuple(torch.stack(x) for x in zip(*(held[i] for i in range(4))))
    before = _fixed_loss(student, batch)
    out = train_finetune(cfg, student, tiny_dense() if tf_weight else None, {"ratio": 0.5})
    after = _fixed_loss(student.eval(), batch)
    assert after < 0.95 * before, (before, after)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["recipe"]["finetune"]["config"]["tf_weight"] == tf_weight
    reloaded = load_slim(out)
    assert _fixed_loss(reloaded, batch) == pytest.approx(after, rel=1e-6)
    if not tf_weight:  # fine-tuning again keeps the first run on record
        again = config(tmp_path / "again", data, "finetune", iters=2, lr=1e-3, schedule="cosine")
        out2 = train_finetune(again, reloaded.train(), None, meta)
        recipe = json.loads((out2 / "meta.json").read_text())["recipe"]
        assert recipe["finetune"]["config"]["iters"] == 12 and recipe["finetune_2"]["config"]["iters"] == 2


def test_resume_continues_exactly(tmp_path, data):
    kw = dict(iters=4, lr=1e-3, schedule="cosine", tf_weight=0.5, spynet_frozen_iters=2)
    straight = tiny_slim()
    train_finetune(config(tmp_path / "a", data, "finetune", **kw), straight, tiny_dense())

    first = tiny_slim()
    train_finetune(config(tmp_path / "b", data, "finetune", stop_at=2, **kw), first, tiny_dense())
    assert (tmp_path / "b" / "finetune" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "b" / "finetune" / "model.safetensors").exists()  # stopped early: no export yet
    resumed = tiny_slim()
    with torch.no_grad():  # different weights: everything must come from the checkpoint
        for p in resumed.parameters():
            p.add_(0.01)
    from vsrapp_pruning.train import Trainer

    seen: list[Trainer] = []
    original = Trainer.run

    def spy(self, dataset):
        seen.append(self)
        return original(self, dataset)

    Trainer.run = spy
    try:
        train_finetune(config(tmp_path / "b", data, "finetune", **kw), resumed, tiny_dense(), resume=True)
    finally:
        Trainer.run = original
    ckpt_a = torch.load(tmp_path / "a" / "finetune" / "checkpoints" / "last.pt", weights_only=False)
    assert seen[0].history == ckpt_a["history"]  # the loss sequence, steps 1-2 restored and 3-4 recomputed
    for name, tensor in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, rtol=0, atol=0, msg=name)


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from vsrapp_pruning.train import setup_distributed

    env = setup_distributed("cpu")
    assert isinstance(env, Dist) and env.world == world
    root = Path(out)
    # Sparsity phase (gates + penalty through DDP), then fine-tuning with the TF term.
    cfg = config(root, Path(data), "sparsity", iters=2, gate_lr=1e-2, reg_delta=0.05, reg_interval=1)
    train_method(cfg, tiny_dense(), Ssl.from_config(cfg), env=env)
    student = tiny_slim()
    train_finetune(config(root, Path(data), "finetune", iters=2, lr=1e-3, tf_weight=0.5), student, tiny_dense(),
                   env=env)
    torch.save(student.state_dict(), root / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_gloo_two_processes_keep_identical_replicas(tmp_path, data):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(data), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    start = tiny_slim().state_dict()
    changed = False
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
        changed |= not torch.equal(a[name], start[name])
    assert changed, "training did not change the weights"
    assert (tmp_path / "sparsity" / "model.safetensors").is_file()


def test_uni_sparsity_from_bidirectional_init(tmp_path, data):
    from vsrapp_models.basicvsr import BasicVSRUni, uni_state_from_bidirectional

    uni = BasicVSRUni(**TINY)
    uni.load_state_dict(uni_state_from_bidirectional(tiny_dense().state_dict(), TINY["num_feat"]), strict=True)
    cfg = config(tmp_path, data, "sparsity", iters=2, reg_interval=1)
    out = train_method(cfg, uni, Ssl.from_config(cfg), teacher_name="tiny")
    slim = load_slim(out)
    assert not slim.bidirectional
    assert json.loads((out / "meta.json").read_text())["arch"] == "basicvsr-uni-slim"


def test_commands_register_prune_and_finetune():
    import argparse

    from vsrapp_pruning.commands import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["prune", "--method", "ssl", "--teacher", "basicvsr-vimeo-bi", "--ratio", "0.5",
                              "--out", "x", "--iters", "7", "--arch", "uni", "--resume"])
    assert (args.ratio, args.iters, args.arch, args.resume, args.func.__name__) == (0.5, 7, "uni", True,
                                                                                 "cmd_prune")
    args = parser.parse_args(["finetune", "--model", "m", "--out", "y", "--tf-weight", "0"])
    assert args.tf_weight == 0 and args.func.__name__ == "cmd_finetune"
