"""The models a web page offers: the zoo by default, any list for tests or a custom server.

Visitors pick a *name* from this list, never a path: :meth:`ModelMenu.get` refuses anything else, because
:class:`~vsrapp.Upscaler` would happily open a checkpoint path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from torch import nn

from .. import zoo
from ..errors import ModelError


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model menu. ``load`` builds the network (called once, then cached)."""

    name: str
    load: Callable[[], nn.Module]
    description: str = ""
    forward_only: bool = True  # can run live (latency one frame); bidirectional models cannot
    available: bool = True
    unavailable_reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    def label(self) -> str:
        quality = _quality(self.metrics)
        kind = "live-capable" if self.forward_only else "bidirectional"
        missing = "" if self.available else " — weights missing"
        return f"{self.name} ({quality}, {kind}){missing}"


def _quality(metrics: dict[str, float]) -> str:
    if "vid4_bi_psnr_y" in metrics:
        return f"Vid4 {metrics['vid4_bi_psnr_y']:.2f} dB / {metrics.get('vid4_bi_ssim_y', float('nan')):.4f}"
    return "quality not measured"


def zoo_choices() -> list[ModelChoice]:
    """Every zoo model; those whose weights are not installed are listed, marked, and refuse to load."""
    choices = []
    for entry in zoo.list_models():
        status = zoo.weights_status(entry)
        ok = zoo.usable(status)
        reason = "" if ok else (f"the weights of '{entry.name}' are {status} on this server "
                                f"(the administrator can run `vsrapp models -v` to see where they go)")
        choices.append(ModelChoice(
            name=entry.name,
            load=lambda name=entry.name: zoo.get_model(name),
            description=entry.description,
            forward_only=not entry.bidirectional,
            available=ok,
            unavailable_reason=reason,
            metrics=dict(entry.metrics),
        ))
    return choices


class UnknownModel(ModelError, ValueError):
    """Not on the menu, or on it but unusable here; the message is for the visitor."""


class ModelMenu:
    """The menu plus a cache of loaded networks and of the speed measured on this server."""

    def __init__(self, choices: Iterable[ModelChoice]) -> None:
        self.choices = {c.name: c for c in choices}
        if not self.choices:
            raise ValueError("the model menu is empty")
        self._loaded: dict[str, nn.Module] = {}
        self._lock = threading.Lock()
        self.speed: dict[tuple[str, str], tuple[float, str]] = {}  # (model, device) -> (frames/s, input size)

    def names(self, forward_only: bool = False) -> list[str]:
        return [n for n, c in self.choices.items() if c.forward_only or not forward_only]

    def default(self, forward_only: bool = False) -> str | None:
        """The best-scoring model that is available (among the forward-only ones for live input): what a visitor
        most likely wants to try. None only when ``forward_only`` and the menu has no forward-only model."""
        candidates = [c for c in self.choices.values() if c.forward_only or not forward_only]
        usable = [c for c in candidates if c.available] or candidates
        if not usable:
            return None
        return max(usable, key=lambda c: c.metrics.get("vid4_bi_psnr_y", 0.0)).name

    def get(self, name: str) -> ModelChoice:
        choice = self.choices.get(name)
        if choice is None:
            raise UnknownModel(f"Unknown model {name!r}; choose one from the list.")
        if not choice.available:
            raise UnknownModel(f"Model '{name}' cannot run here: {choice.unavailable_reason}.")
        return choice

    def network(self, name: str) -> nn.Module:
        choice = self.get(name)
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = choice.load().eval()
            return self._loaded[name]

    def record_speed(self, name: str, device: str, fps: float, size: str) -> None:
        self.speed[(name, device)] = (fps, size)

    def info(self, name: str) -> str:
        """Markdown describing a model: what it is, its measured quality, the speed measured on this server."""
        choice = self.choices.get(name)
        if choice is None:
            return ""
        lines = [f"**{choice.name}**: {choice.description}" if choice.description else f"**{choice.name}**"]
        m = choice.metrics
        if "vid4_bi_psnr_y" in m:
            lines.append(f"- quality: Vid4 BI x4, Y channel: **{m['vid4_bi_psnr_y']:.2f} dB** PSNR, "
                         f"**{m.get('vid4_bi_ssim_y', float('nan')):.4f}** SSIM")
        else:
            lines.append("- quality: not measured")
        if "cpu2_ms_per_frame_180x320" in m:  # measured by `vsrapp bench` (docs/BENCHMARKS.md)
            lines.append(f"- speed (benchmark): **{m['cpu2_ms_per_frame_180x320']:g} ms/frame** on 2 CPU threads, "
                         "180x320 input")
        lines += [f"- speed ({key}): {value:g}" for key, value in m.items()
                  if ("fps" in key or "ms" in key) and key != "cpu2_ms_per_frame_180x320"]
        speeds = [(dev, fps, size) for (n, dev), (fps, size) in self.speed.items() if n == name]
        lines += [f"- speed measured on this server: **{fps:.2f} frames/s** on {dev} ({size} input)"
                  for dev, fps, size in speeds] or ["- speed on this server: not measured yet (shown after a run)"]
        lines.append("- " + ("forward-only: can upscale the webcam live" if choice.forward_only else
                             "bidirectional: uses future frames, so files only (no live webcam)"))
        if not choice.available:
            lines.append(f"- **not available**: {choice.unavailable_reason}")
        return "\n".join(lines)
