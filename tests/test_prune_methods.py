"""`vsrapp prune --method gassl|nm|issp` end to end on a tiny network and tiny crops: each export loads with
``models.pruned.load_pruned`` and computes what the trained (masked) model computes, ``--resume`` continues
exactly, ``vsrapp finetune`` takes every method's export (N:M and ISS-P keep their zeros), and the options are
checked per method."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from nets import random_clip, tiny_net
from test_data_clips import write_stills

import vsrapp_pruning.commands as commands
import vsrapp_pruning.zoo
from vsrapp.errors import UsageError
from vsrapp_models.basicvsr import BasicVSR, BasicVSRUni
from vsrapp_models.gassl_slim import GasslBasicVSR
from vsrapp_models.nm_sparse import max_nonzeros_per_group
from vsrapp_models.pruned import load_pruned
from vsrapp_pruning.gassl import Gassl, apply_masks
from vsrapp_pruning.issp import trunk_convs
from vsrapp_pruning.nm import nm_layers
from vsrapp_pruning.refusal import EXIT_REFUSED

pytestmark = pytest.mark.usefixtures("one_thread")

# Short schedules. gassl: HAIR 2 + 1 steps, SSA 2, growing L2 2, stabilise 1 = 8 (its own length, no --iters);
# nm: the budget is met after a few steps, the rest fine-tunes with N frozen; issp: 3 pruning + 2 fine-tuning.
METHOD_ARGS = {
    "gassl": ["--ratio", "0.4", "--hair-delta", "0.01", "--hair-interval", "1", "--hair-ceiling", "0.02",
              "--ssa-steps", "2", "--reg-delta", "0.1", "--reg-interval", "1", "--reg-ceiling", "0.2",
              "--stabilize-steps", "1"],
    "nm": ["--budget", "0.75", "--score-lr", "0.2", "--anneal-every", "2", "--iters", "6"],
    "issp": ["--arch", "uni", "--sparsity", "0.8", "--shrink", "0.5", "--prune-steps", "3", "--iters", "5"],
}
STOP_AT = {"gassl": 4, "nm": 2, "issp": 2}  # gassl: after HAIR's restart; nm: before N freezes; issp: mid-pruning


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_stills(tmp_path_factory.mktemp("train"))


@pytest.fixture(scope="module", autouse=True)
def tiny_teacher():
    """Every command gets the tiny bidirectional net as its dense teacher."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vsrapp_pruning.zoo, "dense_teacher", lambda name: tiny_net(True, 0))
        yield


def common(data: Path, out: Path) -> list[str]:
    return ["--teacher", "tiny", "--data", str(data), "--out", str(out), "--frames", "3", "--lr-size", "8",
            "--real-prob", "0", "--threads", "1", "--device", "cpu", "--log-every", "2"]


def prune_argv(method: str, data: Path, out: Path, *extra: str) -> list[str]:
    return ["prune", "--method", method, *common(data, out), *METHOD_ARGS[method], *extra]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands.add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, data):
    """``pruned(method)``: the output folder of one uninterrupted `prune --method <method>` run (made once)."""
    done: dict[str, Path] = {}

    def get(method: str) -> Path:
        if method not in done:
            out = tmp_path_factory.mktemp(method) / "run"
            assert commands.main(prune_argv(method, data, out)) == 0
            done[method] = out
        return done[method]

    return get


def trained(method: str, data: Path, out: Path):
    """(method object, model) as they were at the end of the run, rebuilt from its last checkpoint."""
    args = parse(prune_argv(method, data, out))
    obj, _ = commands.make_method(args)
    model = obj.prepare(commands._dense_for_arch(tiny_net(True, 0), args.arch))
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    model.load_state_dict(ckpt["model"], strict=True)
    obj.load_state_dict(ckpt["hooks"])
    return obj, model.eval(), ckpt


def outputs(model: torch.nn.Module, frames: int = 3) -> torch.Tensor:
    with torch.no_grad():
        return model(random_clip(frames, seed=5))


def meta_of(out: Path) -> dict:
    return json.loads((out / "meta.json").read_text())


# ------------------------------------------------------------------------------------------------ exports
def test_gassl_export_is_the_trained_masked_network(pruned, data):
    out = pruned("gassl")
    method, model, ckpt = trained("gassl", data, out)
    assert isinstance(method, Gassl) and method.ratio == 0.4
    assert ckpt["step"] == method.total_steps() == 8  # the schedule sets the length
    assert method.counts is not None and "forward_trunk.main.0" in method.reg_start  # HAIR and SSA both ran
    log = (out / "train.log").read_text()
    assert "step 3: weights reset by the method; optimiser state cleared" in log  # the restart after HAIR
    assert "max_g_pruned" in log  # the method's own progress line

    plan = method.plan(model)
    assert json.loads((out / "plan.json").read_text()) == plan
    unmasked = outputs(model)
    apply_masks(model, plan)
    slim = load_pruned(out)
    assert isinstance(slim, GasslBasicVSR)
    torch.testing.assert_close(outputs(slim), outputs(model), rtol=0, atol=1e-5)
    assert (unmasked - outputs(model)).abs().max() > 1e-4  # the comparison is not between two dense models

    meta = meta_of(out)
    assert meta["method"] == "gassl" and meta["teacher"] == "tiny" and meta["schedule_complete"] is True
    assert meta["ratio"] == 0.4 and meta["stream_width"] == slim.num_feat < 8
    recipe = meta["recipe"]["sparsity"]
    assert recipe["phase"] == "gassl" and recipe["config"]["iters"] == 8 and "reg_interval" not in recipe["config"]
    assert recipe["method"]["config"]["ssa_steps"] == 2 and recipe["method"]["config"]["reg_ceiling"] == 0.2


def test_nm_export_is_the_trained_masked_network(pruned, data):
    out = pruned("nm")
    method, model, ckpt = trained("nm", data, out)
    assert method.frozen and method.frozen_at < ckpt["step"] - 1  # the budget was met, then fine-tuning ran
    loaded = load_pruned(out)
    assert type(loaded) is BasicVSR
    torch.testing.assert_close(outputs(loaded), outputs(model), rtol=0, atol=1e-5)

    meta, plan = meta_of(out), json.loads((out / "plan.json").read_text())
    assert meta["method"] == "nm" and meta["budget_met"] and meta["schedule_complete"]
    assert meta["searched_cost"] <= 0.75 and meta["layers_2of4"] >= 1
    for name, conv in nm_layers(model).items():
        n = plan["layers"][name]["n"]
        assert n == conv.n() and max_nonzeros_per_group(loaded.get_submodule(name).weight) <= n
    assert meta["recipe"]["sparsity"]["method"]["budget"] == 0.75


def test_issp_export_is_the_trained_pruned_network(pruned, data):
    out = pruned("issp")
    method, model, ckpt = trained("issp", data, out)
    assert method.keep is not None  # frozen at step 3, then fine-tuned for 2 steps
    loaded = load_pruned(out)
    assert type(loaded) is BasicVSRUni  # --arch uni: forward-only, initialised from the teacher's forward branch
    torch.testing.assert_close(outputs(loaded), outputs(model), rtol=0, atol=1e-6)
    for name, conv in trunk_convs(loaded).items():
        zeros = conv.weight == 0
        assert torch.equal(zeros, ~method.keep[name]), name  # the frozen mask, kept through fine-tuning
        assert int(zeros.sum()) == int(0.8 * conv.weight.numel())
    meta = meta_of(out)
    assert meta["method"] == "issp" and meta["ratio"] == 0.8 and meta["alpha"] == 0.5
    assert meta["trunk_sparsity"] == pytest.approx(0.8, abs=2e-3) and meta["schedule_complete"]  # floor per layer


def test_ssl_keeps_its_defaults_through_the_cli(tmp_path, data):
    out = tmp_path / "ssl"
    assert commands.main(["prune", "--method", "ssl", *common(data, out), "--iters", "2"]) == 0
    meta = meta_of(out)
    config = meta["recipe"]["sparsity"]["config"]
    assert meta["method"] == "ssl" and meta["ratio"] == 0.5
    assert (config["reg_delta"], config["reg_interval"], config["reg_ceiling"], config["normalise"]) == \
        (1e-4, 5, 0.1, "layer")
    assert type(load_pruned(out)).__name__ == "SlimBasicVSR"


# ------------------------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("method", ["gassl", "nm", "issp"])
def test_resume_continues_exactly(method, pruned, tmp_path, data):
    straight = pruned(method)
    out = tmp_path / "resumed"
    assert commands.main(prune_argv(method, data, out, "--stop-at", str(STOP_AT[method]))) == 0
    assert not (out / "model.safetensors").exists()  # stopped early: no export yet
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=False)["step"] == STOP_AT[method]
    assert commands.main(prune_argv(method, data, out, "--resume")) == 0

    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert b["history"] == a["history"]
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=0, atol=0, msg=name)
    from safetensors.torch import load_file

    ea, eb = load_file(str(straight / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert ea.keys() == eb.keys() and all(torch.equal(ea[k], eb[k]) for k in ea)
    assert (out / "plan.json").read_text() == (straight / "plan.json").read_text()


def test_resume_refuses_another_methods_checkpoint(pruned, tmp_path, data):
    out = tmp_path / "x"
    assert commands.main(prune_argv("issp", data, out, "--stop-at", "1")) == 0
    with pytest.raises(ValueError, match="issp checkpoint, not nm"):
        commands.main(prune_argv("nm", data, out, "--resume"))


# ------------------------------------------------------------------------------------------------ finetune
def finetune_argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["finetune", "--model", str(model), *common(data, out), "--iters", "3", "--lr", "1e-2",
            "--spynet-frozen-iters", "-1", *extra]


@pytest.mark.parametrize("method,tf_weight", [("nm", "0.5"), ("issp", "0")])
def test_finetune_keeps_the_sparse_pattern(method, tf_weight, pruned, tmp_path, data):
    src = pruned(method)
    out = tmp_path / "ft"
    assert commands.main(finetune_argv(src, data, out, "--tf-weight", tf_weight)) == 0
    before, after = load_pruned(src), load_pruned(out)  # load_nm re-checks the N:M pattern
    plan = json.loads((out / "plan.json").read_text())
    assert plan == json.loads((src / "plan.json").read_text())
    changed = False
    for name in plan["layers"]:
        w0, w1 = before.get_submodule(name).weight, after.get_submodule(name).weight
        assert torch.equal(w1 == 0, w0 == 0), name
        changed |= not torch.equal(w0, w1)
    assert changed, "fine-tuning did not change the sparse layers"
    meta = meta_of(out)
    assert meta["method"] == method and meta["source_model"] == str(src)
    assert set(meta["recipe"]) == {"sparsity", "finetune"}
    assert meta["recipe"]["finetune"]["config"]["tf_weight"] == float(tf_weight)
    assert meta["params"] == meta_of(src)["params"]


def test_finetune_gassl_export(pruned, tmp_path, data, capsys):
    src = pruned("gassl")
    # A refusal is the message alone on stderr and status 1 (what SystemExit(message) gave before).
    assert commands.main(finetune_argv(src, data, tmp_path / "tf")) == 1  # default --tf-weight 0.5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "narrower than the teacher's" in err[0] and "--tf-weight 0" in err[0]
    out = tmp_path / "ft"
    assert commands.main(finetune_argv(src, data, out, "--tf-weight", "0")) == 0
    before, after = load_pruned(src), load_pruned(out)
    assert isinstance(after, GasslBasicVSR) and after.plan == before.plan
    assert not torch.equal(outputs(before), outputs(after))
    meta = meta_of(out)
    assert meta["method"] == "gassl" and meta["arch"] == "basicvsr-gassl" and meta["stream_width"] == after.num_feat
    assert meta["params"]["total"] == sum(p.numel() for p in after.parameters())


# ------------------------------------------------------------------------------------------------ options
@pytest.mark.parametrize("method,option", [("nm", ["--ratio", "0.5"]), ("issp", ["--budget", "0.6"]),
                                           ("gassl", ["--normalise", "kind"]), ("ssl", ["--sparsity", "0.9"])])
def test_options_of_other_methods_are_refused(method, option, tmp_path, capsys):
    assert commands.main(["prune", "--method", method, "--out", str(tmp_path), *option]) == EXIT_REFUSED
    assert capsys.readouterr().err.startswith(f"--{option[0][2:]} does not apply to --method {method}")


def test_default_lengths_and_configs():
    args = parse(["prune", "--method", "gassl", "--out", "x"])
    method, iters = commands.make_method(args)
    assert iters == method.total_steps() == 263_561  # the official schedule (frame_pruning.md §A.5)
    assert (method.ratio, method.cfg.reg_interval, method.cfg.restart) == (0.5, 30, True)
    method, iters = commands.make_method(parse(["prune", "--method", "gassl", "--out", "x", "--no-restart",
                                                "--channel-multiple", "8", "--reg-interval", "5"]))
    assert (method.cfg.restart, method.cfg.multiple, method.cfg.reg_interval) == (False, 8, 5)
    method, iters = commands.make_method(parse(["prune", "--method", "nm", "--out", "x", "--nm-levels", "1,2,3,4"]))
    assert (method.budget, method.cfg.levels, iters) == (0.75, (1, 2, 3, 4), commands.NM_ITERS)
    method, iters = commands.make_method(parse(["prune", "--method", "issp", "--out", "x", "--prune-steps", "10"]))
    assert (method.cfg.ratio, method.cfg.alpha, iters) == (0.9, 0.95, 10 + commands.ISSP_FINETUNE_ITERS)
    with pytest.raises(UsageError, match="--budget"):
        commands.make_method(parse(["prune", "--method", "nm", "--out", "x", "--budget", "0.3"]))
    with pytest.raises(UsageError, match="--ratio"):
        commands.make_method(parse(["prune", "--method", "gassl", "--out", "x", "--ratio", "1"]))
