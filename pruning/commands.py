"""``vsrapp prune`` and ``vsrapp finetune``: argparse builders over :mod:`pruning.train`.

``vsrapp/cli.py`` hooks them in with ``pruning.commands.add_commands(subparsers)``. Both commands resume with
``--resume`` from ``<out>/checkpoints/last.pt`` and run under ``torchrun`` for several GPUs (each process
takes ``--batch`` clips per step).

    vsrapp prune --method ssl --teacher basicvsr-vimeo-bi --ratio 0.5 --data ~/.cache/vsrapp/train --out runs/ssl
    vsrapp finetune --model runs/ssl --teacher basicvsr-vimeo-bi --data ~/.cache/vsrapp/train --out runs/ssl-ft
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from .prepare_data import DEFAULT_OUT

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights"


def _common(p: argparse.ArgumentParser, iters: int, lr: float) -> None:
    p.add_argument("--teacher", default="basicvsr-vimeo-bi",
                   help="dense model: zoo name or checkpoint path (weights from $VSRAPP_WEIGHTS)")
    p.add_argument("--data", type=Path, default=DEFAULT_OUT,
                   help=f"training cache from `python -m pruning.prepare_data` (default {DEFAULT_OUT})")
    p.add_argument("--out", type=Path, required=True, help="output folder (export, checkpoints, train.log)")
    p.add_argument("--iters", type=int, default=iters, help=f"training iterations (default {iters})")
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.pt")


def add_commands(subparsers: Any) -> None:
    """Register ``prune`` and ``finetune`` on an ``argparse`` subparsers object."""
    p = subparsers.add_parser("prune", help="SSL sparsity learning on a dense model, then export the slim model")
    p.add_argument("--method", default="ssl", choices=["ssl"], help="pruning method (default ssl)")
    p.add_argument("--arch", default="bi", choices=["bi", "uni"],
                   help="bi: prune the bidirectional teacher; uni: SSL-uni, a forward-only model initialised "
                        "from the teacher's forward branch")
    p.add_argument("--ratio", type=float, default=0.5, help="share of all gate entries to prune (default 0.5)")
    p.add_argument("--normalise", default="layer", choices=["layer", "kind", "none"],
                   help="score normalisation before the global sort (pruning.selection)")
    p.add_argument("--gate-lr", type=float, help="learning rate of the gates (default: --lr, as SSL)")
    p.add_argument("--reg-delta", type=float, default=1e-4, help="lambda increment (SSL: 1e-4)")
    p.add_argument("--reg-interval", type=int, default=5, help="iterations per increment (SSL: 5)")
    p.add_argument("--reg-ceiling", type=float, default=0.1, help="lambda ceiling (SSL: 0.1)")
    _common(p, iters=19000, lr=2e-4)
    p.set_defaults(func=cmd_prune)

    p = subparsers.add_parser("finetune", help="fine-tune a pruned (slim) model, optionally with the TF term")
    p.add_argument("--model", type=Path, required=True, help="slim export folder (from `vsrapp prune`)")
    p.add_argument("--tf-weight", type=float, default=0.5,
                   help="weight of the hidden-state temporal term against the teacher; 0 = Charbonnier only")
    p.add_argument("--spynet-frozen-iters", type=int, default=5000,
                   help="keep SpyNet frozen for this many iterations; -1 = always (SSL: 5000)")
    p.add_argument("--min-lr", type=float, default=1e-7, help="cosine schedule floor (default 1e-7)")
    _common(p, iters=300000, lr=2e-4)
    p.set_defaults(func=cmd_finetune)


def _config(args: argparse.Namespace, phase: str, **extra: Any):
    from .train import TrainConfig

    return TrainConfig(phase=phase, data=str(args.data), out=str(args.out), iters=args.iters, batch=args.batch,
                       frames=args.frames, lr_size=args.lr_size, real_prob=args.real_prob, lr=args.lr,
                       seed=args.seed, ckpt_every=args.ckpt_every, log_every=args.log_every,
                       workers=args.workers, threads=args.threads, bf16=not args.no_bf16, **extra)


def _weights_env() -> None:
    # The zoo looks in $VSRAPP_WEIGHTS; fall back to the repository's ../shared/weights when unset.
    if not os.environ.get("VSRAPP_WEIGHTS") and DEFAULT_WEIGHTS.is_dir():
        os.environ["VSRAPP_WEIGHTS"] = str(DEFAULT_WEIGHTS)


def _dense_teacher(name: str):
    from vsrapp.zoo import get_model

    _weights_env()
    model = get_model(name)
    if not hasattr(model, "forward_trunk") or hasattr(model, "plan"):
        raise SystemExit(f"teacher {name!r} is not a dense BasicVSR")
    return model


def cmd_prune(args: argparse.Namespace) -> int:
    from models.basicvsr import BasicVSRUni, uni_state_from_bidirectional

    from .train import setup_distributed, train_sparsity

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    teacher = _dense_teacher(args.teacher)
    if args.arch == "uni":
        if not teacher.bidirectional:
            dense = teacher
        else:
            dense = BasicVSRUni(teacher.num_feat, len(teacher.forward_trunk.main[2]))
            dense.load_state_dict(uni_state_from_bidirectional(teacher.state_dict(), teacher.num_feat), strict=True)
    else:
        if not teacher.bidirectional:
            raise SystemExit("--arch bi needs a bidirectional teacher")
        dense = teacher
    cfg = _config(args, "sparsity", gate_lr=args.gate_lr, ratio=args.ratio, normalise=args.normalise,
                  reg_delta=args.reg_delta, reg_interval=args.reg_interval, reg_ceiling=args.reg_ceiling,
                  schedule="constant", spynet_frozen_iters=-1)
    env = setup_distributed(args.device)
    out = train_sparsity(cfg, dense, teacher_name=args.teacher + (" (uni init)" if args.arch == "uni" else ""),
                         resume=args.resume, env=env)
    if env.main:
        print(f"slim model written to {out}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from models.slim import load_slim

    from .train import setup_distributed, train_finetune

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not (args.model / "plan.json").is_file():
        raise SystemExit(f"{args.model} is not a slim export (no plan.json)")
    student = load_slim(args.model)
    meta_path = args.model / "meta.json"
    base_meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    teacher = _dense_teacher(args.teacher) if args.tf_weight > 0 else None
    cfg = _config(args, "finetune", tf_weight=args.tf_weight, schedule="cosine", min_lr=args.min_lr,
                  spynet_frozen_iters=args.spynet_frozen_iters)
    env = setup_distributed(args.device)
    base_meta.setdefault("source_model", str(args.model))
    out = train_finetune(cfg, student, teacher, base_meta, resume=args.resume, env=env)
    if env.main:
        print(f"fine-tuned slim model written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m pruning.commands prune ...``) until the vsrapp CLI hooks these in."""
    parser = argparse.ArgumentParser(prog="python -m pruning.commands")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
