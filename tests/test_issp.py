"""ISS-P: soft shrinkage of the lowest weights only, exact target sparsity, frozen mask, export/load."""

from __future__ import annotations

import json

import pytest
import torch
from nets import random_clip, tiny_net

from vsrapp_models.basicvsr import BasicVSR
from vsrapp_models.pruned import load_pruned
from vsrapp_pruning.issp import Issp, IsspConfig, lowest, trunk_convs

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(bidirectional: bool = False, seed: int = 0):
    return tiny_net(bidirectional, seed)


def clip(seed: int = 1) -> torch.Tensor:
    return random_clip(2, seed)


def test_shrinks_only_the_lowest_weights():
    method = Issp(IsspConfig(ratio=0.7, alpha=0.9, prune_steps=5))
    model = method.prepare(tiny())
    before = {n: c.weight.detach().clone() for n, c in trunk_convs(model).items()}
    untouched = model.fusion.weight.detach().clone()
    method.after_step(model, 0)
    for name, conv in trunk_convs(model).items():
        low = lowest(before[name], int(0.7 * before[name].numel()))
        assert torch.equal(conv.weight[low], before[name][low] * 0.9)
        assert torch.equal(conv.weight[~low], before[name][~low])
    assert torch.equal(model.fusion.weight, untouched)  # only the trunks are pruned
    assert method.keep is None  # still soft: nothing is exactly zero yet
    assert all(v == 0.0 for v in method.sparsity(model).values())


def test_reaches_the_target_sparsity_and_keeps_it_through_finetuning():
    method = Issp(IsspConfig(ratio=0.8, alpha=0.5, prune_steps=4))
    model = method.prepare(tiny())
    model.spynet.requires_grad_(False)  # (speed) the trainer freezes it early on too
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = clip()
    for step in range(8):
        method.before_step(model, step)
        loss = model(x).abs().mean() + method.penalty(model, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(model, step)
        if step == 3:  # the last pruning step: the low set has been shrunk by 0.5**4 but is not zero
            assert method.keep is None
    assert method.done(8)
    for name, conv in trunk_convs(model).items():
        n = conv.weight.numel()
        assert int((conv.weight == 0).sum()) == int(0.8 * n), name  # exactly the target, after Adam steps too


def test_export_is_dense_shaped_and_reports_savings(tmp_path):
    method = Issp(IsspConfig(ratio=0.9, prune_steps=0))
    model = method.prepare(tiny(True))
    method.before_step(model, 0)  # freezes at once (prune_steps 0)
    with torch.no_grad():
        ref = model(clip())
    out = method.export(model, tmp_path, {"teacher": "tiny"})
    loaded = load_pruned(out)
    assert type(loaded) is BasicVSR
    with torch.no_grad():
        assert torch.allclose(loaded(clip()), ref, atol=1e-6)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["method"] == "issp" and meta["teacher"] == "tiny"
    assert meta["trunk_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert meta["bytes"]["bitmap_estimate"] < meta["bytes"]["dense_fp32"]
    assert meta["nonzero_params_without_spynet"] < meta["params"]["without_spynet"]
    assert meta["speedup"].startswith("none")
