"""vsrapp: streaming x4 video super-resolution.

Public API::

    from vsrapp import Upscaler, upscale_file
    up = Upscaler("basicvsr-vimeo-bi")          # zoo name, checkpoint path, pruned-model folder, or nn.Module
    for out in up.upscale_frames(frames): ...   # numpy H x W x 3 uint8/uint16 (or tensors) in and out
    upscale_file("in.mp4", "out.mp4")           # decode -> upscale -> encode, audio/subtitles/timing/colour kept
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Upscaler", "upscale_file", "UpscaleReport", "get_model", "list_models"]

if TYPE_CHECKING:
    from .engine.upscaler import Upscaler
    from .pipeline import UpscaleReport, upscale_file
    from .zoo import get_model, list_models

_LAZY = {"Upscaler": "engine.upscaler", "upscale_file": "pipeline", "UpscaleReport": "pipeline", "get_model": "zoo",
         "list_models": "zoo"}


def __getattr__(name: str):
    # Imported on first use: `import vsrapp` stays cheap, torch and PyAV load only when needed.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'vsrapp' has no attribute {name!r}")
