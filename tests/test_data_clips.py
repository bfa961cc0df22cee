"""Training data: the torch MATLAB-bicubic downscale, synthetic clips with real motion, resumable sampling."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vsrapp.engine.compat import basicsr
from vsrapp_pruning.data import (
    ClipConfig,
    MotionConfig,
    ResumableSampler,
    SyntheticClips,
    bi_downscale,
    camera_path,
    render_shifted,
    render_warped,
)


def write_stills(root: Path, n: int = 2, size: tuple[int, int] = (160, 200), seed: int = 0) -> Path:
    """Textured stills (smooth colour field plus fine noise and edges): enough detail for the sharpness filter."""
    rng = np.random.default_rng(seed)
    folder = root / "stills" / "synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        base = np.stack([np.sin(xx / (7 + i + c)) * np.cos(yy / (5 + c)) for c in range(3)], -1) * 80 + 128
        img = base + rng.normal(0, 6, (h, w, 3)) + 60 * ((xx // 9 + yy // 13) % 2)[..., None]
        cv2.imwrite(str(folder / f"{i}.png"), np.clip(img, 0, 255).astype(np.uint8))
    return root


@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (100, 36)])
def test_bi_downscale_matches_basicsr_imresize(shape):
    imresize = basicsr("utils.matlab_functions").imresize
    img = np.random.default_rng(1).random((*shape, 3)).astype(np.float32)
    ref = imresize(img, 0.25)
    ref = ref.numpy() if isinstance(ref, torch.Tensor) else ref
    ours = bi_downscale(torch.from_numpy(img).permute(2, 0, 1).double()).permute(1, 2, 0).numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-5


def test_bi_downscale_batched_float32_and_size_check():
    x = torch.rand(2, 5, 3, 32, 48)
    y = bi_downscale(x)
    assert y.shape == (2, 5, 3, 8, 12) and y.dtype == torch.float32
    torch.testing.assert_close(y[1, 3], bi_downscale(x[1, 3]))
    with pytest.raises(ValueError):
        bi_downscale(torch.rand(3, 30, 32))


def test_clips_have_requested_sizes_and_move(tmp_path):
    root = write_stills(tmp_path)
    cfg = ClipConfig(frames=5, lr_size=8, real_prob=0.0, min_hf2=0.0, min_std=0.0)
    ds = SyntheticClips(root, cfg, seed=3)
    for i in range(4):
        lr, gt = ds[i]
        assert lr.shape == (5, 3, 8, 8) and gt.shape == (5, 3, 32, 32)
        # 8-bit levels, as stored frames and the evaluation's LR are.
        assert torch.equal(gt, (gt * 255).round() / 255) and torch.equal(lr, (lr * 255).round() / 255)
        # LR is the BI degradation of GT (bicubic overshoot clipped to [0, 1], then rounded).
        assert (lr - bi_downscale(gt).clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-6
        steps = [float((gt[t + 1] - gt[t]).abs().mean()) for t in range(4)]
        assert min(steps) > 1e-3, f"sample {i}: consecutive frames identical {steps}"
    # Pure function of the index.
    a, b = ds[2], ds[2]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("render", [render_warped, render_shifted])
def test_renderers_follow_the_camera(render):
    """A pure translation by (dx, dy) GT pixels shows up as that shift between frames."""
    rng = np.random.default_rng(0)
    still = (rng.random((200, 200, 3)) * 255).astype(np.uint8)
    still = cv2.GaussianBlur(still, (0, 0), 2)  # smooth enough that warping is nearly exact
    path = np.array([[0, 0, 1, 0], [2, 1, 1, 0]], dtype=float)
    frames = render(still, path, 32, rng)
    assert frames is not None and frames.shape == (2, 3, 32, 32)
    # Content at (y+1, x+2) in frame 0 is at (y, x) in frame 1.
    moved = (frames[1, :, 2:-4, 2:-4] - frames[0, :, 3:-3, 4:-2]).abs().mean()
    static = (frames[1, :, 2:-4, 2:-4] - frames[0, :, 2:-4, 2:-4]).abs().mean()
    assert moved < 0.25 * static


def test_camera_path_is_smooth_and_starts_at_identity():
    path = camera_path(np.random.default_rng(0), 7, MotionConfig())
    assert np.allclose(path[0], [0, 0, 1, 0])
    speeds = np.linalg.norm(np.diff(path[:, :2], axis=0), axis=1)
    assert speeds.max() < 3 * np.sqrt(2) + 2  # max speed plus a few acceleration steps
    assert np.all(np.abs(path[:, 2] - 1) < 0.07)


def test_resumable_sampler_splits_ranks_and_resumes():
    full = list(ResumableSampler(6, 0, 0, 1))
    assert full == list(range(6))
    assert list(ResumableSampler(6, 4, 0, 1)) == full[4:]
    r0, r1 = list(ResumableSampler(3, 0, 0, 2)), list(ResumableSampler(3, 0, 1, 2))
    assert sorted(r0 + r1) == list(range(6)) and not set(r0) & set(r1)


def test_normalise_is_an_integer_area_downscale_and_never_upscales():
    from vsrapp_pruning.prepare_data import normalise

    img = np.random.default_rng(0).integers(0, 255, (1000, 3000, 3), dtype=np.uint8)
    out = normalise(img, 2048)
    assert out.shape == (500, 1500, 3)  # k = ceil(3000 / 2048) = 2
    assert np.abs(out[0, 0].astype(float) - img[:2, :2].reshape(-1, 3).mean(0)).max() <= 1
    small = img[:300, :400]
    assert normalise(small, 2048) is small


def test_a_pool_of_real_clips_alone_serves_windows_of_them(tmp_path):
    """prepare_data --clips-only writes clips and no stills: every sample is a window of a real clip, its frames
    consecutive and downscaled by the clip's own factor."""
    import av

    from vsrapp_pruning.prepare_data import Manifest, add_clip

    video = tmp_path / "moving.mp4"
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (80, 160, 3), dtype=np.uint8)
    with av.open(str(video), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv444p"
        stream.options = {"qp": "0"}
        for t in range(8):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[8:72, 4 * t:4 * t + 96]), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    frames = tmp_path / "seq"
    frames.mkdir()
    for t in range(6):
        cv2.imwrite(str(frames / f"image.{t:04d}.pgm"), texture[:64, t:t + 64, 0])
    root = tmp_path / "pool"
    manifest = Manifest(root)
    assert add_clip(video, "pkg", "CC0", root, manifest, scale=2) == 8
    assert add_clip(frames, "grey", "GPL", root, manifest, scale=1) == 6
    half = cv2.imread(str(root / "clips" / "pkg-moving" / "00000.png"))
    assert half.shape == (32, 48, 3)
    grey = cv2.imread(str(root / "clips" / "grey-seq" / "00002.png"))
    assert grey.shape == (64, 64, 3) and np.array_equal(grey[:, :, 0], texture[:64, 2:66, 0])

    ds = SyntheticClips(root, ClipConfig(frames=4, lr_size=8, real_prob=1.0), seed=1)
    assert not ds.stills and len(ds.clips) == 2
    lr, gt = ds[0]
    assert lr.shape == (4, 3, 8, 8) and gt.shape == (4, 3, 32, 32)
    with pytest.raises(FileNotFoundError, match="no training stills"):
        SyntheticClips(root, ClipConfig(frames=4, lr_size=8, real_prob=0.5), seed=1)
