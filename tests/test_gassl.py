"""GASSL (HAIR + ASSL + SSA): ratio selection, alignment, the schedule, and export == masked model."""

from __future__ import annotations

import json

import pytest
import torch
from nets import random_clip, tiny_net

from vsrapp_models.gassl_slim import GasslBasicVSR, GasslBasicVSRUni, validate_gassl_plan
from vsrapp_models.pruned import load_pruned
from vsrapp_pruning.gassl import (
    Gassl,
    GasslConfig,
    apply_masks,
    hair_counts,
    plan_from_pruned,
    smallest,
    ssa_loss,
    wn_layers,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(bidirectional: bool = True, seed: int = 0):
    return tiny_net(bidirectional, seed)


def clip(seed: int = 1) -> torch.Tensor:
    return random_clip(3, seed)


def short_config(**kw) -> GasslConfig:
    base = dict(penalty_scale=1.0, hair_delta=0.01, hair_interval=1, hair_ceiling=0.03, ssa_steps=3, reg_delta=0.1,
                reg_interval=1, reg_ceiling=0.3, stabilize_steps=2)
    base.update(kw)
    return GasslConfig(**base)


def test_wn_copy_computes_the_dense_function():
    dense = tiny()
    model = Gassl(0.5).prepare(dense)
    assert len(wn_layers(model)) == 2 * (1 + 2 * 2)
    with torch.no_grad():
        assert torch.allclose(model(clip()), dense(clip()), atol=1e-6)


def test_hair_picks_unequal_ratios_from_a_known_scale_pattern():
    # Free layer "a" has 6 tiny filters, "b" none; the aligned pair has 2 and 4 tiny ones.
    scales = {"a": torch.tensor([0.01] * 6 + [1.0] * 2), "b": torch.ones(8),
              "s0": torch.tensor([0.02] * 2 + [1.0] * 6), "s1": torch.tensor([0.03] * 4 + [1.0] * 4)}
    counts = hair_counts(scales, ratio=12 / 32, aligned=["s0", "s1"])
    assert counts == {"a": 6, "b": 0, "s0": 3, "s1": 3}  # the aligned group gets the mean of 2 and 4
    # Never a whole layer; kept counts rounded to a multiple when asked.
    assert hair_counts({"a": torch.arange(8.0)}, 0.99, [])["a"] == 7
    assert hair_counts(scales, 12 / 32, ["s0", "s1"], multiple=4) == {"a": 4, "b": 0, "s0": 4, "s1": 4}


def test_hair_penalty_is_uniform_and_grows():
    method = Gassl(0.5, short_config())
    model = method.prepare(tiny())
    wn = wn_layers(model).values()
    ref = 0.5 * sum(float((m.scale.pow(2).sum() + m.bias.pow(2).sum()).detach()) for m in wn)
    assert float(method.penalty(model, 0)) == 0.0
    assert float(method.penalty(model, 1).detach()) == pytest.approx(0.01 * ref, rel=1e-5)
    assert float(method.penalty(model, 2).detach()) == pytest.approx(0.02 * ref, rel=1e-5)


@pytest.mark.parametrize("form", ["variance"])
def test_ssa_drives_aligned_layers_to_identical_kept_sets(form):
    g = torch.Generator().manual_seed(0)
    scales = [torch.nn.Parameter(torch.rand(16, generator=g) + 0.5) for _ in range(4)]
    sets = lambda: {tuple(smallest(p, 8).nonzero().flatten().tolist()) for p in scales}  # noqa: E731
    assert len(sets()) == 4
    opt = torch.optim.Adam(scales, 0.05)
    for _ in range(150):
        loss = ssa_loss(scales, 8, form=form)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert len(sets()) == 1
    assert float(ssa_loss(scales, 8, form=form).detach()) < 1e-2


def pruned_over_kept(method: Gassl, model) -> float:
    """Mean |g| of the chosen filters over the mean |g| of the kept ones."""
    wn = wn_layers(model)
    chosen = torch.cat([wn[n].scale.detach().abs()[m] for n, m in method.pruned.items()])
    kept = torch.cat([wn[n].scale.detach().abs()[~m] for n, m in method.pruned.items()])
    return float(chosen.mean() / kept.mean())


def test_schedule_selects_restarts_aligns_and_shrinks():
    dense = tiny(bidirectional=False)
    method = Gassl(0.4, short_config(stabilize_steps=15))
    model = method.prepare(dense)
    model.spynet.requires_grad_(False)  # (speed) the trainer freezes it early on too
    scales, _ = method.param_groups(model, 1e-3)["scales"]
    ids = {id(p) for p in scales}
    opt = torch.optim.Adam([{"params": [p for p in model.parameters() if id(p) not in ids], "lr": 1e-3},
                            {"params": scales, "lr": 0.05}])
    x = clip()[:, :2]
    resets = []
    for step in range(method.total_steps()):
        resets.append(method.before_step(model, step))
        if step == method.h:
            with torch.no_grad():  # the restart put the pretrained weights back
                assert torch.allclose(model(x), dense(x), atol=1e-6)
        if step == method.ssa_end():
            start = pruned_over_kept(method, model)
        loss = model(x).abs().mean() + method.penalty(model, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(model, step)
    assert resets.count(True) == 1 and resets[method.h]
    assert method.done(method.total_steps())
    # One stream set per trunk, imposed on every aligned layer; free layers keep their own counts.
    plan = method.plan(model)
    validate_gassl_plan(plan)
    aligned = ["forward_trunk.main.0", "forward_trunk.main.2.0.conv2", "forward_trunk.main.2.1.conv2"]
    assert len({tuple(method.pruned[n].tolist()) for n in aligned}) == 1
    # The growing L2 pulled the chosen filters down relative to the kept ones.
    assert pruned_over_kept(method, model) < 0.75 * start
    # Resume: the state round-trips.
    again = Gassl(0.1)
    again.load_state_dict(method.state_dict())
    assert again.counts == method.counts and again.plan(model) == plan


@pytest.mark.parametrize("bidirectional", [True, False])
def test_exported_network_equals_the_masked_one(bidirectional, tmp_path):
    method = Gassl(0.5, short_config())
    model = method.prepare(tiny(bidirectional))
    with torch.no_grad():  # non-trivial scales so folding is exercised
        for m in wn_layers(model).values():
            m.scale.mul_(torch.rand(m.scale.shape) + 0.5)
    g = torch.Generator().manual_seed(3)
    pruned = {}
    for trunk in ("backward_trunk", "forward_trunk") if bidirectional else ("forward_trunk",):
        stream = torch.randperm(8, generator=g) < 3  # drop 3 stream channels
        pruned[f"{trunk}.main.0"] = stream
        for j in range(2):
            pruned[f"{trunk}.main.2.{j}.conv2"] = stream
            pruned[f"{trunk}.main.2.{j}.conv1"] = torch.randperm(8, generator=g) < 2 + 3 * j
    plan = plan_from_pruned(model, pruned)
    method.counts, method.pruned = {n: int(m.sum()) for n, m in pruned.items()}, pruned
    with torch.no_grad():
        before = model(clip())
    out = method.export(model, tmp_path, {"teacher": "tiny"})
    apply_masks(model, plan)
    slim = load_pruned(out)
    assert isinstance(slim, GasslBasicVSR if bidirectional else GasslBasicVSRUni)
    assert slim.num_feat == 5 and slim.forward_trunk.main[2][1].conv1.out_channels == 3
    with torch.no_grad():
        masked, narrow = model(clip()), slim(clip())
    assert torch.allclose(narrow, masked, atol=1e-5), float((narrow - masked).abs().max())
    assert (before - masked).abs().max() > 1e-4  # masking really changed the function
    meta = json.loads((out / "meta.json").read_text())
    assert meta["method"] == "gassl" and meta["stream_width"] == 5 and meta["teacher"] == "tiny"
    dense_params = sum(p.numel() for p in tiny(bidirectional).parameters())
    assert meta["params"]["total"] == sum(p.numel() for p in slim.parameters()) < dense_params


def test_plan_rejects_misaligned_sets():
    model = Gassl(0.5).prepare(tiny(False))
    pruned = {n: torch.zeros(8, dtype=torch.bool) for n in wn_layers(model)}
    pruned["forward_trunk.main.2.1.conv2"][0] = True
    with pytest.raises(ValueError, match="aligned"):
        plan_from_pruned(model, pruned)


def test_load_pruned_dispatches_ssl_exports(tmp_path):
    from vsrapp_models.slim import SlimBasicVSR
    from vsrapp_pruning.export import export_slim
    from vsrapp_pruning.gates import add_gates
    from vsrapp_pruning.plan import full_plan

    gated = add_gates(tiny())
    out = export_slim(gated, full_plan(gated), tmp_path)
    assert isinstance(load_pruned(out), SlimBasicVSR)
    (out / "meta.json").write_text(json.dumps({"method": "mystery"}))
    with pytest.raises(ValueError, match="unknown pruning method"):
        load_pruned(out)
