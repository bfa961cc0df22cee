"""Closed-form refit of a slim (SSL/RSC) BasicVSR against its dense teacher: layer-wise ridge least squares.

Fine-tuning on two CPU cores barely recovers what pruning removes. The idea here: a pruned block reads fewer
stream channels and has fewer hidden filters, and the surviving weights were never adjusted to make up for
that. Given the slim network's activations and the teacher's, each conv's best weights are a least-squares
problem (channel-pruning reconstruction, He et al. 2017), solved layer by layer in the order of the computation
so that every layer sees the inputs the already-refitted layers before it produce:

1. per trunk (backward, then forward; each is independent of the other in BasicVSR), block by block within
   the frame:
   - ``main.0`` (the unpruned head conv) -> the teacher's ``main.0`` output (pre-LeakyReLU);
   - for each residual block j: ``conv1`` on the slim stream's read set P_j -> the teacher's conv1 output on the
     kept filters M_j (pre-ReLU, optional), then ``conv2`` on relu(conv1(x[P_j])) -> the residual that takes the
     slim stream to the teacher's stream after block j on the write set O_j:
     ``teacher_after_j[O_j] - slim_before_j[O_j]``;
2. the upsampler (optional): ``fusion``, ``upconv1``, ``upconv2``, ``conv_hr`` -> the teacher's pre-activation
   outputs on the kept units, ``conv_last`` -> the teacher's ``conv_last`` output (the HR residual itself).

Every fit uses the *slim* network's inputs at that layer, after the layers before it were refitted, and the
teacher's activations on the same few short LR clips, recorded with forward hooks. The recurrence needs care
(:func:`_refit_trunk`): the first sweep over a trunk is teacher-forced (the slim trunk sees the teacher's
hidden state), later sweeps use short rollouts of the slim trunk from the teacher's state, and the sweep with
the lowest closed-loop feature error on held-out clips is kept. Each problem is
``min_W |A W - Y|^2 + lam |W - W0|^2`` with ``A`` the im2col patches at a few tens of thousands of sampled
positions (plus a bias column, not regularised), ``W0`` the current weights and
``lam = ridge * mean(diag(A^T A))``; shrinking towards ``W0`` (not zero) means a layer that already reproduces
its target (an all-kept plan) is left as it is.

    python -m pruning.refit --model runs/exports/ssl-oneshot-r02 --teacher basicvsr-vimeo-bi \
        --out runs/exports/ssl-oneshot-r02-refit --clips 8 --val-clips 3 --frames 7 --lr-size 48 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsrapp.errors import UsageError
from vsrapp_models.contract import BACKWARD_TRUNK, block_name, trunk_names
from vsrapp_models.warp import flow_warp

LOG = logging.getLogger("vsrapp.refit")

UPSAMPLER = ("fusion", "upconv1", "upconv2", "conv_hr", "conv_last")
# Spatial scale of each upsampler conv's input (and output, stride 1) relative to the LR frame.
UPSAMPLER_SCALE = {"fusion": 1, "upconv1": 1, "upconv2": 2, "conv_hr": 4, "conv_last": 4}


# ------------------------------------------------------------------------------------------ sampling
def _positions(shape: torch.Size, count: int, seed: int) -> torch.Tensor:
    """``count`` random (n, y, x) positions in a (B, C, H, W) map, as a (count, 3) long tensor; a pure function
    of (shape, count, seed), so the teacher and the slim network sample the same places."""
    g = torch.Generator().manual_seed(seed)
    b, _, h, w = shape
    flat = torch.randint(0, b * h * w, (count,), generator=g)
    return torch.stack([flat // (h * w), (flat // w) % h, flat % w], dim=1)


def _at(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Values of the (B, C, H, W) map ``x`` at ``pos``: (S, C)."""
    return x[pos[:, 0], :, pos[:, 1], pos[:, 2]]


def _patches(x: torch.Tensor, pos: torch.Tensor, k: int) -> torch.Tensor:
    """im2col rows of a k x k, stride-1, zero-padded conv at ``pos``: (S, C * k * k) in the order of
    ``weight.reshape(out, -1)`` (channel, then kernel row, then kernel column)."""
    if k == 1:
        return _at(x, pos)
    p = k // 2
    xp = F.pad(x, (p, p, p, p))
    n, y, xx = pos.unbind(1)
    cols = [xp[n, :, y + dy, xx + dx] for dy in range(k) for dx in range(k)]  # k*k tensors of (S, C)
    return torch.stack(cols, dim=2).reshape(len(pos), -1)


class _Tap:
    """Forward hook that keeps, for every call of ``module``, ``pick(call_index, input, output)``."""

    def __init__(self, module: nn.Module,
                 pick: Callable[[int, torch.Tensor, torch.Tensor], Any]) -> None:
        self.calls: list[Any] = []
        self._pick = pick
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self.calls.append(self._pick(len(self.calls), args[0].detach(), output.detach()))

    def remove(self) -> None:
        self._handle.remove()


# ------------------------------------------------------------------------------------------ least squares
class _Normal:
    """Normal equations of one conv's refit (A^T A, A^T Y, |Y|^2), accumulated batch by batch in float64."""

    def __init__(self) -> None:
        self.gram: torch.Tensor | None = None
        self.cross: torch.Tensor | None = None
        self.y2 = 0.0

    def add(self, a: torch.Tensor, y: torch.Tensor) -> None:
        a = torch.cat([a, a.new_ones(len(a), 1)], dim=1).double()  # bias column last
        y = y.double()
        gram, cross = a.T @ a, a.T @ y
        self.gram = gram if self.gram is None else self.gram + gram
        self.cross = cross if self.cross is None else self.cross + cross
        self.y2 += float(y.pow(2).sum())

    def relative_error(self, w: torch.Tensor) -> float:
        """|A W - Y| / |Y| for stacked weights ``w`` (D + 1, out), from the accumulated sums alone."""
        assert self.gram is not None and self.cross is not None
        sse = float((w * (self.gram @ w)).sum() - 2 * (w * self.cross).sum()) + self.y2
        return (max(sse, 0.0) / max(self.y2, 1e-30)) ** 0.5


def _stacked(conv: nn.Conv2d) -> torch.Tensor:
    """The conv's weights as one (D + 1, out) float64 matrix: im2col weights, then the bias row."""
    return torch.cat([conv.weight.reshape(conv.out_channels, -1).T, conv.bias[None]], dim=0).double()


def _fit(conv: nn.Conv2d, batches: list[tuple[torch.Tensor, torch.Tensor]], ridge: float) -> tuple[float, float]:
    """Set ``conv``'s weight and bias to the ridge solution (shrunk towards its current weights) for the
    (im2col rows, target rows) ``batches``; return the relative error |AW - Y| / |Y| before and after."""
    normal = _Normal()
    for a, y in batches:
        normal.add(a, y)
    assert normal.gram is not None and normal.cross is not None
    w0 = _stacked(conv)
    if not (torch.isfinite(normal.gram).all() and torch.isfinite(normal.cross).all()):
        return float("nan"), float("nan")  # inputs from a diverged rollout: nothing to fit, weights left alone
    d = w0.shape[0] - 1
    lam = torch.zeros(d + 1, dtype=torch.float64)
    lam[:d] = ridge * normal.gram.diagonal()[:d].mean().clamp_min(1e-12)  # the bias is not regularised
    w = torch.linalg.solve(normal.gram + torch.diag(lam), normal.cross + lam[:, None] * w0)
    conv.weight.copy_(w[:d].T.reshape(conv.weight.shape).to(conv.weight.dtype))
    conv.bias.copy_(w[d].to(conv.bias.dtype))
    return normal.relative_error(w0), normal.relative_error(w)


# ------------------------------------------------------------------------------------------ running branches
def _flows(model: nn.Module, lrs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SpyNet flows as in ``BasicVSR.forward``: ``to_next[:, i]`` warps frame i+1 onto i, ``to_prev[:, i]``
    warps frame i onto i+1."""
    b, t, c, h, w = lrs.shape
    a, n = lrs[:, :-1].reshape(-1, c, h, w), lrs[:, 1:].reshape(-1, c, h, w)
    return model.flow(a, n).view(b, t - 1, 2, h, w), model.flow(n, a).view(b, t - 1, 2, h, w)


def _run_branch(model: nn.Module, trunk: str, lrs: torch.Tensor,
                flows: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
    """Run one recurrent branch over the clip(s) with the model's own step API; features per frame index.
    Calls are made in the branch's time order (backward: last frame first), which the hooks' call indices
    follow."""
    t = lrs.shape[1]
    feats: list[torch.Tensor] = [lrs.new_empty(0)] * t
    feat = None
    if trunk == BACKWARD_TRUNK:
        for i in range(t - 1, -1, -1):
            feat = model.backward_step(lrs[:, i], feat, flows[0][:, i] if i < t - 1 else None)
            feats[i] = feat
    else:
        for i in range(t):
            feat = model.forward_step(lrs[:, i], feat, flows[1][:, i - 1] if i > 0 else None)
            feats[i] = feat
    return feats


def _trunk_names(model: nn.Module) -> tuple[str, ...]:
    return trunk_names(bool(model.bidirectional))


def _read(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The stream channels a slim residual block reads (P_j)."""
    return x if block.read_all else x.index_select(1, block.read_idx)


def _rows(units: list[int], group: int) -> list[int]:
    """Filter rows of kept units (groups of ``group`` consecutive filters for the pixel-shuffle convs)."""
    return [u * group + i for u in units for i in range(group)]


# ------------------------------------------------------------------------------------------ the refit
def _relative(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    """|got - want| / |want| over lists of maps."""
    num = sum(float((g - w).double().pow(2).sum()) for g, w in zip(got, want))
    return (num / max(sum(float(w.double().pow(2).sum()) for w in want), 1e-30)) ** 0.5


def _calls(trunk: str, lrs: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor],
           ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(LR frame, flow that warps the previous call's features onto it) per trunk call, in the branch's time
    order (as :func:`_run_branch` makes them)."""
    t = lrs.shape[1]
    if trunk == BACKWARD_TRUNK:
        return [(lrs[:, i], flows[0][:, i] if i < t - 1 else None) for i in range(t - 1, -1, -1)]
    return [(lrs[:, i], flows[1][:, i - 1] if i > 0 else None) for i in range(t)]


def _rollout_inputs(trunk: nn.Module, calls: list[tuple[torch.Tensor, torch.Tensor | None]],
                    t_inputs: list[torch.Tensor], steps: int) -> list[torch.Tensor]:
    """The trunk's input at every call when the slim trunk has run the last ``steps`` calls on its own, starting
    from the teacher's state (``t_inputs``: the teacher trunk's inputs per call). Same arithmetic as
    ``models.basicvsr._propagate``: cat(LR frame, hidden state warped by the flow)."""
    out = []
    for k in range(len(calls)):
        m = max(0, k - steps)
        x = t_inputs[m]
        for n in range(m + 1, k + 1):
            lr, flow = calls[n]
            x = torch.cat([lr, flow_warp(trunk(x), flow)], dim=1)
        out.append(x)
    return out


class _Judge:
    """Scores the slim model against the teacher on a fixed set of clips (held-out validation clips when there
    are any): closed-loop feature error per trunk and PSNR of the HR output. Every refit step is kept only if
    its score improves."""

    def __init__(self, teacher: nn.Module, slim: nn.Module, clips: torch.Tensor) -> None:
        self.clips = clips
        self.s_flows = _flows(slim, clips)  # SpyNet is never refitted
        t_flows = _flows(teacher, clips)
        self.t_branches = {trunk: _run_branch(teacher, trunk, clips, t_flows) for trunk in _trunk_names(teacher)}
        self.t_out = self._upsample(teacher, self.t_branches)

    def _upsample(self, model: nn.Module, branches: dict[str, list[torch.Tensor]]) -> list[torch.Tensor]:
        return [model.upsample(self.clips[:, i], torch.cat([br[i] for br in branches.values()], dim=1))
                for i in range(self.clips.shape[1])]

    def trunk_error(self, slim: nn.Module, trunk: str) -> float:
        return _relative(_run_branch(slim, trunk, self.clips, self.s_flows), self.t_branches[trunk])

    def output_psnr(self, slim: nn.Module) -> float:
        branches = {trunk: _run_branch(slim, trunk, self.clips, self.s_flows) for trunk in self.t_branches}
        return _psnr(self._upsample(slim, branches), self.t_out)


def _sweep_trunk(main: nn.Sequential, inputs: list[tuple[int, torch.Tensor]],
                 targets: dict[str, list[torch.Tensor]], pos: Callable[[int, int], torch.Tensor], ridge: float,
                 conv1: bool, head: bool, log: Callable[[str], None], name: str) -> None:
    """One pass of the trunk ``main`` over recorded trunk inputs, ``(call index, input)`` pairs (the call index
    picks the teacher's targets and the sampled positions): refit each layer on the inputs that the layers
    before it, already refitted, produce *within the frame*, then propagate."""
    if head:
        before, after = _fit(main[0], [(_patches(x, pos(-1, k), 3), targets["head"][k]) for k, x in inputs], ridge)
        log(f"{name}.main.0: {before:.4f} -> {after:.4f}")
    xs = [(k, main[1](main[0](x))) for k, x in inputs]  # the stream entering block 0
    for j, block in enumerate(main[2]):
        msg = f"{block_name(name, j)}:"
        if conv1:
            before, after = _fit(block.conv1, [(_patches(_read(block, x), pos(j, k), 3), targets[f"conv1_{j}"][k])
                                               for k, x in xs], ridge)
            msg += f" conv1 {before:.4f} -> {after:.4f};"
        batches = []
        for k, x in xs:
            p = pos(j, k)
            hidden = F.relu(block.conv1(_read(block, x)))
            stream = _at(x, p) if block.write_all else _at(x, p)[:, block.write_idx]
            batches.append((_patches(hidden, p, 3), targets[f"after{j}"][k] - stream))  # residual to the teacher
        before, after = _fit(block.conv2, batches, ridge)
        log(f"{msg} conv2 {before:.4f} -> {after:.4f}")
        xs = [(k, block(x)) for k, x in xs]


def _refit_trunk(teacher: nn.Module, slim: nn.Module, trunk: str, lrs: torch.Tensor,
                 t_flows: tuple[torch.Tensor, torch.Tensor], s_flows: tuple[torch.Tensor, torch.Tensor],
                 per_call: int, ridge: float, conv1: bool, head: bool, sweeps: int, seed: int, judge: _Judge,
                 log: Callable[[str], None]) -> dict[str, float]:
    """Refit one trunk; returns its closed-loop feature error (relative to the teacher's, on the judge's clips)
    before and after.

    Sweep 0 is teacher-forced: the slim trunk is fitted on the teacher's own trunk inputs (LR frame + the
    teacher's warped hidden state), so every layer's target is consistent with its input. But a trunk fitted
    only on the teacher's states can amplify its own errors once it feeds on its own hidden state (measured:
    at r=0.5 the closed loop diverges within a few frames). Sweep s > 0 therefore refits on the inputs of
    short rollouts (:func:`_rollout_inputs`): the slim trunk runs ``2**(s-1)`` frames on its own from the
    teacher's state, and each layer is fitted towards the teacher's activations at that frame, so the fit
    sees the states the slim trunk drifts to (DAgger-like; progress is not monotone, see the logs).
    Refitting one block at a time and re-running the recurrence in between does not work either: a partly
    refitted trunk (new early blocks, old late blocks) diverges in the same way. The weights after the sweep
    with the lowest closed-loop error on the judge's clips are kept (the original ones if none helps).
    """
    kept = slim.plan["kept"]
    t_main, s_main = teacher.get_submodule(trunk).main, slim.get_submodule(trunk).main
    shape = torch.Size((lrs.shape[0], 1, *lrs.shape[-2:]))

    def pos(layer: int, k: int) -> torch.Tensor:  # sampled positions of layer (-1 = head) at call k
        return _positions(shape, per_call, seed * 1_000_003 + (layer + 1) * 1009 + k)

    # Teacher: trunk inputs (full maps), and every layer's target at the sampled positions on the kept units
    # only (the head's 64 outputs, conv1's M_j, the stream after block j on O_j).
    taps: dict[str, _Tap] = {"trunk": _Tap(teacher.get_submodule(trunk), lambda k, i, o: i.clone()),
                             "head": _Tap(t_main[0], lambda k, i, o: _at(o, pos(-1, k)))}
    for j in range(len(s_main[2])):
        base = block_name(trunk, j)
        m_idx = torch.tensor(kept[f"{base}.conv1.out"])
        o_idx = torch.tensor(kept[f"{base}.conv2.out"])
        taps[f"after{j}"] = _Tap(t_main[2][j], lambda k, i, o, j=j, o_idx=o_idx: _at(o, pos(j, k))[:, o_idx])
        taps[f"conv1_{j}"] = _Tap(t_main[2][j].conv1,
                                  lambda k, i, o, j=j, m_idx=m_idx: _at(o, pos(j, k))[:, m_idx])
    _run_branch(teacher, trunk, lrs, t_flows)
    for tap in taps.values():
        tap.remove()
    targets = {name: tap.calls for name, tap in taps.items() if name != "trunk"}
    t_inputs = taps["trunk"].calls

    calls = _calls(trunk, lrs, s_flows)
    first = best = judge.trunk_error(slim, trunk)
    best_state = copy.deepcopy(s_main.state_dict())
    log(f"{trunk}: closed-loop feature error {first:.4f} before refit")
    for sweep in range(sweeps):
        steps = 0 if sweep == 0 else min(2 ** (sweep - 1), len(calls) - 1)
        # Only the latest sweep's states: aggregating them with the earlier ones (DAgger proper) and leaving out
        # rollouts that blew up both made the closed loop worse on the r=0.5 exports, not better.
        inputs = _rollout_inputs(slim.get_submodule(trunk), calls, t_inputs, steps)
        _sweep_trunk(s_main, list(enumerate(inputs)), targets, pos, ridge, conv1, head, log,
                     f"{trunk} sweep {sweep}")
        err = judge.trunk_error(slim, trunk)
        log(f"{trunk}: closed-loop feature error {err:.4f} after sweep {sweep} ({steps}-frame rollouts)")
        if err < best:  # (a NaN never is)
            best, best_state = err, copy.deepcopy(s_main.state_dict())
    s_main.load_state_dict(best_state)
    return {"before": first, "after": best}


def _psnr(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    """PSNR (dB, peak 1) of ``got`` against ``want`` over lists of HR frames."""
    sse = sum(float((g - w).double().pow(2).sum()) for g, w in zip(got, want))
    mse = sse / sum(w.numel() for w in want)
    return float("inf") if mse == 0 else -10 * torch.log10(torch.tensor(mse)).item()


def _refit_upsampler(teacher: nn.Module, slim: nn.Module, lrs: torch.Tensor, t_feats: list[torch.Tensor],
                     s_feats: list[torch.Tensor], layers: tuple[str, ...], per_call: int, ridge: float, seed: int,
                     judge: _Judge, log: Callable[[str], None]) -> dict[str, float]:
    """Refit the upsampler convs named in ``layers``, in the order of the computation, each on the inputs the
    (refitted) layers before it give from the slim features. Returns the slim HR output's PSNR against the
    teacher's on the judge's clips before and after; the old weights are put back if it did not improve."""
    kept = slim.plan["kept"]
    outs = {"fusion": (kept["fusion.out"], 1), "upconv1": (kept["upconv1.out"], 4),
            "upconv2": (kept["upconv2.out"], 4), "conv_hr": (kept["conv_hr.out"], 1), "conv_last": (None, 1)}
    b, _, _, h, w = lrs.shape

    def pos(layer: int, k: int) -> torch.Tensor:
        s = UPSAMPLER_SCALE[UPSAMPLER[layer]]
        return _positions(torch.Size((b, 1, h * s, w * s)), per_call, seed * 1_000_003 + 7919 * (layer + 1) + k)

    def reconstruct(model: nn.Module, feats: list[torch.Tensor]) -> None:
        for i in range(lrs.shape[1]):
            model.upsample(lrs[:, i], feats[i])

    taps = {}
    for n, name in enumerate(UPSAMPLER):
        units, group = outs[name]
        idx = None if units is None else torch.tensor(_rows(units, group))
        taps[name] = _Tap(teacher.get_submodule(name),
                          lambda k, i, o, n=n, idx=idx: _at(o, pos(n, k)) if idx is None else _at(o, pos(n, k))[:, idx])
    reconstruct(teacher, t_feats)
    targets = {name: tap.calls for name, tap in taps.items()}
    for tap in taps.values():
        tap.remove()
    first = judge.output_psnr(slim)
    old = {name: copy.deepcopy(slim.get_submodule(name).state_dict()) for name in layers}
    for n, name in enumerate(UPSAMPLER):
        if name not in layers:
            continue
        conv = slim.get_submodule(name)
        k_size = conv.kernel_size[0]
        tap = _Tap(conv, lambda k, i, o, n=n, k_size=k_size: _patches(i, pos(n, k), k_size))
        reconstruct(slim, s_feats)
        tap.remove()
        before, after = _fit(conv, list(zip(tap.calls, targets[name])), ridge)
        log(f"{name}: relative error {before:.4f} -> {after:.4f}")
    last = judge.output_psnr(slim)
    log(f"upsampler: HR output PSNR against the teacher {first:.2f} -> {last:.2f} dB")
    if not last > first:
        for name, state in old.items():
            slim.get_submodule(name).load_state_dict(state)
        log("upsampler: no gain, old weights kept")
        last = first
    return {"psnr_vs_teacher_before": first, "psnr_vs_teacher_after": last}


def _features(model: nn.Module, lrs: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
    """What ``upsample`` reads per frame: cat(backward, forward) features (or forward features alone)."""
    branches = [_run_branch(model, trunk, lrs, flows) for trunk in _trunk_names(model)]
    return [torch.cat([br[i] for br in branches], dim=1) for i in range(lrs.shape[1])]


@torch.no_grad()
def refit_slim(teacher: nn.Module, slim: nn.Module, clips: torch.Tensor, samples: int = 32768,
               ridge: float = 1e-3, conv1: bool = True, head: bool = True, upsampler: tuple[str, ...] = UPSAMPLER,
               sweeps: int = 5, val_clips: torch.Tensor | None = None, guard: bool = True, seed: int = 0,
               log: Callable[[str], None] = LOG.info) -> nn.Module:
    """Refit ``slim`` (in place, and returned) so that its activations reproduce the dense ``teacher``'s on
    ``clips`` (B, T, 3, h, w) in [0, 1].

    ``samples``: sampled positions per layer (spread over all frames); ``ridge``: relative ridge strength;
    ``conv1`` / ``head``: also refit the blocks' conv1 and the trunks' ``main.0`` (conv2 of every block is always
    refitted when a trunk is); ``sweeps``: passes over each trunk (the first teacher-forced, the others on 1, 2,
    4, ... -frame rollouts of the slim trunk; 0 leaves the trunks alone); ``upsampler``: the upsampler convs to
    refit (a subset of :data:`UPSAMPLER`). Each trunk's sweeps and the upsampler refit are kept only if they
    bring the slim model closer to the teacher on ``val_clips`` (held-out clips; ``clips`` when None), and with
    ``guard`` the original weights are put back unless the HR output ends closer. ``slim.refit_report`` holds
    these scores."""
    if set(upsampler) - set(UPSAMPLER):
        raise ValueError(f"upsampler layers must be among {UPSAMPLER}")
    if getattr(teacher, "plan", None) is not None or not hasattr(slim, "plan"):
        raise ValueError("refit needs a dense teacher and a slim model with a plan")
    if teacher.bidirectional != slim.bidirectional or teacher.num_feat != slim.num_feat:
        raise ValueError("teacher and slim model have different architectures")
    teacher, slim = teacher.eval(), slim.eval()
    judge = _Judge(teacher, slim, clips if val_clips is None else val_clips)
    per_call = max(1, samples // clips.shape[1])
    t_flows, s_flows = _flows(teacher, clips), _flows(slim, clips)
    original = copy.deepcopy(slim.state_dict())
    first = judge.output_psnr(slim)
    report: dict[str, Any] = {}
    for trunk in _trunk_names(slim) if sweeps > 0 else ():
        report[trunk] = _refit_trunk(teacher, slim, trunk, clips, t_flows, s_flows, per_call, ridge, conv1, head,
                                     sweeps, seed, judge, log)
    if upsampler:
        report["upsampler"] = _refit_upsampler(teacher, slim, clips, _features(teacher, clips, t_flows),
                                               _features(slim, clips, s_flows), tuple(upsampler), per_call, ridge,
                                               seed, judge, log)
    last = judge.output_psnr(slim)
    where = "held-out" if val_clips is not None else "fitting"
    log(f"refit: HR output PSNR against the teacher {first:.2f} -> {last:.2f} dB on the {where} clips")
    if guard and not last > first:
        slim.load_state_dict(original)
        log("refit: no gain, the original weights are kept")
        last = first
    report["output_psnr_vs_teacher"] = {"before": first, "after": last, "clips": where}
    slim.refit_report = report
    return slim


# ------------------------------------------------------------------------------------------ data and CLI
def training_clips(data: str | Path, clips: int, frames: int, lr_size: int, seed: int = 0,
                   start: int = 0) -> torch.Tensor:
    """LR training clips ``start`` .. ``start + clips - 1``, (clips, frames, 3, lr_size, lr_size), from
    :class:`vsrapp_pruning.data.SyntheticClips` (never Vid4). The seed is offset from the trainers' so these are not
    the first fine-tuning samples."""
    from .data import ClipConfig, SyntheticClips

    dataset = SyntheticClips(data, ClipConfig(frames=frames, lr_size=lr_size), seed=10_000 + seed)
    return torch.stack([dataset[i][0] for i in range(start, start + clips)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pruning.refit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="slim export folder to refit")
    parser.add_argument("--teacher", default="basicvsr-vimeo-bi", help="dense zoo name or checkpoint")
    parser.add_argument("--out", type=Path, required=True, help="folder for the refitted export")
    parser.add_argument("--data", type=Path, default=Path.home() / ".cache" / "vsrapp" / "train")
    parser.add_argument("--clips", type=int, default=8, help="training clips to fit on")
    parser.add_argument("--val-clips", type=int, default=3, help="other training clips that judge each step")
    parser.add_argument("--frames", type=int, default=7)
    parser.add_argument("--lr-size", type=int, default=48)
    parser.add_argument("--samples", type=int, default=32768, help="sampled positions per layer")
    parser.add_argument("--ridge", type=float, default=1e-3)
    parser.add_argument("--no-conv1", action="store_true", help="refit only conv2 in the residual blocks")
    parser.add_argument("--no-head", action="store_true", help="leave the trunks' main.0 as they are")
    parser.add_argument("--upsampler", default=",".join(UPSAMPLER),
                        help="comma-separated upsampler convs to refit ('' for none)")
    parser.add_argument("--sweeps", type=int, default=5,
                        help="passes per trunk: teacher-forced, then on 1, 2, 4, ... -frame rollouts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from .refusal import report_refusal

    try:
        return refit_export(args)
    except UsageError as exc:  # not an SSL export, a teacher that is not dense: one line and status 1, as before
        return report_refusal(exc)


def refit_export(args: argparse.Namespace) -> int:
    """``python -m pruning.refit``'s work on parsed options: load, refit, write the export. Raises
    :class:`vsrapp.errors.UsageError` for a ``--model`` or ``--teacher`` it cannot refit."""
    from vsrapp_models.pruned import load_pruned, read_meta

    from . import zoo
    from .train import save_slim

    torch.set_num_threads(args.threads)
    slim = load_pruned(args.model)
    if not hasattr(slim, "plan") or read_meta(args.model).get("method") != "ssl":
        raise UsageError(f"{args.model} is not an SSL slim export")
    teacher = zoo.dense_teacher(args.teacher)
    layers = tuple(name for name in args.upsampler.split(",") if name)
    clips = training_clips(args.data, args.clips, args.frames, args.lr_size, args.seed)
    val = training_clips(args.data, args.val_clips, args.frames, args.lr_size, args.seed, start=args.clips) \
        if args.val_clips > 0 else None
    started = time.perf_counter()
    refit_slim(teacher, slim, clips, samples=args.samples, ridge=args.ridge, conv1=not args.no_conv1,
               head=not args.no_head, upsampler=layers, sweeps=args.sweeps, val_clips=val, seed=args.seed)
    seconds = time.perf_counter() - started

    meta = dict(read_meta(args.model))
    for key in ("params", "macs_per_frame", "kept_fraction", "arch"):
        meta.pop(key, None)  # recomputed from the model by save_slim
    meta.setdefault("source_model", str(args.model))
    meta["refit_source"] = str(args.model)
    recipe = dict(meta.get("recipe") or {})
    recipe["refit"] = {"teacher": args.teacher, "data": str(args.data), "clips": args.clips,
                       "val_clips": args.val_clips, "frames": args.frames,
                       "lr_size": args.lr_size, "samples": args.samples, "ridge": args.ridge,
                       "layers": {"conv2": True, "conv1": not args.no_conv1, "head": not args.no_head,
                                  "upsampler": list(layers)},
                       "sweeps": args.sweeps, "report": {k: {n: round(v, 5) if isinstance(v, float) else v
                                                             for n, v in e.items()}
                                                         for k, e in slim.refit_report.items()},
                       "seed": args.seed, "threads": torch.get_num_threads(), "seconds": round(seconds, 1),
                       "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    meta["recipe"] = recipe
    save_slim(slim, args.out, meta)
    print(f"refitted slim model written to {args.out} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
