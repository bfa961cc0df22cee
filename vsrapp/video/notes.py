"""What a user should hear about an input before a job starts: things that work, but not as they might expect.

Each note is one line (a warning, never an error); :func:`warn_about_input` logs them under ``vsrapp.video``,
which the command line prints on stderr. The single-process pipeline and the Ray driver call it once per file.
"""

from __future__ import annotations

from ._common import log
from .hdr import carry_note, dynamic_note
from .info import VideoInfo


def input_notes(info: VideoInfo, codec: str, deinterlace: bool = False) -> list[str]:
    """One-line notes about ``info``'s input when written with the encoder ``codec``, deinterlaced or not."""
    notes = []
    if info.interlaced and deinterlace:
        notes.append(f"{info.path}: the input is interlaced ({info.interlaced}); each frame is deinterlaced "
                     "(bwdif, one progressive frame per frame, timing unchanged) before it is upscaled; "
                     "--deinterlace off keeps the woven fields")
    elif info.interlaced:
        notes.append(f"{info.path}: the input is interlaced ({info.interlaced}) and --deinterlace is off: both "
                     "fields of a frame are upscaled as one picture, so moving edges keep their combing (4x "
                     "larger); --deinterlace auto runs FFmpeg's bwdif first")
    for note in (carry_note(codec, info.hdr), dynamic_note(info.dynamic_hdr, info.hdr)):
        if note:
            notes.append(f"{info.path}: {note}")
    return notes


def warn_about_input(info: VideoInfo, codec: str, deinterlace: bool = False) -> list[str]:
    """Log :func:`input_notes` as warnings; returns them."""
    notes = input_notes(info, codec, deinterlace)
    for note in notes:
        log.warning("%s", note)
    return notes
