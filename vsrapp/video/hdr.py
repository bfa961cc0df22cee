"""HDR static metadata: the mastering display colour volume (SMPTE ST 2086) and the content light level
(MaxCLL/MaxFALL) of an HDR10 input, read from its first decoded frame and handed to the encoder.

Where it comes from: FFmpeg's decoders attach both to every frame that carries them, from the bitstream (HEVC and
H.264 SEI, AV1 metadata OBUs) and from the container (Matroska, MP4 boxes, which FFmpeg 7+ copies onto the
decoded frames), so the first frame sees either.

Where it goes: PyAV cannot attach side data to a frame it did not decode, nor to an output stream, so the
encoders are told through their own options (x264 ``mastering-display``/``cll``, x265 ``master-display``/
``max-cll``, SVT-AV1 ``mastering-display``/``content-light``). They write it into the bitstream, where decoders,
players and TVs read it. Other encoders (VP9, FFV1, ...) have no such option: the metadata is then lost, and
:func:`carry_note` says so. The container-level copy (Matroska ``MasteringMetadata``, MP4 ``mdcv``/``clli``) is
never written: PyAV has no way to set an output stream's side data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction

import av

_TYPES = av.sidedata.sidedata.Type
# AVMasteringDisplayMetadata: display_primaries[3][2] (R, G, B; x, y) and white_point[2] as AVRational (two
# int32 each), min_luminance, max_luminance (AVRational), has_primaries, has_luminance (int).
_MASTERING = struct.Struct("<20i2i")
# AVContentLightMetadata: MaxCLL, MaxFALL (unsigned).
_LIGHT = struct.Struct("<2I")
Point = tuple[Fraction, Fraction]


@dataclass(frozen=True)
class MasteringDisplay:
    """The display the content was graded on: CIE 1931 xy of its primaries and white point, its luminance
    range in cd/m²."""

    red: Point
    green: Point
    blue: Point
    white: Point
    min_luminance: Fraction
    max_luminance: Fraction


@dataclass(frozen=True)
class HdrMetadata:
    """Static HDR metadata of a stream; either part may be missing."""

    mastering: MasteringDisplay | None = None
    max_cll: int | None = None  # brightest pixel of the content, cd/m²
    max_fall: int | None = None  # brightest frame average, cd/m²

    @property
    def light(self) -> bool:
        return self.max_cll is not None and self.max_fall is not None


# Per-scene (dynamic) HDR metadata by the frame side data FFmpeg's decoders attach: SMPTE ST 2094-40 from HEVC/AV1
# T.35 messages, Dolby Vision RPUs, CUVA HDR Vivid. None of it can be written back through PyAV's encoders.
_DYNAMIC = (("HDR10+", "DYNAMIC_HDR_PLUS"), ("Dolby Vision", "DOVI_RPU_BUFFER"), ("Dolby Vision", "DOVI_METADATA"),
            ("HDR Vivid", "DYNAMIC_HDR_VIVID"))


def read_dynamic_hdr(frame: av.VideoFrame) -> str | None:
    """The kind of dynamic HDR metadata ``frame`` carries ("HDR10+", "Dolby Vision", "HDR Vivid"), or None."""
    present = {sd.type for sd in frame.side_data}
    for name, member in _DYNAMIC:
        kind = getattr(_TYPES, member, None)  # older FFmpeg builds lack some types
        if kind is not None and kind in present:
            return name
    return None


def dynamic_note(kind: str | None, static: HdrMetadata | None) -> str | None:
    """One line when the input's dynamic HDR metadata is lost; None when there is none."""
    if kind is None:
        return None
    keeps = "its static HDR10 metadata and transfer tags" if static is not None else "its transfer tags only"
    return (f"the input carries {kind} dynamic metadata (per-scene tone mapping), which vsrapp cannot write: the "
            f"output keeps {keeps}, so HDR displays tone-map it as plain HDR10")


def read_hdr(frame: av.VideoFrame) -> HdrMetadata | None:
    """The mastering display and content light level attached to ``frame``, or None if it has neither."""
    side = frame.side_data
    mastering = _mastering(side.get(_TYPES.MASTERING_DISPLAY_METADATA))
    light = side.get(_TYPES.CONTENT_LIGHT_LEVEL)
    max_cll = max_fall = None
    if light is not None and light.buffer_size >= _LIGHT.size:
        max_cll, max_fall = _LIGHT.unpack_from(bytes(light))
    if mastering is None and max_cll is None:
        return None
    return HdrMetadata(mastering, max_cll, max_fall)


def _mastering(data) -> MasteringDisplay | None:
    if data is None or data.buffer_size < _MASTERING.size:
        return None
    v = _MASTERING.unpack_from(bytes(data))
    has_primaries, has_luminance = v[20], v[21]
    if not (has_primaries and has_luminance):  # the encoders take the whole set or nothing
        return None
    q = [Fraction(v[i], v[i + 1]) if v[i + 1] else Fraction(0) for i in range(0, 20, 2)]
    return MasteringDisplay((q[0], q[1]), (q[2], q[3]), (q[4], q[5]), (q[6], q[7]), q[8], q[9])


def _st2086(m: MasteringDisplay, decimal: bool = False) -> str:
    """``G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)``: SEI units (xy in 1/50000, luminance in 1/10000 cd/m²), or plain
    decimals (SVT-AV1)."""
    def xy(p: Point) -> str:
        if decimal:
            return f"({float(p[0]):.5f},{float(p[1]):.5f})"
        return f"({round(p[0] * 50000)},{round(p[1] * 50000)})"

    if decimal:
        lum = f"L({float(m.max_luminance):.4f},{float(m.min_luminance):.4f})"
    else:
        lum = f"L({round(m.max_luminance * 10000)},{round(m.min_luminance * 10000)})"
    return f"G{xy(m.green)}B{xy(m.blue)}R{xy(m.red)}WP{xy(m.white)}{lum}"


# Per encoder: its parameter string option, and its names for the mastering display (with whether it takes
# decimal chromaticities) and the content light level.
_HDR_PARAMS = {
    "libx264": ("x264-params", "mastering-display", False, "cll"),
    "libx265": ("x265-params", "master-display", False, "max-cll"),
    "libsvtav1": ("svtav1-params", "mastering-display", True, "content-light"),
}


def encoder_options(codec: str, hdr: HdrMetadata | None) -> dict[str, str] | None:
    """The encoder options that write ``hdr`` into the bitstream of ``codec`` ({} when there is nothing to
    write), or None if that encoder cannot carry it."""
    if hdr is None:
        return {}
    if codec not in _HDR_PARAMS:
        return None
    key, mastering, decimal, light = _HDR_PARAMS[codec]
    parts = []
    if hdr.mastering:
        parts.append(f"{mastering}={_st2086(hdr.mastering, decimal=decimal)}")
    if hdr.light:
        parts.append(f"{light}={hdr.max_cll},{hdr.max_fall}")
    return {key: ":".join(parts)} if parts else {}


CARRIERS = ("libx264", "libx265", "libsvtav1")


def carry_note(codec: str, hdr: HdrMetadata | None) -> str | None:
    """One line for the user when the input's HDR metadata cannot go into the output; None when it can (or
    there is none)."""
    if hdr is None or encoder_options(codec, hdr) is not None:
        return None
    what = " and ".join(w for w, there in (("mastering display", hdr.mastering), ("content light level",
                                                                                   hdr.light)) if there)
    return (f"the input's HDR {what} metadata cannot be written by {codec}, so the output has none (players "
            f"then assume defaults); {', '.join(CARRIERS)} keep it")
