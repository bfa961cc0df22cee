"""``vsrapp bench``: every model side by side in one run, at one or more LR sizes, on one device.

For each model and size: parameters (with and without SpyNet), conv MACs per frame (``models.complexity``),
model-only time over a clip through the step API (ms/frame, frames/s, the part that dominates: SpyNet, trunks
or upsampler), the :class:`~vsrapp.Upscaler` alone on decoded frames (network-only), end to end on a real
clip (decode + network + encode through :func:`~vsrapp.upscale_file`) with the ratio of the two, peak memory,
the roofline (MACs per frame over the device's measured conv throughput) and ratios to the dense reference.
``--gpu-opts`` adds the speed-variant experiment (fp16/bf16, channels-last, compile, CUDA graphs); variants a
device cannot run are listed as skipped. Results go to a JSON file (schema ``vsrapp-bench`` v1, see
docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsrapp_models.contract import block_name, is_network, traits

from ..engine.hardware import cpu_features, cpu_name
from ..engine.synthetic import synthetic_frames
from ..engine.upscaler import DEFAULT_LOOKAHEAD, DEFAULT_WINDOW, pick_device, pick_precision
from ..errors import UsageError
from . import profiling as prof

SCHEMA = "vsrapp-bench"
SCHEMA_VERSION = 1
DEFAULT_MODELS = ("basicvsr-vimeo-bi", "bicubic")
RANDOM_SLIM = "random-slim:"
CLIP_FPS = 25


class BenchError(UsageError):
    """A bad argument or an unusable model/clip; printed as one line."""


# ------------------------------------------------------------------------------------------- models
@dataclass
class BenchModel:
    name: str
    model: nn.Module
    trained: bool
    note: str = ""


def random_plan(ratio: float, seed: int = 0, bidirectional: bool = True, num_feat: int = 64,
                num_block: int = 30) -> dict[str, Any]:
    """A slim plan keeping a random ``1 - ratio`` of every prunable set (at least one entry each): for speed
    comparisons only, since its weights are untrained."""
    from vsrapp_models.slim import HR_FEAT, PLAN_FORMAT, PLAN_VERSION, SCALE, trunk_names, validate_plan

    if not 0 <= ratio < 1:
        raise BenchError(f"pruning ratio must be in [0, 1), got {ratio}")
    rng = np.random.default_rng(seed)

    def keep(n: int) -> list[int]:
        k = max(1, round(n * (1 - ratio)))
        return sorted(int(i) for i in rng.choice(n, size=k, replace=False))

    kept: dict[str, list[int]] = {}
    for trunk in trunk_names(bidirectional):
        for j in range(num_block):
            for side in ("conv1.in", "conv1.out", "conv2.out"):
                kept[f"{block_name(trunk, j)}.{side}"] = keep(num_feat)
    kept.update({"fusion.out": keep(num_feat), "upconv1.out": keep(num_feat), "upconv2.out": keep(HR_FEAT),
                 "conv_hr.out": keep(HR_FEAT)})
    plan = {"format": PLAN_FORMAT, "version": PLAN_VERSION,
            "arch": {"bidirectional": bidirectional, "num_feat": num_feat, "num_block": num_block, "scale": SCALE},
            "kept": kept}
    validate_plan(plan)
    return plan


def load_bench_model(spec: str, random_weights: bool = False) -> BenchModel:
    """A model for the bench from a zoo name, an official ``.pth``, a pruned-model folder, or
    ``random-slim:RATIO`` (a random plan, untrained). ``random_weights`` builds the architecture without
    loading weights (the speed is the same; nothing is read from disk but a folder's ``plan.json``).
    Paths go through the loader table (:mod:`vsrapp_models.loading`) like every other caller's."""
    from vsrapp_models.loading import build_model
    from vsrapp_models.slim import build_slim

    from .. import zoo

    if spec.startswith(RANDOM_SLIM):
        try:
            ratio = float(spec[len(RANDOM_SLIM):])
        except ValueError:
            raise BenchError(f"{spec}: expected random-slim:RATIO, e.g. random-slim:0.5") from None
        torch.manual_seed(0)
        return BenchModel(spec, build_slim(random_plan(ratio)).eval(), False,
                          f"random plan at ratio {ratio}, untrained: speed only")
    path = Path(spec)
    if random_weights:
        if path.is_dir() and (path / "plan.json").is_file():
            torch.manual_seed(0)
            return BenchModel(spec, build_model(path).eval(), False, "plan.json with random weights: speed only")
        if spec in {e.name for e in zoo.list_models()}:
            entry = zoo.get_entry(spec)
            if entry.bundled:  # a pruned model: its architecture is its plan, which ships beside its weights
                folder = load_bench_model(str(zoo.find_weights(entry).parent), random_weights=True)
                return dataclasses.replace(folder, name=spec)  # rows keep the zoo name
            torch.manual_seed(0)
            trained = entry.weights is None
            return BenchModel(spec, zoo.build(entry.arch).eval(), trained,
                              "" if trained else "architecture with random weights: speed only")
    try:
        model = zoo.get_model(spec)
    except zoo.ZooError as exc:
        raise BenchError(str(exc)) from exc
    note = ""
    if path.is_dir() and (path / "meta.json").is_file():
        meta = json.loads((path / "meta.json").read_text())
        note = f"{meta.get('method', '?')} ratio {meta.get('ratio')}, teacher {meta.get('teacher')}"
    return BenchModel(spec, model, True, note)


def is_dense_reference(bm: BenchModel) -> bool:
    from vsrapp_models.basicvsr import BasicVSR

    return type(bm.model) is BasicVSR


def model_macs(model: nn.Module, size: tuple[int, int]) -> dict[str, Any]:
    """Conv MACs of one frame in steady state (:func:`vsrapp_models.complexity.count_macs`); zero for models without
    convolutions (bicubic)."""
    from vsrapp_models.complexity import count_macs

    if not is_network(model):
        return {"lr_size": list(size), "total": 0, "spynet": 0, "without_spynet": 0, "by_part": {}}
    return count_macs(model, size)


# ------------------------------------------------------------------------------------------- the clip
def write_clip(path: Path, frames: np.ndarray, fps: int = CLIP_FPS) -> Path:
    """Encode ``frames`` as H.264 (yuv420p, CRF 18) with a mono AAC sine track in ``path`` (mp4)."""
    import av

    n, h, w, _ = frames.shape
    rate = 48000
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        audio = out.add_stream("aac", rate=rate)
        audio.codec_context.layout = "mono"
        t = np.arange(int(rate * n / fps)) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = rate, start, Fraction(1, rate)
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def decode_clip(path: Path, limit: int | None = None) -> np.ndarray:
    from ..video import VideoReader

    images = []
    with VideoReader(path) as reader:
        for frame in reader.frames():
            images.append(frame.image)
    if not images:
        raise BenchError(f"{path}: no frames decoded")
    return np.stack(images[:limit] if limit else images)


# ------------------------------------------------------------------------------------------- measuring
@dataclass
class Settings:
    device: torch.device
    precision: str
    frames: int
    warmup: int
    window: int
    lookahead: int
    e2e: bool
    profile: bool
    gpu_opts: tuple[str, ...]
    opts_frames: int
    codec: str
    preset: str | None
    crf: int | None
    repeats: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"device": str(self.device), "precision": self.precision, "frames": self.frames,
                "warmup": self.warmup, "window": self.window, "lookahead": self.lookahead, "e2e": self.e2e,
                "profile": self.profile, "gpu_opts": list(self.gpu_opts), "opts_frames": self.opts_frames,
                "codec": self.codec, "preset": self.preset, "crf": self.crf, "repeats": self.repeats}


def engine_variant(device: torch.device, precision: str) -> prof.Variant:
    """How :class:`vsrapp.Upscaler` runs the network: autocast to its precision, channels-last."""
    dtype = pick_precision(precision, device)
    name = {v: k for k, v in prof.PRECISION_DTYPES.items()}[dtype]
    return prof.Variant(f"engine-{name}", name, "autocast", channels_last=True)


def to_tensors(frames: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(f).permute(2, 0, 1)[None].float().div_(255) for f in frames]


def measure_model_only(model: nn.Module, frames: np.ndarray, s: Settings, variant: prof.Variant,
                       parts: bool, profile: bool) -> dict[str, Any]:
    steps, autocast, in_dtype = prof.prepare_variant(copy.deepcopy(model), variant, s.device)
    base = to_tensors(frames)
    lrs = prof.make_inputs(base, s.device, in_dtype, variant.channels_last)
    if s.warmup:
        prof.time_sequence(steps, lrs[:max(2, s.warmup)], s.device, autocast, parts=False)
    cuda = s.device.type == "cuda"
    with prof.PeakMemory(s.device) as mem:
        timing = prof.time_sequence(steps, lrs, s.device, autocast, parts=parts and not cuda, repeats=s.repeats)
    out = timing.as_dict()
    if parts and cuda:  # the breakdown needs a sync per call: a separate pass, so the headline stays clean
        out.update({k: v for k, v in prof.time_sequence(steps, lrs, s.device, autocast, parts=True).as_dict().items()
                    if k.startswith("parts_")})
    out["variant"] = variant.name
    out["memory"] = mem.result
    shares = out.get("steady_parts_share") or out.get("parts_share")
    if shares:
        out["dominant_part"] = max(shares, key=shares.get)
    if profile:
        def once() -> None:
            ctx = torch.autocast(s.device.type, dtype=autocast) if autocast else torch.autocast(s.device.type,
                                                                                                enabled=False)
            with torch.inference_mode(), ctx:
                prof.run_sequence(steps, lrs[:2])
        out["top_ops"] = prof.top_ops(once, s.device)
    return out


def measure_end_to_end(bm: BenchModel, clip: Path, decoded: np.ndarray, s: Settings, work: Path) -> dict[str, Any]:
    """Network-only (the Upscaler on frames already decoded) and end to end (:func:`upscale_file` on the clip),
    back to back with the same Upscaler settings, and their ratio."""
    from ..engine.upscaler import Upscaler
    from ..pipeline import upscale_file

    up = Upscaler(copy.deepcopy(bm.model), device=s.device, precision=s.precision, window=s.window,
                  lookahead=s.lookahead, threads=torch.get_num_threads())
    if s.warmup and s.device.type == "cuda":  # allocator, cuDNN heuristics; on the CPU the model-only pass
        for _ in up.upscale_frames(decoded[:max(2, s.warmup)]):  # has already primed oneDNN for these shapes
            pass
        up.reset()
    with prof.PeakMemory(s.device) as mem:
        start = time.perf_counter()
        n = sum(1 for _ in up.upscale_frames(decoded))
        prof.sync(s.device)
        network = time.perf_counter() - start
    out_path = work / f"e2e-{abs(hash((bm.name, clip.name)))}.mp4"
    report = upscale_file(clip, out_path, bm.name, codec=s.codec, preset=s.preset, crf=s.crf, overwrite=True,
                          upscaler=up)
    out_path.unlink(missing_ok=True)
    return {
        "frames": report.frames,
        "seconds": report.seconds,
        "fps": round(report.fps, 3),
        "pipeline_network_seconds": report.network_seconds,
        "network_only_frames": n,
        "network_only_seconds": round(network, 6),  # bicubic takes milliseconds: keep the ratio exact
        "network_only_fps": round(n / network, 3) if network else None,
        "e2e_over_network": round(report.seconds / network, 3) if network else None,
        "network_memory": mem.result,
    }


def measure_variants(model: nn.Module, frames: np.ndarray, s: Settings) -> list[dict[str, Any]]:
    """Each ``--gpu-opts`` variant: ms/frame over ``opts_frames`` frames and PSNR of its output against
    fp32 on the first frames (so a fast variant that breaks the picture shows)."""
    frames = frames[:s.opts_frames]
    base = to_tensors(frames)
    check = min(3, len(base))
    ref_steps, _, _ = prof.prepare_variant(copy.deepcopy(model), prof.get_variant("fp32"), s.device)
    with torch.inference_mode():
        ref = [o.float() for o in prof.run_sequence(ref_steps, prof.make_inputs(base[:check], s.device,
                                                                              torch.float32, False), keep=True)]
    del ref_steps
    rows = []
    for name in s.gpu_opts:
        variant = prof.get_variant(name)
        reason = variant.unavailable(s.device)
        if reason:
            rows.append({"variant": name, "skipped": reason})
            continue
        try:
            steps, autocast, in_dtype = prof.prepare_variant(copy.deepcopy(model), variant, s.device)
            lrs = prof.make_inputs(base, s.device, in_dtype, variant.channels_last)
            passes = 2 if s.device.type == "cuda" else int(bool(s.warmup))
            for _ in range(passes):  # compile, capture and autotune before timing
                prof.time_sequence(steps, lrs[:max(2, min(s.warmup, len(lrs)))], s.device, autocast, parts=False)
            timing = prof.time_sequence(steps, lrs, s.device, autocast, parts=False, repeats=s.repeats)
            ctx = torch.autocast(s.device.type, dtype=autocast) if autocast else torch.autocast(s.device.type,
                                                                                                enabled=False)
            with torch.inference_mode(), ctx:
                outs = prof.run_sequence(steps, lrs[:check], keep=True)
            psnr = min(_psnr(o.float(), r) for o, r in zip(outs, ref))
            row = {"variant": name, **timing.as_dict(), "psnr_vs_fp32_db": round(psnr, 2)}
            if isinstance(steps, prof.GraphedSteps):
                row["graphed_steps"] = sorted({k[0] for k, g in steps.graphs.items() if g is not None})
                row["eager_steps"] = steps.eager
            rows.append(row)
        except Exception as exc:  # a variant that fails is a result, not the end of the run
            rows.append({"variant": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
    return rows


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * float(np.log10(1.0 / mse))


def roofline_ceiling(device: torch.device, variant: prof.Variant, size: tuple[int, int]) -> dict[str, Any]:
    """The achievable conv throughput: the trunk's 3x3 64->64 conv at the LR size (batch 1, what the model
    runs) and, on CUDA, a batch of 8 (the device's practical peak). ``macs_per_s`` is the larger."""
    at_size = prof.conv_throughput(device, variant.dtype, size, channels_last=variant.channels_last)
    out = {"at_lr_size": at_size}
    peak = at_size["macs_per_s"]
    if device.type == "cuda":
        big = prof.conv_throughput(device, variant.dtype, size, batch=8, channels_last=variant.channels_last,
                                   repeats=10)
        out["batch8"] = big
        peak = max(peak, big["macs_per_s"])
    out["macs_per_s"] = peak
    return out


# ------------------------------------------------------------------------------------------- the run
def host_info(device: torch.device) -> dict[str, Any]:
    try:  # model-only runs (--no-e2e) need no PyAV: a GPU machine it cannot travel to still gets timed
        import av
        av_version = av.__version__
    except ImportError:
        av_version = None
    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "av": av_version,
        "numpy": np.__version__, "platform": platform.platform(), "cpu": cpu_name(), "cpu_features": cpu_features(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "git_commit": _git_commit(),
        **{name: _installed_version(name) for name in ("openvino", "onnxruntime", "nncf")},
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update({"gpu": p.name, "gpu_memory_gb": round(p.total_memory / 2**30, 1),
                     "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()})
    return info


def _installed_version(package: str) -> str | None:
    """A graph backend's version, read from its metadata (no import: OpenVINO takes seconds to load)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent)
        return done.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def parse_size(text: str) -> tuple[int, int]:
    """``"180x320"`` (height x width) -> (180, 320)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BenchError(f"size {text!r} is not HEIGHTxWIDTH, e.g. 180x320") from None
    if h < 8 or w < 8:
        raise BenchError(f"size {text!r} is too small (at least 8x8)")
    return h, w


def run_bench(specs: list[str | BenchModel], sizes: list[tuple[int, int]], s: Settings, clip: Path | None = None,
              random_weights: bool = False, reference: str | None = None, command: str = "",
              progress: bool = True, partial: Path | None = None) -> dict[str, Any]:
    """Measure every model (a spec for :func:`load_bench_model`, or a ready :class:`BenchModel`) at every size;
    returns the result document (schema ``vsrapp-bench`` v1). With ``partial``, the document so far is written
    there after each model, so a run that dies late keeps what it measured."""
    def say(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    models = [spec if isinstance(spec, BenchModel) else load_bench_model(spec, random_weights) for spec in specs]
    doc: dict[str, Any] = {"schema": SCHEMA, "version": SCHEMA_VERSION, "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                           "command": command, "host": host_info(s.device), "settings": s.as_dict(),
                           "sizes": [], "results": []}
    variant = engine_variant(s.device, s.precision)
    with tempfile.TemporaryDirectory(prefix="vsrapp-bench-") as tmp:
        work = Path(tmp)
        for size in sizes:
            if clip is not None:
                decoded = decode_clip(clip, s.frames)
                size = (decoded.shape[1], decoded.shape[2])
                clip_path, clip_kind = clip, "user"
            else:
                clip_path, clip_kind = work / f"clip-{size[0]}x{size[1]}.mp4", "synthetic"
                if s.e2e:
                    write_clip(clip_path, synthetic_frames(s.frames, *size))
                    decoded = decode_clip(clip_path)
                else:
                    decoded = synthetic_frames(s.frames, *size)
            say(f"size {size[0]}x{size[1]}: roofline conv ...")
            ceiling = roofline_ceiling(s.device, variant, size)
            doc["sizes"].append({"lr_size": list(size), "out_size": [4 * size[0], 4 * size[1]], "clip": clip_kind,
                                 "clip_frames": int(len(decoded)), "roofline": ceiling})
            for bm in models:
                say(f"size {size[0]}x{size[1]}: {bm.name} ...")
                doc["results"].append(_bench_one(bm, size, decoded, clip_path, s, variant, ceiling, work))
                if partial is not None:
                    write_json(doc, partial)
    doc["host"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    add_ratios(doc, reference or next((m.name for m in models if is_dense_reference(m)), models[0].name))
    return doc


def _bench_one(bm: BenchModel, size: tuple[int, int], decoded: np.ndarray, clip: Path, s: Settings,
               variant: prof.Variant, ceiling: dict[str, Any], work: Path) -> dict[str, Any]:
    from vsrapp_models.complexity import count_params

    scale = traits(bm.model).scale
    macs = model_macs(bm.model, size)
    row: dict[str, Any] = {
        "model": bm.name, "arch": type(bm.model).__name__, "trained": bm.trained, "note": bm.note,
        "lr_size": list(size), "out_size": [scale * size[0], scale * size[1]],
        "params": count_params(bm.model), "macs": macs,
    }
    row["model_only"] = measure_model_only(bm.model, decoded, s, variant, parts=True, profile=s.profile)
    if macs["total"]:
        bound = ceiling["macs_per_s"] / macs["total"]
        row["roofline"] = {"fps_bound": round(bound, 3),
                           "efficiency": round(row["model_only"]["fps"] / bound, 4)}
    if s.e2e:
        try:
            row["e2e"] = measure_end_to_end(bm, clip, decoded, s, work)
        except Exception as exc:  # e.g. an encoder this build lacks: the other numbers still stand
            row["e2e"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    if s.gpu_opts:
        row["gpu_opts"] = measure_variants(bm.model, decoded, s)
    return row


def add_ratios(doc: dict[str, Any], reference: str) -> None:
    """``vs_reference`` on every row: how many times fewer params/MACs and how many times faster than the
    reference model at the same size (model-only and end to end)."""
    doc["reference"] = reference
    by_size = {tuple(r["lr_size"]): r for r in doc["results"] if r["model"] == reference}
    for r in doc["results"]:
        ref = by_size.get(tuple(r["lr_size"]))
        if ref is None:
            continue

        def ratio(a: float | None, b: float | None) -> float | None:
            return round(a / b, 3) if a and b else None

        r["vs_reference"] = {
            "params": ratio(ref["params"]["total"], r["params"]["total"]),
            "params_without_spynet": ratio(ref["params"]["without_spynet"], r["params"]["without_spynet"]),
            "macs": ratio(ref["macs"]["total"], r["macs"]["total"]),
            "model_only_speedup": ratio(ref["model_only"]["ms_per_frame"], r["model_only"]["ms_per_frame"]),
            "e2e_speedup": ratio(r.get("e2e", {}).get("fps"), ref.get("e2e", {}).get("fps")),
        }


# ------------------------------------------------------------------------------------------- output
def table(doc: dict[str, Any]) -> str:
    """A plain-text summary, one line per model and size."""
    head = (f"{'model':<28} {'LR size':>9} {'params M':>9} {'GMACs':>8} {'model ms/f':>10} {'model f/s':>9} "
            f"{'top part':>10} {'e2e f/s':>8} {'e2e/net':>7} {'peak MB':>8} {'roof %':>7} {'x ref':>6}")
    lines = [head, "-" * len(head)]
    for r in doc["results"]:
        mo, e2e = r["model_only"], r.get("e2e", {})
        share = mo.get("steady_parts_share") or mo.get("parts_share", {})
        top = f"{mo['dominant_part']} {100 * share[mo['dominant_part']]:.0f}%" if "dominant_part" in mo else "-"
        roof = f"{100 * r['roofline']['efficiency']:.1f}" if "roofline" in r else "-"
        speed = r.get("vs_reference", {}).get("model_only_speedup")
        lines.append(
            f"{r['model'][-28:]:<28} {r['lr_size'][0]}x{r['lr_size'][1]:<5} {r['params']['total'] / 1e6:>9.3f} "
            f"{r['macs']['total'] / 1e9:>8.1f} {mo['ms_per_frame']:>10.1f} {mo['fps']:>9.2f} {top:>10} "
            f"{_fmt(e2e.get('fps'), 2):>8} {_fmt(e2e.get('e2e_over_network'), 2):>7} "
            f"{_fmt(mo['memory'].get('peak_mb'), 0):>8} {roof:>7} {_fmt(speed, 2):>6}")
        for v in r.get("gpu_opts", []):
            if "ms_per_frame" in v:
                lines.append(f"    {v['variant']:<26} {v['ms_per_frame']:>9.1f} ms/f {v['fps']:>8.2f} f/s "
                             f"PSNR vs fp32 {v['psnr_vs_fp32_db']} dB")
            else:
                lines.append(f"    {v['variant']:<26} {v.get('skipped') or v.get('error')}")
    return "\n".join(lines)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    tmp.replace(path)


# ------------------------------------------------------------------------------------------- CLI
def add_command(subparsers: Any) -> None:
    """Register ``bench`` on the ``vsrapp`` sub-parsers (``func(args) -> int``)."""
    p = subparsers.add_parser("bench", help="speed, MACs and memory of models side by side (model-only and "
                                            "end to end), with a JSON result file")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                   help="zoo names, official .pth files, pruned-model folders, or random-slim:RATIO "
                        f"(default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--size", nargs="+", default=["180x320"], help="LR sizes HEIGHTxWIDTH (default 180x320)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="as `vsrapp upscale` (auto: fp16 on CUDA, bf16 on a CPU with AMX, else fp32)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip for every measurement (default 16)")
    p.add_argument("--warmup", type=int, default=2,
                   help="warm-up frames before each timing (default 2; 0 skips warm-up, fine on a CPU where a frame "
                        "takes seconds)")
    p.add_argument("--repeats", type=int, default=1, help="time model-only runs this many times, keep the best")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="Upscaler window (bidirectional models)")
    p.add_argument("--lookahead", type=int, default=DEFAULT_LOOKAHEAD, help="Upscaler look-ahead frames")
    p.add_argument("--clip", help="use this video for the end-to-end run instead of a synthetic clip")
    p.add_argument("--no-e2e", dest="e2e", action="store_false", help="skip the network-only and end-to-end runs")
    p.add_argument("--codec", default="libx264", help="encoder of the end-to-end run (default libx264)")
    p.add_argument("--preset", help="encoder preset of the end-to-end run (codec default if not given)")
    p.add_argument("--crf", type=int, help="encoder quality of the end-to-end run")
    p.add_argument("--profile", action="store_true", help="add the top operators from torch.profiler")
    p.add_argument("--gpu-opts", nargs="*", metavar="VARIANT",
                   help="speed-variant experiment; no names = all of: "
                        + ", ".join(v.name for v in prof.VARIANTS) + " (CUDA-only ones are skipped without CUDA)")
    p.add_argument("--opts-frames", type=int, default=8, help="frames per variant timing (default 8)")
    p.add_argument("--random-weights", action="store_true",
                   help="build architectures without loading weights (speed is the same)")
    p.add_argument("--reference", help="model the ratios are taken against (default: the dense BasicVSR)")
    p.add_argument("--json", default="bench.json", help="result file (default bench.json)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        return _cmd_bench(args)
    except BenchError as exc:
        print(f"vsrapp: error: {exc}", file=sys.stderr)
        return 2


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.frames < 2:
        raise BenchError("--frames must be at least 2")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"device '{args.device}' requested but CUDA is not available on this machine")
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    clip = Path(args.clip) if args.clip else None
    if clip is not None and not clip.is_file():
        raise BenchError(f"{clip}: no such file")
    if args.reference and args.reference not in args.models:
        raise BenchError(f"--reference {args.reference} is not among --models")
    opts: tuple[str, ...] = ()
    if args.gpu_opts is not None:
        opts = tuple(args.gpu_opts) or tuple(v.name for v in prof.VARIANTS)
        for name in opts:
            try:
                prof.get_variant(name)
            except ValueError as exc:
                raise BenchError(str(exc)) from None
    settings = Settings(device, args.precision, args.frames, args.warmup, args.window, args.lookahead, args.e2e,
                        args.profile, opts, max(2, args.opts_frames), args.codec, args.preset, args.crf,
                        max(1, args.repeats))
    sizes = [parse_size(s) for s in args.size]
    command = getattr(args, "command_line", None) or "vsrapp " + " ".join(sys.argv[1:])
    doc = run_bench(args.models, sizes, settings, clip, args.random_weights, args.reference, command,
                    progress=not args.quiet, partial=Path(args.json))
    write_json(doc, Path(args.json))
    print(table(doc))
    host = doc["host"]
    print(f"device {host.get('gpu') or host['cpu']} ({host['torch_threads']} threads), torch {host['torch']}, "
          f"load {host['load_avg_1_5_15']} -> {host['load_avg_after']}; results in {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m vsrapp.bench ...`` (the same as ``vsrapp bench ...``)."""
    parser = argparse.ArgumentParser(prog="vsrapp")
    add_command(parser.add_subparsers(dest="command", required=True))
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(["bench", *argv])
    args.command_line = " ".join(["python -m vsrapp.bench", *argv])
    return args.func(args)

