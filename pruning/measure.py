"""Numbers for a results table, measured in one process so that dense and slim timings are comparable:
parameters (with and without SpyNet), MACs per 180x320 LR frame, wall-clock ms per frame of a whole-clip pass,
and optionally Vid4 BI PSNR/SSIM (Y) with per-frame PSNR, via :func:`vsrapp_pruning.zoo.evaluate`.

    python -m pruning.measure --models basicvsr-vimeo-bi runs/ssl --threads 1 --vid4 ../shared/data/Vid4/inputs/G \
        --json runs/measure.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsrapp_models.complexity import count_macs, count_params


@torch.inference_mode()
def ms_per_frame(model: nn.Module, lr_size: tuple[int, int] = (180, 320), frames: int = 3, repeats: int = 1,
                 device: str = "cpu") -> float:
    """Best-of-``repeats`` wall-clock milliseconds per frame of ``model`` on a random (1, frames, 3, h, w) clip
    (flows, both branches and reconstruction: the whole forward), after one small warm-up pass."""
    model = model.to(device).eval()
    model(torch.rand(1, 2, 3, 32, 32, device=device))
    clip = torch.rand(1, frames, 3, *lr_size, device=device)
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(clip)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) * 1000 / frames)
    return best


def describe(model: nn.Module, lr_size: tuple[int, int] = (180, 320)) -> dict[str, Any]:
    macs = count_macs(model, lr_size)
    return {"params": count_params(model), "gmacs_per_frame": {k: round(macs[k] / 1e9, 2) for k in
                                                               ("total", "spynet", "without_spynet")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pruning.measure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True, help="zoo names, checkpoint paths or slim folders")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frames", type=int, default=3, help="frames of the timing clip (180x320 LR)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--vid4", type=Path, help="also evaluate on this Vid4 GT folder (BI x4 protocol)")
    parser.add_argument("--clips", nargs="+", help="only these Vid4 clips")
    parser.add_argument("--max-frames", type=int, help="only the first N frames of each clip")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)

    from .zoo import evaluate, get_model

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__,
                              "device": f"CPU {platform.processor() or platform.machine()}, "
                                        f"{torch.get_num_threads()} thread(s)", "models": {}}
    for name in args.models:
        model = get_model(name)
        entry = describe(model)
        if not args.no_timing:
            entry["cpu_ms_per_frame_180x320"] = round(ms_per_frame(model, frames=args.frames,
                                                                   repeats=args.repeats), 1)
        if args.vid4:
            result = evaluate(model, name, args.vid4, clips=args.clips, max_frames=args.max_frames,
                              progress=False)
            entry["vid4"] = {"psnr_y": round(result.psnr_y, 4), "ssim_y": round(result.ssim_y, 4),
                             "seconds": result.seconds,
                             "clips": {c.name: {"frames": c.frames, "psnr_y": round(c.psnr_y, 4),
                                                "ssim_y": round(c.ssim_y, 4), "psnr_y_per_frame": c.psnr_y_per_frame}
                                       for c in result.clips}}
        report["models"][name] = entry
        print(name, json.dumps({k: v for k, v in entry.items() if k != "vid4"}),
              entry.get("vid4", {}).get("psnr_y"), entry.get("vid4", {}).get("ssim_y"), flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")  # after each model: partial results survive
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
