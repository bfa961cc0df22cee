"""Block pruning: drop whole residual blocks of both trunks, keep every layer's width, recover from the teacher.

Why blocks and not channels (docs/RESULTS.md, "Block pruning"): every block writes a residual onto the 64-channel
stream, so removing one leaves the stream itself intact, and what is left runs at the dense network's efficiency
(no gather/scatter, every width 64). Measured on held-out training clips against the teacher, BasicVSR with 15 of
its 30 blocks per trunk starts at 29 dB one-shot and passes the channel-pruned ``ssl-bi`` (34.2 dB) within 100
distillation steps, where a one-shot channel plan of the same cost diverges.

Which blocks go: the ones whose residual is smallest against the stream it is added to (``||f(x)|| / ||x||``,
averaged over the first frames of a few cached clips). The student is a plain ``BasicVSR(num_feat, num_block)``:
saved as a BasicSR checkpoint (``{"params": state}``), it loads anywhere the official weights load, and as an
export folder (``method: blocks``, :mod:`models.dense_shaped`) that ``python -m pruning.bundle`` can ship.

    python -m pruning.blocks --cache runs/cache64 --keep 15 --out runs/blocks/b15 --iters 400 --threads 2
    python -m pruning.blocks export runs/blocks/b15            # -> runs/blocks/b15/export (from model.pth)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from models.basicvsr import BasicVSR
from models.dense_shaped import SPARSE_PLAN_FORMAT, SPARSE_PLAN_VERSION
from models.loading import load_basicsr, load_model

from .distill import CachedClips, DistillWeights, train_distill
from .train import TrainConfig, save_pruned_model

TRUNKS = ("backward_trunk", "forward_trunk")
BLOCKS = ".main.2."  # BasicSR's ConvResidualBlocks: the blocks sit at main.2 of each trunk
SELECTION = "selection.json"
INIT = "init.json"  # where a run that continued another started: that model's stages come first in the recipe
STUDENT = "model.pth"
EXPORT = "export"


def residual_ratios(teacher: BasicVSR, clips: Sequence[torch.Tensor]) -> dict[str, list[float]]:
    """Per trunk, each block's mean ``||residual|| / ||input||`` over ``clips`` ((T, 3, h, w) each)."""
    sums: dict[str, list[float]] = {t: [0.0] * len(getattr(teacher, t).main[2]) for t in TRUNKS}
    hooks = []
    for trunk in TRUNKS:
        for i, block in enumerate(getattr(teacher, trunk).main[2]):
            def record(_module: nn.Module, args: tuple, out: torch.Tensor, trunk: str = trunk, i: int = i) -> None:
                x = args[0]
                sums[trunk][i] += float((out - x).norm() / x.norm().clamp_min(1e-12))
            hooks.append(block.register_forward_hook(record))
    try:
        with torch.no_grad():
            for clip in clips:
                teacher(clip[None])
    finally:
        for h in hooks:
            h.remove()
    return {t: [v / len(clips) for v in values] for t, values in sums.items()}


def select_blocks(ratios: dict[str, list[float]], keep: int) -> dict[str, list[int]]:
    """The ``keep`` blocks of each trunk with the largest residual ratio, in network order."""
    chosen = {}
    for trunk, values in ratios.items():
        if not 0 < keep <= len(values):
            raise ValueError(f"keep must be in 1..{len(values)}, got {keep}")
        chosen[trunk] = sorted(sorted(range(len(values)), key=lambda i: -values[i])[:keep])
    return chosen


def block_student(teacher: BasicVSR, kept: dict[str, list[int]]) -> BasicVSR:
    """``BasicVSR`` with only the ``kept`` blocks of each trunk (renumbered), every weight the teacher's."""
    counts = {len(v) for v in kept.values()}
    if len(counts) != 1:
        raise ValueError("both trunks must keep the same number of blocks (BasicSR's BasicVSR has one num_block)")
    student = BasicVSR(teacher.num_feat, counts.pop())
    state = {}
    for key, value in teacher.state_dict().items():
        trunk = next((t for t in TRUNKS if key.startswith(t + BLOCKS)), None)
        if trunk is None:
            state[key] = value
            continue
        index, rest = key[len(trunk + BLOCKS):].split(".", 1)
        if int(index) in kept[trunk]:
            state[f"{trunk}{BLOCKS}{kept[trunk].index(int(index))}.{rest}"] = value
    student.load_state_dict(state, strict=True)
    return student


def prepare(teacher: BasicVSR, cache: str | Path, out: Path, keep: int, clips: int = 4, frames: int = 8) -> BasicVSR:
    """The student of a run in ``out``: the selection is made once and kept (``selection.json``), so a resumed
    run trains the same blocks."""
    path = out / SELECTION
    if path.is_file():
        kept = json.loads(path.read_text())["kept"]
    else:
        data = CachedClips(cache, length=clips)
        sample = [data[i][0][:frames] for i in range(min(clips, len(data.paths)))]
        ratios = residual_ratios(teacher, sample)
        kept = select_blocks(ratios, keep)
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"keep": keep, "kept": kept, "residual_ratios": ratios,
                                    "clips": len(sample), "frames": frames}, indent=1))
    return block_student(teacher, kept)


def run(teacher: BasicVSR, cache: str | Path | Sequence[str | Path], out: str | Path, keep: int, cfg: TrainConfig,
        ema: float = 0.995, init: str | Path | None = None) -> Path:
    """Select, distill (Charbonnier to the cached teacher output; ``cfg`` for the schedule) and save the
    student as a BasicSR checkpoint ``out/model.pth``; resumable (re-run the same call). ``init``: start from
    a block-pruned student saved before (a BasicSR checkpoint of ``keep`` blocks) instead of the teacher's
    blocks: a further stretch of training with a fresh schedule. Several caches are one pool (taken in turn);
    the blocks are ranked on the first."""
    out = Path(out)
    caches = [cache] if isinstance(cache, (str, Path)) else list(cache)
    student = prepare(teacher, caches[0], out, keep)
    if init is not None:
        student.load_state_dict(load_model(init).state_dict(), strict=True)  # a .pth or a folder; fp32
        if not (out / INIT).is_file():
            (out / INIT).write_text(json.dumps({"from": str(init), "stages": stages_before(init)}, indent=1))
    resume = (out / "checkpoints" / "last.pt").is_file()
    _, trained = train_distill(cfg, student, caches, DistillWeights(out=1.0, gt=0.0, tf=0.0), {}, ema_decay=ema,
                               resume=resume, save=False)
    path = out / STUDENT
    tmp = path.with_suffix(".part")
    torch.save({"params": {k: v.detach().cpu().contiguous() for k, v in trained.state_dict().items()}}, tmp)
    tmp.replace(path)
    export(out)
    return path


_STAGE_KEYS = ("iters", "batch", "lr_size", "lr", "min_lr", "warmup", "schedule", "seed")
_DATA_KEYS = ("clips", "frames", "lr_size", "seed", "real_prob")


def stages_before(init: str | Path) -> list[dict]:
    """The training stretches that made ``init``: an export or bundled folder's recorded recipe, or for a run's
    ``model.pth`` that run's own stages (with those it continued)."""
    init = Path(init)
    if init.is_dir():
        meta = init / "meta.json"
        return json.loads(meta.read_text()).get("recipe", {}).get("stages", []) if meta.is_file() else []
    return run_stages(init.parent)


def run_stages(run_dir: Path) -> list[dict]:
    """Every stretch that made a run's model: the ones before its ``--init`` (``init.json``), then its own."""
    before = json.loads((run_dir / INIT).read_text())["stages"] if (run_dir / INIT).is_file() else []
    return before + logged_stages(run_dir / "train.log")


def logged_stages(log: Path) -> list[dict]:
    """The training stretches a run's ``train.log`` records (the trainer logs its data and config at every start;
    a resumed stretch logs the same again and counts once), each with the teacher caches it read (``data``)."""
    stages: list[dict] = []
    if not log.is_file():
        return stages
    data: list[dict] = []
    for line in log.read_text().splitlines():
        _, marker, rest = line.partition(" distill from ")
        if marker and rest.startswith("{"):
            source = json.loads(rest[:rest.index("; weights")])
            configs = [c["config"] for c in source["caches"]] if "caches" in source else [source.get("config", {})]
            data = [{k: c[k] for k in _DATA_KEYS if k in c} for c in configs]
        _, marker, rest = line.partition(" config ")
        if marker and rest.startswith("{"):
            stage = {k: v for k, v in json.loads(rest).items() if k in _STAGE_KEYS} | {"data": data}
            if not stages or stages[-1] != stage:
                stages.append(stage)
    return stages


def export(run_dir: str | Path, out: str | Path | None = None, teacher: str = "basicvsr-vimeo-bi",
           script: str = "") -> Path:
    """The export folder (``method: blocks``) of a run: ``run_dir/model.pth`` and the blocks its
    ``selection.json`` kept, written to ``out`` (default ``run_dir/export``); ``script``: the recipe that
    reproduces it, recorded in ``meta.json``."""
    run_dir = Path(run_dir)
    student = load_basicsr(run_dir / STUDENT)
    selection = json.loads((run_dir / SELECTION).read_text())
    arch = {"bidirectional": bool(student.bidirectional), "num_feat": student.num_feat,
            "num_block": len(student.forward_trunk.main[2]), "scale": 4}
    plan = {"format": SPARSE_PLAN_FORMAT, "version": SPARSE_PLAN_VERSION, "arch": arch, "pattern": "blocks",
            "kept": selection["kept"]}
    meta = {"method": "blocks", "arch": "basicvsr" if arch["bidirectional"] else "basicvsr-uni",
            "kept_blocks": arch["num_block"], "teacher": teacher,
            "recipe": {"selection": {k: selection[k] for k in ("keep", "clips", "frames") if k in selection},
                       "stages": run_stages(run_dir)}}
    if script:
        meta["recipe"]["script"] = script
    student.plan = plan
    return save_pruned_model(student, Path(out) if out else run_dir / EXPORT, meta)  # counts params and MACs


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv) if argv is not None else sys.argv[1:]
    if argv[:1] == ["export"]:
        e = argparse.ArgumentParser(prog="python -m pruning.blocks export", description=export.__doc__.split("\n")[0])
        e.add_argument("run", help="a run folder of python -m pruning.blocks (model.pth + selection.json)")
        e.add_argument("--out", help="export folder (default RUN/export)")
        e.add_argument("--script", default="", help="the recipe script that reproduces it (recorded in meta.json)")
        args = e.parse_args(argv[1:])
        print(f"export folder written to {export(args.run, args.out, script=args.script)}")
        return 0
    p = argparse.ArgumentParser(prog="python -m pruning.blocks", description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default="", help="official dense .pth (default: the zoo's basicvsr-vimeo-bi)")
    p.add_argument("--cache", required=True, nargs="+",
                   help="teacher cache(s) of python -m pruning.distill cache; several are one pool, taken in turn")
    p.add_argument("--keep", type=int, required=True, help="blocks kept per trunk (of 30)")
    p.add_argument("--out", required=True)
    p.add_argument("--iters", type=int, default=400)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="continue from this block-pruned student (its .pth, export folder, or the "
                                  "bundled vsrapp/weights/basicvsr-b15) with a fresh schedule")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.teacher:
        teacher = load_basicsr(args.teacher)
    else:
        from .zoo import dense_teacher

        teacher = dense_teacher("basicvsr-vimeo-bi")
    cfg = TrainConfig(phase="finetune", data="", out=args.out, iters=args.iters, frames=0, lr=args.lr,
                      warmup=args.warmup, schedule="cosine", seed=args.seed, ckpt_every=50, threads=args.threads)
    print(f"block-pruned student written to {run(teacher, args.cache, args.out, args.keep, cfg, args.ema, args.init)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
