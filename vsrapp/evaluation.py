"""Benchmark evaluation by the protocol papers use: Vid4, bicubic (BI) x4 degradation, PSNR/SSIM on Y.

- Low-resolution frames are made from the ground truth with MATLAB-compatible bicubic x1/4 with antialiasing
  (``basicsr.utils.matlab_functions.imresize``) and rounded to 8 bits, as the published BIx4 sets were stored.
- Each whole clip goes through the network in one pass (no windows), output rounded to 8 bits.
- PSNR and SSIM come from basicsr's metric functions on the Y channel (BT.601 studio swing), no border crop.
  basicsr expects **BGR** images there; feeding RGB silently computes a different "Y".
- Averages: per clip over its frames, then over the clips.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vsrapp_models.contract import traits

from .engine.compat import basicsr
from .engine.recurrence import autocast_to, precision_name, upscale_clip

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}


@dataclass
class ClipResult:
    name: str
    frames: int
    psnr_y: float
    ssim_y: float
    psnr_y_per_frame: list[float] = field(default_factory=list)


@dataclass
class EvalResult:
    model: str
    dataset: str
    degradation: str
    clips: list[ClipResult]
    psnr_y: float
    ssim_y: float
    device: str
    seconds: float
    torch_version: str
    date: str
    precision: str = "fp32"  # what ran: fp32, fp16/bf16 (autocast) or int8 (the model's int8 graphs)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def table(self) -> str:
        lines = [f"{'clip':<12} {'frames':>6} {'PSNR-Y':>8} {'SSIM-Y':>8}"]
        lines += [f"{c.name:<12} {c.frames:>6} {c.psnr_y:>8.4f} {c.ssim_y:>8.4f}" for c in self.clips]
        total = sum(c.frames for c in self.clips)
        lines.append(f"{'average':<12} {total:>6} {self.psnr_y:>8.4f} {self.ssim_y:>8.4f}")
        return "\n".join(lines)


def list_clips(root: Path) -> list[Path]:
    """Clip folders under ``root`` (each a folder of frame images), sorted by name."""
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    clips = sorted(p for p in root.iterdir() if p.is_dir() and frame_paths(p))
    if not clips:
        raise FileNotFoundError(f"no clip folders with images in {root}")
    return clips


def frame_paths(clip: Path) -> list[Path]:
    return sorted(p for p in clip.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return np.ascontiguousarray(img[:, :, ::-1])


def bicubic_degrade(gt_rgb: np.ndarray, scale: int = 4) -> np.ndarray:
    """BI degradation: MATLAB bicubic x1/scale with antialiasing, rounded to uint8 (H/scale x W/scale x 3)."""
    imresize = basicsr("utils.matlab_functions").imresize
    lr = imresize(gt_rgb.astype(np.float32) / 255.0, 1.0 / scale)
    lr = lr.numpy() if isinstance(lr, torch.Tensor) else lr
    return np.clip(np.round(lr * 255.0), 0, 255).astype(np.uint8)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] to H x W x 3 uint8, rounding like basicsr's ``tensor2img``."""
    arr = img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.round(arr * 255.0).astype(np.uint8)


def y_psnr(out_rgb: np.ndarray, gt_rgb: np.ndarray) -> float:
    """PSNR on Y with basicsr's function, no crop. Inputs are RGB uint8; basicsr wants BGR."""
    metrics = basicsr("metrics.psnr_ssim")
    return float(metrics.calculate_psnr(out_rgb[:, :, ::-1], gt_rgb[:, :, ::-1], crop_border=0, test_y_channel=True))


def y_metrics(out_rgb: np.ndarray, gt_rgb: np.ndarray) -> tuple[float, float]:
    """(PSNR, SSIM) on Y with basicsr's functions, no crop. Inputs are RGB uint8."""
    metrics = basicsr("metrics.psnr_ssim")
    ssim = metrics.calculate_ssim(out_rgb[:, :, ::-1], gt_rgb[:, :, ::-1], crop_border=0, test_y_channel=True)
    return y_psnr(out_rgb, gt_rgb), float(ssim)


def crop_to_multiple(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    model_name: str,
    root: Path,
    clips: Sequence[str] | None = None,
    max_frames: int | None = None,
    device: str = "cpu",
    dataset: str = "Vid4",
    progress: bool = True,
    dtype: torch.dtype = torch.float32,
    precision: str | None = None,
) -> EvalResult:
    """Evaluate ``model`` on every clip folder under ``root`` (or the named ``clips``); ``dtype``: torch's arithmetic,
    under the Upscaler's autocast (bf16, fp16), so that eval scores the precision users run; ``precision``: what
    the result records as run (default: ``dtype``'s name; ``int8`` for a model of int8 graphs)."""

    scale = traits(model).scale
    clip_dirs = list_clips(root)
    if clips:
        by_name = {c.name: c for c in clip_dirs}
        missing = [c for c in clips if c not in by_name]
        if missing:
            raise FileNotFoundError(f"clips {missing} not in {root} (found: {sorted(by_name)})")
        clip_dirs = [by_name[c] for c in clips]
    paths = {c.name: frame_paths(c)[:max_frames] for c in clip_dirs}
    total = sum(len(p) for p in paths.values())

    # The Upscaler's layout (channels-last), so that eval measures the network users run, at its speed.
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    started = time.perf_counter()
    results = []
    with tqdm(total=total, unit="frame", desc=model_name, disable=not progress, dynamic_ncols=True) as bar:
        for clip in clip_dirs:
            gts = [crop_to_multiple(read_rgb(p), scale) for p in paths[clip.name]]
            lrs = np.stack([bicubic_degrade(g, scale) for g in gts])
            lr_tensor = torch.from_numpy(lrs).permute(0, 3, 1, 2).float().div(255.0).to(device)
            lr_tensor = lr_tensor.contiguous(memory_format=torch.channels_last)
            bar.set_postfix_str(clip.name)
            with autocast_to(torch.device(device), dtype):
                out = upscale_clip(model, lr_tensor, on_step=bar.update).float()
            scores = [y_metrics(to_uint8(o), g) for o, g in zip(out, gts)]
            results.append(ClipResult(
                name=clip.name,
                frames=len(gts),
                psnr_y=float(np.mean([s[0] for s in scores])),
                ssim_y=float(np.mean([s[1] for s in scores])),
                psnr_y_per_frame=[round(s[0], 4) for s in scores],
            ))
    return EvalResult(
        model=model_name,
        dataset=dataset,
        degradation="BI x4 (MATLAB bicubic, uint8 LR)",
        clips=results,
        psnr_y=float(np.mean([r.psnr_y for r in results])),
        ssim_y=float(np.mean([r.ssim_y for r in results])),
        device=_device_name(device),
        seconds=round(time.perf_counter() - started, 1),
        torch_version=torch.__version__,
        date=time.strftime("%Y-%m-%d"),
        precision=precision or precision_name(dtype),
    )


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    from .engine.hardware import cpu_name

    return f"CPU ({cpu_name()}, {torch.get_num_threads()} threads)"
