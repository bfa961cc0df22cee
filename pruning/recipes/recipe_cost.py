"""What the fine-tuning recipe alone costs: fine-tune the *dense* official BasicVSR (nothing pruned) with a
recipe and score it on Vid4, so that the recipe's damage is measured apart from pruning's (docs/RESULTS.md,
"What the recipe costs").

Each arm trains a fresh copy of the teacher and writes ``<out>/<arm>/step<N>.pth`` (a BasicSR-style
``{"params": ...}`` file that ``vsrapp eval --model`` reads) at every requested step; scoring is left to
``vsrapp eval`` so that the numbers come from the one evaluation code.

Arms (``--arm``):

- ``gt``: the shipped models' recipe: Charbonnier to the ground truth of freshly rendered synthetic clips
  (:class:`vsrapp_pruning.data.SyntheticClips`), SpyNet frozen, Adam, batch 1;
- ``kd``: the same, but the target is the teacher's output from a teacher cache (``--cache``,
  :mod:`vsrapp_pruning.distill`), with the cached flows;
- ``oneshot-nm``: no training: every residual-block conv of the teacher keeps the 2 largest of every 4
  consecutive input weights (magnitude 2:4, the pattern of :mod:`vsrapp_pruning.nm`);
- ``oneshot-issp``: no training: every trunk conv loses its ``--sparsity`` smallest weights (ISS-P's mask
  without its soft shrinkage).

``--init oneshot-nm|oneshot-issp`` makes a ``gt`` or ``kd`` arm train that mask instead of the teacher (its
zeros kept): recovery of a pruned model by the same recipe.

    python -m pruning.recipes.recipe_cost --arm gt --lr-size 32 --frames 5 --lr 2e-4 --steps 100 300 \\
        --out runs/recipe_cost/gt32
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vsrapp.errors import UsageError
from vsrapp_models.contract import is_spynet

from .. import zoo
from ..data import ClipConfig, SyntheticClips
from ..distill import CachedClips, DistillObjective, DistillWeights, WeightEMA, averaged
from ..issp import lowest, trunk_convs
from ..nm import searched_layers
from ..prepare_data import DEFAULT_OUT
from ..refusal import report_refusal
from ..train import FinetuneObjective, HookChain, KeepZeros, TrainConfig, Trainer, setup_distributed, setup_logging


def masked_layers(model: torch.nn.Module, arm: str) -> list[str]:
    """The convs a one-shot mask zeroes: every residual-block conv (2:4), or every trunk conv (ISS-P)."""
    return searched_layers(model) if arm == "oneshot-nm" else list(trunk_convs(model))


@torch.no_grad()
def one_shot(model: torch.nn.Module, arm: str, sparsity: float) -> torch.nn.Module:
    """The teacher with a magnitude mask and nothing trained (arms ``oneshot-nm`` and ``oneshot-issp``)."""
    if arm == "oneshot-nm":
        for name in masked_layers(model, arm):
            w = model.get_submodule(name).weight  # (out, in, kh, kw); groups of 4 along `in`
            groups = w.permute(0, 2, 3, 1).reshape(-1, 4)
            keep = torch.zeros_like(groups, dtype=torch.bool)
            keep.scatter_(1, groups.abs().topk(2, dim=1).indices, True)
            w.mul_(keep.view(w.shape[0], w.shape[2], w.shape[3], w.shape[1]).permute(0, 3, 1, 2))
    else:
        for name in masked_layers(model, arm):
            w = model.get_submodule(name).weight
            w.mul_(~lowest(w, int(sparsity * w.numel())))
    return model


def run_arm(args: argparse.Namespace) -> list[Path]:
    out = Path(args.out)
    if args.arm.startswith("oneshot"):
        out.mkdir(parents=True, exist_ok=True)
        model = one_shot(zoo.dense_teacher(args.teacher), args.arm, args.sparsity)
        path = out / "step0.pth"
        torch.save({"params": {k: v.contiguous() for k, v in model.state_dict().items()}}, path)
        print(f"{args.arm}: written to {path}")
        return [path]
    setup_logging(out, True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = zoo.dense_teacher(args.teacher).train()
    if args.init:  # recovery of a one-shot mask: its zeros stay zero
        model = one_shot(model, args.init, args.sparsity)
    iters = max(args.steps)
    cfg = TrainConfig(phase="finetune", data=str(args.data), out=str(out), iters=iters, frames=args.frames,
                      lr_size=args.lr_size, lr=args.lr, warmup=args.warmup, schedule=args.schedule,
                      spynet_frozen_iters=-1, seed=args.seed, ckpt_every=10**9, log_every=10)
    if args.arm == "gt":
        dataset = SyntheticClips(args.data, ClipConfig(frames=args.frames, lr_size=args.lr_size), seed=args.seed,
                                 length=iters)
        objective = FinetuneObjective(model, None, 0.0)
    else:
        dataset = CachedClips(args.cache, length=iters)
        objective = DistillObjective(model, DistillWeights(out=1.0, gt=args.gt_weight, tf=args.tf_weight))
    groups = {"weights": ([p for n, p in model.named_parameters() if not is_spynet(n)], args.lr)}
    ema = WeightEMA(model, args.ema) if args.ema > 0 else None
    hooks = ema
    if args.init:  # the mask's zeros stay zero; the EMA, after them, averages the masked weights
        hooks = HookChain(KeepZeros(model, masked_layers(model, args.init)), *([ema] if ema else []))
    trainer = Trainer(cfg, objective, model, groups, setup_distributed("cpu"), hooks=hooks)
    trainer.start(False)
    written = []
    for step in sorted(args.steps):
        trainer.cfg.stop_at = step
        trainer.run(dataset)
        path = out / f"step{step}.pth"
        state = averaged(model, ema).state_dict()
        torch.save({"params": {k: v.detach().clone().contiguous() for k, v in state.items()}}, path)
        written.append(path)
        print(f"{args.arm}: step {trainer.step} written to {path}", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pruning.recipes.recipe_cost", description=__doc__.split("\n")[0])
    p.add_argument("--arm", choices=["gt", "kd", "oneshot-nm", "oneshot-issp"], required=True)
    p.add_argument("--sparsity", type=float, default=0.8, help="oneshot-issp: share of each conv's weights zeroed")
    p.add_argument("--teacher", default="basicvsr-vimeo-bi")
    p.add_argument("--data", type=Path, default=DEFAULT_OUT)
    p.add_argument("--cache", type=Path, help="teacher cache (--arm kd)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, nargs="+", default=[100], help="write the model after these steps")
    p.add_argument("--frames", type=int, default=5)
    p.add_argument("--lr-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    p.add_argument("--ema", type=float, default=0.0, help="EMA decay of the weights (0 = off)")
    p.add_argument("--init", choices=["oneshot-nm", "oneshot-issp"],
                   help="train from this one-shot mask of the teacher instead of the teacher (zeros kept)")
    p.add_argument("--gt-weight", type=float, default=0.0)
    p.add_argument("--tf-weight", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.arm == "kd" and args.cache is None:
        p.error("--arm kd needs --cache")
    try:
        run_arm(args)
    except UsageError as exc:  # e.g. a --teacher that is not dense: one line, status 1, as before
        return report_refusal(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
