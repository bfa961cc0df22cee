"""N:M sparse convolutions at inference: the mask layout, loading N:M exports, and 2:4 semi-structured kernels.

Layout (NVIDIA ASP's for convs, frame_pruning.md §B.2): for every output filter o and tap (kh, kw), the input
channels are cut into groups of M consecutive channels; an N:M layer keeps at most N weights per group. Seen as
a GEMM with K ordered (kh, kw, C_in), the groups are M consecutive elements of a weight *row*, which is exactly
the 2:4 pattern ``torch.sparse.to_sparse_semi_structured`` compresses.

Where it runs faster, honestly:

- CPU: nowhere. PyTorch/oneDNN convs compute the zeros like any other value and
  ``to_sparse_semi_structured`` is CUDA-only, so an N:M model on the CPU is the dense model (same speed).
- CUDA: :func:`accelerate` swaps each 2:4-compatible layer (N <= 2 of M = 4; 1:4 is a valid 2:4 pattern) for
  :class:`SemiSparseConv2d`, a conv written as ``unfold`` + sparse GEMM, in fp16/bf16 on sm80+. There is no
  sparse conv kernel in PyTorch, so the unfold (9x the input, written and read back) competes with cuDNN's
  implicit GEMM that never builds it; on 64-channel convs this is likely *slower* (frame_pruning.md §B.6).
  ``scripts``/callers must measure before enabling it; nothing here assumes a gain.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .dense_shaped import load_dense_shaped

M_HW = 4  # the only M sparse tensor cores execute (2:4 in fp16/bf16)


# The layout above, written once as einops patterns: "(g m)" is the input channel axis cut into g groups of m
# consecutive channels, and every group sits at a fixed (output, kh, kw).
_GROUPS = "o (g m) kh kw -> o kh kw g m"
_UNGROUPS = "o kh kw g m -> o (g m) kh kw"


def _grouped(weight: torch.Tensor, m: int) -> torch.Tensor:
    """[C_out, C_in, kh, kw] -> [C_out, kh, kw, C_in / m, m]."""
    c_in = weight.shape[1]
    if c_in % m:  # checked here so the message names the layout, not einops' axis algebra
        raise ValueError(f"{c_in} input channels do not split into groups of {m}")
    return rearrange(weight, _GROUPS, m=m)


def _ungrouped(grouped: torch.Tensor) -> torch.Tensor:
    return rearrange(grouped, _UNGROUPS).contiguous()


def group_ranks(weight: torch.Tensor, m: int = M_HW) -> torch.Tensor:
    """Rank of every weight inside its group by |w| (0 = largest; ties by position), weight-shaped (uint8)."""
    g = _grouped(weight.detach().abs(), m)
    order = torch.argsort(-g, dim=-1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(m, device=weight.device).expand_as(order).contiguous())
    return _ungrouped(ranks.to(torch.uint8))


def nm_mask(weight: torch.Tensor, n: int, m: int = M_HW) -> torch.Tensor:
    """Keep mask (bool, weight-shaped) of the N largest |w| in every group of M."""
    if not 1 <= n <= m:
        raise ValueError(f"N must be in [1, {m}], got {n}")
    return group_ranks(weight, m) < n


def max_nonzeros_per_group(weight: torch.Tensor, m: int = M_HW) -> int:
    """Largest count of non-zero weights in any group (an N:M layer has at most N)."""
    return int((_grouped(weight, m) != 0).sum(dim=-1).max())


# ------------------------------------------------------------------------------------------ semi-structured
def gemm_weight(weight: torch.Tensor) -> torch.Tensor:
    """[C_out, C_in, kh, kw] -> [C_out, kh*kw*C_in] with K ordered (kh, kw, C_in): groups along rows."""
    return rearrange(weight, "o i kh kw -> o (kh kw i)").contiguous()


def semi_structured_support(device: torch.device | str, dtype: torch.dtype) -> tuple[bool, str]:
    """(usable, reason) for ``to_sparse_semi_structured`` on ``device`` with ``dtype``."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False, "semi-structured sparsity needs CUDA (PyTorch has no CPU kernel; the model runs dense)"
    if dtype not in (torch.float16, torch.bfloat16):
        return False, f"2:4 kernels take fp16/bf16, not {dtype}"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        return False, f"sm{major}{minor}: sparse tensor cores need sm80+"
    if not hasattr(torch.sparse, "to_sparse_semi_structured"):
        return False, "this PyTorch has no torch.sparse.to_sparse_semi_structured"
    return True, f"sm{major}{minor}"


def gemm_shape_ok(c_out: int, k: int) -> bool:
    """The docs' shape rule for fp16/bf16 (both sides multiples of 64; the trunk's 64 x 576 fits, the input conv's
    603-wide K and conv_last's 3 rows do not)."""
    return c_out % 64 == 0 and k % 64 == 0


class SemiSparseConv2d(nn.Module):
    """A stride-1 'same' conv as ``unfold`` + GEMM against a [C_out, kh*kw*C_in] weight.

    With ``sparse=True`` the weight is compressed by ``to_sparse_semi_structured`` (CUDA, fp16/bf16, 2:4 rows);
    with ``sparse=False`` it is the same arithmetic with a dense weight, which is what the CPU tests check the
    reordering with. Inputs of another dtype are cast to the weight's and back.
    """

    def __init__(self, conv: nn.Conv2d, sparse: bool = True, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if conv.stride != (1, 1) or conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError("only stride-1, ungrouped, undilated convs")
        self.kernel_size, self.padding = conv.kernel_size, conv.padding
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        dtype = dtype or conv.weight.dtype
        w = gemm_weight(conv.weight.detach()).to(dtype)
        if sparse:
            if max_nonzeros_per_group(conv.weight.detach(), M_HW) > 2:
                raise ValueError("weight is not 2:4 sparse along input-channel groups")
            w = torch.sparse.to_sparse_semi_structured(w)
        self.weight = nn.Parameter(w, requires_grad=False)
        bias = conv.bias.detach().to(dtype) if conv.bias is not None else None
        self.bias = nn.Parameter(bias, requires_grad=False) if bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        kh, kw = self.kernel_size
        cols = F.unfold(x.to(self.weight.dtype), self.kernel_size, padding=self.padding)  # [B, C*kh*kw, L]
        # unfold orders K as (C, kh, kw); the weight's groups need (kh, kw, C).
        cols = cols.view(b, c, kh * kw, -1).permute(0, 3, 2, 1).reshape(-1, kh * kw * c)
        y = F.linear(cols, self.weight, self.bias)  # [B*L, C_out]
        return y.view(b, h, w, self.out_channels).permute(0, 3, 1, 2).to(x.dtype)


def accelerate(model: nn.Module, dtype: torch.dtype = torch.float16) -> tuple[list[str], str]:
    """Swap every 2:4-compatible conv of an N:M model (``model.plan`` from :func:`load_nm`) for a
    :class:`SemiSparseConv2d`, in place, if the model's device supports it. Returns (converted layer names,
    reason); on the CPU nothing changes and the reason says why."""
    device = next(model.parameters()).device
    ok, reason = semi_structured_support(device, dtype)
    if not ok:
        return [], reason
    converted = []
    for name, spec in model.plan["layers"].items():
        conv = model.get_submodule(name)
        k = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        if model.plan["m"] != M_HW or spec["n"] > 2 or not gemm_shape_ok(conv.out_channels, k):
            continue
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, SemiSparseConv2d(conv, sparse=True, dtype=dtype))
        converted.append(name)
    return converted, reason


def load_nm(directory: str | Path) -> nn.Module:
    """An N:M export (dense-shaped masked weights + ``plan.json`` pattern), eval mode, dense on the CPU. The
    pattern is checked on load: a layer with more than N non-zeros in some group is refused."""
    model = load_dense_shaped(directory, "nm")
    m = int(model.plan["m"])
    for name, spec in model.plan["layers"].items():
        weight = model.get_submodule(name).weight
        if max_nonzeros_per_group(weight, m) > int(spec["n"]):
            raise ValueError(f"{name}: weights break the {spec['n']}:{m} pattern")
    return model
