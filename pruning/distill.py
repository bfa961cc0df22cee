"""Teacher-anchored recovery: distil a pruned (or any) BasicVSR student from the frozen dense teacher, with the
teacher's work computed once and cached on disk.

Why (docs/RESULTS.md, "What the recipe costs"): fine-tuning a converged network towards the ground truth of a
few synthetic clips with a batch-1 Adam step damages it; the dense model itself loses over a dB that way. With
the teacher's output as the target the unpruned model is a fixed point, so the recipe can only undo what
pruning changed. The loss per clip is

    w_out * charbonnier(student, teacher output) + w_gt * charbonnier(student, GT) + w_tf * L_tf

where ``L_tf`` is SSL's Temporal Finetuning term as :mod:`vsrapp_pruning.losses` defines it: the mean absolute gap
between the student's and the teacher's hidden states at every time step of both branches.

The cache: the teacher's pass over a clip costs more than the student's forward and backward together, and
SpyNet (frozen, shared with the teacher) costs ~40 GMACs per 180x320 frame. :func:`build_cache` runs the
teacher once per clip of a fixed pool and stores, in one ``clip_NNNNN.pt`` file per clip: LR and GT frames
(uint8), the teacher's HR outputs, both branches' hidden states and both flow fields (fp16). The pool is
drawn from :class:`vsrapp_pruning.data.SyntheticClips` (stills with synthetic camera motion plus real clips), never
from an evaluation set. :class:`CachedClips` serves them to :class:`vsrapp_pruning.train.Trainer`; the student then
reuses the cached flows (its SpyNet is frozen and equal to the teacher's), so training pays for the slim
trunks and upsampler only.

A forward-only student reads the same cache: the teacher's forward trunk never reads the backward branch,
so its forward hidden states are valid targets; its output (which saw the future) is a target the student
approaches but cannot reach.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from vsrapp_models.contract import is_spynet

from .data import ClipConfig, SyntheticClips
from .losses import RecurrenceTrace, charbonnier_loss, compute_flows, run_with_states, temporal_loss
from .method import StepHooks
from .train import (
    Dist,
    TrainConfig,
    Trainer,
    _next_key,
    _recipe,
    save_pruned_model,
    setup_distributed,
    setup_logging,
)

LOG = logging.getLogger("vsrapp.train")
CACHE_FORMAT = "vsrapp-teacher-cache"
CACHE_VERSION = 1
STATE_KEYS = ("out", "fwd", "bwd", "to_next", "to_prev")


# ------------------------------------------------------------------------------------------ the cache
@dataclass(frozen=True)
class CacheConfig:
    clips: int = 160
    frames: int = 10
    lr_size: int = 64
    seed: int = 100  # the training runs' own data seeds are small integers: keep the pool apart from them
    real_prob: float = 0.15


def _u8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


def clip_path(directory: Path, index: int) -> Path:
    return directory / f"clip_{index:05d}.pt"


def trace_targets(trace: RecurrenceTrace) -> dict[str, torch.Tensor]:
    """The teacher's pass as distillation targets, named by :data:`STATE_KEYS` (a forward-only teacher or a
    single frame leaves some out)."""
    values = (trace.outputs, trace.forward, trace.backward, *trace.flows)
    return {k: v for k, v in zip(STATE_KEYS, values) if v is not None}


@torch.no_grad()
def teacher_record(teacher: nn.Module, lr: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """What one cached clip holds: ``lr``/``gt`` (T, 3, h, w) in [0, 1] -> uint8 frames plus the teacher's
    outputs, hidden states and flows (fp16)."""
    targets = trace_targets(run_with_states(teacher, lr[None].float()))
    return {"lr": _u8(lr), "gt": _u8(gt), **{k: v[0].contiguous().half() for k, v in targets.items()}}


def build_cache(teacher: nn.Module, data_root: str | Path, out: str | Path, cfg: CacheConfig,
                teacher_name: str = "") -> Path:
    """Fill ``out`` with ``cfg.clips`` teacher records (resumable: finished clips are kept; each file is written
    under a temporary name first). Returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "config": asdict(cfg), "teacher": teacher_name,
            "bidirectional": bool(teacher.bidirectional)}
    index_file = out / "cache.json"
    if index_file.is_file():
        old = json.loads(index_file.read_text())
        if {k: old.get(k) for k in info} != info:
            raise ValueError(f"{out} holds a different cache ({old.get('config')}, teacher {old.get('teacher')!r})")
    _atomic_text(index_file, json.dumps(info, indent=1))
    teacher = teacher.eval().requires_grad_(False)
    clips = SyntheticClips(data_root, ClipConfig(frames=cfg.frames, lr_size=cfg.lr_size, real_prob=cfg.real_prob),
                           seed=cfg.seed, length=cfg.clips)
    started, done = time.perf_counter(), 0
    for i in range(cfg.clips):
        path = clip_path(out, i)
        if path.is_file():
            continue
        lr, gt = clips[i]
        record = teacher_record(teacher, lr, gt)
        tmp = path.with_name(path.name + ".part")
        torch.save(record, tmp)
        os.replace(tmp, path)
        done += 1
        if done % 10 == 0 or i == cfg.clips - 1:
            LOG.info("cache: clip %d/%d (%.1f s/clip)", i + 1, cfg.clips, (time.perf_counter() - started) / done)
    return out


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_cache_info(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "cache.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a teacher cache (no cache.json; build one with "
                                "`python -m pruning.distill cache`)")
    info = json.loads(path.read_text())
    if info.get("format") != CACHE_FORMAT or info.get("version") != CACHE_VERSION:
        raise ValueError(f"{directory}: not a {CACHE_FORMAT} v{CACHE_VERSION} cache")
    return info


class CachedClips(Dataset):
    """Sample ``i`` is cached clip ``i mod n`` (n = the finished clips): ``(lr, targets)`` with ``lr`` (T, 3, h, w)
    float and ``targets`` a dict of float tensors (``gt`` and the teacher's :data:`STATE_KEYS`). Deterministic
    in ``i``, so :class:`vsrapp_pruning.data.ResumableSampler` resumes it exactly. ``frames`` < the cached length keeps
    the first frames (for losses that need no backward state: the backward states saw the later frames)."""

    def __init__(self, directory: str | Path | Sequence[str | Path], length: int, frames: int | None = None,
                 augment: bool = False) -> None:
        # Several caches (e.g. synthetic-motion stills and real clips) are read as one pool, their clips taken
        # in turn, so that every stretch of a run sees both kinds.
        directories = [Path(directory)] if isinstance(directory, (str, Path)) else [Path(d) for d in directory]
        infos = [read_cache_info(d) for d in directories]
        if len({(i.get("teacher"), i.get("bidirectional", True)) for i in infos}) > 1:
            raise ValueError(f"{', '.join(map(str, directories))}: made by different teachers; mix only caches of "
                             "one teacher")
        self.info = infos[0] if len(infos) == 1 else {
            **{k: v for k, v in infos[0].items() if k != "config"},
            "caches": [{"directory": str(d), "config": i["config"]} for d, i in zip(directories, infos)]}
        pools = [[clip_path(d, i) for i in range(info["config"]["clips"]) if clip_path(d, i).is_file()]
                 for d, info in zip(directories, infos)]
        self.paths = [pool[k] for k in range(max(map(len, pools))) for pool in pools if k < len(pool)]
        if not self.paths:
            raise FileNotFoundError(f"{', '.join(map(str, directories))} holds no cached clips yet")
        self.length = length
        self.frames = frames
        self.augment = augment
        self.stills: list[Path] = []  # the recipe counts stills; a cache has none of its own

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        record = torch.load(self.paths[index % len(self.paths)], map_location="cpu", weights_only=True)
        t = self.frames or record["lr"].shape[0]
        lr = record["lr"][:t].float().div(255)
        targets = {"gt": record["gt"][:t].float().div(255)}
        for key in STATE_KEYS:
            if key in record:
                value = record[key].float()
                targets[key] = value[:t - 1] if key.startswith("to_") else value[:t]
        if self.augment and index >= len(self.paths):  # the first pass over the pool sees the clips as cached
            lr, targets = symmetry(lr, targets, index // len(self.paths))
        return lr, targets


def symmetry(lr: torch.Tensor, targets: dict[str, torch.Tensor], k: int) -> tuple[torch.Tensor, dict]:
    """Clip and teacher targets under the ``k``-th of 16 symmetries (``k`` mod 16: the 8 flips and transposes of
    the square crop, each forward or backward in time), so that a fixed pool teaches new motion and texture
    directions on every pass instead of being memorised. The output target is the teacher's output moved the same
    way, which is what the teacher makes of the moved clip up to its own lack of symmetry: 36-42 dB PSNR
    between the two on held-out real clips (2026-12-05; a student agrees with the teacher to about 37), so the
    moved targets are other good answers rather than the teacher's own, as in the x8 self-ensemble. Flows move
    with their images (a flipped axis negates its component, a transpose swaps them; reversing time swaps
    ``to_next`` and ``to_prev``); the hidden states are moved too but are only approximate targets (the two
    trunks differ), so the temporal term should not be trained on augmented clips."""
    k %= 16
    hflip, vflip, transpose, reverse = bool(k & 1), bool(k & 2), bool(k & 4), bool(k & 8)

    def image(x: torch.Tensor) -> torch.Tensor:
        if hflip:
            x = x.flip(-1)
        if vflip:
            x = x.flip(-2)
        return x.transpose(-1, -2) if transpose else x

    def flow(f: torch.Tensor) -> torch.Tensor:
        f = image(f)
        sign = torch.tensor([-1.0 if hflip else 1.0, -1.0 if vflip else 1.0], dtype=f.dtype).view(2, 1, 1)
        f = f * sign
        return f.flip(-3) if transpose else f  # (x, y) -> (y, x): the axes swapped

    moved = {key: (flow(v) if key.startswith("to_") else image(v)) for key, v in targets.items()}
    lr = image(lr)
    if reverse:
        lr = lr.flip(0)
        moved = {key: v.flip(0) for key, v in moved.items()}
        swaps = {"to_next": "to_prev", "to_prev": "to_next", "fwd": "bwd", "bwd": "fwd"}
        moved = {swaps.get(key, key): v for key, v in moved.items()}
    return lr.contiguous(), {key: v.contiguous() for key, v in moved.items()}


@torch.no_grad()
def teacher_agreement(model: nn.Module, cache: str | Path) -> list[float]:
    """PSNR (dB, RGB in [0, 1]) of ``model``'s output against the cached teacher output, one value per clip of
    ``cache``. On a held-out cache (another seed than the training pool; never an evaluation set) it is the
    cheap signal for choosing between students: how much of the teacher a student has recovered."""
    data = CachedClips(cache, length=0)
    model = model.eval()
    scores = []
    for path in data.paths:
        record = torch.load(path, map_location="cpu", weights_only=True)
        out = model(record["lr"].float().div(255)[None])[0].clamp(0, 1)
        mse = float((out - record["out"].float().clamp(0, 1)).pow(2).mean())
        scores.append(10 * math.log10(1 / max(mse, 1e-12)))
    return scores


# ------------------------------------------------------------------------------------------ objective
@dataclass(frozen=True)
class DistillWeights:
    out: float = 1.0  # Charbonnier to the teacher's output
    gt: float = 0.0  # Charbonnier to the ground truth
    tf: float = 0.0  # SSL's temporal term: hidden states against the teacher's

    def needs_states(self) -> bool:
        return self.tf > 0


def coarse_flow(model: nn.Module) -> bool:
    """Whether ``model`` runs a cheaper flow than the teacher's (its SpyNet stops early). A gated SSL network
    wraps its SpyNet and always runs the full one."""
    return bool(getattr(getattr(model, "spynet", None), "skip_finest", 0))


class DistillObjective(nn.Module):
    """The student's pass over a clip with the teacher's flows, and the weighted loss above. ``targets`` is a
    batch of :class:`CachedClips` dicts, or (with a live ``teacher``: a GPU has the time to run it every step)
    the ground truth of a :class:`vsrapp_pruning.data.SyntheticClips` batch, from which the teacher's pass makes the
    same dict."""

    def __init__(self, student: nn.Module, weights: DistillWeights, teacher: nn.Module | None = None) -> None:
        super().__init__()
        self.model = student
        self.weights = weights
        # Not a submodule: the teacher's weights stay out of the student's state dict and optimiser.
        self._teacher = [teacher.eval().requires_grad_(False)] if teacher is not None else []

    @torch.no_grad()
    def teacher_targets(self, lrs: torch.Tensor, gts: torch.Tensor) -> dict[str, torch.Tensor]:
        targets = trace_targets(run_with_states(self._teacher[0], lrs))
        return {"gt": gts, **targets, "out": targets["out"].float()}

    def forward(self, lrs: torch.Tensor, targets: dict[str, torch.Tensor] | torch.Tensor, step: int,
                ) -> tuple[torch.Tensor, dict[str, Any]]:
        if not isinstance(targets, dict):
            if not self._teacher:
                raise ValueError("ground-truth batches need a live teacher")
            targets = self.teacher_targets(lrs, targets)
        flows = (targets.get("to_next") if self.model.bidirectional else None, targets.get("to_prev"))
        if lrs.shape[1] < 2:
            flows = (None, None)
        elif coarse_flow(self.model):
            # A student that runs a coarser flow than the teacher's learns with the flow it will run with (its
            # frozen SpyNet stopped early: a fraction of the full flow's cost, no gradient through it).
            with torch.no_grad():
                flows = compute_flows(self.model, lrs)
        trace = run_with_states(self.model, lrs, flows)
        w = self.weights
        parts: dict[str, Any] = {"outputs": trace.outputs.detach()}
        loss = trace.outputs.new_zeros(())
        if w.out:
            parts["kd"] = charbonnier_loss(trace.outputs.float(), targets["out"])
            loss = loss + w.out * parts["kd"]
        if w.gt:
            parts["rec"] = charbonnier_loss(trace.outputs.float(), targets["gt"])
            loss = loss + w.gt * parts["rec"]
        if w.tf:
            teacher = RecurrenceTrace(targets["out"], targets["fwd"], targets.get("bwd"), flows)
            if not self.model.bidirectional:
                teacher.backward = None
            parts["tf"] = temporal_loss(trace, teacher)
            loss = loss + w.tf * parts["tf"]
        return loss, {k: v.detach() for k, v in parts.items()}


# ------------------------------------------------------------------------------------------ EMA
class WeightEMA(StepHooks):
    """Exponential moving average of the trained weights (``decay`` per step), kept beside the model and
    checkpointed with it; :meth:`copy_to` puts the average into the model before it is saved. Averaging the
    last few hundred noisy batch-1 steps smooths what any single step did."""

    def __init__(self, model: nn.Module, decay: float = 0.999, names: set[str] | None = None) -> None:
        """``names``: the state-dict entries to average (default: every float tensor); frozen ones need none."""
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()
                       if v.dtype.is_floating_point and (names is None or k in names)}

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        # Warm-up of the decay (as timm/BasicSR): early on the average follows the weights closely.
        decay = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].mul_(decay).add_(v.detach().float(), alpha=1 - decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        state = model.state_dict()
        for k, v in self.shadow.items():
            state[k].copy_(v.to(state[k].dtype))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.decay = state["decay"]
            self.shadow = {k: v.clone() for k, v in state["shadow"].items()}


def averaged(model: nn.Module, ema: WeightEMA | None) -> nn.Module:
    """A copy of ``model`` holding the EMA weights (or ``model`` itself without an EMA)."""
    if ema is None:
        return model
    out = copy.deepcopy(model)
    ema.copy_to(out)
    return out


# ------------------------------------------------------------------------------------------ SSL, anchored
ANCHOR_KINDS = frozenset({"trunk.conv1.out", "upconv2.out", "conv_hr.out"})


@dataclass(frozen=True)
class Anchor:
    """SSL's sparsity phase held to the teacher (``pruning.ssl.Ssl(config, anchor)``): the gated
    model fits the teacher's cached outputs (``weights``) instead of the ground truth, so the entries the
    penalty does not touch stay where the teacher has them, and only the gates of ``kinds`` are selected, with
    kept widths rounded to ``multiple`` (:func:`vsrapp_pruning.selection.select_kinds`).

    The default kinds keep every stream channel (no RSC gather/scatter: the slim network runs at the dense
    one's efficiency per MAC) and prune each block's hidden filters and the two high-resolution upsampler
    layers, where most of the upsampler's MACs are."""

    cache: str
    weights: DistillWeights = DistillWeights()
    kinds: frozenset[str] = ANCHOR_KINDS
    multiple: int = 8

    def dataset(self, cfg: TrainConfig, env: Dist) -> CachedClips:
        return CachedClips(self.cache, length=cfg.iters * cfg.batch * env.world,
                           frames=None if self.weights.needs_states() or cfg.frames <= 0 else cfg.frames)

    def objective(self, gated: nn.Module) -> DistillObjective:
        return DistillObjective(gated, self.weights)

    def describe(self) -> dict[str, Any]:
        info = read_cache_info(self.cache)
        return {"cache": str(self.cache), "cache_config": info["config"], "teacher": info.get("teacher"),
                "weights": asdict(self.weights), "kinds": sorted(self.kinds), "multiple": self.multiple}


# ------------------------------------------------------------------------------------------ training
def train_distill(cfg: TrainConfig, student: nn.Module, cache: str | Path | Sequence[str | Path] | None,
                  weights: DistillWeights,
                  base_meta: dict[str, Any] | None = None, ema_decay: float = 0.0, resume: bool = False,
                  env: Dist | None = None, save: bool = True, snapshot_every: int = 0,
                  teacher: nn.Module | None = None, teacher_name: str = "",
                  augment: bool = False) -> tuple[Path, nn.Module]:
    """Train ``student`` on the cached clips of ``cache`` (SpyNet frozen: its flows are the teacher's) with the
    weighted loss, warm-up and cosine schedule of ``cfg``, optionally an EMA of the weights (``ema_decay`` > 0,
    which is what gets saved). ``cache=None``: fresh synthetic clips from ``cfg.data`` (``cfg.frames``,
    ``cfg.lr_size``) with the live ``teacher`` instead. A pruned student is saved into ``cfg.out`` in its export
    format with the recipe extended (``save``); returns ``(cfg.out, the trained model, EMA weights in place
    when used)``. ``augment``: after its first pass, the cached pool is seen under :func:`symmetry`'s flips,
    transposes and time reversal."""
    # SpyNet stays frozen throughout: the flows are the teacher's (cached, or its live pass). A copy, so that
    # the stretches below can set stop_at and max_seconds without touching the caller's config.
    cfg = dataclasses.replace(cfg, spynet_frozen_iters=-1)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    env = env or setup_distributed()
    setup_logging(Path(cfg.out), env.main)
    torch.manual_seed(cfg.seed)
    length = cfg.iters * cfg.batch * env.world
    if cache is not None:
        if augment and weights.needs_states():
            raise ValueError("the temporal term's hidden-state targets do not survive augmentation")
        dataset: Dataset = CachedClips(cache, length=length,
                                       frames=None if weights.needs_states() or cfg.frames <= 0 else cfg.frames,
                                       augment=augment)
        source = {**dataset.info, "clips_used": len(dataset.paths), **({"augment": "symmetry16"} if augment else {})}
        teacher = None
    else:
        if teacher is None:
            raise ValueError("without a cache, distillation needs a live teacher")
        dataset = SyntheticClips(cfg.data, cfg.clip_config(), seed=cfg.seed, length=length)
        source = {"live_teacher": teacher_name, "stills": len(dataset.stills), "real_clips": len(dataset.clips)}
        teacher = teacher.to(env.device)
    LOG.info("distill from %s; weights %s; EMA %s; world %d on %s", json.dumps(source), asdict(weights),
             ema_decay or "off", env.world, env.device)
    LOG.info("config %s", json.dumps(asdict(cfg)))
    student = student.to(env.device).train()
    trainable = {n: p for n, p in student.named_parameters() if not is_spynet(n)}
    groups = {"weights": (list(trainable.values()), cfg.lr), "spynet": ([], 0.0)}
    ema = WeightEMA(student, ema_decay, set(trainable)) if ema_decay > 0 else None
    trainer = Trainer(cfg, DistillObjective(student, weights, teacher), student, groups, env, hooks=ema)
    trainer.start(resume)
    out = Path(cfg.out)
    stop_at = cfg.stop_at
    prunable = save and env.main and hasattr(student, "plan")

    def export(directory: Path) -> nn.Module:
        model = averaged(student, ema)
        meta = dict(base_meta or {})
        recipe = dict(meta.get("recipe") or {})
        entry = _recipe(cfg, env, trainer, len(getattr(dataset, "stills", [])))
        entry.update({"steps_done": trainer.step, "cache": source, "weights": asdict(weights),
                      "ema_decay": ema_decay})
        recipe[_next_key(recipe, "distill")] = entry
        meta["recipe"] = recipe
        saved = save_pruned_model(copy.deepcopy(model), directory, meta)
        LOG.info("exported the %smodel at step %d to %s", "averaged " if ema else "", trainer.step, saved)
        return model

    # Snapshots: the run is cut into stretches that end on a multiple of snapshot_every (checkpointed, as a
    # stop_at would), and the model is exported after each, so one run gives the quality-against-budget curve.
    max_seconds = cfg.max_seconds
    while True:
        ends = [cfg.iters] + ([stop_at] if stop_at is not None else [])
        if snapshot_every > 0:
            ends.append((trainer.step // snapshot_every + 1) * snapshot_every)
        trainer.cfg.stop_at = min(ends)
        if max_seconds is not None:  # one budget for the whole call, not one per stretch
            trainer.cfg.max_seconds = max(0.0, max_seconds - trainer.seconds)
        trainer.run(dataset)
        if trainer.step >= min(cfg.iters, stop_at or cfg.iters) or trainer.step < trainer.cfg.stop_at:
            break
        if prunable and snapshot_every > 0 and trainer.step % snapshot_every == 0:
            export(out / "snapshots" / f"step{trainer.step}")
    trainer.cfg.stop_at, trainer.cfg.max_seconds = stop_at, max_seconds
    result = averaged(student, ema).cpu().eval()
    if trainer.finished and prunable:
        result = export(out).cpu().eval()
    return out, result


# ------------------------------------------------------------------------------------------ CLI
def _cache_main(args: argparse.Namespace) -> int:
    from . import zoo

    if args.threads:
        torch.set_num_threads(args.threads)
    setup_logging(Path(args.out), True)
    teacher = zoo.dense_teacher(args.teacher)
    cfg = CacheConfig(clips=args.clips, frames=args.frames, lr_size=args.lr_size, seed=args.seed,
                      real_prob=args.real_prob)
    build_cache(teacher, args.data, args.out, cfg, teacher_name=args.teacher)
    print(f"teacher cache ready: {args.out}")
    return 0


def _agree_main(args: argparse.Namespace) -> int:
    from . import zoo

    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.models:
        scores = teacher_agreement(zoo.get_model(name), args.cache)
        print(f"{name}: {sum(scores) / len(scores):.2f} dB against the teacher over {len(scores)} clips "
              f"(min {min(scores):.2f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .prepare_data import DEFAULT_OUT

    parser = argparse.ArgumentParser(prog="python -m pruning.distill",
                                     description="teacher caches for `vsrapp finetune --cache`")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cache", help="run the dense teacher once over a pool of training clips and store it")
    p.add_argument("--teacher", default="basicvsr-vimeo-bi")
    p.add_argument("--data", type=Path, default=DEFAULT_OUT, help="training cache of pruning.prepare_data")
    p.add_argument("--out", type=Path, required=True)
    defaults = CacheConfig()
    p.add_argument("--clips", type=int, default=defaults.clips)
    p.add_argument("--frames", type=int, default=defaults.frames)
    p.add_argument("--lr-size", type=int, default=defaults.lr_size)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--real-prob", type=float, default=defaults.real_prob)
    p.add_argument("--threads", type=int)
    a = sub.add_parser("agree", help="how close models come to the teacher on a (held-out) cache: PSNR in dB")
    a.add_argument("--cache", type=Path, required=True)
    a.add_argument("models", nargs="+", help="zoo names, checkpoints or export folders")
    a.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.command == "agree":
        return _agree_main(args)
    from .refusal import refusing  # a --teacher that is not dense: one line and status 1, as before

    return refusing(_cache_main)(args)


if __name__ == "__main__":
    raise SystemExit(main())
