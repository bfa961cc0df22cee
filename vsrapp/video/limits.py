"""How large an output frame may be, and the output size for a ``--scale`` other than the model's.

The limit is the largest picture of the top level of the delivery codecs' standards: H.264 level 6.2
(MaxFS 139,264 macroblocks x 256), HEVC level 6.2 (MaxLumaPs), VP9 and AV1 level 6.x all stop at 35,651,584
luma samples a frame (8192x4352), and none allows a side over 16,384 (x264 refuses 16,400 wide outright;
HEVC's own bound is 16,888). libx264 and libx265 in this FFmpeg build do *encode* 15360x8640 (x4 of 4K), but
the result is outside every level, so hardware decoders and most players refuse it, and making it costs
gigabytes per frame and minutes per second of video. So such jobs are refused before any decoding, with the
``--scale`` that fits named in the message.
"""

from __future__ import annotations

import math

import av

from ._common import VideoError

MAX_PICTURE_SAMPLES = 35_651_584  # 8192 x 4352: top level of H.264 / HEVC / VP9 / AV1
MAX_SIDE = 16_384
LEVEL_LIMITED_CODECS = {"h264": "H.264", "hevc": "HEVC", "vp9": "VP9", "av1": "AV1"}
_SCALE_STEP = 0.25  # suggested --scale values are rounded down to this step


def output_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The encoded size for ``scale`` times the input: exact for whole scales, else rounded to even sides
    (4:2:0 chroma needs them), never below 2."""
    if float(scale).is_integer():
        return width * int(scale), height * int(scale)
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def fits(width: int, height: int) -> bool:
    return width * height <= MAX_PICTURE_SAMPLES and max(width, height) <= MAX_SIDE


def largest_scale(width: int, height: int) -> float:
    """The largest ``--scale`` (a multiple of 0.25) whose output fits, for the message; 0 when none does."""
    best = min(math.sqrt(MAX_PICTURE_SAMPLES / (width * height)), MAX_SIDE / max(width, height))
    scale = math.floor(best / _SCALE_STEP) * _SCALE_STEP
    while scale > 0 and not fits(*output_size(width, height, scale)):  # rounding to even can push it over
        scale -= _SCALE_STEP
    return max(scale, 0.0)


def check_output_size(src: str, width: int, height: int, scale: float, codec: str) -> None:
    """Raise VideoError (one line: why, and the ``--scale`` that fits) if ``codec`` cannot carry the output."""
    try:
        canonical = av.codec.Codec(codec, "w").canonical_name
    except Exception:  # an unknown encoder is reported by the writer, with its own message
        return
    standard = LEVEL_LIMITED_CODECS.get(canonical)
    out_w, out_h = output_size(width, height, scale)
    if standard is None or fits(out_w, out_h):
        return
    best = largest_scale(width, height)
    hint = (f"add --scale {best:g} for {'x'.join(map(str, output_size(width, height, best)))}"
            if best >= 1 else "downscale the input first")
    raise VideoError(
        f"{src}: x{scale:g} of {width}x{height} is {out_w}x{out_h}, larger than {standard} allows (at most "
        f"{MAX_PICTURE_SAMPLES:,} pixels a frame, e.g. 8192x4352, and {MAX_SIDE} a side; players and "
        f"hardware decoders refuse more); {hint}")
