"""Memory soak (issue #20 item 5): thousands of small frames through ``vsrapp upscale --model bicubic`` in a
child process whose RSS is sampled from outside, so nothing in the measurement runs inside the measured process.

Memory must stay flat once the job runs: the median RSS of the last third of the samples within a few tens of MB
of the first third's. A leak of one output frame (128x128 RGB, 48 kB) per frame would add about 94 MB over
the 2000 frames compared here; the fixed costs (imports, the model, the encoder's buffers) are in both thirds.

CI size: 3000 frames of 32x32, under 20 s on 2 busy cores. Larger: ``VSRAPP_SOAK_FRAMES=30000``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vsrapp.pipeline import job_dir_for

FRAMES = int(os.environ.get("VSRAPP_SOAK_FRAMES", "3000"))
W, H = 32, 32
FLAT_MB = 30.0  # allowed growth of the median RSS, last third against first third

pytestmark = pytest.mark.timeout(120 + FRAMES // 50)


def make_stream(path: Path, n: int) -> Path:
    """``n`` frames of a moving gradient (so the encoder has work that changes), H.264 at 25 fps. The motion
    repeats every 64 frames: converting each frame to YUV costs more than encoding it, and a cycle is enough."""
    yy, xx = np.mgrid[0:H, 0:W]
    cycle = []
    for i in range(64):
        rgb = np.stack([(xx * 4 + 4 * i) % 256, (yy * 5 + 8 * i) % 256, (xx + yy + 12 * i) % 256], -1)
        cycle.append(av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24").reformat(format="yuv420p"))
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "g": "50"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        for i in range(n):
            frame = cycle[i % len(cycle)]
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return path


def rss_mb(pid: int) -> float | None:
    """Resident memory of another process (Linux /proc; psutil elsewhere); None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None  # a zombie: its memory is already gone
    except FileNotFoundError:
        try:
            import psutil

            return psutil.Process(pid).memory_info().rss / 2**20
        except Exception:  # no psutil, or the process has ended
            return None


def finished_segments(manifest: Path) -> int:
    try:
        return len(json.loads(manifest.read_text())["segments"])
    except (OSError, ValueError, KeyError):  # not written yet, or being replaced
        return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="samples RSS through /proc (Linux)")
def test_memory_stays_flat_over_thousands_of_frames(tmp_path):
    src, out = make_stream(tmp_path / "long.mp4", FRAMES), tmp_path / "out.mp4"
    segment = max(100, FRAMES // 10)
    cmd = [sys.executable, "-m", "vsrapp.cli", "upscale", str(src), str(out), "--model", "bicubic", "-q",
           "--threads", "1", "--segment-frames", str(segment)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    manifest = job_dir_for(out) / "manifest.json"
    samples: list[float] = []
    deadline = time.monotonic() + 60 + FRAMES / 25
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            # Only once the first segment is done: imports, the model and the first encoder are all in place,
            # and the job is the same kind of work until it ends.
            if finished_segments(manifest) >= 1:
                rss = rss_mb(proc.pid)
                if rss is not None and proc.poll() is None:
                    samples.append(rss)
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == FRAMES
    assert len(samples) >= 30, f"only {len(samples)} RSS samples: the job ran too fast to measure"
    third = len(samples) // 3
    first, last = statistics.median(samples[:third]), statistics.median(samples[-third:])
    print(f"\nsoak: {FRAMES} frames, {len(samples)} samples, RSS median first third {first:.1f} MB, "
          f"last third {last:.1f} MB, peak {max(samples):.1f} MB")
    assert last - first < FLAT_MB, (first, last, max(samples))
