"""The cheaper flow (issue #18, item 4): SpyNet stopped one or two pyramid levels early, its flow upsampled.

For each ``--skip`` value: the time of the flow alone and of the whole model per 180x320 frame (median of
``--repeats`` runs of a ``--frames``-frame clip, measured side by side in this one process), and Vid4 (whole
clips, BI x4, Y) with that setting, written as one JSON per setting. Evaluation only: nothing is tuned on Vid4
here, the setting is fixed before it is scored.

    python benchmarks/flow_levels.py --model basicvsr-b15 --skip 0 1 2 --threads 2 \\
        --data ../shared/data/Vid4/inputs/G --out docs/results/flow_levels
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from vsrapp.bench.run import host_info
from vsrapp.engine.recurrence import upscale_clip
from vsrapp.engine.upscaler import load_runtime_model
from vsrapp.evaluation import evaluate
from vsrapp_models.spynet import SpyNet


def set_skip(model: torch.nn.Module, skip: int) -> int:
    """Set ``skip_finest`` on every SpyNet inside ``model``; returns how many there are."""
    nets = [m for m in model.modules() if isinstance(m, SpyNet)]
    for net in nets:
        net.skip_finest = skip
    return len(nets)


@torch.no_grad()
def timings(model: torch.nn.Module, frames: int, repeats: int, size: tuple[int, int]) -> dict[str, float]:
    lr = torch.rand(1, frames, 3, *size).contiguous()
    spynet = next(m for m in model.modules() if isinstance(m, SpyNet))
    pair = lr[0, :2]
    spynet(pair[:1], pair[1:])  # warm-up
    upscale_clip(model, lr[0])
    flow, whole = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for t in range(frames - 1):
            spynet(lr[0, t:t + 1], lr[0, t + 1:t + 2])
        flow.append((time.perf_counter() - t0) / (frames - 1) * 1000)
        t0 = time.perf_counter()
        upscale_clip(model, lr[0])
        whole.append((time.perf_counter() - t0) / frames * 1000)
    return {"flow_ms_per_pair": round(statistics.median(flow), 1),
            "model_ms_per_frame": round(statistics.median(whole), 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="basicvsr-b15")
    p.add_argument("--skip", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data", help="Vid4 ground truth (inputs/G); without it only the timings")
    p.add_argument("--out", type=Path, default=Path("docs/results/flow_levels"))
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", default="180x320")
    p.add_argument("--threads", type=int)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    h, w = (int(v) for v in a.size.split("x"))
    model = load_runtime_model(a.model, "cpu", "fp32", "torch", a.threads).model.eval()
    if not set_skip(model, 0):
        raise SystemExit(f"{a.model} has no SpyNet")
    a.out.mkdir(parents=True, exist_ok=True)
    host = host_info(torch.device("cpu"))  # the bench's own record of the machine
    for skip in a.skip:
        set_skip(model, skip)
        row = {"model": a.model, "skip_finest": skip, **timings(model, a.frames, a.repeats, (h, w)),
               "size": a.size, "threads": host["torch_threads"], "cpu": host["cpu"],
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        if a.data:
            result = evaluate(model, f"{a.model} skip{skip}", Path(a.data), progress=False)
            row |= {"vid4_psnr_y": round(result.psnr_y, 4), "vid4_ssim_y": round(result.ssim_y, 4),
                    "clips": {c.name: round(c.psnr_y, 3) for c in result.clips}}
        print(json.dumps(row), flush=True)
        (a.out / f"{a.model}_skip{skip}.json").write_text(json.dumps(row, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
