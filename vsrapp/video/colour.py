"""Colour policy and explicit YUV <-> RGB conversion.

Numbers are FFmpeg's enum values (AVColorSpace, AVColorRange, AVColorPrimaries, AVColorTransferCharacteristic),
so they can be copied straight onto frames and codec contexts; ``*_NAMES`` give FFmpeg's names for display.

Policy (see the package docstring): tags the source has are kept; untagged sources get BT.601 below 720 lines
and BT.709 otherwise, limited range. The output carries the *source* colour, even though a x4 upscale of SD is
HD-sized: re-matrixing would cost a lossy conversion and the explicit tags make every player decode it right.

Full-range YUV deeper than 8 bits is converted here with numpy, not swscale: this swscale (libswscale 9) scales
RGB -> full-range YUV by 256/255 and puts 10-bit neutral chroma at 511, which shifted a 10-bit full-range HLG
ramp by +1.5 codes (and clipped its top 4) after one decode/encode round trip. swscale still resamples chroma
and resizes there, which it does exactly when range and matrix stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import Interpolation

# AVColorSpace (matrix) values and names.
MATRIX_NAMES = {
    0: "gbr", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 14: "ictcp",
}
RANGE_NAMES = {0: "unknown", 1: "tv", 2: "pc"}
PRIMARIES_NAMES = {
    1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
TRANSFER_NAMES = {
    1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67",
}

UNSPECIFIED = 2  # the "unknown" value of matrix, primaries and transfer
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
BT709, SMPTE170M, BT470BG = 1, 6, 5

# swscale only knows a few matrices, named by its own SWS_CS_* enum; map FFmpeg's matrix values onto them.
_SWS_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}

# Accurate rounding and full chroma interpolation: without them swscale is off by a few codes on flat colours
# and smears chroma edges; the cost is small next to the network.
SWS_FLAGS = (
    Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
    | Interpolation.FULL_CHR_H_INP
)
# Resizing the network's output (--scale): Lanczos keeps the detail the network made; area would soften it.
SWS_RESIZE_FLAGS = (SWS_FLAGS & ~Interpolation.BICUBIC) | Interpolation.LANCZOS


@dataclass(frozen=True)
class ColourInfo:
    """Colour description of a stream, as FFmpeg enum values."""

    matrix: int = UNSPECIFIED
    range: int = RANGE_UNSPECIFIED
    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED

    @property
    def matrix_name(self) -> str:
        return MATRIX_NAMES.get(self.matrix, str(self.matrix))

    @property
    def range_name(self) -> str:
        return RANGE_NAMES.get(self.range, str(self.range))

    @property
    def primaries_name(self) -> str:
        return PRIMARIES_NAMES.get(self.primaries, str(self.primaries))

    @property
    def transfer_name(self) -> str:
        return TRANSFER_NAMES.get(self.transfer, str(self.transfer))

    @property
    def is_hdr(self) -> bool:
        return self.transfer in (16, 18)


def read_tags(ctx: av.video.codeccontext.VideoCodecContext) -> ColourInfo:
    """The colour tags exactly as the decoder context reports them (may be unspecified)."""
    rng = ctx.color_range
    if rng == RANGE_UNSPECIFIED and (ctx.pix_fmt or "").startswith("yuvj"):
        rng = RANGE_FULL  # the deprecated yuvj formats mean full range without saying so
    return ColourInfo(ctx.colorspace, rng, ctx.color_primaries, ctx.color_trc)


def resolve(tags: ColourInfo, height: int, is_rgb: bool = False) -> ColourInfo:
    """Fill what the source left unspecified, the way players do: BT.601 below 720 lines, BT.709 above."""
    hd = height >= 720
    if tags.matrix in _SWS_MATRIX:
        matrix = tags.matrix
    else:
        matrix = BT709 if hd else SMPTE170M
    if tags.range in (RANGE_LIMITED, RANGE_FULL) and not is_rgb:
        rng = tags.range
    else:
        rng = RANGE_LIMITED  # an RGB source still becomes limited-range YUV in the output
    sd_default = BT470BG if height == 576 else SMPTE170M  # 625-line (PAL) vs 525-line (NTSC) SD
    primaries = tags.primaries if tags.primaries in PRIMARIES_NAMES and tags.primaries != UNSPECIFIED else (
        BT709 if hd else sd_default)
    transfer = tags.transfer if tags.transfer in TRANSFER_NAMES and tags.transfer != UNSPECIFIED else (
        BT709 if hd else SMPTE170M)
    return ColourInfo(matrix, rng, primaries, transfer)


def frame_to_rgb(frame: av.VideoFrame, colour: ColourInfo, deep: bool) -> np.ndarray:
    """Decoded frame -> H x W x 3 RGB (uint8, or uint16 full-scale when ``deep``), with the given matrix/range."""
    fmt = "rgb48le" if deep else "rgb24"
    if frame.format.is_rgb:
        return frame.to_ndarray(format=fmt)
    cs = _SWS_MATRIX[colour.matrix]
    bits = _numpy_matrix_bits(frame.format, colour)
    if deep and bits:
        yuv444 = frame.reformat(
            format=f"yuv444p{bits}le", src_colorspace=cs, dst_colorspace=cs, src_color_range=RANGE_FULL,
            dst_color_range=RANGE_FULL, interpolation=SWS_FLAGS,
        )
        return _full_yuv_to_rgb48(yuv444, colour.matrix, bits)
    return frame.to_ndarray(
        format=fmt, src_colorspace=cs, dst_colorspace=cs, src_color_range=colour.range,
        dst_color_range=RANGE_FULL, interpolation=SWS_FLAGS,
    )


def rgb_to_frame(image: np.ndarray, pix_fmt: str, colour: ColourInfo,
                 size: tuple[int, int] | None = None) -> av.VideoFrame:
    """H x W x 3 RGB array -> frame in ``pix_fmt`` with an explicit matrix and range, tagged with ``colour``;
    resized to ``size`` (width, height) with Lanczos in the same swscale pass when that differs."""
    if image.dtype == np.uint8:
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    elif image.dtype == np.uint16:
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb48le")
    else:
        raise ValueError(f"frame image must be uint8 or uint16, got {image.dtype}")
    cs = _SWS_MATRIX[colour.matrix]
    width, height = size or (rgb.width, rgb.height)
    resize = (width, height) != (rgb.width, rgb.height)
    bits = _numpy_matrix_bits(av.VideoFormat(pix_fmt), colour)
    if bits:
        deep = image if image.dtype == np.uint16 else image.astype(np.uint16) * 257
        rgb = _rgb48_to_full_yuv(deep, colour.matrix, bits)  # then only chroma resampling / resizing below
    out = rgb.reformat(
        width=width, height=height, format=pix_fmt, src_colorspace=cs, dst_colorspace=cs,
        src_color_range=RANGE_FULL, dst_color_range=colour.range,
        interpolation=SWS_RESIZE_FLAGS if resize else SWS_FLAGS,
    )
    # reformat maps swscale's matrix back onto a close FFmpeg value (601 -> smpte170m); tag exactly.
    out.colorspace = colour.matrix
    out.color_range = colour.range
    out.color_primaries = colour.primaries
    out.color_trc = colour.transfer
    return out


# Luma weights (Kr, Kb) of each matrix swscale knows (ITU-T H.273), for the numpy conversion below. BT.2020
# constant luminance (10) has no exact form in swscale either and is treated as non-constant, as there.
_KR_KB = {
    1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 6: (0.299, 0.114), 7: (0.212, 0.087),
    9: (0.2627, 0.0593), 10: (0.2627, 0.0593),
}
_PLANAR_DEPTHS = (9, 10, 12, 14, 16)  # the depths FFmpeg has a yuv444pNNle format for


def _numpy_matrix_bits(fmt: av.VideoFormat, colour: ColourInfo) -> int | None:
    """The bit depth when a frame in ``fmt`` needs the numpy matrix step: full-range planar YUV deeper than
    8 bits (see the module docstring); None where swscale is exact (8-bit, limited range, RGB, alpha)."""
    if colour.range != RANGE_FULL or fmt.is_rgb or colour.matrix not in _KR_KB:
        return None
    comps = fmt.components
    bits = comps[0].bits if comps else 0
    if len(comps) != 3 or not fmt.name.startswith("yuv") or bits not in _PLANAR_DEPTHS:
        return None
    return bits


def _plane(plane) -> np.ndarray:
    """A 16-bit plane as a writable H x W view (line_size includes padding)."""
    view = np.frombuffer(plane, np.dtype("<u2")).reshape(plane.height, plane.line_size // 2)
    return view[:, :plane.width]


def _full_yuv_to_rgb48(frame: av.VideoFrame, matrix: int, bits: int) -> np.ndarray:
    """Full-range yuv444pNNle -> H x W x 3 uint16 RGB, by the H.273 equations."""
    kr, kb = _KR_KB[matrix]
    peak, mid = float((1 << bits) - 1), float(1 << (bits - 1))
    y, cb, cr = (_plane(p).astype(np.float32) for p in frame.planes)
    y /= peak
    cb = (cb - mid) / peak
    cr = (cr - mid) / peak
    r = y + (2 - 2 * kr) * cr
    b = y + (2 - 2 * kb) * cb
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    rgb = np.stack([r, g, b], -1)
    return np.rint(np.clip(rgb, 0, 1) * 65535).astype(np.uint16)


def _rgb48_to_full_yuv(image: np.ndarray, matrix: int, bits: int) -> av.VideoFrame:
    """H x W x 3 uint16 RGB -> full-range yuv444pNNle frame, by the H.273 equations."""
    kr, kb = _KR_KB[matrix]
    peak, mid = float((1 << bits) - 1), float(1 << (bits - 1))
    rgb = image.astype(np.float32) / 65535
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = kr * r + (1 - kr - kb) * g + kb * b
    planes = (y * peak, (b - y) / (2 - 2 * kb) * peak + mid, (r - y) / (2 - 2 * kr) * peak + mid)
    h, w = y.shape
    frame = av.VideoFrame(w, h, f"yuv444p{bits}le")
    for plane, values in zip(frame.planes, planes, strict=True):
        _plane(plane)[:] = np.clip(np.rint(values), 0, peak).astype(np.uint16)
    return frame
