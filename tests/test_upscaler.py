"""The frame-by-frame engine: windows, state carry, tiles, any size, dtypes, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from nets import tiny_net

from vsrapp import Upscaler
from vsrapp.engine.upscaler import DEFAULT_LOOKAHEAD, DEFAULT_WINDOW, tile_grid


def tiny(bidirectional: bool = True, seed: int = 0):
    """A small random-weight network of the real architecture: cheap, and recurrent like the real one."""
    return tiny_net(bidirectional, seed, num_block=1)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    peak = 255.0 if a.dtype == np.uint8 else 65535.0
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def noise_frames(n: int, h: int = 24, w: int = 32, dtype=np.uint8, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    peak = np.iinfo(dtype).max
    base = rng.integers(0, peak, size=(h + n, w + n, 3)).astype(dtype)
    return [np.ascontiguousarray(base[i:i + h, i:i + w]) for i in range(n)]  # a diagonal pan


@pytest.fixture(scope="module")
def real_clip(vid4_lr_frames) -> list[np.ndarray]:
    return list(vid4_lr_frames[0])


@pytest.fixture(scope="module")
def calendar_lr(vid4_root) -> list[np.ndarray]:
    """All 41 frames of Vid4 'calendar', BI-degraded, a 48x64 crop (enough for two default windows)."""
    from vsrapp.evaluation import bicubic_degrade, frame_paths, read_rgb

    return [bicubic_degrade(read_rgb(p))[40:88, 60:124] for p in frame_paths(vid4_root / "calendar")]


def test_forward_only_model_emits_one_frame_per_frame_pushed():
    up = Upscaler(tiny(bidirectional=False), device="cpu")
    for i, frame in enumerate(noise_frames(5)):
        out = up.push(frame)
        assert len(out) == 1 and out[0].shape == (96, 128, 3) and out[0].dtype == np.uint8
        assert up.frames_out == i + 1
    assert up.flush() == []


def test_bidirectional_holds_frames_for_window_plus_lookahead_then_emits_a_window():
    up = Upscaler(tiny(), device="cpu", window=4, lookahead=2)
    frames = noise_frames(11)
    emitted = [len(up.push(f)) for f in frames]
    assert emitted == [0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0]
    assert len(up.flush()) == 3
    assert up.latency == 6


def test_default_window_matches_whole_clip_on_a_real_clip(weights_env, calendar_lr):
    """The seams between windows must not show: >= 40 dB against one window over the whole clip."""
    from vsrapp.zoo import get_model

    model = get_model("basicvsr-vimeo-bi")
    whole = list(Upscaler(model, device="cpu", window=len(calendar_lr), lookahead=0).upscale_frames(calendar_lr))
    windowed = list(Upscaler(model, device="cpu").upscale_frames(calendar_lr))
    assert len(windowed) == len(whole) == 41 and len(calendar_lr) > DEFAULT_WINDOW + DEFAULT_LOOKAHEAD
    scores = [psnr(a, b) for a, b in zip(windowed, whole)]
    assert min(scores) >= 40.0, scores


def test_flow_of_each_frame_pair_is_computed_once_across_windows():
    model = tiny()
    calls = []
    original = model.flow
    model.flow = lambda a, b: calls.append(1) or original(a, b)
    frames = noise_frames(23)
    list(Upscaler(model, device="cpu", window=5, lookahead=3).upscale_frames(frames))
    assert len(calls) == 2 * (len(frames) - 1)  # one backward and one forward flow per adjacent pair


def test_state_checkpoint_continues_a_stream_exactly():
    frames = noise_frames(20)
    model = tiny()
    reference = list(Upscaler(model, device="cpu", window=4, lookahead=2).upscale_frames(frames))

    first = Upscaler(model, device="cpu", window=4, lookahead=2)
    out = []
    for f in frames:
        out += first.push(f)
        if first.frames_out == 8:
            break
    state = first.state_dict()
    assert state and all(t.device.type == "cpu" for t in state.values())

    second = Upscaler(model, device="cpu", window=4, lookahead=2)
    second.load_state_dict(state, frames_done=8)
    out = out[:8] + list(second.upscale_frames(frames[8:]))
    assert len(out) == len(reference)
    assert all(np.array_equal(a, b) for a, b in zip(out, reference))


def test_tiles_stitch_without_visible_seams(weights_env, real_clip):
    from vsrapp.zoo import get_model

    model = get_model("basicvsr-vimeo-bi")
    clip = [f[:64, :96] for f in real_clip[:3]]
    assert len(tile_grid(64, 96, 48, 16)) == 6  # 2 rows x 3 columns
    plain = list(Upscaler(model, device="cpu").upscale_frames(clip))
    tiled = list(Upscaler(model, device="cpu", tile=48, tile_overlap=16).upscale_frames(clip))
    assert all(psnr(a, b) > 38.0 for a, b in zip(tiled, plain)), [psnr(a, b) for a, b in zip(tiled, plain)]


@pytest.mark.parametrize("size", [(9, 17), (27, 35), (1, 1)])
def test_any_frame_size_comes_back_exactly_four_times_larger(size):
    h, w = size
    for model in (tiny(), tiny(bidirectional=False)):
        out = list(Upscaler(model, device="cpu", window=2, lookahead=1).upscale_frames(noise_frames(3, h, w)))
        assert [o.shape for o in out] == [(4 * h, 4 * w, 3)] * 3


def test_uint16_and_tensor_frames_keep_their_type():
    up = Upscaler("bicubic", device="cpu")
    deep = noise_frames(2, dtype=np.uint16)
    out16 = list(up.upscale_frames(deep))
    assert out16[0].dtype == np.uint16 and out16[0].max() > 255  # the 16-bit range is used, not squashed
    up.reset()
    tensors = [torch.from_numpy(f) for f in noise_frames(2)]
    out_t = list(up.upscale_frames(tensors))
    assert isinstance(out_t[0], torch.Tensor) and out_t[0].dtype == torch.uint8 and out_t[0].shape == (96, 128, 3)
    # Flat colour stays flat: bicubic of a constant image is that constant (checks scaling and rounding).
    flat = np.full((8, 8, 3), 200, np.uint8)
    assert np.all(list(Upscaler("bicubic", device="cpu").upscale_frames([flat]))[0] == 200)


def test_bad_frames_are_refused_with_a_clear_message():
    up = Upscaler("bicubic", device="cpu")
    with pytest.raises(ValueError, match="H x W x 3"):
        up.push(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        up.push(np.zeros((8, 8, 3), np.float32))
    up.push(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="size changed"):
        up.push(np.zeros((8, 10, 3), np.uint8))


PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np, torch
    import torch.nn.functional as F
    from torch import nn
    from vsrapp import Upscaler

    class CheapBidirectional(nn.Module):
        # The engine's view of a bidirectional model, at almost no compute: memory is the engine's own.
        bidirectional, scale, num_feat = True, 4, 8

        def __init__(self):
            super().__init__()
            self.trunk = nn.Conv2d(3 + 8, 8, 1)
            self.out = nn.Conv2d(16, 3, 1)

        def flow(self, a, b):
            return torch.zeros(a.shape[0], 2, *a.shape[-2:])

        def _step(self, lr, feat, flow):
            feat = lr.new_zeros(lr.shape[0], 8, *lr.shape[-2:]) if feat is None else feat
            return self.trunk(torch.cat([lr, feat], 1))

        backward_step = forward_step = _step

        def reconstruct(self, lr, fb, ff):
            return F.interpolate(self.out(torch.cat([fb, ff], 1)) + lr, scale_factor=4)

    n = int(sys.argv[1])
    up = Upscaler(CheapBidirectional().eval(), device="cpu", window=8, lookahead=4)
    frame = np.random.default_rng(0).integers(0, 255, (180, 320, 3), dtype=np.uint8)
    count = sum(1 for _ in up.upscale_frames(frame for _ in range(n)))
    print(json.dumps({"frames": count, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
""")


def test_peak_memory_is_bounded_by_the_window_not_the_video_length():
    def peak(n: int) -> dict:
        done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(n)], capture_output=True, text=True,
                              check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    short, long = peak(24), peak(480)
    assert short["frames"] == 24 and long["frames"] == 480
    # 480 output frames of 720x1280 are 1.3 GB of pixels; holding even a tenth of them would show up clearly.
    assert long["peak_kb"] < short["peak_kb"] * 1.1 + 30_000, (short, long)


@pytest.mark.parametrize("amx", [False, True])
def test_auto_precision_on_the_cpu_is_bf16_only_where_it_has_amx(monkeypatch, amx):
    """--precision auto: bf16 autocast on a CPU with AMX (3.4x faster there at Vid4 -0.01 dB), fp32 elsewhere;
    asked for explicitly, each precision runs on any CPU."""
    from vsrapp.engine import hardware

    monkeypatch.setattr(hardware, "has_amx_bf16", lambda: amx)
    frames = noise_frames(3)
    auto = Upscaler(tiny(bidirectional=False), device="cpu")
    assert auto.precision == ("bf16" if amx else "fp32")
    fp32 = Upscaler(tiny(bidirectional=False), device="cpu", precision="fp32")
    bf16 = Upscaler(tiny(bidirectional=False), device="cpu", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    out = {name: list(up.upscale_frames(frames)) for name, up in (("auto", auto), ("fp32", fp32), ("bf16", bf16))}
    same_as = "bf16" if amx else "fp32"
    assert all(np.array_equal(a, b) for a, b in zip(out["auto"], out[same_as]))
    # bf16 rounds, but stays close: what the Vid4 figure says at full size.
    assert not all(np.array_equal(a, b) for a, b in zip(out["bf16"], out["fp32"]))
    assert min(psnr(a, b) for a, b in zip(out["bf16"], out["fp32"])) > 35
