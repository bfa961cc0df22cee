"""Shared fixtures. Data from ``../shared`` (official weights, Vid4) is required: in CI a missing folder fails
the run instead of skipping silently; locally it skips with the reason shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VSRAPP_SHARED", REPO.parent / "shared"))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        message = f"{what} not found at {path} (set VSRAPP_SHARED to the shared folder)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def cpu_without_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests see a CPU without AMX, where ``--precision auto`` is fp32: outputs compare the same on the
    AMD and the Intel machines. The AMX rule (bf16) has its own tests, which patch this back."""
    from vsrapp.engine import hardware

    monkeypatch.setattr(hardware, "has_amx_bf16", lambda: False)


@pytest.fixture(scope="session")
def official_weights_dir() -> Path:
    return _require(SHARED / "weights", "official BasicVSR weights")


@pytest.fixture(scope="session")
def vimeo_weights(official_weights_dir: Path) -> Path:
    return _require(official_weights_dir / "BasicVSR_Vimeo90K_BIx4.pth", "BasicVSR_Vimeo90K_BIx4.pth")


@pytest.fixture(scope="session")
def vid4_root() -> Path:
    return _require(SHARED / "data" / "Vid4" / "inputs" / "G", "Vid4 ground truth")


@pytest.fixture
def weights_env(official_weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the zoo at the official weights."""
    monkeypatch.setenv("VSRAPP_WEIGHTS", str(official_weights_dir))
    return official_weights_dir


@pytest.fixture(scope="session")
def vid4_lr_frames(vid4_root: Path):
    """First 4 frames of Vid4 'calendar', BI-degraded to 180x144 uint8 RGB, and their ground truth."""
    import numpy as np

    from vsrapp.evaluation import bicubic_degrade, frame_paths, read_rgb

    gts = [read_rgb(p) for p in frame_paths(vid4_root / "calendar")[:4]]
    return np.stack([bicubic_degrade(g) for g in gts]), np.stack(gts)


# --- media fixtures for tests/test_video*.py: small real files made with PyAV (see tests/media.py) ---------


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """A :class:`media.MediaLibrary`: each file is made on first use, once per session."""
    from media import MediaLibrary

    return MediaLibrary(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's small-network tests on one torch thread (faster for tiny convs, kinder to a shared box)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- graph backends (tests/test_export.py, test_quantize.py, ...) --------------------------------------------------


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """On-the-fly exports and int8 graphs go to a per-test cache, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def ort():
    """ONNX Runtime (with onnx, which the exporter needs), or the test is skipped."""
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def ov():
    """OpenVINO (with nncf for int8 and onnxruntime for the fp32 graphs' checks), or the test is skipped."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("nncf")
    return pytest.importorskip("openvino")


@pytest.fixture
def hide_module(monkeypatch: pytest.MonkeyPatch):
    """``hide_module("onnxruntime", ...)``: ``import`` of these fails in this test as where they are not installed."""
    import builtins
    import sys

    real = builtins.__import__

    def hide(*names: str) -> None:
        def fake(name, *args, **kw):
            if name.split(".")[0] in names:
                raise ImportError(f"No module named '{name}'")
            return real(name, *args, **kw)

        monkeypatch.setattr(builtins, "__import__", fake)
        for n in names:
            monkeypatch.delitem(sys.modules, n, raising=False)

    return hide
