"""Network-only speed of models on backends, side by side in one run, through :class:`vsrapp.Upscaler`.

Each entry is ``MODEL@BACKEND[:PRECISION]``: a zoo name or an export folder (``vsrapp export``, fp32 or int8) on
``torch``, ``onnxruntime`` or ``openvino``, with the Upscaler's precision (default ``auto``): ``ssl-bi@torch:bf16``
(autocast: AMX on a Xeon that has it), ``basicvsr-b8-hr32@openvino:int8`` (what ``--precision int8`` runs).
Frames are the bench's synthetic panning clip at ``--size``, already decoded; padding and the uint8 conversion are
included, as in ``vsrapp bench``'s network-only figure. After a warm-up of two frames, the entries are timed in
turn ``--repeats`` times and the best is kept, so a slow spell of a shared machine hits every entry alike.

    python benchmarks/backend_speed.py basicvsr-vimeo-bi@torch runs/ov/dense-int8@openvino ssl-bi@torch \
        --threads 2 --json benchmarks/results/int8-cpu-180x320.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from vsrapp import Upscaler
from vsrapp.bench.run import host_info, parse_size
from vsrapp.engine.synthetic import synthetic_frames


def parse_entry(entry: str) -> tuple[str, str, str]:
    """``MODEL@BACKEND[:PRECISION]`` -> (model, backend, precision; ``auto`` when not given)."""
    model, _, backend = entry.rpartition("@")
    if not model:
        raise SystemExit(f"{entry}: expected MODEL@BACKEND[:PRECISION], e.g. ssl-bi@torch or ssl-bi@torch:bf16")
    backend, _, precision = backend.partition(":")
    return model, backend, precision or "auto"


def best_ms_per_frame(ups: dict[str, Upscaler], clip: list, repeats: int, report: bool = False) -> dict[str, float]:
    """Network-only ms per frame of each Upscaler on ``clip``: after a two-frame warm-up, the Upscalers are timed
    in turn ``repeats`` times and each keeps its best, so a slow spell of a shared machine hits every one alike."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        for entry, up in ups.items():
            up.reset()
            for _ in up.upscale_frames(clip[:2]):  # warm-up: primitives, allocations, shape-specific kernels
                pass
            up.reset()
            start = time.perf_counter()
            n = sum(1 for _ in up.upscale_frames(clip))
            ms = 1000 * (time.perf_counter() - start) / n
            best[entry] = min(best.get(entry, float("inf")), ms)
            if report:
                print(f"{entry:<60} {ms:8.1f} ms/frame", flush=True)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("entries", nargs="+", help="MODEL@BACKEND[:PRECISION] (zoo name or export folder)")
    p.add_argument("--size", default="180x320", help="LR size (default 180x320)")
    p.add_argument("--frames", type=int, default=6, help="frames per timed run (default 6)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    size = parse_size(args.size)
    clip = list(synthetic_frames(args.frames, *size))
    ups = {}
    for entry in args.entries:
        model, backend, precision = parse_entry(entry)
        ups[entry] = Upscaler(model, device="cpu", backend=backend, precision=precision, threads=args.threads)
    best = best_ms_per_frame(ups, clip, args.repeats, report=True)
    first = args.entries[0]
    rows = {e: {"ms_per_frame": round(ms, 1), "speedup_vs_first": round(best[first] / ms, 3)} for e, ms in best.items()}
    for e, r in rows.items():
        print(f"{e:<60} best {r['ms_per_frame']:8.1f} ms/frame  x{r['speedup_vs_first']:.2f} vs {first}")
    doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(["python", *sys.argv]),
           "host": host_info(torch.device("cpu")), "lr_size": list(size), "frames": args.frames,
           "repeats": args.repeats, "threads": args.threads, "entries": rows,
           "load_avg_after": [round(x, 2) for x in os.getloadavg()]}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
