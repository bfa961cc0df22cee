"""SSL pruning mechanics: scale gates, global selection, growing L2, TF losses (tiny networks, one official)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vsrapp_models.basicvsr import BasicVSR, BasicVSRUni
from vsrapp_pruning.gates import GatedBasicVSR, GatedBasicVSRUni, GatedConv2d, add_gates
from vsrapp_pruning.losses import (
    TemporalFinetuneLoss,
    charbonnier_loss,
    compute_flows,
    run_with_states,
    temporal_loss,
)
from vsrapp_pruning.plan import plan_from_masks
from vsrapp_pruning.regularizer import GrowingL2
from vsrapp_pruning.selection import importance_scores, pruned_fraction, select_global

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(bidirectional: bool = True, seed: int = 0, num_feat: int = 8, num_block: int = 2):
    torch.manual_seed(seed)
    model = BasicVSR(num_feat, num_block) if bidirectional else BasicVSRUni(num_feat, num_block)
    return model.eval()


def clip(t: int = 3, h: int = 12, w: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, t, 3, h, w, generator=g)


# ------------------------------------------------------------------------------------------------------ gates
@pytest.mark.parametrize("bidirectional", [True, False])
def test_gated_with_ones_equals_dense(bidirectional):
    dense = tiny(bidirectional)
    gated = add_gates(dense)
    assert isinstance(gated, GatedBasicVSR if bidirectional else GatedBasicVSRUni)
    x = clip()
    with torch.no_grad():
        assert torch.allclose(gated(x), dense(x), atol=1e-6, rtol=0)
    # The dense model was not modified (the wrapper works on a copy).
    assert not any(isinstance(m, GatedConv2d) for m in dense.modules())


def test_gates_cover_exactly_the_prunable_layers():
    gated = add_gates(BasicVSR())  # full size: 30 blocks, 64 features
    names = {g.name for g in gated.gates}
    assert "backward_trunk.main.2.0.conv1.in" in names and "forward_trunk.main.2.29.conv2.out" in names
    assert not any("spynet" in n or "main.0" in n or "conv_last" in n for n in names)
    assert not any(n.endswith("conv2.in") or n.startswith(("fusion.in", "upconv1.in")) for n in names)
    # ssl.md §6: 2 branches x 30 blocks x (64 + 64 + 64) + fusion 64 + 2 x 64 upconv groups + conv_hr 64.
    assert sum(p.numel() for p in gated.gate_parameters()) == 11_776
    assert gated.gate_tensor("upconv2.out").numel() == 64 and gated.gated_conv("upconv2").group == 4
    n_weights = sum(p.numel() for p in gated.weight_parameters())
    assert n_weights == 6_291_311  # every dense parameter, gates excluded
    assert len(gated.weight_parameters(include_spynet=False)) < len(gated.weight_parameters())


def test_gated_conv_matches_activation_form():
    """Folding must equal SSL's activation form g_out * conv(g_in * x) + ..., per group for upconvs."""
    torch.manual_seed(0)
    for group, in_gate in [(1, True), (4, False), (1, False)]:
        conv = torch.nn.Conv2d(6, 8, 3, 1, 1)
        gated = GatedConv2d.from_conv(conv, group, in_gate)
        with torch.no_grad():
            gated.out_scale.uniform_(-1, 2)
            if in_gate:
                gated.in_scale.uniform_(-1, 2)
        x = torch.randn(2, 6, 5, 7)
        x_in = x * gated.in_scale.view(1, -1, 1, 1) if in_gate else x
        ref = conv(x_in) * gated.out_scale.repeat_interleave(group).view(1, -1, 1, 1)
        assert torch.allclose(gated(x), ref, atol=1e-5)


def test_official_gated_with_ones_equals_dense(vimeo_weights):
    from vsrapp.zoo import load_basicsr_state

    dense = BasicVSR().eval()
    dense.load_state_dict(load_basicsr_state(vimeo_weights), strict=True)
    gated = add_gates(dense)
    x = clip(t=2, h=16, w=16)
    with torch.no_grad():
        ref = dense(x)
        assert torch.allclose(gated(x), ref, atol=1e-6, rtol=0)
        # and the step API gives the same frames
        assert torch.allclose(run_with_states(gated, x).outputs, ref, atol=1e-5)

    # Decision check: on fresh gates |g| ranks nothing (all ties) but the folded-L1 score does.
    scores = importance_scores(gated)
    flat = torch.cat(list(scores.values()))
    assert flat.unique().numel() > 0.99 * flat.numel()
    masks = select_global(scores, 0.5)
    fractions = pruned_fraction(masks)
    assert abs(sum(int(m.sum()) for m in masks.values()) - 0.5 * 11_776) <= 1
    # Global: layers come out at unequal ratios, none emptied.
    assert max(fractions.values()) - min(fractions.values()) > 0.1
    assert all(f < 1.0 for f in fractions.values())


# --------------------------------------------------------------------------------------------------- selection
def test_select_global_ranks_all_layers_together():
    scores = {"a": torch.tensor([0.1, 0.2, 5.0, 6.0]), "b": torch.tensor([1.0, 2.0, 3.0, 4.0]),
              "c": torch.tensor([0.01, 0.02])}
    masks = select_global(scores, ratio=0.5)
    assert masks["a"].tolist() == [True, True, False, False]
    assert masks["b"].tolist() == [True, False, False, False]
    # Would lose both entries; keeps its best one instead.
    assert masks["c"].tolist() == [True, False]
    assert pruned_fraction(masks) == {"a": 0.5, "b": 0.25, "c": 0.5}
    assert not any(m.any() for m in select_global(scores, ratio=0.0).values())
    with pytest.raises(ValueError):
        select_global(scores, ratio=1.0)


def test_scores_are_normalised_per_layer_and_follow_scales():
    gated = add_gates(tiny())
    raw = importance_scores(gated, normalise="none")
    norm = importance_scores(gated)
    for name in norm:
        assert math.isclose(float(norm[name].mean()), 1.0, rel_tol=1e-5)
        assert torch.allclose(norm[name], raw[name] / raw[name].mean(), atol=1e-6)
    by_kind = importance_scores(gated, normalise="kind")
    conv2 = [n for n in by_kind if n.endswith(".conv2.out")]
    assert len(conv2) == 4  # 2 branches x 2 blocks share one normaliser
    assert math.isclose(float(torch.cat([by_kind[n] for n in conv2]).mean()), 1.0, rel_tol=1e-5)
    assert torch.allclose(by_kind["fusion.out"], norm["fusion.out"])
    with pytest.raises(ValueError):
        importance_scores(gated, normalise="max")
    # Shrinking a scale shrinks its score: the same criterion re-picks the units the penalty pushed down.
    with torch.no_grad():
        gated.gate_tensor("forward_trunk.main.2.1.conv1.in")[3] = 0.0
        gated.gate_tensor("upconv1.out")[2] = 1e-3
    after = importance_scores(gated)
    assert after["forward_trunk.main.2.1.conv1.in"][3] == 0
    assert after["upconv1.out"][2] < 0.01
    # Upconv score: one per group of four filters.
    w = gated.gated_conv("upconv2").weight.detach().abs()
    assert torch.allclose(raw["upconv2.out"][5], w[20:24].mean())


# ------------------------------------------------------------------------------------------------- regularizer
def test_growing_schedule():
    reg = GrowingL2({}, delta=1e-4, interval=5, ceiling=0.1)
    assert reg.lam(0) == 0 and reg.lam(4) == 0 and reg.lam(5) == pytest.approx(1e-4)
    assert reg.lam(4999) == pytest.approx(0.0999) and reg.lam(5000) == pytest.approx(0.1)
    assert reg.lam(10**6) == pytest.approx(0.1)
    assert reg.growth_steps() == 5000


def test_penalty_gradient_uses_each_gates_own_tensor():
    """The official bug: conv1's input scales got lambda * (output scales). Ours: lambda * (input scales)."""
    gated = add_gates(tiny())
    name = "backward_trunk.main.2.0.conv1"
    with torch.no_grad():
        gated.gate_tensor(f"{name}.in").copy_(torch.linspace(0.1, 0.8, 8))
        gated.gate_tensor(f"{name}.out").copy_(torch.linspace(2.0, 3.0, 8))
    mask = torch.tensor([True, False] * 4)
    reg = GrowingL2({f"{name}.in": mask, f"{name}.out": ~mask}, delta=0.01, interval=1, ceiling=1.0)
    reg.penalty(gated, step=30).backward()
    g_in, g_out = gated.gate_tensor(f"{name}.in"), gated.gate_tensor(f"{name}.out")
    assert torch.allclose(g_in.grad, 0.3 * g_in.detach() * mask)
    assert torch.allclose(g_out.grad, 0.3 * g_out.detach() * ~mask)
    assert gated.gate_tensor("fusion.out").grad is None


def test_penalty_drives_marked_scales_to_zero():
    torch.manual_seed(0)
    teacher = tiny(num_feat=8, num_block=2)
    gated = add_gates(teacher)
    x = clip(t=2, h=8, w=12)
    with torch.no_grad():
        ref = teacher(x)
        flows = compute_flows(teacher, x)
    masks = select_global(importance_scores(gated), ratio=0.5)
    reg = GrowingL2(masks, delta=0.05, interval=5, ceiling=1.0)
    params = [p for p in gated.weight_parameters(include_spynet=False)] + gated.gate_parameters()
    opt = torch.optim.Adam(params, lr=2e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 300, eta_min=1e-4)
    for step in range(300):
        out = run_with_states(gated, x, flows).outputs
        loss = charbonnier_loss(out, ref) + reg.penalty(gated, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    marked_max, free_min = reg.marked_magnitude(gated)
    assert marked_max < 0.02, marked_max
    assert free_min > 0.3, free_min
    # Input scales too (they are what the official code's bug left behind).
    assert all(float(gated.gate_tensor(n).detach()[m].abs().max()) < 0.02 for n, m in masks.items()
               if n.endswith(".in") and m.any())


# ------------------------------------------------------------------------------------------------------ losses
def test_charbonnier_matches_basicsr():
    from vsrapp.engine.compat import basicsr

    losses = basicsr("losses.basic_loss")
    a, b = torch.rand(2, 3, 3, 8, 8), torch.rand(2, 3, 3, 8, 8)
    ref = losses.CharbonnierLoss(loss_weight=1.0, reduction="mean", eps=1e-12)(a, b)
    assert torch.allclose(charbonnier_loss(a, b), ref)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_run_with_states_matches_forward(bidirectional):
    model = tiny(bidirectional)
    x = clip(t=4)
    with torch.no_grad():
        trace = run_with_states(model, x)
        assert torch.allclose(trace.outputs, model(x), atol=1e-5)
        assert trace.forward.shape == (1, 4, 8, 12, 16)
        if bidirectional:
            assert trace.backward.shape == (1, 4, 8, 12, 16)
            # The last backward state is the trunk on the last frame with zero history.
            assert torch.allclose(trace.backward[:, -1], model.backward_step(x[:, -1], None), atol=1e-6)
        else:
            assert trace.backward is None and trace.flows[0] is None
        assert torch.allclose(trace.forward[:, 0], model.forward_step(x[:, 0], None), atol=1e-6)
        assert temporal_loss(trace, trace) == 0
        one = run_with_states(model, x[:, :1])
        assert one.outputs.shape[1] == 1 and one.flows == (None, None)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_temporal_finetuning_lowers_the_loss(bidirectional):
    from vsrapp_models.slim import build_slim
    from vsrapp_pruning.export import slim_state_dict

    teacher = tiny(bidirectional)
    gated = add_gates(teacher)
    plan = plan_from_masks(gated, select_global(importance_scores(gated), 0.5))
    student = build_slim(plan)
    student.load_state_dict(slim_state_dict(gated, plan))
    x = clip(t=3, h=8, w=12)
    with torch.no_grad():
        gts = F.interpolate(x.flatten(0, 1), scale_factor=4, mode="bicubic").view(1, 3, 3, 32, 48)
    crit = TemporalFinetuneLoss(teacher, lambda_tf=1.0, share_flows=True)
    opt = torch.optim.Adam([p for n, p in student.named_parameters() if not n.startswith("spynet.")], lr=1e-3)
    history = []
    for _ in range(8):
        loss, parts = crit(student, x, gts)
        assert parts["tf"] > 0  # pruning changed the hidden states
        history.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert history[-1] < history[0]
    assert all(not p.requires_grad for p in crit.teacher.parameters())
    # The TF term is zero for an unpruned student equal to the teacher.
    same = add_gates(teacher)
    _, parts = crit(same, x, gts)
    assert float(parts["tf"]) < 1e-6
