"""Metadata tags (title, language, service name...): read from any file without failing, and carried over.

Files from DVB tuners and old tools often hold tags that are not UTF-8 (DVB service names default to ISO 6937,
others are Latin-1 or Windows-1252). PyAV decodes tags strictly as UTF-8 by default and raises
UnicodeDecodeError from ``av.open`` itself, so :func:`~vsrapp.video._common.open_input` reads them with
``surrogateescape`` (the raw bytes survive inside the string) and :func:`clean_tag` turns each value into text
that is valid UTF-8: UTF-8 when the bytes are, otherwise Windows-1252/Latin-1, with control characters removed.
For ISO 6937 the accented letters come out wrong, but the text stays readable and nothing fails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

READ_ERRORS = "surrogateescape"  # metadata_errors for av.open: keep undecodable bytes for clean_tag

# Tags that describe the source's encoding or muxing, not its content: wrong for the output, so not copied.
_TECHNICAL = {"encoder", "duration", "bps", "number_of_frames", "number_of_bytes", "major_brand", "minor_version",
              "compatible_brands", "vendor_id"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1 controls, e.g. DVB charset selector bytes


def clean_tag(value: str) -> str:
    """A tag read with ``surrogateescape`` as valid text: its bytes as UTF-8 if they are, else as Windows-1252
    (Latin-1 for the bytes that code page leaves undefined)."""
    raw = value.encode("utf-8", READ_ERRORS)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = "".join(_cp1252_or_latin1(b) for b in raw)
    return _CONTROL.sub("", text).strip()


def _cp1252_or_latin1(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)


def content_tags(metadata: Mapping[str, str]) -> dict[str, str]:
    """The tags worth copying to an output, cleaned; technical and empty ones left out."""
    tags = {}
    for key, value in metadata.items():
        name = clean_tag(key)
        if not name or name.lower() in _TECHNICAL or name.lower().startswith("_statistics"):
            continue
        text = clean_tag(value)
        if text:
            tags[name] = text
    return tags
