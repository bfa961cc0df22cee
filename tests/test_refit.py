"""Closed-form refit (pruning/refit.py) of a slim network against its dense teacher, on tiny random networks."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch

from tests.nets import random_clip, tiny_net
from vsrapp_models.slim import build_slim, load_slim
from vsrapp_pruning.export import export_slim, slim_state_dict
from vsrapp_pruning.gates import add_gates
from vsrapp_pruning.plan import full_plan, plan_from_masks
from vsrapp_pruning.refit import _at, _calls, _fit, _flows, _patches, _rollout_inputs, _run_branch, _Tap, refit_slim

pytestmark = pytest.mark.usefixtures("one_thread")


def half_masks(gated, seed: int = 0) -> dict[str, torch.Tensor]:
    """Prune a random half of every gate (at least one unit kept), RSC read/write sets included."""
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for name, p in gated.named_gates().items():
        n = p.numel()
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.randperm(n, generator=g)[:n // 2]] = True
        masks[name] = mask
    return masks


def one_shot_slim(teacher, plan_of=half_masks):
    """The teacher sliced by a plan with no training at all (gates 1): the state refit has to repair."""
    gated = add_gates(copy.deepcopy(teacher))
    plan = plan_from_masks(gated, plan_of(gated)) if plan_of else full_plan(gated)
    slim = build_slim(plan)
    slim.load_state_dict(slim_state_dict(gated, plan), strict=True)
    return slim.eval(), gated, plan


def clips(n: int, frames: int, seed: int, size: int = 20) -> torch.Tensor:
    return torch.cat([random_clip(frames, seed=seed + i, h=size, w=size) for i in range(n)])


def smooth_clips(n: int, frames: int, seed: int, size: int = 20) -> torch.Tensor:
    """Random clips blurred a little, so neighbouring pixels correlate as in real frames."""
    x = clips(n, frames, seed, size)
    k = torch.ones(3, 1, 3, 3) / 9
    y = torch.nn.functional.conv2d(x.flatten(0, 1), k, padding=1, groups=3)
    return y.view_as(x)


def error(model, teacher, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x) - teacher(x)).pow(2).mean().sqrt())


def test_patches_match_unfold():
    x = torch.randn(2, 3, 5, 6)
    pos = torch.tensor([[0, 0, 0], [1, 4, 5], [1, 2, 3]])
    cols = torch.nn.functional.unfold(x, 3, padding=1)  # (B, C*9, H*W), same channel/row/column order
    want = torch.stack([cols[n, :, y * 6 + xx] for n, y, xx in pos.tolist()])
    assert torch.equal(_patches(x, pos, 3), want)


@pytest.mark.parametrize("trunk", ["backward_trunk", "forward_trunk"])
def test_rollouts_follow_the_model_recurrence(trunk):
    """A rollout as long as the clip, started from the model's own states, is its closed loop: the refit's
    copy of the propagation step (warp + concatenation) matches the model's."""
    slim, _, _ = one_shot_slim(tiny_net(True, seed=7))
    x = smooth_clips(2, 4, seed=50)
    with torch.no_grad():
        flows = _flows(slim, x)
        tap = _Tap(slim.get_submodule(trunk), lambda k, i, o: i.clone())
        _run_branch(slim, trunk, x, flows)
        tap.remove()
        own = tap.calls
        calls = _calls(trunk, x, flows)
        rolled = _rollout_inputs(slim.get_submodule(trunk), calls, [own[0]] + [torch.zeros_like(a) for a in own[1:]],
                                 len(calls) - 1)
        forced = _rollout_inputs(slim.get_submodule(trunk), calls, own, 0)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(rolled, own))
    assert all(a is b for a, b in zip(forced, own))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_refit_reduces_the_error_on_held_out_clips(bidirectional):
    teacher = tiny_net(bidirectional, seed=3)
    slim, _, _ = one_shot_slim(teacher)
    held_out = smooth_clips(2, 3, seed=100)
    before = error(slim, teacher, held_out)
    refit_slim(teacher, slim, smooth_clips(3, 4, seed=10), samples=4096, ridge=1e-3, sweeps=2,
               val_clips=smooth_clips(1, 4, seed=20), log=lambda s: None)
    after = error(slim, teacher, held_out)
    assert after < 0.6 * before, (before, after)


def test_conv2_only_refit_brings_the_features_closer():
    """conv2 alone can only move the written channels O_j, so it repairs less, but the propagated features
    (what the upsampler reads) still get closer to the teacher's on held-out clips."""
    teacher = tiny_net(True, seed=3)
    slim, _, _ = one_shot_slim(teacher)
    held_out = smooth_clips(2, 3, seed=100)

    def feature_error() -> float:
        with torch.no_grad():
            got = _run_branch(slim, "forward_trunk", held_out, _flows(slim, held_out))
            want = _run_branch(teacher, "forward_trunk", held_out, _flows(teacher, held_out))
        return float(torch.stack([(a - b).pow(2).mean() for a, b in zip(got, want)]).mean().sqrt())

    before = feature_error()
    refit_slim(teacher, slim, smooth_clips(3, 4, seed=10), samples=4096, conv1=False, head=False, upsampler=(),
               sweeps=1, guard=False, log=lambda s: None)
    assert feature_error() < 0.97 * before


@pytest.mark.parametrize("bidirectional", [True, False])
def test_all_kept_plan_is_left_unchanged(bidirectional):
    teacher = tiny_net(bidirectional, seed=5)
    slim, _, _ = one_shot_slim(teacher, plan_of=None)
    x = smooth_clips(1, 3, seed=300)
    with torch.no_grad():
        ref = slim(x)
    lines: list[str] = []
    refit_slim(teacher, slim, smooth_clips(2, 3, seed=30), samples=2048, sweeps=2, log=lines.append)
    with torch.no_grad():
        assert torch.allclose(slim(x), ref, atol=1e-4, rtol=0), float((slim(x) - ref).abs().max())
    # Every layer was fitted (not just skipped by a guard) and already had zero error.
    fits = [line for line in lines if "->" in line and "PSNR" not in line]
    assert len(fits) == (2 if bidirectional else 1) * 2 * 3 + 5
    assert all(float(v) < 1e-3 for line in fits for v in re.findall(r"-> ([0-9.e+-]+)", line))


def test_fit_keeps_exact_weights_and_solves_a_planted_problem():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 3, 3, padding=1)
    x = torch.randn(2, 4, 9, 9)
    pos = torch.stack(torch.meshgrid(torch.arange(2), torch.arange(9), torch.arange(9), indexing="ij"), -1)
    pos = pos.reshape(-1, 3)
    with torch.no_grad():
        y = _at(conv(x), pos)
        w0 = conv.weight.clone()
        _, after = _fit(conv, [(_patches(x, pos, 3), y)], ridge=1e-3)
        assert after < 1e-5 and torch.allclose(conv.weight, w0, atol=1e-5)
        planted = torch.nn.Conv2d(4, 3, 3, padding=1)
        before, after = _fit(conv, [(_patches(x, pos, 3), _at(planted(x), pos))], ridge=1e-6)
        assert before > 0.5 and after < 1e-3 and torch.allclose(conv.weight, planted.weight, atol=1e-3)


def test_cli_writes_an_export_with_a_refit_recipe(tmp_path, monkeypatch):
    """CLI end to end on a tiny export, with the teacher and the clips swapped for tiny ones."""
    import vsrapp_pruning.refit
    import vsrapp_pruning.zoo

    teacher = tiny_net(True, seed=6)
    _, gated, plan = one_shot_slim(teacher)
    src = export_slim(gated, plan, tmp_path / "src", meta={"ratio": 0.5, "teacher": "tiny"})
    monkeypatch.setattr(vsrapp_pruning.zoo, "dense_teacher", lambda name: teacher)
    monkeypatch.setattr(vsrapp_pruning.refit, "training_clips", lambda *a, **k: smooth_clips(2, 3, seed=40))
    out = tmp_path / "refit"
    assert vsrapp_pruning.refit.main(["--model", str(src), "--teacher", "tiny", "--out", str(out), "--samples", "1024",
                               "--sweeps", "2", "--threads", "1"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["ratio"] == 0.5 and meta["recipe"]["refit"]["samples"] == 1024
    assert meta["recipe"]["refit"]["seconds"] >= 0 and meta["params"]["total"] == sum(
        p.numel() for p in load_slim(out).parameters())
    assert json.loads((out / "plan.json").read_text()) == plan
    held_out = smooth_clips(1, 3, seed=400)
    assert error(load_slim(out), teacher, held_out) < error(load_slim(src), teacher, held_out)
