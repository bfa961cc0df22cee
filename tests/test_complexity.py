"""Parameter and MAC counter against hand-computed counts (ssl.md §2.3 dense figures, §10 pruned formula)."""

from __future__ import annotations

import pytest
import torch

from vsrapp_models.basicvsr import BasicVSR, BasicVSRUni
from vsrapp_models.complexity import count_macs, count_params, plan_macs_formula
from vsrapp_models.slim import build_slim
from vsrapp_pruning.gates import add_gates
from vsrapp_pruning.plan import full_plan, plan_from_masks

H, W = 180, 320
HW = H * W
SPY_WIDTHS = [8, 32, 64, 32, 16, 2]
# Per pixel of one pyramid level: five 7x7 convs.
SPY_MACS_PER_PIXEL = 49 * sum(a * b for a, b in zip(SPY_WIDTHS[:-1], SPY_WIDTHS[1:]))
SPY_PARAMS = 6 * sum(49 * a * b + b for a, b in zip(SPY_WIDTHS[:-1], SPY_WIDTHS[1:]))


def conv_params(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def spynet_macs(h: int, w: int) -> int:
    """One flow: the frame is resized to the next multiple of 32 and run through a 6-level pyramid."""
    h32, w32 = -(-h // 32) * 32, -(-w // 32) * 32
    return sum((h32 >> k) * (w32 >> k) for k in range(6)) * SPY_MACS_PER_PIXEL


def test_dense_params_by_hand():
    trunk = conv_params(67, 64, 3) + 60 * conv_params(64, 64, 3)
    recon = (conv_params(128, 64, 1) + 2 * conv_params(64, 256, 3) + conv_params(64, 64, 3)
             + conv_params(64, 3, 3))
    counts = count_params(BasicVSR())
    assert counts["spynet"] == SPY_PARAMS == 1_440_300
    assert counts["without_spynet"] == 2 * trunk + recon == 4_851_011  # the "4.9 M" of the SSL table
    assert counts["total"] == 6_291_311
    uni = count_params(BasicVSRUni())
    assert uni["without_spynet"] == trunk + recon - 64 * 64  # fusion reads 64, not 128 channels
    assert round(uni["without_spynet"] / 1e6, 1) == 2.6  # "BasicVSR-uni 2.6 M"


def test_dense_macs_by_hand():
    macs = count_macs(BasicVSR(), (H, W))
    parts = macs["by_part"]
    trunk = HW * 9 * (67 * 64 + 60 * 64 * 64)
    assert parts["backward_trunk"] == parts["forward_trunk"] == trunk
    assert 2 * trunk == pytest.approx(259.3e9, rel=1e-3)
    assert parts["fusion"] == HW * 128 * 64
    assert parts["upconv1"] == HW * 9 * 64 * 256
    assert parts["upconv2"] == 4 * HW * 9 * 64 * 256
    assert parts["conv_hr"] == 16 * HW * 9 * 64 * 64
    assert parts["conv_last"] == 16 * HW * 9 * 64 * 3
    assert parts["spynet"] == macs["spynet"] == 2 * spynet_macs(H, W)
    assert macs["spynet"] == pytest.approx(39.3e9, rel=1e-3)
    assert macs["without_spynet"] == pytest.approx(338e9, rel=2e-3)
    assert macs["without_spynet"] == plan_macs_formula(full_plan(add_gates(BasicVSR())), (H, W))
    assert macs["total"] == macs["spynet"] + macs["without_spynet"]


def test_uni_macs_count_one_flow_and_one_trunk():
    uni = count_macs(BasicVSRUni(), (H, W))
    bi = count_macs(BasicVSR(), (H, W))
    assert uni["spynet"] == bi["spynet"] // 2
    assert "backward_trunk" not in uni["by_part"]
    assert uni["by_part"]["fusion"] == HW * 64 * 64


def test_gated_and_dense_count_the_same_and_model_is_untouched():
    dense = BasicVSR(16, 2)
    before = dense.upconv1.weight.clone()
    gated = add_gates(dense)
    assert count_macs(gated, (32, 48)) == count_macs(dense, (32, 48))
    assert count_params(gated)["without_spynet"] == count_params(dense)["without_spynet"] + sum(
        p.numel() for p in gated.gate_parameters())
    assert dense.upconv1.weight.device.type == "cpu" and torch.equal(dense.upconv1.weight, before)
    # The full plan's closed form is the dense count.
    assert plan_macs_formula(full_plan(gated), (32, 48)) == count_macs(dense, (32, 48))["without_spynet"]


def slim_params_by_hand(plan) -> int:
    """ssl.md §10's products without the H factors, plus biases and SpyNet."""
    arch, kept = plan["arch"], plan["kept"]
    nf = arch["num_feat"]
    trunks = ("backward_trunk", "forward_trunk") if arch["bidirectional"] else ("forward_trunk",)
    n = SPY_PARAMS
    for trunk in trunks:
        n += conv_params(nf + 3, nf, 3)
        for j in range(arch["num_block"]):
            p, m, o = (len(kept[f"{trunk}.main.2.{j}.{s}"]) for s in ("conv1.in", "conv1.out", "conv2.out"))
            n += conv_params(p, m, 3) + conv_params(m, o, 3)
    f, g1, g2, k = (len(kept[x]) for x in ("fusion.out", "upconv1.out", "upconv2.out", "conv_hr.out"))
    n += conv_params(len(trunks) * nf, f, 1) + conv_params(f, 4 * g1, 3) + conv_params(g1, 4 * g2, 3)
    return n + conv_params(g2, k, 3) + conv_params(k, 3, 3)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_pruned_counts_match_formula(bidirectional, seed):
    torch.manual_seed(seed)
    gated = add_gates(BasicVSR(16, 4) if bidirectional else BasicVSRUni(16, 4))
    g = torch.Generator().manual_seed(seed)
    masks = {n: torch.rand(p.numel(), generator=g) < 0.6 for n, p in gated.named_gates().items()}
    for m in masks.values():
        m[0] = False  # keep at least one
    plan = plan_from_masks(gated, masks)
    slim = build_slim(plan)
    macs = count_macs(slim, (H, W))
    assert macs["without_spynet"] == plan_macs_formula(plan, (H, W))
    assert macs["spynet"] == (2 if bidirectional else 1) * spynet_macs(H, W)
    assert count_params(slim)["total"] == slim_params_by_hand(plan)
