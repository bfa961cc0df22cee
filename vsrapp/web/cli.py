"""The web UI's command line: ``python app.py`` and ``vsrapp serve`` (hook: :func:`register_cli`).

Kept apart from :mod:`vsrapp.web.ui` so that building ``vsrapp``'s argument parser never imports Gradio (seconds
of start-up every other subcommand would pay); Gradio loads only when the server starts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields

from ..errors import UsageError
from .guard import DEFAULT_EXAMPLES, Limits

# ``serve`` has always refused a bad option with ``SystemExit("vsrapp: error: ...")``: that line and status 1.
# serve_kwargs now raises UsageError (it never exits the process) and cmd_serve prints the same line and status.
EXIT_REFUSED = 1


def add_serve_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``python app.py`` and ``vsrapp serve``."""
    d = Limits()
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (0.0.0.0 to serve the network; default: this machine only)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    parser.add_argument("--models", nargs="+", metavar="NAME",
                        help="offer only these zoo models (default: the whole zoo)")
    parser.add_argument("--examples", default=str(DEFAULT_EXAMPLES), help="folder of example clips")
    parser.add_argument("--work-dir", help="folder for job files (default: a temporary folder, removed at exit)")
    parser.add_argument("--threads", type=int,
                        help="CPU threads for the network (default: all cores; on a shared CPU, 1 can be far faster)")
    parser.add_argument("--max-upload-mb", type=int, default=d.max_upload_mb, help="largest upload (MB)")
    parser.add_argument("--max-seconds", type=float, default=d.max_seconds, help="longest video accepted (s)")
    parser.add_argument("--max-pixels", type=int, default=d.max_pixels, help="largest input frame (width x height)")
    parser.add_argument("--queue-size", type=int, default=d.queue_size, help="waiting jobs before refusing more")
    parser.add_argument("--webcam-seconds", type=float, default=d.webcam_seconds, help="longest webcam session (s)")
    parser.add_argument("--cache-mb", type=int, default=d.cache_mb,
                        help="uploads and results kept at most (MB, oldest deleted first; they also go after "
                             f"{d.cache_seconds // 60} min)")
    return parser


def serve_kwargs(args: argparse.Namespace) -> dict:
    """``build_app``'s arguments from the parsed options; :class:`UsageError` for a ``--models`` name that
    is not in the zoo."""
    from .menu import zoo_choices

    names = {f.name for f in fields(Limits)}
    limits = Limits(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    models = None
    if args.models:
        menu = {c.name: c for c in zoo_choices()}
        unknown = [m for m in args.models if m not in menu]
        if unknown:
            raise UsageError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(menu)}")
        models = [menu[m] for m in args.models]
    return dict(models=models, limits=limits, examples_dir=args.examples, work_dir=args.work_dir,
                threads=args.threads)


def cmd_serve(args: argparse.Namespace) -> int:
    """Build the page and serve it until interrupted."""
    try:
        kwargs = serve_kwargs(args)
    except UsageError as exc:
        print(f"vsrapp: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    from ..engine.upscaler import set_threads
    from .ui import build_app, launch  # Gradio loads here, once the options are known to be good

    # The server is the entry point: torch's threads are set here, once, for every viewer's job (an Upscaler
    # changes no process-wide setting).
    set_threads(kwargs["threads"], "cpu")
    launch(build_app(**kwargs), host=args.host, port=args.port)
    return 0


def register_cli(subparsers) -> None:
    """Add the ``serve`` subcommand to ``vsrapp``'s parser: ``register_cli(sub)`` in ``cli.build_parser``."""
    p = subparsers.add_parser("serve", help="start the web UI (Gradio) on this machine")
    add_serve_arguments(p)
    p.set_defaults(func=cmd_serve)


def main(argv: Sequence[str] | None = None) -> int:
    parser = add_serve_arguments(argparse.ArgumentParser(prog="app.py", description="vsrapp web UI"))
    return cmd_serve(parser.parse_args(argv))
