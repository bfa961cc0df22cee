"""The one error family of vsrapp: every problem a user can cause or fix is a :class:`VsrappError`.

``str(exc)`` is always one line meant for the user (what is wrong and, where it can, what to do), so a front
end (the CLI, the web page, a Ray driver) can show it as it is. The subclasses say *whose* problem it is, which
is what a caller decides on:

- :class:`UsageError`: the options or arguments do not fit (each other, the command, or this machine);
- :class:`InputError`: a user's file (a video, a job folder, an upload) cannot be used;
- :class:`ModelError`: a model cannot be had or used this way (unknown name, weights missing or corrupt, the
  wrong kind of model for the request, an export that does not match);
- :class:`ResourceError`: the environment lacks something the request needs (an optional package, a cluster
  to connect to), through no fault of the request itself.

The module-specific classes (``vsrapp.cli.UserError``, ``vsrapp.zoo.ZooError``, ``vsrapp.video.VideoError``, ...)
stay where they are and subclass one of these. Classes that were ``ValueError``/``RuntimeError`` before the family
existed keep that base as well, so code that catches those still catches them.

This module imports nothing from the project: every layer may raise these errors, and ``pruning/`` may import
this module without pulling in the application.
"""

from __future__ import annotations

__all__ = ["VsrappError", "UsageError", "InputError", "ModelError", "ResourceError"]


class VsrappError(Exception):
    """Base of every error vsrapp raises on purpose; the message is one line for the user."""


class UsageError(VsrappError):
    """Options or arguments that do not fit together, the command, or this machine (e.g. ``--device cuda``
    without CUDA). The user fixes the command line."""


class InputError(VsrappError):
    """A user's file cannot be used: not a video, broken, too long for a server, a job folder from another run.
    The user fixes or replaces the file."""


class ModelError(VsrappError):
    """A model cannot be had or used as asked: unknown name, weights missing/corrupt/unreadable, or a model of
    the wrong kind for the request (bidirectional where only forward-only works, not an export, ...)."""


class ResourceError(VsrappError):
    """The environment lacks what the request needs: an optional package that is not installed, a cluster that
    cannot be reached or lost its workers. Neither the command nor the files are at fault."""
