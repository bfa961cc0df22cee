"""A deterministic synthetic video scene: what the bench times and what int8 calibration can run on without
any real video (``vsrapp export --int8`` with no ``--calibrate``)."""

from __future__ import annotations

import numpy as np


def synthetic_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``n`` deterministic RGB uint8 frames (n, h, w, 3): a textured scene (soft blobs, gratings, fine noise)
    panning diagonally at a non-integer speed, so flow, detail and the encoder all see real work."""
    rng = np.random.default_rng(seed)
    speed_y, speed_x = 1.5, 2.5
    ph, pw = h + int(speed_y * n) + 2, w + int(speed_x * n) + 2
    coarse = rng.random((ph // 16 + 2, pw // 16 + 2, 3))
    blobs = np.kron(coarse, np.ones((16, 16, 1)))[:ph, :pw]
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    grating = 0.5 + 0.5 * np.sin(xx * 0.21 + 0.5 * np.sin(yy * 0.05)) * np.cos(yy * 0.13)
    scene = 0.55 * blobs + 0.35 * grating[..., None] + 0.10 * rng.random((ph, pw, 3))
    scene = (np.clip(scene, 0, 1) * 255).astype(np.float32)
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        oy, ox = speed_y * i, speed_x * i
        y0, x0 = int(oy), int(ox)
        fy, fx = oy - y0, ox - x0
        a = scene[y0:y0 + h + 1, x0:x0 + w + 1]
        # Bilinear sub-pixel shift.
        top = a[:h, :w] * (1 - fx) + a[:h, 1:w + 1] * fx
        bottom = a[1:h + 1, :w] * (1 - fx) + a[1:h + 1, 1:w + 1] * fx
        frames[i] = np.clip(top * (1 - fy) + bottom * fy + 0.5, 0, 255).astype(np.uint8)
    return frames
