"""int8 graphs for the CPU: post-training quantization of an ONNX export with NNCF, run by OpenVINO.

``vsrapp export MODEL OUT --format openvino --int8 --calibrate CLIPS`` exports the model's graphs
(:mod:`vsrapp.export`), runs them in fp32 over the calibration clips exactly as the engine runs a video (so each
graph sees the inputs it will see: real frames, real hidden states, real flows), and gives those inputs to
NNCF, which chooses the int8 ranges and writes OpenVINO graphs. The result is an export folder with the usual
manifest (``"precision": "int8"``) that ``--backend openvino`` runs behind the same step API.

Why int8 and not fp32 in another runtime: on this project's CPUs OpenVINO and ONNX Runtime in fp32 are no
faster than PyTorch's channels-last path (docs/BENCHMARKS.md); VNNI int8 convolutions are 3-4x faster.

Calibrate on video like the one you will upscale, never on the clips you evaluate on (the Vid4 scores in
docs/RESULTS.md come from a model calibrated on the training clips). Which graphs stay in fp32 is an option
(``keep_fp32``); the default is measured (docs/RESULTS.md, "int8").
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from . import export
from .engine import backends

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
# Defaults measured on the calibration clips of pruning/recipes/calibration_clips.py (docs/RESULTS.md): 96 px
# crops of 10 frames give each graph inputs of the statistics of whole frames at a sixth of the cost.
DEFAULT_FRAMES = 10
DEFAULT_SIZE = 96
DEFAULT_CLIPS = 24
DEFAULT_SAMPLES = 200  # per graph: NNCF's statistics settle well before its default of 300
DEFAULT_KEEP_FP32: tuple[str, ...] = ()
# Operations whose inputs are never quantized. GridSample reads sampling coordinates (and Gather picks their x
# and y out of the flow): at 8 bits a coordinate in [-1, 1] moves by up to 1/256 of the frame, pixels at the
# sizes here, which scrambled the warp (output SNR of the dense backward step 4.8 dB against fp32). Add is the
# residual stream of the trunks: re-quantizing it after each of 30 blocks piles up the rounding (8.5 -> 13.4 dB
# SNR without it). Measured on the calibration clips, docs/RESULTS.md "int8".
FP32_OP_TYPES = ("GridSample", "Gather", "Add")
# Activations are quantized per tensor, so a convolution fed by a Concat of inputs on different scales (the
# trunk's first conv reads the LR frame in [0, 1] beside warped features in the tens) gives the small ones a few
# levels only: those convolutions stay fp32 (one per trunk step, 4.4 of 377 GMACs; dense backward step SNR
# 13.4 -> 20.6 dB). Asymmetric activation ranges (NNCF's "mixed" preset) suit the trunks and the upsampler,
# whose activations are mostly one-signed after LeakyReLU (20.6 -> 22.3 dB), but not SpyNet (14.5 -> 10.3 dB).
SYMMETRIC_GRAPHS = ("flow",)
# The version of the rules above. An int8 export cached on the fly (:func:`cached_int8_export`) is named after
# it, so a change to the rules makes new graphs instead of reusing ones quantized the old way: bump it with them.
INT8_RECIPE = 2  # 2: calibrated on the bundled photographs (1: the synthetic scene)
# On-the-fly int8 (``--precision int8``) calibrates on the photographs that ship with vsrapp (photo_clips): there
# is no video of the user's yet.
PHOTOS_DIR = Path(__file__).parent / "calibration"
CACHED_CALIBRATION_CLIPS = 16
CACHED_SAMPLES = DEFAULT_SAMPLES

LOG = logging.getLogger(__name__)


class QuantizeError(export.ExportError):
    """Calibration data or quantization failed; the message says why in one line."""


# ------------------------------------------------------------------------------------------- calibration data
def _frames_of_video(path: Path, limit: int) -> list[np.ndarray]:
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise QuantizeError(f"{path}: no video stream")
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) >= limit:
                    break
    except av.FFmpegError as exc:
        raise QuantizeError(f"{path}: cannot decode ({exc})") from None
    return frames


def _frames_of_folder(path: Path, limit: int) -> list[np.ndarray]:
    import cv2

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    frames = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise QuantizeError(f"{f}: not a readable image")
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return frames


def _sources(root: Path) -> list[Path]:
    """Each calibration sequence under ``root``: a video file, a folder of frames, or a folder of those."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise QuantizeError(f"{root}: no such file or folder")
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir()):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() or p.suffix.lower() not in {".md", ".txt", ".json"})


def _center_crop(frames: list[np.ndarray], size: int) -> np.ndarray:
    h, w = frames[0].shape[:2]
    ch, cw = min(h, size), min(w, size)
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.stack([f[y:y + ch, x:x + cw] for f in frames if f.shape[:2] == (h, w)])


def calibration_clips(source: str | Path, frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE,
                      max_clips: int = DEFAULT_CLIPS) -> list[torch.Tensor]:
    """Clips (T, 3, h, w) float in [0, 1] from a video, a folder of frames, or a folder of either.

    Frames are used as they are (they are what the model will be given: low-resolution video), cut to a
    centred ``size`` x ``size`` crop, ``frames`` consecutive frames per clip, at most ``max_clips`` clips.
    """
    clips: list[torch.Tensor] = []
    for src in _sources(Path(source)):
        if len(clips) >= max_clips:
            break
        seq = _frames_of_folder(src, frames) if src.is_dir() else _frames_of_video(src, frames)
        if len(seq) < 2:
            continue  # one frame teaches a recurrent network's flow and hidden state nothing
        clip = _center_crop(seq, size)
        clips.append(torch.from_numpy(clip).permute(0, 3, 1, 2).float().div(255.0))
    if not clips:
        raise QuantizeError(f"{source}: no clip of at least 2 frames found (give videos, or folders of frames)")
    return clips


def photo_clips(clips: int = 16, frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE,
                seed: int = 0) -> list[torch.Tensor]:
    """Calibration clips without any video of the user's: the photographs that ship with vsrapp
    (``vsrapp/calibration/``, public domain and CC0; ATTRIBUTION.md there) under a slow sub-pixel camera pan,
    each frame degraded as the benchmark's inputs are (MATLAB bicubic x1/4, 8-bit), ``size`` LR pixels square
    (less for a photo too small for it). Real image statistics matter: the bench's synthetic scene cost the
    forward-only ``basicvsr-uni-b7-hr16`` 0.32 dB on Vid4 in int8, training clips 0.01 (docs/RESULTS.md)."""
    from .evaluation import bicubic_degrade, read_rgb

    photos = [read_rgb(p) for p in sorted(PHOTOS_DIR.glob("*.jpg"))]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(clips):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = min(4 * size, (min(h, w) * 3 // 4) // 4 * 4)  # HR crop, a multiple of the scale
        start, step = [], []
        for extent in (w, h):  # per axis: up to 6 HR (1.5 LR) pixels a frame, within the photo
            room = extent - side
            v = float(rng.uniform(-1, 1) * min(6.0, room / max(1, frames - 1)))
            lo, hi = max(0.0, -v * (frames - 1)), room - max(0.0, v * (frames - 1))
            start.append(float(rng.uniform(lo, hi)))
            step.append(v)
        clip = []
        for t in range(frames):
            shift = np.float32([[1, 0, -(start[0] + step[0] * t)], [0, 1, -(start[1] + step[1] * t)]])
            hr = cv2.warpAffine(photo, shift, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            clip.append(bicubic_degrade(hr))
        out.append(torch.from_numpy(np.stack(clip)).permute(0, 3, 1, 2).float().div(255.0))
    return out


def collect_inputs(model: backends.GraphModel, clips: Iterable[torch.Tensor],
                   samples: int = DEFAULT_SAMPLES) -> dict[str, list[dict[str, np.ndarray]]]:
    """Every graph's inputs while ``model`` (fp32 graphs) upscales ``clips`` as the engine would, at most
    ``samples`` per graph, spread over the clips rather than taken from the first ones only."""
    from .engine.recurrence import upscale_clip

    clips = list(clips)
    seen: dict[str, list[dict[str, np.ndarray]]] = {g: [] for g in model.manifest["graphs"]}
    per_clip = max(1, -(-samples // len(clips)))
    counts: dict[str, int] = {}

    def record(graph: str, feed: dict[str, np.ndarray]) -> None:
        if counts.get(graph, 0) < per_clip and len(seen[graph]) < samples:
            seen[graph].append({k: v.copy() for k, v in feed.items()})
            counts[graph] = counts.get(graph, 0) + 1

    model.on_run = record
    try:
        with torch.no_grad():
            for clip in clips:
                counts.clear()
                upscale_clip(model, clip)
    finally:
        model.on_run = None
    return seen


# ------------------------------------------------------------------------------------------- quantization
def concat_fed_convolutions(model: Any) -> list[str]:
    """Names of the convolutions of an OpenVINO model whose input is a Concat (through type conversions)."""
    def producer(port: Any) -> Any:
        node = port.get_source_output().get_node()
        while node.get_type_name() in ("Convert", "Reshape"):
            node = node.input(0).get_source_output().get_node()
        return node

    return [op.get_friendly_name() for op in model.get_ordered_ops()
            if op.get_type_name() == "Convolution" and producer(op.input(0)).get_type_name() == "Concat"]


def _require_nncf() -> Any:
    backends.require_openvino()
    try:
        import nncf
    except ImportError:
        raise QuantizeError(f"int8 export needs NNCF: pip install \"vsrapp[{backends.OPENVINO_EXTRA}]\"") from None
    return nncf


def quantize_export(fp32_folder: str | Path, out: str | Path, clips: Sequence[torch.Tensor],
                    keep_fp32: Sequence[str] = DEFAULT_KEEP_FP32, samples: int = DEFAULT_SAMPLES,
                    threads: int | None = None, calibration: str = "", overwrite: bool = False) -> Path:
    """Write the int8 OpenVINO version of the ONNX export ``fp32_folder`` into the folder ``out``.

    ``keep_fp32``: graph names (``flow``, ``backward_step``, ...) that stay in fp32 as they are. The folder
    appears under its name only when complete, as for :func:`vsrapp.export.export_onnx`.
    """
    nncf = _require_nncf()
    import openvino as ov

    fp32_folder, out = Path(fp32_folder), Path(out)
    manifest = export.read_manifest(fp32_folder)
    if manifest.get("precision", "fp32") != "fp32":
        raise QuantizeError(f"{fp32_folder} is already {manifest['precision']}: quantize the fp32 export")
    unknown = sorted(set(keep_fp32) - set(manifest["graphs"]))
    if unknown:
        raise QuantizeError(f"no graph named {', '.join(unknown)} (graphs: {', '.join(manifest['graphs'])})")
    if out.exists() and not overwrite:
        raise QuantizeError(f"{out} already exists (pass --overwrite to replace it)")
    reference = backends.GraphModel(fp32_folder, backends.OPENVINO, threads)
    inputs = collect_inputs(reference, clips, samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        graphs = {}
        for graph, spec in manifest["graphs"].items():
            if graph in keep_fp32:
                shutil.copy2(fp32_folder / spec["file"], tmp / spec["file"])
                graphs[graph] = dict(spec)
                continue
            feeds = inputs[graph]
            if not feeds:
                raise QuantizeError(f"the calibration clips never ran the {graph} graph")
            model = ov.Core().read_model(str(fp32_folder / spec["file"]))
            ignored = nncf.IgnoredScope(names=concat_fed_convolutions(model), types=list(FP32_OP_TYPES),
                                        validate=False)
            preset = nncf.QuantizationPreset.PERFORMANCE if graph in SYMMETRIC_GRAPHS else nncf.QuantizationPreset.MIXED
            # fast_bias_correction: the full bias correction re-runs every layer per sample, minutes per graph
            # on two cores, for no measured gain here (13.35 dB SNR either way).
            quantized = nncf.quantize(model, nncf.Dataset(feeds), subset_size=len(feeds), fast_bias_correction=True,
                                      preset=preset, ignored_scope=ignored)
            ov.save_model(quantized, str(tmp / f"{graph}.xml"), compress_to_fp16=False)
            graphs[graph] = {**spec, "file": f"{graph}.xml", "weights": f"{graph}.bin"}
        int8 = {**manifest, "graphs": graphs, "precision": "int8", "runtime": backends.OPENVINO,
                "quantization": {"tool": f"nncf {nncf.__version__}, openvino {ov.__version__}",
                                 "calibration": calibration, "clips": len(clips),
                                 "samples_per_graph": {g: len(f) for g, f in inputs.items()},
                                 "fp32_graphs": sorted(keep_fp32), "fp32_op_types": list(FP32_OP_TYPES)}}
        int8.pop("check", None)  # the fp32 export's torch check does not describe these graphs
        (tmp / export.MANIFEST).write_text(json.dumps(int8, indent=1) + "\n")
        export.publish(tmp, out, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------------------- on the fly
def available() -> bool:
    """Whether int8 can be made here (the ``openvino`` extra: OpenVINO and NNCF), without importing them."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None and find_spec("nncf") is not None


def cached_int8_export(source: nn.Module | str | Path, name: str | None = None, threads: int | None = None) -> Path:
    """The int8 OpenVINO export of ``source`` (a torch model, or an fp32 export folder), made once and kept in
    :func:`vsrapp.export.cache_dir` (what ``--precision int8`` runs). An int8 folder is returned as it is.

    Calibrated on the bundled photographs (:func:`photo_clips`). The folder is named after the source's weights
    digest and :data:`INT8_RECIPE`, so new weights or new quantization rules make new graphs. Two processes
    quantizing at once each write their own temporary folder; the first rename wins."""
    fp32 = Path(source) if isinstance(source, (str, Path)) else export.cached_export(source, name)
    manifest = export.read_manifest(fp32)
    if manifest.get("precision", "fp32") == "int8":
        return fp32
    label = "".join(c if c.isalnum() or c in "-_." else "_" for c in manifest["model"])[-48:]
    folder = export.cache_dir() / f"{label}-{manifest['source_sha256'][:16]}-int8r{INT8_RECIPE}"
    if export.is_export_folder(folder):
        return folder
    LOG.warning("making the int8 graphs of %s once (calibrated on %s; a few minutes, up to ~10 "
                "for the dense model on two cores); they are kept in %s", manifest["model"], export.PHOTOS, folder)
    try:
        return quantize_export(fp32, folder, photo_clips(CACHED_CALIBRATION_CLIPS), samples=CACHED_SAMPLES,
                               threads=threads, calibration=export.PHOTOS)
    except (QuantizeError, OSError):
        if export.is_export_folder(folder):  # another process finished first
            return folder
        raise
