"""Learned N:M (SLS, M = 4): mask pattern, ordered levels, the MAC budget, export/load and the 2:4 GEMM path."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from nets import random_clip, tiny_net

from vsrapp_models.basicvsr import BasicVSR
from vsrapp_models.nm_sparse import (
    SemiSparseConv2d,
    accelerate,
    load_nm,
    max_nonzeros_per_group,
    nm_mask,
    semi_structured_support,
)
from vsrapp_models.pruned import load_pruned
from vsrapp_pruning.nm import NMConfig, NMConv2d, NMSparsity, nm_layers

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(bidirectional: bool = True, seed: int = 0):
    return tiny_net(bidirectional, seed)


def clip(seed: int = 1) -> torch.Tensor:
    return random_clip(2, seed)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_mask_keeps_exactly_n_largest_in_every_group_of_four_input_channels(n):
    w = torch.randn(6, 16, 3, 3)
    keep = nm_mask(w, n)
    groups = keep.permute(0, 2, 3, 1).reshape(6, 3, 3, 4, 4)  # (out, kh, kw, group, 4 channels)
    assert bool((groups.sum(-1) == n).all())
    # The kept ones are the largest of their group.
    mags = w.abs().permute(0, 2, 3, 1).reshape(6, 3, 3, 4, 4)
    kept_min = torch.where(groups, mags, torch.inf).min(-1).values
    dropped_max = torch.where(groups, -torch.inf, mags).max(-1).values
    assert bool((kept_min >= dropped_max).all())
    assert max_nonzeros_per_group(w * keep) == n


def test_nm_conv_levels_are_ordered_and_exact():
    torch.manual_seed(0)
    conv = NMConv2d.from_conv(torch.nn.Conv2d(8, 8, 3, 1, 1), levels=(1, 2, 3, 4))
    x = torch.randn(1, 8, 5, 5)
    assert conv.n() == 4 and torch.allclose(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1))
    with torch.no_grad():
        conv.scores.copy_(torch.tensor([1.0, 0.4, 1.03]))  # p = 1, 0.4, 0.41: level 3 needs level 2
    assert conv.n() == 2
    masked = conv.weight * nm_mask(conv.weight, 2)
    assert torch.allclose(conv(x), F.conv2d(x, masked, conv.bias, padding=1), atol=1e-6)
    assert float(conv.soft_n().detach()) == 2.0
    conv.soft_n().backward()
    assert conv.scores.grad is not None and bool((conv.scores.grad[:2] != 0).any())


@pytest.mark.parametrize("levels,budget", [((2, 4), 0.75), ((1, 2, 3, 4), 0.6)])
def test_learned_n_respects_the_budget(levels, budget):
    method = NMSparsity(budget, NMConfig(levels=levels, anneal_every=5))
    model = method.prepare(tiny())
    scores = method.param_groups(model, 1e-4)["scores"]
    opt = torch.optim.Adam(scores[0], scores[1])
    step = 0
    while not method.frozen and step < 300:  # the cost term alone: the budget must stop it
        method.before_step(model, step)
        loss = method.penalty(model, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(model, step)
        step += 1
    assert method.frozen
    assert method.cost(model) <= budget
    ns = [c.n() for c in nm_layers(model).values()]
    assert set(ns) <= set(levels) and min(ns) < 4
    # Frozen: more cost pressure changes nothing.
    assert float(method.penalty(model, step)) == 0.0


def test_export_keeps_the_pattern_and_loads_without_pruning(tmp_path):
    method = NMSparsity(0.75)
    model = method.prepare(tiny())
    layers = nm_layers(model)
    with torch.no_grad():
        for name in list(layers)[::2]:
            layers[name].scores.fill_(0.3)  # 2:4
    with torch.no_grad():
        ref = model(clip())
    out = method.export(model, tmp_path)
    loaded = load_pruned(out)
    assert type(loaded) is BasicVSR
    with torch.no_grad():
        assert torch.allclose(loaded(clip()), ref, atol=1e-5)
    plan = json.loads((out / "plan.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert meta["method"] == "nm" and meta["layers_2of4"] == len(layers) // 2
    assert meta["nm_macs_without_spynet"] < meta["macs_per_frame"]["without_spynet"]
    for name, spec in plan["layers"].items():
        w = loaded.get_submodule(name).weight
        assert max_nonzeros_per_group(w) == spec["n"]
        assert spec["nnz"] == spec["numel"] * spec["n"] // 4
    # CPU: no semi-structured kernels; the model stays dense and says why.
    converted, reason = accelerate(loaded)
    assert converted == [] and "CUDA" in reason
    assert not semi_structured_support("cpu", torch.float16)[0]
    # A file whose weights break the stored pattern is refused.
    name = next(n for n, s in plan["layers"].items() if s["n"] == 2)
    from safetensors.torch import load_file, save_file

    state = load_file(str(out / "model.safetensors"))
    state[f"{name}.weight"] = state[f"{name}.weight"] + 1e-3
    save_file(state, str(out / "model.safetensors"))
    with pytest.raises(ValueError, match="pattern"):
        load_nm(out)


def test_gemm_formulation_equals_conv():
    """The unfold + (kh, kw, C_in)-ordered GEMM the 2:4 kernels run, checked densely on the CPU."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 16, 3, 1, 1)
    with torch.no_grad():
        conv.weight.mul_(nm_mask(conv.weight, 2))
    x = torch.randn(2, 8, 7, 9)
    gemm = SemiSparseConv2d(conv, sparse=False)
    assert torch.allclose(gemm(x), conv(x), atol=1e-5)


@pytest.mark.skipif(not semi_structured_support("cuda", torch.float16)[0], reason="needs CUDA sm80+")
def test_semi_structured_conv_on_gpu():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, 1, 1).cuda().half()
    with torch.no_grad():
        conv.weight.mul_(nm_mask(conv.weight, 2))
    x = torch.randn(1, 64, 32, 32, device="cuda", dtype=torch.float16)
    sparse = SemiSparseConv2d(conv, sparse=True)
    assert torch.allclose(sparse(x).float(), conv(x).float(), atol=5e-2, rtol=1e-2)


def test_freeze_gives_back_the_overshoot_most_reluctant_first():
    method = NMSparsity(0.75)
    model = method.prepare(tiny(False))  # 4 searched convs of equal cost
    layers = list(nm_layers(model).values())
    with torch.no_grad():
        for conv, s in zip(layers, (0.1, 0.45, 0.2, 0.4)):
            conv.scores.fill_(s)  # all 2:4 now: cost 0.5, below the 0.75 budget
    method.after_step(model, 0)
    assert method.frozen and method.cost(model) == 0.75
    assert [c.n() for c in layers] == [2, 4, 2, 4]  # the two highest keep probabilities went back to dense
