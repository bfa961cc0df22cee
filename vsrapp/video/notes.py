"""What a user should hear about an input before a job starts: things that work, but not as they might expect.

Each note is one line (a warning, never an error); :func:`warn_about_input` logs them under ``vsrapp.video``,
which the command line prints on stderr. The single-process pipeline and the Ray driver call it once per file.
"""

from __future__ import annotations

from ._common import log
from .hdr import carry_note
from .info import VideoInfo

DEINTERLACE_HINT = "ffmpeg -i IN -vf bwdif=mode=send_frame -c:a copy OUT"


def input_notes(info: VideoInfo, codec: str) -> list[str]:
    """One-line notes about ``info``'s input when written with the encoder ``codec``."""
    notes = []
    if info.interlaced:
        # Not deinterlaced here: FFmpeg's bwdif filter (bundled with PyAV) could, but it would change the frames,
        # so it must be part of the job's identity (the manifest a --resume and the Ray workers compare), which
        # vsrapp.jobs does not record yet. See docs/ROBUSTNESS.md.
        notes.append(f"{info.path}: the input is interlaced ({info.interlaced}); it is upscaled as it is, both "
                     "fields of a frame as one picture, so moving edges keep their combing (4x larger) and the "
                     f"output is progressive; for a clean result deinterlace first, e.g. {DEINTERLACE_HINT}")
    hdr = carry_note(codec, info.hdr)
    if hdr:
        notes.append(f"{info.path}: {hdr}")
    return notes


def warn_about_input(info: VideoInfo, codec: str) -> list[str]:
    """Log :func:`input_notes` as warnings; returns them."""
    notes = input_notes(info, codec)
    for note in notes:
        log.warning("%s", note)
    return notes
