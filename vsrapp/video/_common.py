"""Types shared by the reader and the writer, and the one exception users see."""

from __future__ import annotations

import fractions
import functools
import logging
import os
from dataclasses import dataclass

import av
import numpy as np

from ..errors import InputError

log = logging.getLogger("vsrapp.video")


class VideoError(InputError):
    """A problem with a user's file: its message is one line naming the file and what is wrong."""


@dataclass
class Frame:
    """One decoded picture travelling through the pipeline.

    ``image`` is H x W x 3 RGB: uint8 for 8-bit sources, uint16 using the full 0..65535 range for deeper ones.
    ``pts`` is in ``time_base`` units (None only if the source had no timestamps at all). ``index`` is the
    0-based position in presentation order. ``duration`` (same units) is carried so the last frame keeps its
    length in the output; None when unknown.
    """

    image: np.ndarray
    pts: int | None
    time_base: fractions.Fraction
    index: int
    duration: int | None = None


# Muxers whose codec query answers "unknown" for most codecs (they have no codec-tag table), so PyAV's
# ``supported_codecs`` lists only their defaults: for MPEG-TS that is MPEG-1/2 video and MP2 audio, although
# broadcast H.264/HEVC with AAC/AC-3 is what the format is for. These are the codecs their muxer maps to a
# stream type (libavformat's mpegtsenc).
_MUXER_CODECS = {
    "mpegts": frozenset({"h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4", "vc1", "dirac", "aac", "aac_latm",
                         "ac3", "eac3", "mp2", "mp3", "opus", "dts", "truehd", "s302m", "dvb_subtitle",
                         "dvb_teletext"}),
}


def container_holds(container: av.container.OutputContainer, codec: str) -> bool:
    """Whether ``container`` (an open output) can carry a stream of ``codec`` (a canonical codec name)."""
    supported = container.supported_codecs
    if codec in supported or codec in _MUXER_CODECS.get(container.format.name, ()):
        return True
    # PyAV lists the names of the decoders and encoders whose codec the muxer takes, which for most subtitle
    # codecs differ from the canonical name: Matroska's list has "dvdsub", "dvbsub" and "pgssub", never
    # "dvd_subtitle", "dvb_subtitle" or "hdmv_pgs_subtitle" (found by the bitmap-subtitle corpus, issue #20).
    return any(name in supported for name in _implementations(codec))


@functools.cache
def _implementations(codec: str) -> tuple[str, ...]:
    """The names of this FFmpeg's decoder and encoder for the canonical ``codec`` (e.g. dvdsub for dvd_subtitle)."""
    names = []
    for mode in ("r", "w"):
        try:
            names.append(av.codec.Codec(codec, mode).name)
        except Exception:  # no decoder or no encoder of it in this build (e.g. no PGS encoder)
            continue
    return tuple(names)


def open_input(path: str | os.PathLike) -> av.container.InputContainer:
    """``av.open`` for reading, with every failure turned into a one-line VideoError."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise VideoError(f"{name}: no such file")
    if os.path.isdir(name):
        raise VideoError(f"{name}: is a directory, not a video file")
    from .tags import READ_ERRORS

    try:
        # Tags that are not UTF-8 (DVB service names, old tools) would raise UnicodeDecodeError here.
        return av.open(name, "r", metadata_errors=READ_ERRORS)
    except av.error.FFmpegError as exc:
        raise VideoError(f"{name}: cannot be read as media: not a video file, or truncated/damaged "
                         f"({_short(exc)})") from exc


def _short(exc: BaseException) -> str:
    """FFmpeg errors carry the whole call in their text; keep the reason only, on one line."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())
