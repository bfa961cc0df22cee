"""Ray scale-out on one machine: wall-clock of the same job run single-process and on 1 and 2 Ray workers.

Each Ray configuration starts its own local instance (start-up is timed separately and not in the job time).
The clip is Big Buck Bunny shrunk as in ``cluster_seams.py``. Every run uses one torch thread per worker, so
"2 workers" is two cores and the single-process run is one core.

    python benchmarks/cluster_scaling.py --model basicvsr-vimeo-bi --size 64x48 --frames 132 \
        --segment-frames 64 --workers 1 2 --json benchmarks/results/cluster_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_seams import make_clip  # noqa: E402

from vsrapp.cluster.driver import upscale_on_ray  # noqa: E402
from vsrapp.engine.upscaler import Upscaler, set_threads  # noqa: E402
from vsrapp.pipeline import upscale_file  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="basicvsr-vimeo-bi")
    ap.add_argument("--size", default="64x48", help="LR width x height")
    ap.add_argument("--frames", type=int, default=132, help="at most 132 (the clip's length)")
    ap.add_argument("--gop", type=int, default=24)
    ap.add_argument("--segment-frames", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=24)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import ray

    w, h = (int(v) for v in args.size.split("x"))
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = make_clip(work / "clip.mp4", w, h, args.frames, args.gop)
        set_threads(1, "cpu")  # the single-process baseline on one core (the Upscaler used to set it)
        t0 = time.perf_counter()
        upscale_file(clip, work / "single.mp4", args.model, upscaler=Upscaler(args.model, threads=1))
        single = time.perf_counter() - t0
        rows.append({"run": "single process, 1 thread", "workers": 1, "seconds": round(single, 1),
                     "fps": round(args.frames / single, 3), "speedup": 1.0})
        print(json.dumps(rows[-1]), flush=True)
        for n in args.workers:
            t0 = time.perf_counter()
            ray.init(num_cpus=n, include_dashboard=False, logging_level="ERROR")
            startup = time.perf_counter() - t0
            t0 = time.perf_counter()
            [report] = upscale_on_ray([(clip, work / f"ray{n}.mp4")], args.model, warmup=args.warmup,
                                      segment_frames=args.segment_frames)
            seconds = time.perf_counter() - t0
            ray.shutdown()
            rows.append({"run": f"Ray, {n} worker(s) x 1 thread", "workers": n, "segments": report.segments,
                         "seconds": round(seconds, 1), "ray_startup_seconds": round(startup, 1),
                         "fps": round(args.frames / seconds, 3), "speedup": round(single / seconds, 2)})
            print(json.dumps(rows[-1]), flush=True)
    result = {"model": args.model, "lr_size": [w, h], "frames": args.frames, "gop": args.gop,
              "segment_frames": args.segment_frames, "warmup": args.warmup, "rows": rows,
              "device": f"CPU {platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
              "ray": ray.__version__, "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()], "date": time.strftime("%Y-%m-%d %H:%M")}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
