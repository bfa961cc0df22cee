"""Our networks against BasicSR's: same weights, same real frames, same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsrapp.engine.compat import basicsr
from vsrapp.engine.recurrence import StreamRunner, WindowRunner, upscale_clip
from vsrapp.zoo import load_basicsr_state
from vsrapp_models.basicvsr import BasicVSR, BasicVSRUni, uni_state_from_bidirectional
from vsrapp_models.bicubic import Bicubic


def _clip(lr_frames: np.ndarray, crop: bool = True) -> torch.Tensor:
    """(T, 3, h, w) float tensor; a 64x96 crop of the real frames keeps the test fast."""
    frames = lr_frames[:, 40:104, 40:136] if crop else lr_frames
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="module")
def dense(vimeo_weights) -> BasicVSR:
    model = BasicVSR().eval()
    model.load_state_dict(load_basicsr_state(vimeo_weights), strict=True)
    return model


def test_official_checkpoints_load_strictly_without_unpickling_code(official_weights_dir):
    for name in ("BasicVSR_REDS4.pth", "BasicVSR_Vimeo90K_BIx4.pth"):
        ckpt = torch.load(official_weights_dir / name, map_location="cpu", weights_only=True)
        state = ckpt["params"]
        assert len(state) == 316
        model = BasicVSR()
        model.load_state_dict(state, strict=True)  # raises on any missing or unexpected key
        # 6,291,317 tensor elements in the file: the parameters plus SpyNet's mean/std buffers (3 + 3).
        assert sum(p.numel() for p in model.parameters()) == 6_291_311
        assert sum(t.numel() for t in state.values()) == 6_291_317


@torch.inference_mode()
def test_matches_basicsr_basicvsr_on_real_frames(dense, vimeo_weights, vid4_lr_frames):
    theirs = basicsr("archs.basicvsr_arch").BasicVSR(num_feat=64, num_block=30).eval()
    theirs.load_state_dict(load_basicsr_state(vimeo_weights), strict=True)
    x = _clip(vid4_lr_frames[0])[None]
    ours_out, theirs_out = dense(x), theirs(x)
    assert ours_out.shape == (1, 4, 3, 256, 384)
    assert (ours_out - theirs_out).abs().max().item() < 1e-4


@torch.inference_mode()
def test_windowed_recurrence_with_whole_clip_window_is_exactly_forward(dense, vid4_lr_frames):
    x = _clip(vid4_lr_frames[0])
    assert torch.equal(upscale_clip(dense, x), dense(x[None])[0])


@torch.inference_mode()
def test_forward_branch_state_is_carried_exactly_across_windows(dense, vid4_lr_frames):
    """Two windows of 2 with the backward branch seeing the same frames as the whole clip give the same output:
    only the backward branch's look-ahead is approximate, never the forward state."""
    x = _clip(vid4_lr_frames[0])
    frames = [f[None] for f in x]
    runner = WindowRunner(dense)
    # The first window sees all 4 frames (2 outputs + 2 look-ahead), so its backward branch is exact too.
    first = runner.run(frames, n_out=2)
    second = runner.run(frames[2:], n_out=2)
    whole = dense(x[None])[0]
    assert torch.allclose(torch.cat(first + second), whole, atol=1e-6)


@torch.inference_mode()
def test_forward_only_model_step_matches_forward_and_streams_one_frame_per_frame(vimeo_weights, vid4_lr_frames):
    uni = BasicVSRUni().eval()
    uni.load_state_dict(uni_state_from_bidirectional(load_basicsr_state(vimeo_weights)), strict=True)
    x = _clip(vid4_lr_frames[0])
    runner = StreamRunner(uni)
    streamed = [runner.step(f[None]) for f in x]
    assert all(s.shape == (1, 3, 256, 384) for s in streamed)
    assert torch.equal(torch.cat(streamed), uni(x[None])[0])
    # Even without fine-tuning, the forward half of the bidirectional weights restores detail over bicubic.
    assert (streamed[-1] - Bicubic()(x[-1:])).abs().mean() > 1e-3


def test_bicubic_matches_matlab_imresize(vid4_lr_frames):
    imresize = basicsr("utils.matlab_functions").imresize
    lrs = vid4_lr_frames[0]
    for crop in (lrs[0, :31, :45], lrs[1, :2, :3]):  # odd and tiny sizes too
        img = crop.astype(np.float32) / 255.0
        ref = np.asarray(imresize(img, 4))
        ours = Bicubic().upscale(torch.from_numpy(img).permute(2, 0, 1)[None].contiguous())[0]
        assert ours.shape[1:] == ref.shape[:2]
        assert np.abs(ours.permute(1, 2, 0).numpy() - ref).max() < 1e-5


@torch.inference_mode()
def test_spynet_handles_frames_smaller_than_its_pyramid(dense):
    """A 9x17 frame is resized to 32x32 inside SpyNet, whose coarsest level is then one pixel."""
    x = torch.rand(1, 3, 3, 9, 17)
    out = dense(x)
    assert out.shape == (1, 3, 3, 36, 68) and torch.isfinite(out).all()


def test_basicsr_checkpoint_with_fewer_blocks_loads_with_its_own_shape(tmp_path):
    """A BasicSR checkpoint of BasicVSR(num_feat, num_block) other than 64/30 (a block-pruned model, a small
    training config) loads strictly with the shape its keys say, bidirectional or forward-only."""
    from vsrapp_models.loading import load_model

    for arch in (BasicVSR, BasicVSRUni):
        torch.manual_seed(0)
        net = arch(16, 3).eval()
        path = tmp_path / f"{arch.__name__}.pth"
        torch.save({"params": net.state_dict()}, path)
        loaded = load_model(path)
        assert type(loaded) is arch and loaded.num_feat == 16 and len(loaded.forward_trunk.main[2]) == 3
        clip = torch.rand(1, 3, 3, 16, 20)
        with torch.no_grad():
            assert torch.equal(loaded(clip), net(clip))


@torch.inference_mode()
def test_spynet_stopped_a_level_early_still_finds_a_real_shift(dense, vid4_lr_frames):
    """skip_finest (the cheaper flow) upsamples the flow of a coarser level: on a Vid4 frame shifted by 3 px right
    and 2 px down it still recovers the shift, and it refuses a setting with no level left."""
    img = torch.from_numpy(vid4_lr_frames[0][0]).permute(2, 0, 1)[None].float().div(255)
    ref, supp = img[..., 8:104, 8:136], img[..., 6:102, 5:133]  # ref(x) = supp(x + (3, 2)): flow (3, 2)
    spynet = dense.spynet
    for skip in (0, 1):
        spynet.skip_finest = skip
        flow = spynet(ref, supp)[0, :, 16:-16, 16:-16]  # the interior: borders have no match
        assert flow.shape[0] == 2
        assert abs(float(flow[0].median()) - 3) < 0.3 and abs(float(flow[1].median()) - 2) < 0.3, skip
    spynet.skip_finest = 6
    with pytest.raises(ValueError, match="6 levels"):
        spynet(ref, supp)
    spynet.skip_finest = 0
