"""The ``vsrapp`` command line. Each subcommand is a thin layer over the library.

Errors a user can cause print one line, ``vsrapp: error: ...``, and exit non-zero; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import zoo

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error the user can fix (bad argument, missing file); printed as one line."""


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but CUDA is not available on this machine")
    return name


# ---------------------------------------------------------------------------------------------- models
def cmd_models(args: argparse.Namespace) -> int:
    print(f"weights folder: {zoo.weights_dir()}  (set {zoo.ENV_WEIGHTS} to change)")
    print(f"{'name':<20} {'status':<10} {'Vid4 BI PSNR/SSIM (Y)':<22} description")
    for entry in zoo.list_models():
        m = entry.metrics
        score = f"{m['vid4_bi_psnr_y']:.2f} / {m['vid4_bi_ssim_y']:.4f}" if m else "not measured"
        print(f"{entry.name:<20} {zoo.weights_status(entry):<10} {score:<22} {entry.description}")
        if args.verbose and entry.weights:
            w = entry.weights
            print(f"{'':<20} file {w.file}  sha256 {w.sha256}\n{'':<20} source {w.url}\n"
                  f"{'':<20} licence {w.licence}")
    return 0


# ---------------------------------------------------------------------------------------------- eval
def default_vid4() -> Path | None:
    env = os.environ.get("VSRAPP_VID4")
    return Path(env) if env else None


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate

    data = args.data or default_vid4()
    if data is None:
        raise UserError("no dataset given: pass --data FOLDER (one sub-folder of frames per clip, e.g. "
                        "Vid4's ground truth inputs/G) or set VSRAPP_VID4")
    if not Path(data).is_dir():
        raise UserError(f"dataset folder {data} does not exist")
    model = zoo.get_model(args.model)
    device = resolve_device(args.device)
    result = evaluate(model, args.model, Path(data), clips=args.clips, max_frames=args.max_frames, device=device,
                      progress=not args.quiet)
    print(result.table())
    print(f"{result.seconds:.0f} s on {result.device}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(result.to_json())
        tmp.replace(out)
        print(f"results written to {out}")
    return 0


# ---------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vsrapp", description="Streaming x4 video super-resolution.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the model zoo and which weights are installed")
    p.add_argument("-v", "--verbose", action="store_true", help="also show files, hashes, sources, licences")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("eval", help="PSNR/SSIM on a benchmark (Vid4 BI x4 protocol)")
    p.add_argument("--model", default="basicvsr-vimeo-bi", help="zoo name or checkpoint path")
    p.add_argument("--data", help="folder with one sub-folder of ground-truth frames per clip ($VSRAPP_VID4)")
    p.add_argument("--clips", nargs="+", help="only these clips")
    p.add_argument("--max-frames", type=int, help="only the first N frames of each clip (quick checks)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--json", help="write the full result (per clip, per frame) to this JSON file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("vsrapp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserError, zoo.ZooError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"vsrapp: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
