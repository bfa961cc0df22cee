"""``vsrapp prune`` and ``vsrapp finetune``: argparse builders over :mod:`vsrapp_pruning.train`.

``vsrapp/cli.py`` hooks them in with ``pruning.commands.add_commands(subparsers)``. Both commands resume with
``--resume`` from ``<out>/checkpoints/last.pt`` and run under ``torchrun`` for several GPUs (each process
takes ``--batch`` clips per step).

    vsrapp prune --method ssl --teacher basicvsr-vimeo-bi --ratio 0.5 --data ~/.cache/vsrapp/train --out runs/ssl
    vsrapp finetune --model runs/ssl --teacher basicvsr-vimeo-bi --data ~/.cache/vsrapp/train --out runs/ssl-ft

The other methods for the frame-wise trunks (frame_pruning.md; defaults are the official values there):

    vsrapp prune --method gassl --ratio 0.5 --out runs/gassl    # HAIR + ASSL; length = its schedule (~263k it)
    vsrapp prune --method nm --budget 0.75 --out runs/nm        # learned 2:4-or-dense per conv, MAC budget
    vsrapp prune --method issp --sparsity 0.9 --shrink 0.95 --prune-steps 100000 --out runs/issp

``vsrapp finetune --model <export>`` takes the exports of every method (N:M and ISS-P keep their zeros; a GASSL
export's hidden state is narrower than the teacher's, so it needs ``--tf-weight 0``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsrapp.errors import UsageError
from vsrapp_models.contract import num_blocks

from . import zoo
from .method import PruningMethod
from .prepare_data import DEFAULT_OUT
from .refusal import refusing

if TYPE_CHECKING:
    from .distill import Anchor

SSL_ITERS = 19000
NM_ITERS = SSL_ITERS  # SLS gives no step count for video; search + fine-tuning as long as SSL's sparsity phase
ISSP_FINETUNE_ITERS = 200_000  # the official SwinIR configs' fine-tuning stage, after the pruning stage
# Method-specific options of `prune` and the methods they apply to. They default to None so that an option given
# to a method it does not apply to is refused instead of being ignored.
METHOD_OPTIONS = {
    "ratio": ("ssl", "gassl"), "normalise": ("ssl",), "gate_lr": ("ssl",),
    "reg_delta": ("ssl", "gassl"), "reg_interval": ("ssl", "gassl"), "reg_ceiling": ("ssl", "gassl"),
    "hair_delta": ("gassl",), "hair_interval": ("gassl",), "hair_ceiling": ("gassl",), "ssa_steps": ("gassl",),
    "ssa_weight": ("gassl",), "stabilize_steps": ("gassl",), "channel_multiple": ("gassl", "ssl"),
    "cache": ("ssl",), "kd_weight": ("ssl",), "gt_weight": ("ssl",), "prune_kinds": ("ssl",), "warmup": ("ssl",),
    "no_restart": ("gassl",),
    "budget": ("nm",), "nm_levels": ("nm",), "score_lr": ("nm",), "anneal_every": ("nm",),
    "rerank_every": ("nm",),
    "sparsity": ("issp",), "shrink": ("issp",), "prune_steps": ("issp",),
}


def _common(p: argparse.ArgumentParser, iters: int | None, lr: float, iters_help: str = "") -> None:
    p.add_argument("--teacher", default="basicvsr-vimeo-bi",
                   help="dense model: zoo name or checkpoint path (weights from $VSRAPP_WEIGHTS)")
    p.add_argument("--data", type=Path, default=DEFAULT_OUT,
                   help=f"training cache from `python -m pruning.prepare_data` (default {DEFAULT_OUT})")
    p.add_argument("--out", type=Path, required=True, help="output folder (export, checkpoints, train.log)")
    p.add_argument("--iters", type=int, default=iters,
                   help=f"training iterations (default {iters_help or iters})")
    p.add_argument("--batch", type=int, default=1, help="clips per process and step (default 1)")
    p.add_argument("--frames", type=int, default=7, help="frames per clip (default 7)")
    p.add_argument("--lr-size", type=int, default=64, help="LR crop side in pixels; GT is 4x (default 64)")
    p.add_argument("--real-prob", type=float, default=0.15, help="share of real-clip samples (default 0.15)")
    p.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate (default {lr:g})")
    p.add_argument("--ckpt-every", type=int, default=100, help="checkpoint interval in iterations")
    p.add_argument("--log-every", type=int, default=10, help="log interval in iterations")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (e.g. 1 on a shared machine)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA if available; LOCAL_RANK under torchrun)")
    p.add_argument("--no-bf16", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--bf16-cpu", action="store_true",
                   help="bf16 autocast on the CPU too (about 2x a step where it has AMX; the weights stay fp32)")
    p.add_argument("--no-channels-last", action="store_true",
                   help="train in the contiguous (NCHW) layout instead of channels-last (speed only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.pt")
    p.add_argument("--stop-at", type=int, help="stop with a checkpoint after this iteration (then --resume)")


def add_commands(subparsers: Any) -> None:
    """Register ``prune`` and ``finetune`` on an ``argparse`` subparsers object."""
    p = subparsers.add_parser("prune", help="prune a dense model (SSL, GASSL, learned N:M or ISS-P) and export it")
    p.add_argument("--method", default="ssl", choices=list(METHODS),
                   help="ssl: scale gates + growing L2, slim export; gassl: HAIR ratios + ASSL/SSA, narrow "
                        "stream; nm: learned 2:4-or-dense per trunk conv under a MAC budget; issp: iterative "
                        "soft shrinkage to unstructured zeros (storage only) (default ssl)")
    p.add_argument("--arch", default="bi", choices=["bi", "uni"],
                   help="bi: prune the bidirectional teacher; uni: a forward-only model initialised from the "
                        "teacher's forward branch (SSL-uni)")
    p.add_argument("--ratio", type=float,
                   help="ssl: share of all gate entries to prune; gassl: global share of trunk filters "
                        "(HAIR threshold) (default 0.5)")
    g = p.add_argument_group("ssl")
    g.add_argument("--normalise", choices=["layer", "kind", "none"],
                   help="score normalisation before the global sort (pruning.selection; default layer)")
    g.add_argument("--gate-lr", type=float, help="learning rate of the gates (default: --lr, as SSL)")
    g = p.add_argument_group("ssl held to the teacher (pruning.distill.Anchor): fit a teacher cache, not the GT")
    g.add_argument("--cache", type=Path,
                   help="teacher cache from `python -m pruning.distill cache`: the gated model fits --kd-weight x "
                        "the teacher's output + --gt-weight x the ground truth, only --prune-kinds are selected, "
                        "widths rounded to --channel-multiple (default 8), and the export removes exactly the "
                        "entries the penalty drove to zero")
    g.add_argument("--kd-weight", type=float, help="with --cache: weight of the teacher-output term (default 1)")
    g.add_argument("--gt-weight", type=float, help="with --cache: weight of the ground-truth term (default 0)")
    g.add_argument("--prune-kinds", help="with --cache: comma-separated gate kinds to select from (default "
                                         "trunk.conv1.out,upconv2.out,conv_hr.out: every stream channel kept)")
    g.add_argument("--warmup", type=int, help="iterations of linear learning-rate warm-up (default 0)")
    g = p.add_argument_group("ssl and gassl: the growing L2 on the selected scales")
    g.add_argument("--reg-delta", type=float, help="lambda increment (SSL and ASSL: 1e-4)")
    g.add_argument("--reg-interval", type=int, help="iterations per increment (SSL: 5; ASSL: 30)")
    g.add_argument("--reg-ceiling", type=float, help="lambda ceiling (SSL: 0.1; ASSL: 0.5)")
    g = p.add_argument_group("gassl (pruning.gassl.GasslConfig; the length is the schedule's unless --iters)")
    g.add_argument("--hair-delta", type=float, help="HAIR's lambda increment (1e-4)")
    g.add_argument("--hair-interval", type=int, help="HAIR's iterations per increment (20)")
    g.add_argument("--hair-ceiling", type=float, help="HAIR's lambda ceiling (0.05)")
    g.add_argument("--ssa-steps", type=int, help="iterations of sparsity structure alignment (17260)")
    g.add_argument("--ssa-weight", type=float, help="weight of the SSA term (1)")
    g.add_argument("--stabilize-steps", type=int, help="iterations at the lambda ceiling at the end (86300)")
    g.add_argument("--channel-multiple", type=int, help="kept channel counts rounded to a multiple (1; 8 or 16 "
                                                        "suit GPU tensor cores)")
    g.add_argument("--no-restart", action="store_true", default=None,
                   help="ASSL goes on from the HAIR-trained weights instead of the pretrained ones")
    g = p.add_argument_group("nm (pruning.nm.NMConfig)")
    g.add_argument("--budget", type=float,
                   help="kept fraction of the searched convs' MACs, 0.5 (all 2:4) to 1 (default 0.75)")
    g.add_argument("--nm-levels", choices=["2,4", "1,2,3,4"], metavar="{2,4 | 1,2,3,4}",
                   help="the N a layer may choose (of M = 4): 2,4 = 2:4 or dense, the patterns sparse tensor "
                        "cores run (default); 1,2,3,4 = the paper's free choice")
    g.add_argument("--score-lr", type=float, help="learning rate of the N:M priority scores (1e-2)")
    g.add_argument("--anneal-every", type=int, help="iterations between regulariser annealing checks (200)")
    g.add_argument("--rerank-every", type=int, help="iterations between weight re-rankings (100)")
    g = p.add_argument_group("issp (pruning.issp.IsspConfig; starts from the teacher's weights)")
    g.add_argument("--sparsity", type=float, help="share of every trunk conv's weights to zero (0.9)")
    g.add_argument("--shrink", type=float,
                   help="factor applied to the smallest weights after every pruning step, alpha (0.95)")
    g.add_argument("--prune-steps", type=int, help="pruning-stage iterations; then the mask is frozen and the "
                                                   "rest of --iters fine-tunes (100000)")
    _common(p, iters=None, lr=2e-4,
            iters_help=f"ssl {SSL_ITERS}, gassl its schedule, nm {NM_ITERS}, issp --prune-steps + "
                       f"{ISSP_FINETUNE_ITERS}")
    p.set_defaults(func=cmd_prune)

    p = subparsers.add_parser("finetune", help="fine-tune a pruned model, optionally with the TF term")
    p.add_argument("--model", type=Path, required=True,
                   help="pruned export folder (from `vsrapp prune`, any method)")
    p.add_argument("--tf-weight", type=float, default=0.5,
                   help="weight of the hidden-state temporal term against the teacher; 0 = Charbonnier only")
    p.add_argument("--spynet-frozen-iters", type=int, default=5000,
                   help="keep SpyNet frozen for this many iterations; -1 = always (SSL: 5000)")
    p.add_argument("--min-lr", type=float, default=1e-7, help="cosine schedule floor (default 1e-7)")
    p.add_argument("--warmup", type=int, default=0, help="iterations of linear learning-rate warm-up (default 0)")
    g = p.add_argument_group("teacher-anchored recovery (pruning.distill): train on a teacher cache")
    g.add_argument("--cache", type=Path, nargs="+",
                   help="teacher cache(s) from `python -m pruning.distill cache` (several are one pool, their clips "
                        "taken in turn): the loss becomes --kd-weight x Charbonnier to the teacher's output + "
                        "--gt-weight x Charbonnier to the ground truth + --tf-weight x L_tf on the cached hidden "
                        "states; flows come from the cache")
    g.add_argument("--live-teacher", action="store_true",
                   help="the same loss with the teacher (--teacher) run on fresh synthetic clips (--data) every "
                        "step instead of a cache: for a GPU, where the teacher's pass is cheap")
    g.add_argument("--max-seconds", type=float,
                   help="stop with a checkpoint after this many seconds of training (then --resume)")
    g.add_argument("--fit-seconds", type=float,
                   help="shorten the schedule (--iters is the upper bound) so that training ends after about this "
                        "many seconds, timed on its first steps: one time-boxed call, e.g. on a lent GPU")
    g.add_argument("--kd-weight", type=float, default=1.0, help="weight of the teacher-output term (default 1)")
    g.add_argument("--gt-weight", type=float, default=0.0, help="weight of the ground-truth term (default 0)")
    g.add_argument("--ema", type=float, default=0.0,
                   help="EMA decay of the weights; the average is what gets saved (default 0 = off)")
    g.add_argument("--snapshot-every", type=int, default=0,
                   help="also export the model every N iterations into <out>/snapshots/stepN (default off)")
    _common(p, iters=300000, lr=2e-4)
    p.set_defaults(func=cmd_finetune)


def _config(args: argparse.Namespace, phase: str, **extra: Any):
    from .train import TrainConfig

    return TrainConfig(phase=phase, data=str(args.data), out=str(args.out), iters=args.iters, batch=args.batch,
                       lr_size=args.lr_size, real_prob=args.real_prob, lr=args.lr,
                       seed=args.seed, ckpt_every=args.ckpt_every, log_every=args.log_every,
                       workers=args.workers, threads=args.threads, bf16=not args.no_bf16,
                       bf16_cpu=args.bf16_cpu, channels_last=not args.no_channels_last,
                       stop_at=args.stop_at, **{"frames": args.frames, **extra})


def _dense_for_arch(teacher, arch: str):
    from vsrapp_models.basicvsr import BasicVSRUni, uni_state_from_bidirectional

    if arch == "bi":
        if not teacher.bidirectional:
            raise UsageError("--arch bi needs a bidirectional teacher")
        return teacher
    if not teacher.bidirectional:
        return teacher
    dense = BasicVSRUni(teacher.num_feat, num_blocks(teacher))
    dense.load_state_dict(uni_state_from_bidirectional(teacher.state_dict(), teacher.num_feat), strict=True)
    return dense


def _check_method_options(args: argparse.Namespace) -> None:
    for dest, methods in METHOD_OPTIONS.items():
        if getattr(args, dest) is not None and args.method not in methods:
            raise UsageError(f"--{dest.replace('_', '-')} does not apply to --method {args.method} "
                             f"(only to {', '.join(methods)})")


def _given(args: argparse.Namespace, **fields: str) -> dict[str, Any]:
    """``{config field: args.<dest>}`` for the options the user gave (the rest keep the config's defaults)."""
    return {f: getattr(args, dest) for f, dest in fields.items() if getattr(args, dest) is not None}


# ------------------------------------------------------------------------------------------ the methods
# `vsrapp prune --method NAME`: how each method object (pruning.method.PruningMethod) is made from the options the
# user gave, with its default number of iterations. The training loop is the same for all (train_method).
Builder = Callable[[argparse.Namespace], tuple[PruningMethod, int]]


def _ssl(args: argparse.Namespace) -> tuple[PruningMethod, int]:
    from .ssl import Ssl, SslConfig

    config = SslConfig(**_given(args, ratio="ratio", normalise="normalise", gate_lr="gate_lr", reg_delta="reg_delta",
                                reg_interval="reg_interval", reg_ceiling="reg_ceiling"))
    return Ssl(config, _anchor(args)), SSL_ITERS


def _gassl(args: argparse.Namespace) -> tuple[PruningMethod, int]:
    from .gassl import Gassl, GasslConfig

    fields = _given(args, hair_delta="hair_delta", hair_interval="hair_interval", hair_ceiling="hair_ceiling",
                    ssa_steps="ssa_steps", ssa_weight="ssa_weight", reg_delta="reg_delta",
                    reg_interval="reg_interval", reg_ceiling="reg_ceiling", stabilize_steps="stabilize_steps",
                    multiple="channel_multiple")
    if args.no_restart:
        fields["restart"] = False
    ratio = _or(args.ratio, 0.5)
    if not 0.0 <= ratio < 1.0:
        raise UsageError(f"--ratio {ratio} must be in [0, 1)")
    method = Gassl(ratio, GasslConfig(**fields))
    return method, method.total_steps()


def _nm(args: argparse.Namespace) -> tuple[PruningMethod, int]:
    from .nm import NMConfig, NMSparsity

    fields = _given(args, score_lr="score_lr", anneal_every="anneal_every", rerank_every="rerank_every")
    if args.nm_levels:
        fields["levels"] = tuple(int(n) for n in args.nm_levels.split(","))
    try:
        return NMSparsity(_or(args.budget, 0.75), NMConfig(**fields)), NM_ITERS
    except ValueError as exc:
        raise UsageError(f"--budget: {exc}") from None


def _issp(args: argparse.Namespace) -> tuple[PruningMethod, int]:
    from .issp import Issp, IsspConfig

    config = IsspConfig(**_given(args, ratio="sparsity", alpha="shrink", prune_steps="prune_steps"))
    try:
        return Issp(config), config.prune_steps + ISSP_FINETUNE_ITERS
    except ValueError as exc:
        raise UsageError(f"--sparsity/--shrink: {exc}") from None


METHODS: dict[str, Builder] = {"ssl": _ssl, "gassl": _gassl, "nm": _nm, "issp": _issp}


def make_method(args: argparse.Namespace) -> tuple[PruningMethod, int]:
    """The method object of ``--method`` and its default number of iterations."""
    return METHODS[args.method](args)


@refusing
def cmd_prune(args: argparse.Namespace) -> int:
    from .train import setup_distributed, train_method

    _check_method_options(args)
    if args.cache is None:
        for dest in ("kd_weight", "gt_weight", "prune_kinds"):
            if getattr(args, dest) is not None:
                raise UsageError(f"--{dest.replace('_', '-')} needs --cache (a teacher cache)")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    method, default_iters = make_method(args)
    if args.iters is None:
        args.iters = default_iters
    teacher = zoo.dense_teacher(args.teacher)
    dense = _dense_for_arch(teacher, args.arch)
    teacher_name = args.teacher + (" (uni init)" if args.arch == "uni" and teacher.bidirectional else "")
    env = setup_distributed(args.device)
    cfg = _config(args, method.phase, schedule="constant", spynet_frozen_iters=-1, warmup=args.warmup or 0,
                  **method.train_config(), **({"frames": 0} if args.cache is not None else {}))
    out = train_method(cfg, dense, method, teacher_name=teacher_name, resume=args.resume, env=env)
    if env.main:
        done = (out / "model.safetensors").is_file()
        print(f"{args.method} model written to {out}" if done else f"stopped early; continue with --resume ({out})")
    return 0


def _read_cache(args: argparse.Namespace, bidirectional: bool) -> dict[str, Any]:
    """The info of the teacher cache ``--cache`` (the first, where ``finetune`` takes several), each refused if
    unreadable or without the backward states that a bidirectional student needs."""
    from .distill import read_cache_info

    caches = args.cache if isinstance(args.cache, list) else [args.cache]
    infos = []
    for cache in caches:
        try:
            info = read_cache_info(cache)
        except (FileNotFoundError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        if bidirectional and not info.get("bidirectional", True):
            raise UsageError(f"{cache} was made by a forward-only teacher: it has no backward states")
        infos.append(info)
    return infos[0]


def _anchor(args: argparse.Namespace) -> Anchor | None:
    """The :class:`vsrapp_pruning.distill.Anchor` of ``prune --cache`` (None without it)."""
    if args.cache is None:
        return None
    from .distill import ANCHOR_KINDS, Anchor, DistillWeights

    _read_cache(args, bidirectional=args.arch == "bi")  # --arch bi trains the bidirectional model
    kinds = frozenset(k.strip() for k in args.prune_kinds.split(",")) if args.prune_kinds else ANCHOR_KINDS
    weights = DistillWeights(out=_or(args.kd_weight, 1.0), gt=_or(args.gt_weight, 0.0))
    return Anchor(str(args.cache), weights, kinds, _or(args.channel_multiple, 8))


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


@refusing
def cmd_finetune(args: argparse.Namespace) -> int:
    from vsrapp_models.pruned import load_pruned, read_meta

    from .train import setup_distributed, train_finetune

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not (args.model / "plan.json").is_file():
        raise UsageError(f"{args.model} is not a pruned-model export (no plan.json)")
    base_meta = read_meta(args.model)
    method = base_meta.get("method", "ssl")
    if method == "gassl" and args.tf_weight > 0:
        raise UsageError(f"{args.model}: a GASSL export's hidden state is narrower than the teacher's, so the "
                         "temporal term cannot compare them; fine-tune it with --tf-weight 0")
    try:
        student = load_pruned(args.model)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise UsageError(f"cannot load {args.model}: {str(exc).splitlines()[0]}") from None
    env = setup_distributed(args.device)
    base_meta.setdefault("source_model", str(args.model))
    if args.cache is not None or args.live_teacher:
        return _finetune_distill(args, student, base_meta, env)
    teacher = zoo.dense_teacher(args.teacher) if args.tf_weight > 0 else None
    cfg = _config(args, "finetune", tf_weight=args.tf_weight, schedule="cosine", min_lr=args.min_lr,
                  spynet_frozen_iters=args.spynet_frozen_iters, warmup=args.warmup)
    out = train_finetune(cfg, student, teacher, base_meta, resume=args.resume, env=env)
    if env.main:
        done = (out / "model.safetensors").is_file()
        print(f"fine-tuned {method} model written to {out}" if done else
              f"stopped early; continue with --resume ({out})")
    return 0


def _finetune_distill(args: argparse.Namespace, student: Any, base_meta: dict[str, Any], env: Any) -> int:
    """``vsrapp finetune --cache DIR`` or ``--live-teacher``: teacher-anchored recovery (pruning.distill)."""
    from .distill import DistillWeights, train_distill

    if args.cache is not None and args.live_teacher:
        raise UsageError("--cache and --live-teacher exclude each other: the cache holds the teacher's pass")
    teacher = None
    if args.cache is not None:
        _read_cache(args, student.bidirectional)
    else:
        teacher = zoo.dense_teacher(args.teacher)
        if student.bidirectional and not teacher.bidirectional:
            raise UsageError("a bidirectional student needs a bidirectional teacher")
    weights = DistillWeights(out=args.kd_weight, gt=args.gt_weight, tf=args.tf_weight)
    cfg = _config(args, "finetune", tf_weight=args.tf_weight, schedule="cosine", min_lr=args.min_lr,
                  spynet_frozen_iters=-1, warmup=args.warmup, max_seconds=args.max_seconds,
                  fit_seconds=args.fit_seconds, **({"frames": 0} if args.cache is not None else {}))
    out, _ = train_distill(cfg, student, args.cache, weights, base_meta, ema_decay=args.ema, resume=args.resume,
                           env=env, snapshot_every=args.snapshot_every, teacher=teacher,
                           teacher_name=str(args.teacher))
    if env.main:
        done = (out / "model.safetensors").is_file()
        print(f"distilled model written to {out}" if done else f"stopped early; continue with --resume ({out})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m pruning.commands prune ...``) until the vsrapp CLI hooks these in."""
    parser = argparse.ArgumentParser(prog="python -m pruning.commands")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
