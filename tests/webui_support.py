"""A running web UI for the tests: small limits, CPU-fast models, its own folders, a free localhost port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# What the test server accepts; the clips made by the tests are sized against these.
MAX_SECONDS = 3.0
MAX_UPLOAD_MB = 1


SLOW_STEP = 0.1  # seconds per frame of the "slow" model: a job that surely lasts while others queue


def slow_bicubic():
    """bicubic that takes SLOW_STEP per frame, so the queue tests do not depend on this machine's speed."""
    import time

    from vsrapp_models.bicubic import Bicubic

    class Slow(Bicubic):
        def step(self, lr, state=None):
            time.sleep(SLOW_STEP)
            return super().step(lr, state)

    return Slow()


def fast_models():
    """bicubic (forward-only, the zoo's) and a tiny random-weight BasicVSR (bidirectional), both quick on a CPU,
    and a deliberately slow bicubic for the queue tests."""
    from vsrapp import zoo
    from vsrapp.web.menu import ModelChoice
    from vsrapp_models.basicvsr import BasicVSR

    bicubic = zoo.get_entry("bicubic")
    return [
        ModelChoice("bicubic", lambda: zoo.get_model("bicubic"), bicubic.description, forward_only=True,
                    metrics=dict(bicubic.metrics)),
        ModelChoice("tiny-basicvsr", lambda: BasicVSR(num_feat=8, num_block=1), "random weights, for tests",
                    forward_only=False),
        ModelChoice("slow", slow_bicubic, f"bicubic at {SLOW_STEP} s per frame, for tests", forward_only=True),
    ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    demo: object
    gradio_dir: Path
    work_dir: Path


@contextmanager
def running_server(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """Build and launch the app in this process; Gradio's cache and the job folder live under ``root``."""
    gradio_dir, work_dir = root / "gradio", root / "work"
    gradio_dir.mkdir(parents=True, exist_ok=True)
    # Read when components are made, so set before build_app; no analytics or version checks leave the machine.
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(gradio_dir))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    from vsrapp.web.guard import Limits
    from vsrapp.web.ui import build_app, launch

    limits = Limits(max_seconds=MAX_SECONDS, max_upload_mb=MAX_UPLOAD_MB, chunk_seconds=1.0, queue_size=4)
    demo = build_app(fast_models(), limits, work_dir=work_dir, threads=1)
    _, url, _ = launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Server(url, demo, gradio_dir, work_dir)
    finally:
        demo.close()
