"""What a shared web server accepts: the limits, and the checks an uploaded video must pass.

No Gradio here: :func:`check_video` raises :class:`Rejected` with a message meant for the visitor, and the web
UI turns it into a ``gr.Error``. Keeping the messages here (as templates) lets the tests and the docs quote them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..video import VideoError, VideoInfo, probe, read_headers

# The example clips the page offers (and one of the roots a visitor's file may come from). A server setting like
# Limits, so it lives here, where both the command line (web.cli) and the page (web.ui) read it without importing
# each other.
DEFAULT_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"  # the repository's examples/

# The messages a visitor can see; tests match on the text before the first "{".
NO_VIDEO = "No video given: upload a file or pick an example clip."
OUTSIDE = "That file is not one this server handed out; upload it again."
TOO_BIG = "The file is {size_mb:.1f} MB; this server takes videos up to {limit_mb} MB."
NOT_VIDEO = "This is not a video this server can read: {reason}"
TOO_LONG = "The video lasts {seconds:.1f} s; this server takes videos up to {limit:.0f} s."
TOO_LARGE = "The video is {width}x{height}; this server takes up to {limit} pixels per frame (e.g. {example})."
UNKNOWN_LENGTH = "The video's duration cannot be read, so its length cannot be checked; remux it (e.g. to mp4)."


class Rejected(InputError, ValueError):
    """An input the server refuses; ``str(exc)`` is the message for the visitor."""


@dataclass(frozen=True)
class Limits:
    """Everything a shared server caps. Defaults suit a single-GPU demo machine."""

    max_upload_mb: int = 200
    max_seconds: float = 60.0
    max_pixels: int = 1280 * 720  # per input frame; the output has 16x as many
    queue_size: int = 8  # waiting jobs, beyond the one running; more are refused with "queue is full"
    chunk_seconds: float = 2.0  # preview segments: Gradio wants >= 1 s each
    preview_max_side: int = 1280  # the live preview is scaled down to this; the final file never is
    webcam_seconds: float = 60.0  # one visitor's webcam session holds the GPU at most this long
    webcam_max_side: int = 240  # webcam frames are scaled down to this before the x4 upscale
    webcam_interval: float = 0.25  # seconds between webcam frames sent by the browser
    cache_seconds: int = 3600  # Gradio's cached uploads and results older than this are deleted
    cache_mb: int = 2048  # and past this total, the oldest first (see trim_cache)

    def describe(self) -> str:
        """Markdown list of the limits, for the page."""
        return "\n".join([
            f"- uploads up to **{self.max_upload_mb} MB** and **{self.max_seconds:g} s**, "
            f"frames up to **{self.max_pixels:,} pixels** (input)",
            f"- **one job at a time** on the accelerator; at most **{self.queue_size}** waiting, more are refused",
            f"- webcam sessions last up to **{self.webcam_seconds:g} s**, frames scaled to "
            f"**{self.webcam_max_side} px** before the x4 upscale",
            f"- uploaded and produced files are deleted after **{self.cache_seconds // 60} min**, or sooner "
            f"(oldest first) when they pass **{self.cache_mb} MB** together",
        ])


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def confine(path: str | os.PathLike, roots: list[str | os.PathLike]) -> Path:
    """``path`` resolved (symlinks followed), if it lies inside one of ``roots``; :class:`Rejected` otherwise.

    Why: the page hands the server file paths (uploads, examples). Gradio already checks them, but this is the
    server's own line: whatever arrives, nothing outside the app's folders is ever opened.
    """
    real = Path(os.path.realpath(path))
    if not _inside(real, [Path(os.path.realpath(r)) for r in roots]):
        raise Rejected(OUTSIDE)
    return real


def check_video(path: str | os.PathLike | None, roots: list[str | os.PathLike], limits: Limits) -> VideoInfo:
    """The probed video at ``path``, or :class:`Rejected` saying what is wrong with it, cheapest test first."""
    if not path:
        raise Rejected(NO_VIDEO)
    real = confine(path, roots)
    if not real.is_file():
        raise Rejected(NO_VIDEO)
    size = real.stat().st_size
    if size > limits.max_upload_mb * 1024 * 1024:
        raise Rejected(TOO_BIG.format(size_mb=size / 2**20, limit_mb=limits.max_upload_mb))
    try:
        # The headers first: a video too long or too large is refused before a single frame of it is decoded
        # (probe decodes one, and a crafted 16k x 16k frame is a lot of memory for a refusal).
        head = read_headers(real)
        _check_length_and_size(head.duration, head.width, head.height, limits)
        info = probe(real)
    except VideoError as exc:
        reason = str(exc).removeprefix(f"{real}: ")
        raise Rejected(NOT_VIDEO.format(reason=reason)) from exc
    # Again with what the decoder saw: headers may lack the size, which the first frame then gives.
    _check_length_and_size(info.duration, info.width, info.height, limits)
    return info


def _check_length_and_size(duration: float | None, width: int | None, height: int | None, limits: Limits) -> None:
    if duration is None:
        raise Rejected(UNKNOWN_LENGTH)
    if duration > limits.max_seconds:
        raise Rejected(TOO_LONG.format(seconds=duration, limit=limits.max_seconds))
    if width and height and width * height > limits.max_pixels:
        raise Rejected(TOO_LARGE.format(width=width, height=height, limit=f"{limits.max_pixels:,}",
                                        example=_example_size(limits.max_pixels)))


def _example_size(pixels: int) -> str:
    """A 16:9 size within ``pixels``, to make the limit concrete."""
    h = int((pixels * 9 / 16) ** 0.5) // 2 * 2
    return f"{h * 16 // 9 // 2 * 2}x{h}"


# A cached file this young is never trimmed: an upload whose job has not started yet, a result the visitor's
# browser has not fetched yet.
CACHE_GRACE_SECONDS = 60.0


def trim_cache(files: Iterable[str | os.PathLike], max_bytes: int, keep: Collection[str] = (),
               grace: float = CACHE_GRACE_SECONDS, now: float | None = None) -> list[str]:
    """Delete the oldest of ``files`` (by modification time) until they total at most ``max_bytes``; returns the
    paths deleted.

    Why: the age limit alone (``Limits.cache_seconds``) lets a flood of uploads within the hour fill the disk.
    Never deleted: a path in ``keep`` (as given or resolved: the inputs of running jobs), a file younger than
    ``grace`` seconds, a path that is not a regular file. Files that vanish meanwhile are skipped."""
    now = time.time() if now is None else now
    present = []
    for f in files:
        path = os.fspath(f)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if os.path.isfile(path) and not os.path.islink(path):
            present.append((st.st_mtime, path, st.st_size))
    total = sum(size for _, _, size in present)
    removed = []
    for mtime, path, size in sorted(present):
        if total <= max_bytes:
            break
        if path in keep or os.path.realpath(path) in keep or now - mtime < grace:
            continue
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError:  # not ours to delete after all (permissions): leave it
            continue
        total -= size
        removed.append(path)
    return removed
