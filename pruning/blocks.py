"""Block pruning: drop whole residual blocks of both trunks, keep every layer's width, recover from the teacher.

Why blocks and not channels (docs/RESULTS.md, "Block pruning"): every block writes a residual onto the 64-channel
stream, so removing one leaves the stream itself intact, and what is left runs at the dense network's efficiency
(no gather/scatter, every width 64). Measured on held-out training clips against the teacher, BasicVSR with 15 of
its 30 blocks per trunk starts at 29 dB one-shot and passes the channel-pruned ``ssl-bi`` (34.2 dB) within 100
distillation steps, where a one-shot channel plan of the same cost diverges.

Which blocks go: the ones whose residual is smallest against the stream it is added to (``||f(x)|| / ||x||``,
averaged over the first frames of a few cached clips). The student is a plain ``BasicVSR(num_feat, num_block)``:
saved as a BasicSR checkpoint (``{"params": state}``), it loads anywhere the official weights load, and as an
export folder (``method: blocks``, :mod:`vsrapp_models.dense_shaped`) that ``python -m pruning.bundle`` can ship.

Gradual pruning: ``--init`` a trained block-pruned model with more blocks than ``--keep`` ranks *its* blocks and
keeps the largest (15 -> 10 starts from a recovered network, not from the teacher cut three times deeper).
``--upsampler N`` also keeps only N of the 64 high-resolution channels (SSL's pixel-shuffle pruning: whole
PixelShuffle groups of ``upconv2`` and the filters of ``conv_hr``, ranked by mean activation times the norm of
the weights that read them); the student is then a slim network whose blocks are all whole
(:mod:`vsrapp_models.slim`, no gather/scatter), exported as a ``blocks`` folder with a slim plan. ``--init`` such a
network with the same ``--keep`` and a smaller ``--upsampler`` ranks *its* high-resolution channels and cuts them
further (blocks and channels are cut in separate stretches).

    python -m pruning.blocks --cache runs/cache64 --keep 15 --out runs/blocks/b15 --iters 400 --threads 2
    python -m pruning.blocks export runs/blocks/b15            # -> runs/blocks/b15/export (from model.pth)
    python -m pruning.blocks --cache runs/cache64 --keep 10 --upsampler 32 --init vsrapp/weights/basicvsr-b15 \
        --out runs/blocks/b10-u32 --iters 400 --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from vsrapp_models.basicvsr import BasicVSR, BasicVSRUni, uni_state_from_bidirectional
from vsrapp_models.contract import block_name, num_blocks, trunk_names
from vsrapp_models.dense_shaped import SPARSE_PLAN_FORMAT, SPARSE_PLAN_VERSION
from vsrapp_models.loading import load_basicsr, load_model, read_basicsr_state
from vsrapp_models.slim import HR_FEAT, PLAN_FORMAT, PLAN_VERSION, build_slim
from vsrapp_models.spynet import NUM_LEVELS, flow_levels_skipped

from .distill import CachedClips, DistillWeights, train_distill
from .export import slice_state
from .train import TrainConfig, save_pruned_model

TRUNKS = trunk_names(bidirectional=True)
FORWARD_ONLY = trunk_names(bidirectional=False)
SELECTION = "selection.json"
INIT = "init.json"  # where a run that continued another started: that model's stages come first in the recipe
STUDENT = "model.pth"
EXPORT = "export"


def residual_ratios(teacher: nn.Module, clips: Sequence[torch.Tensor]) -> dict[str, list[float]]:
    """Per trunk, each block's mean ``||residual|| / ||input||`` over ``clips`` ((T, 3, h, w) each)."""
    trunks = trunk_names(teacher.bidirectional)
    sums: dict[str, list[float]] = {t: [0.0] * num_blocks(teacher) for t in trunks}
    hooks = []
    for trunk in trunks:
        for i in range(num_blocks(teacher)):
            def record(_module: nn.Module, args: tuple, out: torch.Tensor, trunk: str = trunk, i: int = i) -> None:
                x = args[0]
                sums[trunk][i] += float((out - x).norm() / x.norm().clamp_min(1e-12))
            hooks.append((teacher.get_submodule(block_name(trunk, i)), record))
    _run_hooked(teacher, clips, hooks)
    return {t: [v / len(clips) for v in values] for t, values in sums.items()}


def _run_hooked(model: nn.Module, clips: Sequence[torch.Tensor], hooks: list[tuple[nn.Module, Callable]]) -> None:
    """Run ``model`` over ``clips`` ((T, 3, h, w) each) without gradients, with forward ``hooks`` attached to
    their modules for the duration."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        with torch.no_grad():
            for clip in clips:
                model(clip[None])
    finally:
        for h in handles:
            h.remove()


def select_blocks(ratios: dict[str, list[float]], keep: int) -> dict[str, list[int]]:
    """The ``keep`` blocks of each trunk with the largest residual ratio, in network order."""
    chosen = {}
    for trunk, values in ratios.items():
        if not 0 < keep <= len(values):
            raise ValueError(f"keep must be in 1..{len(values)}, got {keep}")
        chosen[trunk] = sorted(sorted(range(len(values)), key=lambda i: -values[i])[:keep])
    return chosen


def block_student(teacher: nn.Module, kept: dict[str, list[int]]) -> BasicVSR | BasicVSRUni:
    """The network with only the ``kept`` blocks of each trunk (renumbered), every weight the teacher's.
    ``kept`` naming only the forward trunk makes a forward-only ``BasicVSRUni``: from a bidirectional teacher it
    keeps the forward half of ``fusion`` (:func:`vsrapp_models.basicvsr.uni_state_from_bidirectional`)."""
    counts = {len(v) for v in kept.values()}
    if len(counts) != 1:
        raise ValueError("both trunks must keep the same number of blocks (BasicSR's BasicVSR has one num_block)")
    forward_only = set(kept) == set(FORWARD_ONLY)
    student = (BasicVSRUni if forward_only else BasicVSR)(teacher.num_feat, counts.pop())
    source = teacher.state_dict()
    if forward_only and teacher.bidirectional:
        source = uni_state_from_bidirectional(source, teacher.num_feat)
    state = {}
    for key, value in source.items():
        trunk = next((t for t in kept if key.startswith(block_name(t, ""))), None)
        if trunk is None:
            state[key] = value
            continue
        index, rest = key[len(block_name(trunk, "")):].split(".", 1)
        if int(index) in kept[trunk]:
            state[f"{block_name(trunk, kept[trunk].index(int(index)))}.{rest}"] = value
    student.load_state_dict(state, strict=True)
    return student


def upsampler_importance(model: BasicVSR, clips: Sequence[torch.Tensor]) -> dict[str, list[float]]:
    """Per high-resolution channel, how much the layer after it uses it: mean |activation| over ``clips`` times
    the L2 norm of the next conv's weights that read the channel. ``upconv2``: its PixelShuffle groups (what
    ``conv_hr`` reads); ``conv_hr``: its filters (what ``conv_last`` reads)."""
    readers = {"upconv2": model.conv_hr, "conv_hr": model.conv_last}
    sums = {name: torch.zeros(conv.in_channels) for name, conv in readers.items()}
    hooks = []
    for name, conv in readers.items():
        def record(_module: nn.Module, args: tuple, _out: torch.Tensor, name: str = name) -> None:
            sums[name] += args[0].detach().abs().mean(dim=(0, 2, 3)).cpu()
        hooks.append((conv, record))
    _run_hooked(model, clips, hooks)
    return {name: (sums[name] * conv.weight.detach().transpose(0, 1).flatten(1).norm(dim=1).cpu()).tolist()
            for name, conv in readers.items()}


def select_upsampler(importance: dict[str, list[float]], keep: int) -> dict[str, list[int]]:
    """The ``keep`` most used channels of each high-resolution layer, ascending (a slim plan's order)."""
    if not 0 < keep <= HR_FEAT:
        raise ValueError(f"upsampler channels must be in 1..{HR_FEAT}, got {keep}")
    return {name: sorted(sorted(range(len(v)), key=lambda i: -v[i])[:keep]) for name, v in importance.items()}


def slim_plan(num_feat: int, num_block: int, upsampler: dict[str, list[int]], bidirectional: bool = True) -> dict:
    """A slim plan (:mod:`vsrapp_models.slim`) that keeps every block and trunk channel whole and only ``upsampler``'s
    channels of ``upconv2`` (PixelShuffle groups) and ``conv_hr`` (filters)."""
    every = list(range(num_feat))
    kept = {f"{block_name(trunk, j)}.{side}": every for trunk in trunk_names(bidirectional) for j in range(num_block)
            for side in ("conv1.in", "conv1.out", "conv2.out")}
    kept |= {"fusion.out": every, "upconv1.out": every, "upconv2.out": upsampler["upconv2"],
             "conv_hr.out": upsampler["conv_hr"]}
    return {"format": PLAN_FORMAT, "version": PLAN_VERSION,
            "arch": {"bidirectional": bidirectional, "num_feat": num_feat, "num_block": num_block, "scale": 4},
            "kept": kept}


def slim_upsampler(model: BasicVSR | BasicVSRUni, upsampler: dict[str, list[int]]) -> nn.Module:
    """``model`` with only ``upsampler``'s high-resolution channels: a slim network with whole blocks."""
    plan = slim_plan(model.num_feat, num_blocks(model), upsampler, model.bidirectional)
    slim = build_slim(plan)
    slim.load_state_dict(slice_state(model, plan), strict=True)
    return slim


def teacher_blocks(path: str | Path, model: nn.Module) -> dict[str, list[int]] | None:
    """The teacher's block indices a block-pruned model at ``path`` kept: its export plan's, or for a run's
    ``model.pth`` that run's selection; None when not recorded."""
    plan = getattr(model, "plan", None) or {}
    if "kept" in plan and set(plan["kept"]) in (set(TRUNKS), set(FORWARD_ONLY)):
        return plan["kept"]
    if "blocks" in plan:
        return plan["blocks"]
    selection = Path(path).parent / SELECTION
    return json.loads(selection.read_text())["kept"] if selection.is_file() else None


def prepare(teacher: BasicVSR, cache: str | Path, out: Path, keep: int, upsampler: int = HR_FEAT,
            parent: nn.Module | None = None, parent_kept: dict[str, list[int]] | None = None,
            clips: int = 4, frames: int = 8, forward_only: bool = False) -> nn.Module:
    """The student of a run in ``out``: the selection is made once and kept (``selection.json``), so a resumed
    run trains the same blocks and channels. ``parent``: a block-pruned model to cut further (its blocks are
    ranked; ``parent_kept`` maps them to the teacher's), else the teacher's blocks are ranked.
    ``forward_only``: the student is a forward-only ``BasicVSRUni`` made of the source's forward trunk (its
    blocks ranked inside the bidirectional network, where they were trained)."""
    source = parent if parent is not None else teacher
    trunks = FORWARD_ONLY if forward_only or not source.bidirectional else TRUNKS

    def rank() -> dict:
        sample = _ranking_sample(cache, clips, frames)
        ratios = residual_ratios(source, sample)
        local = select_blocks({t: ratios[t] for t in trunks}, keep)
        kept = local
        if parent is not None:
            if parent_kept is None:
                raise ValueError("the model to prune further does not record which teacher blocks it kept")
            kept = {t: [parent_kept[t][i] for i in local[t]] for t in trunks}
        selection = {"keep": keep, "kept": kept, "local": local, "residual_ratios": ratios,
                     "clips": len(sample), "frames": frames}
        if trunks == FORWARD_ONLY:
            selection["forward_only"] = True
        if parent is not None:
            selection["from_blocks"] = num_blocks(parent)
        if upsampler < HR_FEAT:
            importance = upsampler_importance(block_student(source, local), sample)
            selection["upsampler"] = select_upsampler(importance, upsampler)
        return selection

    selection = _recorded_selection(out, rank)
    student = block_student(source, selection.get("local", selection["kept"]))
    return slim_upsampler(student, selection["upsampler"]) if "upsampler" in selection else student


def _recorded_selection(out: Path, make: Callable[[], dict]) -> dict:
    """The run's ``selection.json``, made by ``make`` and written on its first start: a resumed run keeps what
    its first start chose."""
    path = out / SELECTION
    if path.is_file():
        return json.loads(path.read_text())
    selection = make()
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(selection, indent=1))
    return selection


def _ranking_sample(cache: str | Path, clips: int, frames: int) -> list[torch.Tensor]:
    """The LR windows a selection is ranked on: the first ``frames`` of the cache's first ``clips`` clips."""
    data = CachedClips(cache, length=clips)
    return [data[i][0][:frames] for i in range(min(clips, len(data.paths)))]


def hr_channels(model: nn.Module) -> int:
    """High-resolution channels of ``model``'s upsampler (``conv_hr``'s filters): 64 unless a slim plan cut it."""
    return model.conv_hr.out_channels


def _cut_upsampler(init: str | Path, start: nn.Module, out: Path, cache: str | Path, keep: int,
                   clips: int = 4, frames: int = 8) -> dict[str, torch.Tensor]:
    """Gradual pixel-shuffle pruning: ``start`` (a slim network with whole blocks) keeps the ``keep`` most used of
    its high-resolution channels. The selection names the teacher's channels (``selection.json``, made once, so a
    resumed run cuts the same); returns the state of the cut network, sliced from ``start``'s weights."""
    def rank() -> dict:
        local = select_upsampler(upsampler_importance(start, _ranking_sample(cache, clips, frames)), keep)
        parent = start.plan["kept"]
        return {"keep": num_blocks(start), "kept": teacher_blocks(init, start), "clips": clips, "frames": frames,
                "from_upsampler": hr_channels(start), "upsampler_local": local,
                "upsampler": {layer: [parent[f"{layer}.out"][i] for i in local[layer]] for layer in local}}

    selection = _recorded_selection(out, rank)
    return slice_state(start, slim_plan(start.num_feat, selection["keep"], selection["upsampler_local"],
                                        start.bidirectional))


def _flow_setting(out: Path, start: nn.Module | None, flow_skip: int | None) -> int:
    """The SpyNet levels the run's student skips: recorded in its ``selection.json`` on the first start (so a
    resumed run and its export keep it), else ``flow_skip``, else the ``start`` model's."""
    path = out / SELECTION
    selection = json.loads(path.read_text())
    if "skip_finest" not in selection:
        skip = flow_skip if flow_skip is not None else (start.spynet.skip_finest if start is not None else 0)
        flow_levels_skipped({"skip_finest": skip})  # in range, or a clear error before any training
        selection["skip_finest"] = skip
        path.write_text(json.dumps(selection, indent=1))
    elif flow_skip is not None and flow_skip != selection["skip_finest"]:
        raise ValueError(f"{out} was started with skip_finest={selection['skip_finest']}; a run keeps its flow")
    return selection["skip_finest"]


def _continue_selection(init: str | Path, start: nn.Module, out: Path) -> None:
    """A further stretch of the same network keeps its selection: the teacher's blocks and the high-resolution
    channels that ``start`` (loaded from ``init``) recorded become the run's ``selection.json``, so its export
    names them (not a re-ranking). Nothing is written when the run has one already or ``start`` records none
    (a bare .pth: the teacher's blocks are ranked as for a first stretch)."""
    kept = teacher_blocks(init, start)
    if kept is None:
        return

    def recorded() -> dict:
        selection: dict = {"keep": num_blocks(start), "kept": kept, "continued": str(init)}
        plan = getattr(start, "plan", {})
        if plan.get("format") == PLAN_FORMAT:
            selection["upsampler"] = {layer: plan["kept"][f"{layer}.out"] for layer in ("upconv2", "conv_hr")}
        return selection

    _recorded_selection(out, recorded)


def run(teacher: BasicVSR, cache: str | Path | Sequence[str | Path], out: str | Path, keep: int, cfg: TrainConfig,
        ema: float = 0.995, init: str | Path | None = None, upsampler: int = HR_FEAT,
        forward_only: bool = False, flow_skip: int | None = None, augment: bool = False) -> Path:
    """Select, distill (Charbonnier to the cached teacher output; ``cfg`` for the schedule) and save the
    student as ``out/model.pth`` (a BasicSR checkpoint when every layer is whole); resumable (re-run the same
    call). ``init``: start from a block-pruned student saved before (its .pth or export folder): with ``keep``
    blocks, a further stretch of training with a fresh schedule; with more, its blocks are ranked and cut to
    ``keep`` (gradual pruning). ``upsampler``: high-resolution channels kept (of 64). Several caches are one
    pool (taken in turn); the selection is made on the first. ``forward_only``: a forward-only student (of the
    teacher's, or a bidirectional ``init``'s, forward trunk), distilled to the bidirectional teacher's output.
    ``flow_skip``: the student's SpyNet stops that many levels early (a cheaper flow, issue #18) and trains with
    its own flow; default: the ``init`` model's setting (0 for the full flow, whose cached flows are used).
    ``augment``: the pool is seen flipped, transposed and reversed in time after its first pass."""
    out = Path(out)
    caches = [cache] if isinstance(cache, (str, Path)) else list(cache)
    start = load_model(init) if init is not None else None
    to_forward_only = forward_only and start is not None and start.bidirectional
    if start is not None and (num_blocks(start) > keep or to_forward_only):
        if getattr(start, "plan", {}).get("format") == PLAN_FORMAT:
            raise ValueError("prune blocks before the upsampler: --init a model whose layers are all whole")
        student = prepare(teacher, caches[0], out, keep, upsampler, parent=start,
                          parent_kept=teacher_blocks(init, start), forward_only=forward_only)
    elif start is not None and upsampler < hr_channels(start):
        if num_blocks(start) != keep:
            raise ValueError("cut blocks and high-resolution channels in separate stretches: --keep "
                             f"{num_blocks(start)} (the --init model's blocks) to cut only its upsampler")
        state = _cut_upsampler(init, start, out, caches[0], upsampler)
        student = prepare(teacher, caches[0], out, keep, upsampler)
        student.load_state_dict(state, strict=True)
    else:
        if start is not None:
            _continue_selection(init, start, out)
        student = prepare(teacher, caches[0], out, keep, upsampler, forward_only=forward_only)
        if start is not None:
            student.load_state_dict(start.state_dict(), strict=True)  # a .pth or a folder; fp32
    student.spynet.skip_finest = _flow_setting(out, start, flow_skip)
    if init is not None and not (out / INIT).is_file():
        (out / INIT).write_text(json.dumps({"from": str(init), "stages": stages_before(init)}, indent=1))
    resume = (out / "checkpoints" / "last.pt").is_file()
    _, trained = train_distill(cfg, student, caches, DistillWeights(out=1.0, gt=0.0, tf=0.0), {}, ema_decay=ema,
                               resume=resume, save=False, augment=augment)
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
        recipe = json.loads(meta.read_text()).get("recipe", {}) if meta.is_file() else {}
        # A folder fine-tuned after its block stages (`finetune`, the GPU recipe) records that stretch under its own
        # key: it is a stage of the model too, and comes after them.
        later = [entry for key, entry in recipe.items() if isinstance(entry, dict) and "config" in entry]
        return list(recipe.get("stages", [])) + [_finetune_stage(entry) for entry in later]
    return run_stages(init.parent)


def _finetune_stage(entry: dict) -> dict:
    """A `finetune` recipe entry (pruning.distill) in the shape of a block stage, with where and how long it ran."""
    stage = {k: v for k, v in entry["config"].items() if k in _STAGE_KEYS}
    extra = {k: entry[k] for k in ("device", "steps_done", "seconds", "date") if k in entry}
    return stage | {"data": [entry.get("cache", {})]} | extra


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
    extra: dict = {}
    logged: dict | None = None  # the last config line's stage, as logged (a resumed stretch logs it again)
    for line in log.read_text().splitlines():
        _, marker, rest = line.partition(" distill from ")
        if marker and rest.startswith("{"):
            source = json.loads(rest[:rest.index("; weights")])
            configs = [c["config"] for c in source["caches"]] if "caches" in source else [source.get("config", {})]
            data = [{k: c[k] for k in _DATA_KEYS if k in c} for c in configs]
            extra = {"augment": source["augment"]} if "augment" in source else {}
        _, marker, rest = line.partition(" config ")
        if marker and rest.startswith("{"):
            stage = {k: v for k, v in json.loads(rest).items() if k in _STAGE_KEYS} | {"data": data} | extra
            if stage != logged:
                stages.append(dict(stage))
                logged = stage
        # --fit-seconds: the config line holds the upper bound; the steps the time budget gave are logged after it.
        _, marker, rest = line.partition(" schedule fitted to ")
        if marker and stages and " -> " in rest:
            stages[-1]["iters"] = int(rest.rsplit(" -> ", 1)[1].split()[0])
    return stages


def export(run_dir: str | Path, out: str | Path | None = None, teacher: str = "basicvsr-vimeo-bi",
           script: str = "") -> Path:
    """The export folder (``method: blocks``) of a run: ``run_dir/model.pth`` and the blocks its
    ``selection.json`` kept, written to ``out`` (default ``run_dir/export``); ``script``: the recipe that
    reproduces it, recorded in ``meta.json``."""
    run_dir = Path(run_dir)
    selection = json.loads((run_dir / SELECTION).read_text())
    if "upsampler" in selection:  # a slim network with whole blocks; the plan also names the teacher's blocks
        state = read_basicsr_state(run_dir / STUDENT)
        plan = slim_plan(state["fusion.weight"].shape[0], selection["keep"], selection["upsampler"],
                         bidirectional=set(selection["kept"]) == set(TRUNKS))
        plan["blocks"] = selection["kept"]
        student = build_slim(plan)
        student.load_state_dict(state, strict=True)
    else:
        student = load_basicsr(run_dir / STUDENT)
        plan = {"format": SPARSE_PLAN_FORMAT, "version": SPARSE_PLAN_VERSION, "pattern": "blocks",
                "arch": {"bidirectional": bool(student.bidirectional), "num_feat": student.num_feat,
                         "num_block": num_blocks(student), "scale": 4},
                "kept": selection["kept"]}
    arch = plan["arch"]
    if selection.get("skip_finest"):  # the coarser flow the network was trained with travels in its plan
        arch["skip_finest"] = selection["skip_finest"]
        student.spynet.skip_finest = selection["skip_finest"]
    meta = {"method": "blocks", "arch": "basicvsr" if arch["bidirectional"] else "basicvsr-uni",
            "kept_blocks": arch["num_block"], "teacher": teacher,
            "recipe": {"selection": {k: selection[k] for k in ("keep", "from_blocks", "from_upsampler", "clips",
                                                               "frames") if k in selection},
                       "stages": run_stages(run_dir)}}
    if "upsampler" in selection:
        meta["upsampler_channels"] = len(selection["upsampler"]["conv_hr"])
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
    p.add_argument("--keep", type=int, required=True,
                   help="blocks kept per trunk (of 30, or of the --init model's to prune it further)")
    p.add_argument("--upsampler", type=int, default=HR_FEAT,
                   help=f"high-resolution channels kept of {HR_FEAT} (upconv2's PixelShuffle groups and conv_hr's "
                        "filters; default all), or of the --init model's to cut its upsampler further")
    p.add_argument("--out", required=True)
    p.add_argument("--iters", type=int, default=400)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="start from this block-pruned student (its .pth, export folder, or the bundled "
                                  "vsrapp/weights/basicvsr-b15) with a fresh schedule: with --keep blocks, further "
                                  "training; with more, its blocks are ranked and cut to --keep")
    p.add_argument("--forward-only", action="store_true",
                   help="a forward-only student for live input (the forward trunk's blocks, the forward half of "
                        "fusion), distilled to the bidirectional teacher's output")
    p.add_argument("--flow-skip", type=int, choices=range(NUM_LEVELS),
                   help="SpyNet levels the student skips (a cheaper flow it trains and runs with; default: the "
                        "--init model's, 0 for the full flow)")
    p.add_argument("--augment", action="store_true",
                   help="after one pass over the cached pool, see its clips flipped, transposed and reversed in "
                        "time (16 symmetries; the teacher's output moved with them)")
    p.add_argument("--fit-seconds", type=float,
                   help="shorten the schedule (--iters is the upper bound) so that training ends after about this "
                        "many seconds, timed on its first steps (kept on resume)")
    p.add_argument("--bf16-cpu", action="store_true",
                   help="bf16 autocast on the CPU (about 2x a step where it has AMX; the weights stay fp32)")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.teacher:
        teacher = load_basicsr(args.teacher)
    else:
        from .zoo import dense_teacher

        teacher = dense_teacher("basicvsr-vimeo-bi")
    cfg = TrainConfig(phase="finetune", data="", out=args.out, iters=args.iters, frames=0, lr=args.lr,
                      warmup=args.warmup, schedule="cosine", seed=args.seed, ckpt_every=50, threads=args.threads,
                      bf16_cpu=args.bf16_cpu, fit_seconds=args.fit_seconds)
    path = run(teacher, args.cache, args.out, args.keep, cfg, args.ema, args.init, args.upsampler, args.forward_only,
               args.flow_skip, args.augment)
    print(f"block-pruned student written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
