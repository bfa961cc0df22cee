"""Make the bundled example clip(s) from synthetic content (no third-party footage, so no licence questions).

    python examples/make_examples.py          # writes examples/synthetic_pan.mp4 (about 100 KB)

The clip is small on purpose (160x96, 3 s, 25 fps, H.264 + AAC) so the demo runs in seconds even on a CPU. Its
content has what super-resolution is judged on: fine stripes and edges at several frequencies, a slow pan (so a
recurrent model can gather detail across frames), and a moving object. The audio is a two-note chime, to show
the result keeps the soundtrack.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

W, H, FPS, SECONDS = 160, 96, 25, 3
RATE = 48000
HERE = Path(__file__).resolve().parent


def texture(width: int, height: int) -> np.ndarray:
    """A wide RGB canvas: a zone plate, stripes of rising frequency, a checkerboard and soft colour bands."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    zone = 0.5 + 0.5 * np.cos((x - width / 3) ** 2 / 900 + (y - height / 2) ** 2 / 900)
    stripes = 0.5 + 0.5 * np.sign(np.sin(x * (0.05 + x / width * 0.9)))
    checker = ((x // 6 + y // 6) % 2).astype(np.float32)
    left = np.where(x < width / 3, zone, np.where(x < 2 * width / 3, stripes, checker))
    band = (y / height)[..., None] * np.array([0.9, 0.5, 0.2]) + (1 - y / height)[..., None] * np.array(
        [0.2, 0.4, 0.9])
    rgb = 0.65 * left[..., None] + 0.35 * band
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def frame(canvas: np.ndarray, i: int, n: int) -> np.ndarray:
    """The view at frame ``i``: a window panning across ``canvas``, with a disc moving the other way."""
    offset = round(i / max(1, n - 1) * (canvas.shape[1] - W))
    view = canvas[:, offset:offset + W].copy()
    y, x = np.mgrid[0:H, 0:W]
    cx, cy = W - 20 - i * (W - 40) / max(1, n - 1), H / 2 + 20 * np.sin(i / 6)
    disc = (x - cx) ** 2 + (y - cy) ** 2 < 12**2
    ring = np.abs(np.hypot(x - cx, y - cy) - 12) < 1.2
    view[disc] = (250, 240, 60)
    view[ring] = (20, 20, 20)
    return view


def chime(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    notes = [(660.0, 0.0), (880.0, seconds / 2)]
    out = np.zeros_like(t)
    for freq, start in notes:
        live = t >= start
        out[live] += 0.25 * np.sin(2 * np.pi * freq * (t[live] - start)) * np.exp(-3 * (t[live] - start))
    return out.astype(np.float32)


def make_pan(path: Path) -> Path:
    n = FPS * SECONDS
    canvas = texture(W * 3, H)
    tb = Fraction(1, FPS)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"crf": "20", "preset": "slow"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        video.codec_context.time_base = tb
        audio = out.add_stream("aac", rate=RATE)
        audio.codec_context.layout = "mono"
        for i in range(n):
            vf = av.VideoFrame.from_ndarray(frame(canvas, i, n), format="rgb24")
            vf = vf.reformat(format="yuv420p", dst_colorspace="ITU601")
            vf.pts, vf.time_base = i, tb
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
        samples = chime(SECONDS)
        for start in range(0, len(samples), 1024):
            af = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = RATE, start, Fraction(1, RATE)
            out.mux(audio.encode(af))
        out.mux(audio.encode(None))
    return path


if __name__ == "__main__":
    made = make_pan(HERE / "synthetic_pan.mp4")
    print(f"{made}: {made.stat().st_size / 1024:.0f} KB")
