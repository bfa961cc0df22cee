"""Slim (physically pruned) networks: masked gated model == sliced slim model, plans, export and loading."""

from __future__ import annotations

import json

import pytest
import torch

from vsrapp_models.basicvsr import BasicVSR, BasicVSRUni, ForwardState
from vsrapp_models.slim import SlimBasicVSR, SlimBasicVSRUni, build_slim, load_slim, validate_plan
from vsrapp_pruning.export import export_slim, slim_state_dict
from vsrapp_pruning.gates import add_gates
from vsrapp_pruning.plan import full_plan, kept_fraction, masks_from_plan, plan_from_masks
from vsrapp_pruning.selection import importance_scores, select_global

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_gated(bidirectional: bool, seed: int = 0, num_feat: int = 8, num_block: int = 3):
    torch.manual_seed(seed)
    dense = BasicVSR(num_feat, num_block) if bidirectional else BasicVSRUni(num_feat, num_block)
    gated = add_gates(dense.eval())
    with torch.no_grad():  # non-trivial scales, so folding is exercised too
        for p in gated.gate_parameters():
            p.uniform_(0.5, 1.5)
    return gated


def random_masks(gated, seed: int) -> dict[str, torch.Tensor]:
    """Random prune sets, any size from 0 to n-1 per gate (pixel-shuffle groups and RSC sets included)."""
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for name, p in gated.named_gates().items():
        n = p.numel()
        n_prune = int(torch.randint(0, n, (1,), generator=g))
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.randperm(n, generator=g)[:n_prune]] = True
        masks[name] = mask
    return masks


def clip(t: int = 3, h: int = 12, w: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


def slim_from(gated, plan):
    slim = build_slim(plan)
    slim.load_state_dict(slim_state_dict(gated, plan), strict=True)
    return slim.eval()


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_model_equals_slim_model(bidirectional, seed):
    gated = tiny_gated(bidirectional, seed)
    plan = plan_from_masks(gated, random_masks(gated, seed))
    slim = slim_from(gated, plan)
    gated.apply_masks(masks_from_plan(gated, plan))
    x = clip(seed=seed)
    with torch.no_grad():
        ref = gated(x)
        out = slim(x)
    assert torch.allclose(out, ref, atol=1e-5, rtol=0), float((out - ref).abs().max())
    # Slicing really removed channels (pixel-shuffle groups: 4 filters per kept group).
    assert slim.upconv2.out_channels == 4 * len(plan["kept"]["upconv2.out"])
    assert slim.conv_hr.in_channels == len(plan["kept"]["upconv2.out"])
    assert sum(p.numel() for p in slim.parameters()) < sum(p.numel() for p in gated.net.parameters())


def test_unmasked_slices_differ():
    """The equality above is not vacuous: without zeroing the pruned scales the outputs differ."""
    gated = tiny_gated(True, 0)
    plan = plan_from_masks(gated, random_masks(gated, 0))
    slim = slim_from(gated, plan)
    x = clip()
    with torch.no_grad():
        assert (slim(x) - gated(x)).abs().max() > 1e-3


def test_rsc_block_reads_and_writes_its_own_subsets():
    gated = tiny_gated(True, 0)
    masks = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in gated.named_gates().items()}
    masks["forward_trunk.main.2.1.conv1.in"][:5] = True  # reads channels 5, 6, 7
    masks["forward_trunk.main.2.1.conv2.out"][2:] = True  # writes channels 0, 1
    plan = plan_from_masks(gated, masks)
    block = build_slim(plan).forward_trunk.main[2][1]
    assert block.read_idx.tolist() == [5, 6, 7] and block.write_idx.tolist() == [0, 1]
    x = torch.randn(1, 8, 6, 6)
    y = block(x)
    assert torch.equal(y[:, 2:], x[:, 2:])  # untouched stream channels pass through
    x2 = x.clone()
    x2[:, :5] += 1.0  # channels the block does not read leave its residual unchanged
    assert torch.allclose((block(x2) - x2)[:, :2], (y - x)[:, :2], atol=1e-6)
    x3 = x.clone()
    x3[:, 6] += 1.0  # a channel it reads does change it
    assert not torch.allclose((block(x3) - x3)[:, :2], (y - x)[:, :2], atol=1e-3)
    # Out of place and differentiable (index_add, not an in-place indexed add).
    x.requires_grad_(True)
    block(x).sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad[:, 2:5], torch.ones_like(x.grad[:, 2:5]))  # neither read nor written
    assert not torch.equal(x.grad[:, 5:], torch.ones_like(x.grad[:, 5:]))  # read: the residual path counts


@pytest.mark.parametrize("bidirectional", [True, False])
def test_channels_last_and_in_place_paths_match(bidirectional):
    """The Upscaler runs slim models in channels-last memory and, without autograd, adds each block's residual
    into the stream in place. Both are speed paths only: the same numbers as the plain path, and the caller's
    clip is left as it was."""
    gated = tiny_gated(bidirectional, 4)
    plan = plan_from_masks(gated, random_masks(gated, 4))
    slim = slim_from(gated, plan)
    x = clip(seed=4)
    ref = slim(x).detach()  # autograd on: the out-of-place path
    x_before = x.clone()
    with torch.inference_mode():
        plain = slim(x)
        cl = slim.to(memory_format=torch.channels_last)
        frames = [x[:, i].contiguous(memory_format=torch.channels_last) for i in range(x.shape[1])]
        feat = cl.forward_step(frames[0], None)
        assert feat.is_contiguous(memory_format=torch.channels_last)  # the layout survives the RSC blocks
        out_cl = cl(torch.stack(frames, 1))
    assert torch.equal(x, x_before)
    assert torch.allclose(plain, ref, atol=1e-6, rtol=0)
    assert torch.allclose(out_cl, ref, atol=1e-5, rtol=0), float((out_cl - ref).abs().max())
    # The channels-last block really gathers and scatters on the channel axis (not a vacuous pass-through).
    block = cl.forward_trunk.main[2][0]
    assert not block.read_all and not block.write_all
    s = torch.randn(1, 8, 5, 7)
    with torch.no_grad():
        expected = block(s.clone())
        s_cl = s.contiguous(memory_format=torch.channels_last)
        got = block(s_cl, inplace=True)
    assert torch.allclose(got, expected, atol=1e-6) and not torch.equal(got, s)
    assert torch.equal(s_cl, got)  # in place means in place


@pytest.mark.parametrize("bidirectional", [True, False])
def test_full_plan_is_the_dense_model(bidirectional):
    gated = tiny_gated(bidirectional)
    slim = slim_from(gated, full_plan(gated))
    x = clip()
    with torch.no_grad():
        assert torch.allclose(slim(x), gated(x), atol=1e-5)
    assert kept_fraction(full_plan(gated)) == 1.0


def test_slim_has_the_step_api():
    bi = slim_from(tiny_gated(True), full_plan(tiny_gated(True)))
    uni_gated = tiny_gated(False)
    uni = slim_from(uni_gated, plan_from_masks(uni_gated, random_masks(uni_gated, 3)))
    assert isinstance(bi, SlimBasicVSR) and isinstance(bi, BasicVSR)
    assert isinstance(uni, SlimBasicVSRUni) and isinstance(uni, BasicVSRUni)
    assert bi.bidirectional and not uni.bidirectional and bi.scale == uni.scale == 4
    assert bi.num_feat == uni.num_feat == 8
    for name in ("flow", "backward_step", "forward_step", "reconstruct", "forward"):
        assert callable(getattr(bi, name))
    x = clip(t=3)
    with torch.no_grad():
        state, outs = None, []
        for i in range(3):
            out, state = uni.step(x[:, i], state)
            outs.append(out)
        assert isinstance(state, ForwardState)
        assert torch.allclose(torch.stack(outs, 1), uni(x), atol=1e-5)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_export_round_trip(tmp_path, bidirectional):
    gated = tiny_gated(bidirectional)
    plan = plan_from_masks(gated, random_masks(gated, 5))
    out = export_slim(gated, plan, tmp_path / "exp", meta={"ratio": 0.5, "teacher": "tiny-random"})
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "plan.json", "meta.json"}
    assert json.loads((out / "plan.json").read_text()) == plan
    meta = json.loads((out / "meta.json").read_text())
    assert meta["method"] == "ssl" and meta["ratio"] == 0.5 and meta["teacher"] == "tiny-random"
    assert meta["recipe"] is None and meta["macs_per_frame"]["lr_size"] == [180, 320]
    assert meta["params"]["total"] - meta["params"]["spynet"] == meta["params"]["without_spynet"]

    loaded = load_slim(out)
    assert not loaded.training
    assert meta["params"]["total"] == sum(p.numel() for p in loaded.parameters())
    gated.apply_masks(masks_from_plan(gated, plan))
    x = clip()
    with torch.no_grad():
        assert torch.allclose(loaded(x), gated(x), atol=1e-5, rtol=0)

    # Strict: a weights file that does not fit the plan is refused.
    bad = json.loads((out / "plan.json").read_text())
    bad["kept"]["fusion.out"] = bad["kept"]["fusion.out"][:-1] or [0, 1]
    (out / "plan.json").write_text(json.dumps(bad))
    with pytest.raises(RuntimeError):
        load_slim(out)


def test_slim_module_does_not_import_pruning():
    import subprocess
    import sys

    code = "import sys, models.slim; assert not any(m.startswith('pruning') for m in sys.modules), 'pruning'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("edit", [
    lambda p: p["kept"].pop("conv_hr.out"),
    lambda p: p["kept"].__setitem__("upconv2.out", []),
    lambda p: p["kept"].__setitem__("fusion.out", [3, 1]),
    lambda p: p["kept"].__setitem__("forward_trunk.main.2.0.conv1.in", [0, 8]),
    lambda p: p.__setitem__("version", 99),
])
def test_bad_plans_are_rejected(edit):
    plan = full_plan(tiny_gated(True))
    edit(plan)
    with pytest.raises((ValueError, KeyError)):
        validate_plan(plan)


def test_official_weights_prune_export_load(vimeo_weights, tmp_path):
    """The real network: L1 selection at 0.5, masked == slim, export and load."""
    from vsrapp.zoo import load_basicsr_state

    dense = BasicVSR().eval()
    dense.load_state_dict(load_basicsr_state(vimeo_weights), strict=True)
    gated = add_gates(dense)
    masks = select_global(importance_scores(gated), 0.5)
    plan = plan_from_masks(gated, masks)
    out = export_slim(gated, plan, tmp_path / "ssl", meta={"ratio": 0.5, "teacher": "BasicVSR_Vimeo90K_BIx4"})
    slim = load_slim(out)
    gated.apply_masks(masks)
    x = clip(t=2, h=16, w=16)
    with torch.no_grad():
        ref = gated(x)
        got = slim(x)
    assert torch.allclose(got, ref, atol=1e-5, rtol=0), float((got - ref).abs().max())
    meta = json.loads((out / "meta.json").read_text())
    # ~1.26 M parameters without SpyNet at ratio 0.5 (SSL reports 1.0 M after its own sparsity learning).
    assert 0.9e6 < meta["params"]["without_spynet"] < 1.6e6
    assert meta["macs_per_frame"]["without_spynet"] < 0.35 * 337.76e9
    assert kept_fraction(plan) == pytest.approx(0.5, abs=1e-3)
