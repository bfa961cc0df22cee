"""One training loop for pruning and fine-tuning (ssl.md §7, §11, §12), single-process or DDP under ``torchrun``.

- Pruning (:func:`train_method`): a method object (:class:`vsrapp_pruning.method.PruningMethod`:
  :mod:`vsrapp_pruning.ssl`, :mod:`vsrapp_pruning.gassl`, :mod:`vsrapp_pruning.nm`, :mod:`vsrapp_pruning.issp`) turns
  the dense model into the model to train, adds its optimiser groups and loss term to the Charbonnier loss (or,
  held to a teacher cache, to the gap to
  the teacher's outputs), and acts through its step hooks before and after every optimiser step; at the end it
  exports itself.
- ``finetune``: a pruned model (:func:`vsrapp_models.pruned.load_pruned`, any method) is trained with Charbonnier plus,
  optionally, the hidden-state temporal term against the frozen dense teacher
  (:class:`vsrapp_pruning.losses.TemporalFinetuneLoss`), with a cosine schedule; then saved in its export format.
  Dense-shaped sparse exports (N:M, ISS-P) keep their zeros (:class:`KeepZeros`).

Shared machinery: Adam (beta 0.9/0.99), learning rate set by hand every step (constant or cosine to
``min_lr``: nothing to restore on resume), SpyNet frozen for the first ``spynet_frozen_iters`` iterations
(``-1`` = always; its learning rate is ``lr * spynet_lr_mult`` once it trains), checkpoints every
``ckpt_every`` iterations and at the end (model + optimiser + step + RNG states, written atomically), exact
resume (samples are a pure function of their index, see :mod:`vsrapp_pruning.data`; a method's own state is saved
with the checkpoint), log lines with loss and ETA to
stderr and ``<out>/train.log``, bf16 autocast on CUDA, DDP through ``torchrun`` (``torch.distributed`` env
initialisation; NCCL on CUDA, gloo on CPU).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import random
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from vsrapp_models.basicvsr import BasicVSR, BasicVSRUni
from vsrapp_models.complexity import count_macs, count_params
from vsrapp_models.pruned import META_LR_SIZE, save_pruned
from vsrapp_models.slim import SlimBasicVSR, SlimBasicVSRUni

from .data import ClipConfig, ResumableSampler, SyntheticClips
from .export import build_meta
from .gates import GatedModel
from .losses import TemporalFinetuneLoss, charbonnier_loss
from .method import PruningMethod, StepHooks

LOG = logging.getLogger("vsrapp.train")
CKPT_NAME = "last.pt"


@dataclass
class TrainConfig:
    """Everything a run depends on (stored in checkpoints and in the export's ``meta.json`` recipe)."""

    phase: str  # a method's phase: "sparsity" (SSL), "gassl", "nm", "issp"; or "finetune"
    data: str
    out: str
    iters: int = 1000
    batch: int = 1  # clips per process and step
    frames: int = 7
    lr_size: int = 64
    real_prob: float = 0.15
    lr: float = 2e-4
    gate_lr: float | None = None  # sparsity: learning rate of the gates (None = lr, as SSL)
    min_lr: float = 1e-7
    warmup: int = 0  # iterations of linear learning-rate warm-up (Adam's first steps are its largest)
    schedule: str = "constant"  # "constant" (SSL's sparsity phase) | "cosine" (its fine-tuning)
    spynet_frozen_iters: int = -1  # -1: frozen throughout (SSL's sparsity phase); SSL fine-tuning: 5000
    spynet_lr_mult: float = 0.125
    # SSL's settings (pruning.ssl.SslConfig; recorded here, as they always were)
    ratio: float = 0.5
    normalise: str = "layer"
    reg_delta: float = 1e-4
    reg_interval: int = 5
    reg_ceiling: float = 0.1
    # finetune
    tf_weight: float = 0.0
    # bookkeeping
    seed: int = 0
    ckpt_every: int = 100
    log_every: int = 10
    stop_at: int | None = None  # stop (with a checkpoint) after this step: time-boxed jobs, tests of resume
    max_seconds: float | None = None  # stop (with a checkpoint) once this call has trained this long
    # Fit the schedule to a time budget: after FIT_PROBE_STEPS timed steps, ``iters`` shrinks so that the whole
    # schedule (warm-up, cosine, export) ends after about this many seconds of training. For a lent GPU, where
    # one call is all there is and its speed is not known in advance. ``fitted_iters`` records the outcome
    # (checkpointed, so a resumed run keeps the fitted schedule).
    fit_seconds: float | None = None
    fitted_iters: int | None = None
    workers: int = 0
    threads: int | None = None
    bf16: bool = True  # autocast on CUDA
    # bf16 autocast on the CPU as well: 2.4x a block-distillation step on a Xeon with AMX at the same held-out
    # agreement (docs/RESULTS.md); measured only with AMX. Off by default: a choice per machine.
    bf16_cpu: bool = False
    channels_last: bool = True  # memory layout of the trained model (speed only)

    def clip_config(self) -> ClipConfig:
        return ClipConfig(frames=self.frames, lr_size=self.lr_size, real_prob=self.real_prob)


# ------------------------------------------------------------------------------------------ distributed
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | None = None) -> Dist:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1), or run
    alone. ``device``: None = CUDA if available (one GPU per local rank), else CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device("cuda", local if device in (None, "cuda") else torch.device(device).index or 0)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", init_method="env://")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Dist(rank, dist.get_world_size() if dist.is_initialized() else 1, dev)


# ------------------------------------------------------------------------------------------ objectives
class FinetuneObjective(nn.Module):
    """Charbonnier (``tf_weight`` 0, no teacher pass) or Charbonnier + ``tf_weight`` * L_tf against the frozen
    teacher. Flows are shared from the teacher while the student's SpyNet is frozen (it is the teacher's)."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, tf_weight: float) -> None:
        super().__init__()
        self.model = student
        self.tf = TemporalFinetuneLoss(teacher, tf_weight) if tf_weight > 0 and teacher is not None else None

    def forward(self, lrs: torch.Tensor, gts: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        if self.tf is None:
            out = self.model(lrs)
            rec = charbonnier_loss(out.float(), gts)
            return rec, {"rec": rec.detach(), "outputs": out.detach()}
        self.tf.share_flows = not any(p.requires_grad for p in self.model.spynet.parameters())
        loss, parts = self.tf(self.model, lrs, gts)
        return loss, parts


class MethodObjective(FinetuneObjective):
    """Charbonnier (the fine-tuning objective without a teacher) plus ``method.penalty(model, step)``; the
    penalty is computed inside the objective, so under DDP its gradient is reduced like any other. ``fit``:
    another fidelity term on the same model instead of the Charbonnier to the ground truth
    (``pruning.distill.DistillObjective``: the teacher's cached outputs as the target)."""

    def __init__(self, model: nn.Module, method: PruningMethod, fit: nn.Module | None = None) -> None:
        super().__init__(model, None, 0.0)
        self.method = method
        self.fit = fit

    def forward(self, lrs: torch.Tensor, gts: Any, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        rec, parts = self.fit(lrs, gts, step) if self.fit is not None else super().forward(lrs, gts, step)
        pen = self.method.penalty(self.model, step).to(rec.device)
        return rec + pen, {**parts, "pen": pen.detach()}


# ------------------------------------------------------------------------------------------ hooks
class KeepZeros(StepHooks):
    """Fine-tuning a dense-shaped sparse model (N:M or ISS-P): the zeros found at the start in ``layers``
    (default: an export's ``model.plan["layers"]``) stay zero (re-applied after every step, as ISS-P's
    fine-tuning does), so the pattern holds."""

    def __init__(self, model: nn.Module, layers: Iterable[str] | None = None) -> None:
        names = model.plan["layers"] if layers is None else layers
        self.keep = {n: model.get_submodule(n).weight.detach() != 0 for n in names}

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        for name, keep in self.keep.items():
            weight = model.get_submodule(name).weight
            weight.mul_(keep.to(weight.device))


class HookChain(StepHooks):
    """Several hooks acting in order around every step (e.g. :class:`KeepZeros`, then an EMA of the weights
    that must see the re-applied zeros); their states are checkpointed side by side."""

    def __init__(self, *hooks: StepHooks) -> None:
        self.hooks = hooks

    def before_step(self, model: nn.Module, step: int) -> bool:
        return any([h.before_step(model, step) for h in self.hooks])  # a list: every hook runs

    def after_step(self, model: nn.Module, step: int) -> None:
        for h in self.hooks:
            h.after_step(model, step)

    def log(self, model: nn.Module, step: int) -> dict[str, float]:
        return {k: v for h in self.hooks for k, v in h.log(model, step).items()}

    def state_dict(self) -> dict[str, Any]:
        return {str(i): h.state_dict() for i, h in enumerate(self.hooks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, h in enumerate(self.hooks):
            h.load_state_dict(state.get(str(i), {}))


# ------------------------------------------------------------------------------------------ checkpoints
def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic: a crash while writing leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint, unpickled without running code (``weights_only=True``): besides tensors and plain
    Python values it holds numpy's RNG state (a uint32 array), whose few numpy types are allowed by name."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 moved multiarray under _core
    numpy_rng = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    with torch.serialization.safe_globals(numpy_rng):
        return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------------ the loop
def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Multiplier of every group's base learning rate at ``step``: 1, or cosine from 1 to min_lr/lr; times a
    linear ramp over the first ``cfg.warmup`` steps."""
    ramp = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else 1.0
    if cfg.schedule == "constant":
        return ramp
    if cfg.schedule != "cosine":
        raise ValueError(f"unknown schedule {cfg.schedule!r}")
    floor = cfg.min_lr / cfg.lr
    return ramp * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, cfg.iters) / cfg.iters)))


FIT_PROBE_STEPS = (10, 40)  # steps timed to fit the schedule: the first ten (autotuning, loader start) excluded


def fitted_iters(cfg: TrainConfig, step: int, seconds_per_step: float, elapsed: float) -> int:
    """The schedule length that ends training ``cfg.fit_seconds`` after its start, given ``elapsed`` seconds
    spent so far and the measured ``seconds_per_step``; never longer than ``cfg.iters`` (the data's length)."""
    left = max(0.0, (cfg.fit_seconds or 0.0) - elapsed)
    return max(step + 1, min(cfg.iters, step + int(left / seconds_per_step)))


def spynet_frozen(cfg: TrainConfig, step: int) -> bool:
    return cfg.spynet_frozen_iters < 0 or step < cfg.spynet_frozen_iters


def setup_logging(out: Path, main: bool) -> None:
    LOG.setLevel(logging.INFO if main else logging.WARNING)
    LOG.propagate = False
    for h in list(LOG.handlers):
        LOG.removeHandler(h)
        h.close()
    if not main:
        return
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    out.mkdir(parents=True, exist_ok=True)
    for handler in (logging.StreamHandler(), logging.FileHandler(out / "train.log")):
        handler.setFormatter(fmt)
        LOG.addHandler(handler)


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _to_device(x: Any, device: torch.device) -> Any:
    """A batch's targets on ``device``: a tensor, or a dict of them (a teacher cache's targets)."""
    if isinstance(x, dict):
        return {k: v.to(device, non_blocking=True) for k, v in x.items()}
    return x.to(device, non_blocking=True)


def _psnr(out: torch.Tensor, gt: torch.Tensor) -> float:
    mse = (out.float().clamp(0, 1) - gt.float()).pow(2).mean()
    return float(10 * torch.log10(1 / mse.clamp_min(1e-10)))


def network(model: nn.Module) -> nn.Module:
    """The network inside a trained model: SSL's gated model holds it in ``net``, the others are it."""
    return model.net if isinstance(model, GatedModel) else model


class Trainer:
    """Runs ``objective`` (a module returning ``(loss, parts)``) for ``cfg.iters`` steps with checkpoints.

    ``model`` is the module being trained (inside ``objective``); ``groups`` maps an optimiser group name to
    (parameters, base learning rate). ``hooks`` (:class:`~vsrapp_pruning.method.StepHooks`: a pruning method, an EMA
    of the weights, ...) act before and after every step, and their state is checkpointed with the model."""

    def __init__(self, cfg: TrainConfig, objective: nn.Module, model: nn.Module,
                 groups: dict[str, tuple[list[nn.Parameter], float]], env: Dist,
                 hooks: StepHooks | None = None) -> None:
        self.cfg, self.objective, self.model, self.env = cfg, objective.to(env.device), model, env
        if cfg.channels_last:
            # Faster convolutions on both devices (docs/BENCHMARKS.md); parameters keep their values and
            # names, so checkpoints and exports do not depend on it.
            self.objective.to(memory_format=torch.channels_last)
        self.hooks = hooks or StepHooks()
        self.out = Path(cfg.out)
        self.ckpt = self.out / "checkpoints" / CKPT_NAME
        self.optimizer = torch.optim.Adam(
            [{"params": p, "lr": lr, "base_lr": lr, "name": n} for n, (p, lr) in groups.items() if p],
            betas=(0.9, 0.99))
        self.spynet = list(network(model).spynet.parameters())
        self.step = 0
        self.seconds = 0.0  # wall clock spent in run() by this process (the recipe's "seconds")
        self.history: list[float] = []  # loss per step (this process), for tests and the final summary
        self._ddp: nn.Module | None = None
        self._ddp_frozen: bool | None = None

    # -------------------------------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        return {"step": self.step, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": rng_state(), "config": dataclasses.asdict(self.cfg),
                "history": self.history, "hooks": self.hooks.state_dict()}

    def resume(self, path: Path | None = None) -> bool:
        """Continue from ``path`` (default: this run's last checkpoint); False if there is none."""
        path = path or self.ckpt
        if not path.is_file():
            return False
        state = load_checkpoint(path)
        if state["config"]["phase"] != self.cfg.phase:
            raise ValueError(f"{path} is a {state['config']['phase']} checkpoint, not {self.cfg.phase}")
        self.model.load_state_dict(state["model"], strict=True)
        if state["config"].get("fitted_iters"):  # the schedule a time budget fitted stays the schedule
            self.cfg.iters = self.cfg.fitted_iters = state["config"]["fitted_iters"]
        self._set_spynet_frozen(spynet_frozen(self.cfg, state["step"]))
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        self.step = state["step"]
        self.history = list(state.get("history", []))
        # SSL checkpoints from before pruning.ssl.Ssl kept its marked set under "extra" and no hook state.
        self.hooks.load_state_dict(state.get("hooks") or state.get("extra", {}))
        LOG.info("resumed from %s at step %d", path, self.step)
        return True

    def save(self) -> None:
        if self.env.main:
            save_checkpoint(self.ckpt, self.state())

    def start(self, resume: bool) -> None:
        """SpyNet frozen or not as the schedule says at step 0, then (``resume``) the last checkpoint."""
        self._set_spynet_frozen(spynet_frozen(self.cfg, 0))
        if resume:
            self.resume()

    @property
    def finished(self) -> bool:
        """True in the process that exports, once every step has run."""
        return self.env.main and self.step >= self.cfg.iters

    # ---------------------------------------------------------------------------------------------- run
    def _set_spynet_frozen(self, frozen: bool) -> None:
        for p in self.spynet:
            p.requires_grad_(not frozen)

    def _wrapped(self) -> nn.Module:
        """The objective, under DDP when distributed. DDP fixes its set of trainable parameters at
        construction, so it is rebuilt when SpyNet is unfrozen."""
        if self.env.world == 1:
            return self.objective
        frozen = not self.spynet[0].requires_grad
        if self._ddp is None or self._ddp_frozen != frozen:
            ids = [self.env.device.index] if self.env.device.type == "cuda" else None
            # A method may say that some of its parameters drop out of the graph (N:M scores once N is frozen).
            unused = bool(getattr(self.hooks, "unused_parameters", False))
            self._ddp = DistributedDataParallel(self.objective, device_ids=ids, find_unused_parameters=unused)
            self._ddp_frozen = frozen
        return self._ddp

    def batches(self, dataset: SyntheticClips) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sampler = ResumableSampler(self.cfg.iters * self.cfg.batch, self.step * self.cfg.batch, self.env.rank,
                                   self.env.world)
        loader = DataLoader(dataset, batch_size=self.cfg.batch, sampler=sampler, num_workers=self.cfg.workers,
                            pin_memory=self.env.device.type == "cuda", drop_last=True,
                            persistent_workers=False)
        yield from loader

    def run(self, dataset: SyntheticClips) -> None:
        cfg, env = self.cfg, self.env
        if self.step >= cfg.iters:
            LOG.info("already at step %d of %d", self.step, cfg.iters)
            return
        self.objective.train()
        autocast = cfg.bf16 if env.device.type == "cuda" else cfg.bf16_cpu
        started, start_step = time.perf_counter(), self.step
        try:
            self._run(dataset, autocast, started, start_step)
        finally:
            self.seconds += time.perf_counter() - started

    def _run(self, dataset: SyntheticClips, autocast: bool, started: float, start_step: int) -> None:
        cfg, env = self.cfg, self.env
        window: list[dict[str, float]] = []
        probe: dict[int, float] = {}
        for lrs, gts in self.batches(dataset):
            frozen = spynet_frozen(cfg, self.step)
            if frozen == self.spynet[0].requires_grad:
                self._set_spynet_frozen(frozen)
                LOG.info("step %d: SpyNet %s", self.step, "frozen" if frozen else "unfrozen")
            factor = lr_factor(cfg, self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            lrs = lrs.to(env.device, non_blocking=True)
            gts = _to_device(gts, env.device)
            if self.hooks.before_step(self.model, self.step):
                self.optimizer.state.clear()  # weights were reset (GASSL's restart after HAIR)
                LOG.info("step %d: weights reset by the method; optimiser state cleared", self.step)
            with torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=autocast):
                loss, parts = self._wrapped()(lrs, gts, self.step)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.hooks.after_step(self.model, self.step)
            self.step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"loss became {value} at step {self.step}")
            self.history.append(value)
            row = {"loss": value, "psnr": _psnr(parts["outputs"], gts["gt"] if isinstance(gts, dict) else gts)}
            row.update({k: float(v) for k, v in parts.items() if k != "outputs"})
            window.append(row)
            if self.step % cfg.log_every == 0 or self.step == cfg.iters:
                self._log(window, started, start_step)
                window = []
            if cfg.fit_seconds and cfg.fitted_iters is None:
                self._fit_schedule(probe, started, start_step)
            stop = (cfg.stop_at is not None and self.step >= cfg.stop_at) or self.step >= cfg.iters or \
                (cfg.max_seconds is not None and time.perf_counter() - started >= cfg.max_seconds)
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.iters or stop:
                self.save()
            if stop:
                if self.step < cfg.iters:
                    LOG.info("stopping at step %d (stop_at or max_seconds); continue with resume", self.step)
                break
        if dist.is_initialized():
            dist.barrier()

    def _fit_schedule(self, probe: dict[int, float], started: float, start_step: int) -> None:
        """Time FIT_PROBE_STEPS of this call, then shorten ``cfg.iters`` to what ``cfg.fit_seconds`` allows."""
        done = self.step - start_step
        first, last = FIT_PROBE_STEPS
        if done not in (first, last):
            return
        if self.env.device.type == "cuda":  # kernels run ahead of the host: time what has finished
            torch.cuda.synchronize(self.env.device)
        probe[done] = time.perf_counter()
        if done == last:
            per_step = (probe[last] - probe[first]) / (last - first)
            elapsed = self.seconds + probe[last] - started
            self.cfg.iters = self.cfg.fitted_iters = fitted_iters(self.cfg, self.step, per_step, elapsed)
            LOG.info("schedule fitted to %.0f s of training: %.3f s/step -> %d steps", self.cfg.fit_seconds,
                     per_step, self.cfg.iters)

    def _log(self, window: list[dict[str, float]], started: float, start_step: int) -> None:
        mean = {k: float(np.mean([r[k] for r in window])) for k in window[0]}
        per_step = (time.perf_counter() - started) / max(1, self.step - start_step)
        text = " ".join(f"{k} {v:.5g}" for k, v in mean.items())
        lr = self.optimizer.param_groups[0]["lr"]
        LOG.info("it %d/%d %s lr %.3g | %.2f s/it ETA %s", self.step, self.cfg.iters, text, lr, per_step,
                 _fmt_time(per_step * (self.cfg.iters - self.step)))
        progress = self.hooks.log(self.model, self.step)
        if progress:
            LOG.info("  %s", " ".join(f"{k} {v:.4g}" for k, v in progress.items()))


# ------------------------------------------------------------------------------------------ phases
def _prepare(cfg: TrainConfig, env: Dist | None) -> tuple[Dist, SyntheticClips]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    env = env or setup_distributed()
    setup_logging(Path(cfg.out), env.main)
    torch.manual_seed(cfg.seed)
    dataset = SyntheticClips(cfg.data, cfg.clip_config(), seed=cfg.seed, length=cfg.iters * cfg.batch * env.world)
    LOG.info("%s phase: %d stills, %d real clips under %s; world %d on %s", cfg.phase, len(dataset.stills),
             len(dataset.clips), cfg.data, env.world, env.device)
    LOG.info("config %s", json.dumps(dataclasses.asdict(cfg)))
    return env, dataset


def _next_key(recipe: dict[str, Any], phase: str) -> str:
    """``phase``, or ``phase_2``, ``phase_3`` ... when a model is fine-tuned again: every run stays on record."""
    key, n = phase, 2
    while key in recipe:
        key, n = f"{phase}_{n}", n + 1
    return key


def _cpu_model() -> str:
    """The CPU's model name for the recipe's record (an EPYC and a Xeon train at different speeds here; the
    application's own probe is vsrapp.engine.hardware, which pruning does not import)."""
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    except OSError:
        found = None
    return found.group(1).strip() if found else platform.machine()


def _recipe(cfg: TrainConfig, env: Dist, trainer: Trainer, n_stills: int) -> dict[str, Any]:
    device = torch.cuda.get_device_name(env.device) if env.device.type == "cuda" else \
        f"CPU {_cpu_model()} ({torch.get_num_threads()} threads{', bf16' if cfg.bf16_cpu else ''})"
    tail = trainer.history[-max(1, cfg.log_every):]
    return {"phase": cfg.phase, "config": dataclasses.asdict(cfg), "world": env.world, "device": device,
            "effective_batch": cfg.batch * env.world, "stills": n_stills, "seconds": round(trainer.seconds, 1),
            "final_loss": float(np.mean(tail)) if tail else None, "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def save_slim(model: SlimBasicVSR | SlimBasicVSRUni, out_dir: str | Path, meta: dict[str, Any]) -> Path:
    """Write a (fine-tuned) slim model in the export format of :func:`vsrapp_pruning.export.export_slim`."""
    model = model.cpu()
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    return save_pruned(out_dir, state, model.plan, build_meta(model, model.plan, meta))


def save_pruned_model(model: nn.Module, out_dir: str | Path, meta: dict[str, Any]) -> Path:
    """Save a (fine-tuned) pruned model in its method's export format (``meta["method"]``, default ssl), with
    params and MACs recounted; dense-shaped sparse plans get their non-zero counts recounted too."""
    meta = {k: v for k, v in meta.items() if k not in ("params", "macs_per_frame", "kept_fraction")}
    if meta.get("method", "ssl") == "ssl":
        meta.pop("arch", None)  # recomputed by build_meta
        return save_slim(model, out_dir, meta)

    model = model.cpu()
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    plan = json.loads(json.dumps(model.plan))
    for name, spec in plan.get("layers", {}).items():
        spec["nnz"] = int((state[f"{name}.weight"] != 0).sum())
    macs = count_macs(model, META_LR_SIZE)
    meta["params"] = count_params(model)
    meta["macs_per_frame"] = {k: macs[k] for k in ("lr_size", "total", "spynet", "without_spynet")}
    return save_pruned(out_dir, state, plan, meta)


def train_finetune(cfg: TrainConfig, student: nn.Module, teacher: nn.Module | None,
                   base_meta: dict[str, Any] | None = None, resume: bool = False, env: Dist | None = None) -> Path:
    """Fine-tune the pruned ``student`` (Charbonnier, + ``cfg.tf_weight`` * L_tf against ``teacher``) and save it
    into ``cfg.out`` in its export format. ``base_meta``: the source export's meta (its method decides the
    format; its recipe is kept and extended). A dense-shaped sparse student (``plan["layers"]``: N:M, ISS-P)
    keeps its zeros."""
    env, dataset = _prepare(cfg, env)
    student = student.to(env.device).train()
    if teacher is not None:
        teacher = teacher.to(env.device).eval().requires_grad_(False)
    spynet_ids = {id(p) for p in student.spynet.parameters()}
    groups = {"weights": ([p for p in student.parameters() if id(p) not in spynet_ids], cfg.lr),
              "spynet": (list(student.spynet.parameters()), cfg.lr * cfg.spynet_lr_mult)}
    objective = FinetuneObjective(student, teacher, cfg.tf_weight)
    hooks = KeepZeros(student) if "layers" in getattr(student, "plan", {}) else None
    trainer = Trainer(cfg, objective, student, groups, env, hooks=hooks)
    trainer.start(resume)
    trainer.run(dataset)
    out = Path(cfg.out)
    if trainer.finished:
        meta = dict(base_meta or {})
        recipe = dict(meta.get("recipe") or {})
        recipe[_next_key(recipe, "finetune")] = _recipe(cfg, env, trainer, len(dataset.stills))
        meta["recipe"] = recipe
        save_pruned_model(student, out, meta)
        LOG.info("saved fine-tuned %s model to %s", meta.get("method", "ssl"), out)
    return out


def train_method(cfg: TrainConfig, dense: BasicVSR | BasicVSRUni, method: PruningMethod, teacher_name: str = "",
                 resume: bool = False, env: Dist | None = None) -> Path:
    """Prune a copy of ``dense`` with a method object (:class:`vsrapp_pruning.method.PruningMethod`) for ``cfg.iters``
    steps, then let it export itself into ``cfg.out``.

    The method makes the model (``prepare``, then ``start`` on the device), adds its optimiser groups
    (``param_groups``; every other parameter trains at ``cfg.lr``, SpyNet at ``cfg.lr * cfg.spynet_lr_mult``
    when unfrozen), its loss term (``penalty``, added to the Charbonnier loss, or to the gap to the teacher's
    cached outputs when it has an ``anchor``) and its per-step actions (``before_step``/``after_step``); its
    state goes into every checkpoint. ``cfg.iters`` is the run's length: a fixed schedule (GASSL's
    ``total_steps``) is the caller's default for it; N:M and ISS-P go on fine-tuning with a fixed pattern once
    ``done``. An export made before ``done`` (schedule cut short) says so in its meta."""
    if cfg.phase != method.phase:
        raise ValueError(f"config phase {cfg.phase!r} does not name the method {method.name!r}")
    env, dataset = _prepare(cfg, env)
    model = method.prepare(dense).to(env.device)
    method.start(model)
    anchor = method.anchor
    if anchor is not None:
        dataset = anchor.dataset(cfg, env)
    own = method.param_groups(model, cfg.lr)
    spynet = list(network(model).spynet.parameters())
    taken = {id(p) for p in spynet} | {id(p) for params, _ in own.values() for p in params}
    groups = {"weights": ([p for p in model.parameters() if id(p) not in taken], cfg.lr), **own,
              "spynet": (spynet, cfg.lr * cfg.spynet_lr_mult)}
    objective = MethodObjective(model, method, anchor.objective(model) if anchor is not None else None)
    trainer = Trainer(cfg, objective, model, groups, env, hooks=method)
    trainer.start(resume)
    trainer.run(dataset)
    out = Path(cfg.out)
    if trainer.finished:
        complete = bool(method.done(trainer.step))
        if not complete:
            LOG.warning("%s schedule not finished after %d steps: exporting the current selection",
                        method.name, trainer.step)
        meta = method.meta(_recipe(cfg, env, trainer, len(dataset.stills)), teacher_name, complete)
        method.export(model, out, meta)
        LOG.info("exported %s model to %s", method.name, out)
    return out
