"""Training clips for x4 BI video SR: synthetic camera motion over clean stills, plus windows of real clips.

Why synthetic: no clean real-video training set is obtainable by package name (``training_data.md`` §0), so
the main signal is a still seen through a smoothly moving camera (§5.4). Each sample:

1. picks a still (from the cache built by :mod:`vsrapp_pruning.prepare_data`) and a random camera path: velocity
   U(-3, 3) GT px/frame with small acceleration noise, zoom 1 +- 0.01 per frame, rotation +-0.3 deg per frame;
2. renders the T GT frames either *warped* (bicubic ``grid_sample`` on the still at 2x GT resolution, then a
   2x2 area downscale, which hides the interpolation blur) or *shifted* (integer-pixel crops of the still at GT
   resolution: perfectly sharp, integer motion only); both kinds are mixed;
3. rejects flat crops (luma std or top-octave energy ``hf2`` too low, §5.3) and retries;
4. rounds GT to 8 bits, makes LR with MATLAB-compatible bicubic x1/4 (:func:`bi_downscale`, antialiased,
   identical to ``basicsr.utils.matlab_functions.imresize`` to float rounding) and rounds LR to 8 bits as the
   evaluation does;
5. augments with flips, transposition and temporal reversal.

With probability ``real_prob`` the sample is instead a window of consecutive frames of a real clip (§5.5).

Samples are a pure function of (seed, index): a resumed run sees exactly the batches an uninterrupted one would
(see :class:`ResumableSampler`), and DDP ranks read disjoint indices.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


# ------------------------------------------------------------------------------------ MATLAB bicubic x1/s
def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel, a = -0.5 (MATLAB's ``imresize`` 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


@functools.lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int) -> torch.Tensor:
    """(out_len, in_len) float64 matrix M with ``out = M @ in`` equal to MATLAB ``imresize`` along one axis
    (bicubic; antialiased when shrinking: the kernel is stretched by 1/scale), borders mirrored with the edge
    sample repeated ('symmetric'), as basicsr's ``imresize`` does."""
    scale = out_len / in_len
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    centre = x / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate of each output sample
    left = np.floor(centre - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices
    dist = centre[:, None] - idx
    w = scale * _cubic(dist * scale) if scale < 1 else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # Mirror out-of-range indices (0-based): -1 -> 0, -2 -> 1, n -> n-1, n+1 -> n-2.
    i0 = idx.astype(np.int64) - 1
    period = 2 * in_len
    i0 = np.mod(i0, period)
    i0 = np.where(i0 >= in_len, period - 1 - i0, i0)
    m = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(out_len), taps), i0.reshape(-1)), w.reshape(-1))
    return torch.from_numpy(m)


def bi_downscale(x: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """MATLAB-compatible bicubic x1/``scale`` with antialiasing of ``(..., H, W)`` float images (H, W multiples
    of ``scale``). Two small matmuls, so it runs on any device and batch shape."""
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"size {h}x{w} is not a multiple of {scale}")
    mh = resize_matrix(h, h // scale).to(device=x.device, dtype=x.dtype)
    mw = resize_matrix(w, w // scale).to(device=x.device, dtype=x.dtype)
    return mh @ x @ mw.T


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] images to 8-bit levels (as stored frames are), staying in float."""
    return x.clamp(0, 1).mul(255).round().div(255)


# ------------------------------------------------------------------------------------------ sources
def list_stills(root: Path) -> list[Path]:
    """All still images under ``root/stills`` (or ``root`` itself when it has no such folder), sorted."""
    base = root / "stills" if (root / "stills").is_dir() else root
    return sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and "clips" not in p.parts)


def list_clips(root: Path) -> list[list[Path]]:
    """Real clips under ``root/clips``: one folder of numbered frames each."""
    base = root / "clips"
    if not base.is_dir():
        return []
    clips = []
    for d in sorted(p for p in base.iterdir() if p.is_dir()):
        frames = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if frames:
            clips.append(frames)
    return clips


@functools.lru_cache(maxsize=24)
def _read(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return np.ascontiguousarray(img[:, :, ::-1])


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255)


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of (..., 3, H, W) in [0, 1] (full range is enough for a sharpness filter)."""
    return 0.299 * x[..., 0, :, :] + 0.587 * x[..., 1, :, :] + 0.114 * x[..., 2, :, :]


def hf2(gt: torch.Tensor) -> float:
    """RMS in 8-bit levels of ``Y - bicubic_up(area_down(Y, 2))``: energy in the top octave (§1), the detail an
    SR model has to recreate. ``gt`` is (3, H, W)."""
    y = luma(gt)[None, None]
    down = F.avg_pool2d(y, 2)
    up = F.interpolate(down, scale_factor=2, mode="bicubic", align_corners=False)
    return float((y - up).pow(2).mean().sqrt() * 255)


# ------------------------------------------------------------------------------------------ camera paths
@dataclass(frozen=True)
class MotionConfig:
    max_speed: float = 3.0  # GT px/frame, uniform in [-max_speed, max_speed] per axis
    accel: float = 0.3  # std of the per-frame velocity change, GT px/frame^2
    zoom: float = 0.01  # per-frame zoom factor in 1 +- zoom
    rotation_deg: float = 0.3  # per-frame rotation in +- rotation_deg
    warped_prob: float = 0.5  # share of sub-pixel warped samples (the rest: integer shifts)


def camera_path(rng: np.random.Generator, frames: int, cfg: MotionConfig) -> np.ndarray:
    """(frames, 4): per frame (dx, dy, zoom, angle_rad) of the camera relative to frame 0 (dx, dy in GT px)."""
    v = rng.uniform(-cfg.max_speed, cfg.max_speed, size=2)
    dz = rng.uniform(-cfg.zoom, cfg.zoom)
    da = math.radians(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
    out = np.zeros((frames, 4))
    out[0, 2] = 1.0
    pos, zoom, ang = np.zeros(2), 1.0, 0.0
    for t in range(1, frames):
        v = v + rng.normal(0, cfg.accel, size=2)
        pos = pos + v
        zoom *= 1 + dz
        ang += da
        out[t] = (pos[0], pos[1], zoom, ang)
    return out


def render_warped(still: np.ndarray, path: np.ndarray, gt: int, rng: np.random.Generator) -> torch.Tensor | None:
    """GT frames (T, 3, gt, gt) seen by a camera moving along ``path`` over ``still``, rendered at 2x (one GT
    pixel = 2x2 still pixels) with bicubic sampling, then area-downscaled; None if the still is too small."""
    s = 2  # render scale
    h, w = still.shape[:2]
    # Footprint of every frame: half-diagonal of the rendered square (times max zoom-out) around its centre.
    zmax = float(np.max(1 / path[:, 2]))
    half = gt * s / 2 * math.sqrt(2) * zmax + 4
    shift = path[:, :2] * s
    lo = half + np.maximum(0, -shift.min(axis=0))
    hi = np.array([w, h]) - half - np.maximum(0, shift.max(axis=0))
    if np.any(hi <= lo):
        return None
    c0 = rng.uniform(lo, hi)  # frame 0's centre in still pixels (x, y)
    x0 = int(max(0, math.floor(c0[0] + shift[:, 0].min() - half)))
    x1 = int(min(w, math.ceil(c0[0] + shift[:, 0].max() + half)))
    y0 = int(max(0, math.floor(c0[1] + shift[:, 1].min() - half)))
    y1 = int(min(h, math.ceil(c0[1] + shift[:, 1].max() + half)))
    region = _to_tensor(still[y0:y1, x0:x1])[None]  # (1, 3, rh, rw)
    rh, rw = region.shape[-2:]
    n = gt * s
    # Output pixel centres relative to the frame centre, in still pixels.
    coords = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    grids = []
    for dx, dy, zoom, ang in path:
        ca, sa = math.cos(ang) / zoom, math.sin(ang) / zoom
        px = ca * gx - sa * gy + c0[0] + dx * s - x0
        py = sa * gx + ca * gy + c0[1] + dy * s - y0
        # grid_sample, align_corners=False: pixel i has its centre at normalised (2i + 1) / size - 1.
        grids.append(torch.stack([(2 * px + 1) / rw - 1, (2 * py + 1) / rh - 1], dim=-1))
    grid = torch.stack(grids).float()
    frames = F.grid_sample(region.expand(len(path), -1, -1, -1), grid, mode="bicubic", padding_mode="border",
                           align_corners=False)
    return F.avg_pool2d(frames, s).clamp(0, 1)


def render_shifted(still: np.ndarray, path: np.ndarray, gt: int, rng: np.random.Generator) -> torch.Tensor | None:
    """GT frames as integer-pixel crops of ``still`` at its own resolution following the path's translation
    (zoom and rotation ignored): no resampling at all, so perfectly sharp; None if the still is too small."""
    h, w = still.shape[:2]
    shift = np.round(path[:, :2]).astype(np.int64)
    lo = np.maximum(0, -shift.min(axis=0))
    hi = np.array([w, h]) - gt - np.maximum(0, shift.max(axis=0))
    if np.any(hi < lo):
        return None
    x, y = (int(rng.integers(lo[i], hi[i] + 1)) for i in range(2))
    crops = [still[y + dy:y + dy + gt, x + dx:x + dx + gt] for dx, dy in shift]
    return torch.stack([_to_tensor(c) for c in crops])


# ------------------------------------------------------------------------------------------ dataset
@dataclass(frozen=True)
class ClipConfig:
    frames: int = 7
    lr_size: int = 64  # LR crop side; GT is scale x this
    scale: int = 4
    real_prob: float = 0.15  # share of samples from real clips (when there are any)
    min_std: float = 8.0  # reject GT crops with luma std below this (8-bit levels) ...
    min_hf2: float = 3.0  # ... or top-octave RMS below this (training_data.md §5.3)
    tries: int = 20
    motion: MotionConfig = MotionConfig()


class SyntheticClips(Dataset):
    """``(lr, gt)`` pairs: (T, 3, lr, lr) and (T, 3, scale*lr, scale*lr) float in [0, 1], both on 8-bit levels.

    ``length`` is virtual (samples are generated): item ``i`` is a pure function of ``(seed, i)``.
    """

    def __init__(self, root: str | Path, cfg: ClipConfig = ClipConfig(), seed: int = 0,
                 length: int = 10**9) -> None:
        self.root = Path(root)
        self.cfg = cfg
        self.seed = seed
        self.length = length
        self.stills = list_stills(self.root)
        gt = cfg.lr_size * cfg.scale
        found = list_clips(self.root)
        self.clips = [c for c in found if len(c) >= cfg.frames and min(_read(str(c[0])).shape[:2]) >= gt]
        if len(self.clips) < len(found):  # say so: a pool that silently loses its real clips is all synthetic
            LOG.warning("%d of %d real clips under %s are shorter than %d frames or smaller than %d px: not used",
                        len(found) - len(self.clips), len(found), self.root, cfg.frames, gt)
        if not self.stills and not (self.clips and cfg.real_prob >= 1):
            # a pool of real clips alone (prepare_data --clips-only) is enough when every sample is real
            raise FileNotFoundError(f"no training stills under {self.root} (run python -m pruning.prepare_data)")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        gt = self._real(rng) if self.clips and rng.random() < self.cfg.real_prob else self._synthetic(rng)
        gt = quantize(augment(gt, rng))
        lr = quantize(bi_downscale(gt, self.cfg.scale))
        return lr, gt

    def _acceptable(self, gt: torch.Tensor) -> bool:
        return float(luma(gt[0]).std() * 255) >= self.cfg.min_std and hf2(gt[0]) >= self.cfg.min_hf2

    def _synthetic(self, rng: np.random.Generator) -> torch.Tensor:
        cfg = self.cfg
        size = cfg.lr_size * cfg.scale
        best = None
        for _ in range(cfg.tries):
            still = _read(str(self.stills[int(rng.integers(len(self.stills)))]))
            path = camera_path(rng, cfg.frames, cfg.motion)
            render = render_warped if rng.random() < cfg.motion.warped_prob else render_shifted
            frames = render(still, path, size, rng)
            if frames is None:
                continue
            best = frames
            if self._acceptable(frames):
                return frames
        if best is None:
            raise ValueError(f"no still under {self.root} is large enough for {size}px crops")
        return best  # every try was flat: use the last one rather than fail

    def _real(self, rng: np.random.Generator) -> torch.Tensor:
        cfg = self.cfg
        size = cfg.lr_size * cfg.scale
        clip = self.clips[int(rng.integers(len(self.clips)))]
        start = int(rng.integers(len(clip) - cfg.frames + 1))
        first = _read(str(clip[start]))
        h, w = first.shape[:2]
        y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        imgs = [_read(str(p)) for p in clip[start:start + cfg.frames]]
        return torch.stack([_to_tensor(i[y:y + size, x:x + size]) for i in imgs])


def augment(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random h/v flip, transposition (with the flips: all 8 rotations/reflections) and temporal reversal."""
    if rng.random() < 0.5:
        frames = frames.flip(-1)
    if rng.random() < 0.5:
        frames = frames.flip(-2)
    if rng.random() < 0.5:
        frames = frames.transpose(-1, -2)
    if rng.random() < 0.5:
        frames = frames.flip(0)
    return frames.contiguous()


class ResumableSampler(Sampler[int]):
    """Indices ``start*world + rank, (start+1)*world + rank, ...``: rank ``rank`` of ``world`` reads its own
    slice, and starting at batch ``start`` continues an interrupted run exactly (samples depend only on the
    index). ``start`` and ``total`` count samples per rank."""

    def __init__(self, total: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.total, self.start, self.rank, self.world = total, start, rank, world

    def __iter__(self) -> Iterator[int]:
        for i in range(self.start, self.total):
            yield i * self.world + self.rank

    def __len__(self) -> int:
        return max(0, self.total - self.start)
