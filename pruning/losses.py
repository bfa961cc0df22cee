"""Temporal Finetuning (TF) losses for the slim network (ssl.md §11).

The released SSL code fine-tunes with Charbonnier only; the paper's ``L_tf`` could not be retrieved. Ours
(ssl.md §11's suggestion, not verified against the paper): keep the slim student's hidden states close to the
frozen dense teacher's at every time step and in both branches,

    L_tf = 1/T * sum_t ( mean|h_F^s(t) - h_F^d(t)| + mean|h_B^s(t) - h_B^d(t)| )

(the backward term is absent for forward-only models). RSC never prunes the 64-channel hidden state, so
student and teacher states have the same shape and need no projection. Per-element means keep the term
independent of frame size and clip length.

To see the hidden states, :func:`run_with_states` drives the recurrence through the step API (``flow``,
``backward_step``, ``forward_step``, ``reconstruct``) with the same schedule as ``BasicVSR.forward``; any
model with that API works (dense, gated, slim).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """mean(sqrt((pred - target)**2 + eps)): BasicSR's ``CharbonnierLoss`` with SSL's settings (eps 1e-12,
    mean reduction, weight 1). Written here so training does not pay basicsr's import time."""
    return torch.sqrt((pred - target).pow(2) + eps).mean()


@dataclass
class RecurrenceTrace:
    """What one pass over a clip produced. ``outputs`` (B, T, 3, 4h, 4w); hidden states (B, T, C, h, w) per
    branch (``backward`` is None for forward-only models); ``flows`` = (to_next, to_prev), each (B, T-1, 2, h,
    w) or None for a single frame (``to_next`` is None for forward-only models)."""

    outputs: torch.Tensor
    forward: torch.Tensor
    backward: torch.Tensor | None
    flows: tuple[torch.Tensor | None, torch.Tensor | None]


def compute_flows(model: nn.Module, lrs: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(to_next, to_prev) for all adjacent pairs of ``lrs`` (B, T, 3, h, w), as ``BasicVSR.forward`` computes
    them: ``to_next[:, i]`` warps frame i+1's features onto frame i, ``to_prev[:, i]`` warps i onto i+1."""
    b, t, c, h, w = lrs.shape
    if t < 2:
        return None, None
    first = lrs[:, :-1].reshape(-1, c, h, w)
    second = lrs[:, 1:].reshape(-1, c, h, w)
    to_prev = model.flow(second, first).view(b, t - 1, 2, h, w)
    to_next = model.flow(first, second).view(b, t - 1, 2, h, w) if model.bidirectional else None
    return to_next, to_prev


def run_with_states(model: nn.Module, lrs: torch.Tensor,
                    flows: tuple[torch.Tensor | None, torch.Tensor | None] | None = None) -> RecurrenceTrace:
    """Run ``model`` over the clip ``lrs`` (B, T, 3, h, w), keeping every hidden state of both branches.

    ``flows`` (as returned in a trace) skips the model's own SpyNet: pass the teacher's when the student's
    SpyNet is frozen and identical to the teacher's (it is ~40 GMACs per 180x320 frame).
    """
    t = lrs.shape[1]
    to_next, to_prev = compute_flows(model, lrs) if flows is None else flows

    feats_backward: list[torch.Tensor] = []
    if model.bidirectional:
        feat = None
        for i in range(t - 1, -1, -1):
            feat = model.backward_step(lrs[:, i], feat, to_next[:, i] if i < t - 1 else None)
            feats_backward.append(feat)
        feats_backward.reverse()

    feats_forward, outputs = [], []
    feat = None
    for i in range(t):
        feat = model.forward_step(lrs[:, i], feat, to_prev[:, i - 1] if i > 0 else None)
        feats_forward.append(feat)
        if model.bidirectional:
            outputs.append(model.reconstruct(lrs[:, i], feats_backward[i], feat))
        else:
            outputs.append(model.reconstruct(lrs[:, i], feat))
    return RecurrenceTrace(
        outputs=torch.stack(outputs, dim=1),
        forward=torch.stack(feats_forward, dim=1),
        backward=torch.stack(feats_backward, dim=1) if feats_backward else None,
        flows=(to_next, to_prev),
    )


def temporal_loss(student: RecurrenceTrace, teacher: RecurrenceTrace) -> torch.Tensor:
    """``L_tf``: mean absolute hidden-state gap, averaged over time steps, summed over the branches."""
    loss = (student.forward - teacher.forward).abs().mean()
    if student.backward is not None:
        if teacher.backward is None:
            raise ValueError("bidirectional student needs a bidirectional teacher")
        loss = loss + (student.backward - teacher.backward).abs().mean()
    return loss


class TemporalFinetuneLoss(nn.Module):
    """``charbonnier(student(lrs), gts) + lambda_tf * L_tf(student, teacher)``; the teacher is frozen.

    ``lambda_tf`` defaults to 0.5, the middle of ssl.md §11's 0.1-1 range; it has not been tuned.
    ``share_flows=True`` feeds the teacher's flows to the student: valid only while the student's SpyNet is
    frozen and equal to the teacher's (SSL freezes it for the first 5k fine-tuning iterations).
    """

    def __init__(self, teacher: nn.Module, lambda_tf: float = 0.5, eps: float = 1e-12,
                 share_flows: bool = False) -> None:
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.lambda_tf = lambda_tf
        self.eps = eps
        self.share_flows = share_flows

    def train(self, mode: bool = True) -> TemporalFinetuneLoss:
        super().train(mode)
        self.teacher.eval()  # the teacher stays in eval mode whatever the trainer toggles
        return self

    def forward(self, student: nn.Module, lrs: torch.Tensor, gts: torch.Tensor,
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total loss, {"rec", "tf", "outputs"}) for one clip; ``outputs`` lets the trainer log PSNR for
        free."""
        with torch.no_grad():
            ref = run_with_states(self.teacher, lrs)
        trace = run_with_states(student, lrs, ref.flows if self.share_flows else None)
        rec = charbonnier_loss(trace.outputs, gts, self.eps)
        tf = temporal_loss(trace, ref)
        parts = {"rec": rec.detach(), "tf": tf.detach(), "outputs": trace.outputs.detach()}
        return rec + self.lambda_tf * tf, parts
