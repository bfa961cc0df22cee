"""Which video encoder writes an output: the one asked for, checked against the output's container before any
work, or (none asked) the first of a short list that the container holds.

Why here and not in the writer: the writer encodes segments into the job folder and meets a codec the final
container cannot hold only once frames arrive, naming a segment file. A user who asks for ``--codec libx264``
and ``out.webm`` wants to hear at once that WebM cannot hold H.264, and which container can (issue #20); one
who asks for nothing gets what fits (VP9 for WebM), as before.
"""

from __future__ import annotations

import os

import av

from ._common import VideoError, container_holds

DEFAULT_CODEC = "libx264"
# No codec asked for: the first of these the output's container holds (H.264 everywhere it can go; WebM holds
# only VP8/VP9/AV1). The rest of the list are fallbacks for containers that hold none of the first.
AUTO_CODECS = ("libx264", "libvpx-vp9", "libsvtav1", "mpeg4", "mpeg2video")
# Containers offered when a codec does not fit, in the order they are suggested.
SUGGESTED_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".ts")


def choose_video_codec(codec: str | None, path: str | os.PathLike) -> str:
    """The encoder for the output ``path``: ``codec`` if its container holds it, else :class:`VideoError` (one
    line naming containers that do); ``None`` (or ``"auto"``) picks the first of :data:`AUTO_CODECS` that fits.

    An unknown extension or encoder is left to :class:`~vsrapp.video.VideoWriter`, which reports it."""
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    if codec in (None, "auto"):
        for candidate in AUTO_CODECS:
            if candidate in av.codecs_available and _holds(ext, _canonical(candidate)):
                return candidate
        return DEFAULT_CODEC
    canonical = _canonical(codec)
    if canonical is None or _holds(ext, canonical) is not False:
        return codec
    fits = [e for e in SUGGESTED_EXTENSIONS if _holds(e, canonical)]
    where = f"use {' or '.join(fits[:2])} for it" if fits else "pick another codec"
    auto = choose_video_codec(None, name)
    instead = f", or leave out --codec to have it encoded with {auto}" if _holds(ext, _canonical(auto)) else ""
    raise VideoError(f"{name}: a {ext} file cannot hold {canonical} video (--codec {codec}); {where}{instead}")


def _canonical(codec: str) -> str | None:
    """The codec an encoder writes (``libx264`` -> ``h264``), or None if this FFmpeg has no such encoder."""
    if codec not in av.codecs_available:
        return None
    try:
        return av.codec.Codec(codec, "w").canonical_name
    except Exception:  # a decoder's name, not an encoder's
        return None


def _holds(ext: str, canonical: str | None) -> bool | None:
    """Whether a file ending in ``ext`` can carry ``canonical`` video; None when that is unknown (no extension,
    or one FFmpeg does not write). Nothing is created on disk: an output container opens its file only when
    encoding starts."""
    if canonical is None or not ext:
        return None
    try:
        container = av.open(os.path.join(os.sep, "vsrapp-format-query", f"query{ext}"), "w")
    except (av.error.FFmpegError, ValueError, OSError):
        return None
    try:
        return container_holds(container, canonical)
    finally:
        container.close()
