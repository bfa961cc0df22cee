"""How pruning's commands refuse a request: the message alone on stderr and exit status 1.

That is what ``raise SystemExit(message)`` printed before the library stopped exiting the process; it is kept so
that scripts and users see no change (joining the CLI's ``vsrapp: error: ...`` / status 2 would be a visible
one, docs/DESIGN.md). Used by ``vsrapp prune``/``finetune`` (:mod:`vsrapp_pruning.commands`), ``python -m
pruning.distill cache``, ``python -m pruning.refit`` and ``pruning/recipes/recipe_cost.py``.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from vsrapp.errors import UsageError

EXIT_REFUSED = 1

Command = Callable[[argparse.Namespace], int]


def report_refusal(exc: UsageError) -> int:
    """Print ``exc`` as these commands always printed a refusal; the exit status to return."""
    print(exc, file=sys.stderr)
    return EXIT_REFUSED


def refusing(command: Command) -> Command:
    """``command`` with its :class:`UsageError` turned into one line and :data:`EXIT_REFUSED`. Only
    ``UsageError``: a model the zoo cannot give (``ZooError``) still reaches the CLI's ``vsrapp: error:`` line."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except UsageError as exc:
            return report_refusal(exc)
    return run
