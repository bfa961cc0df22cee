"""Seeded fuzzing of `vsrapp upscale` (issue #20, item 4): small real files from tests/media.py, mutated (bit flips,
truncations, overwritten runs, swapped or duplicated chunks, swapped or duplicated MP4 boxes), each run through
the CLI as a subprocess with a time limit. What a user must never see: a traceback, a hang, a crash by signal,
a file under the output name after a failure, or temporary files left beside it.

CI runs 16 cases (30 to 60 s on 2 shared cores: each is a fresh process); the full run is
``VSRAPP_FUZZ_CASES=300 python -m pytest -q tests/test_fuzz.py``. ``VSRAPP_FUZZ_SEED`` changes the seed,
``VSRAPP_FUZZ_ONLY=17,42`` re-runs single cases, and a failing case's mutated file stays in pytest's tmp folder
for reproducing by hand.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from media import (
    RATE,
    X264,
    _audio_stream,
    _video_stream,
    _write_audio,
    make_h264_aac,
    make_odd_size,
    make_vfr,
    make_with_subtitles,
    sine,
    write_pictures,
)

CASES = int(os.environ.get("VSRAPP_FUZZ_CASES", "16"))
SEED = int(os.environ.get("VSRAPP_FUZZ_SEED", "20"))
ONLY = [int(k) for k in os.environ.get("VSRAPP_FUZZ_ONLY", "").split(",") if k.strip()]
TIME_LIMIT = float(os.environ.get("VSRAPP_FUZZ_TIMEOUT", "90"))  # seconds a case may take; a clean run takes ~4
WORKERS = 2  # each case is one process, mostly torch's import: two at once halve the wall time on 2 cores

pytestmark = pytest.mark.timeout(1800)


# --- the corpus: one small file per container family ----------------------------------------------------------


def _make_stream_file(path: Path, fmt: str | None, vcodec: str, acodec: str, n: int = 10) -> Path:
    """``n`` frames of 64x48 video plus mono audio in the given container (FLV, MPEG-TS, AVI...)."""
    with av.open(str(path), "w", format=fmt) as out:
        v = _video_stream(out, vcodec, "yuv420p", options=X264 if vcodec == "libx264" else None)
        _write_audio(out, _audio_stream(out, acodec), sine(n / 25))
        write_pictures(out, v, n)
    return path


# name -> (file name, maker); every maker writes a file of a few kB that upscales in about a second
CORPUS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "mp4": ("h264_aac.mp4", lambda p: make_h264_aac(p, n=10)),
    "mp4-vfr": ("vfr.mp4", make_vfr),
    "mkv-subs": ("subs.mkv", lambda p: make_with_subtitles(p, p.parent)),
    "mkv-ffv1": ("odd.mkv", make_odd_size),
    "ts": ("tuner.ts", lambda p: _make_stream_file(p, "mpegts", "libx264", "mp2")),
    "flv": ("web.flv", lambda p: _make_stream_file(p, "flv", "libx264", "aac")),
    "avi": ("old.avi", lambda p: _make_stream_file(p, "avi", "mpeg4", "mp2")),
}
assert RATE == 48000  # the audio makers above write 48 kHz; the corpus sizes assume it


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz_corpus")
    return {name: maker(folder / filename).read_bytes() for name, (filename, maker) in CORPUS.items()}


# --- mutations ------------------------------------------------------------------------------------------------


def _mp4_boxes(data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[tuple[int, int]]:
    """(offset, size) of the MP4 boxes in ``data[start:end]`` and, recursively, inside the containers among them
    (moov, trak, mdia, minf, stbl...): the units a broken muxer or a bad edit moves around."""
    end = len(data) if end is None else end
    boxes, pos = [], start
    while pos + 8 <= end:
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if size < 8 or pos + size > end:
            break
        boxes.append((pos, size))
        if depth < 4 and kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"udta", b"dinf"):
            boxes += _mp4_boxes(data, pos + 8, pos + size, depth + 1)
        pos += size
    return boxes


def _chunk(rng: np.random.Generator, data: bytes, unit: int) -> tuple[int, int]:
    """A random (offset, length) run, aligned to ``unit`` (188 for MPEG-TS packets, 1 otherwise)."""
    length = int(rng.integers(1, max(2, min(4096, len(data) // 4) // unit))) * unit
    offset = int(rng.integers(0, max(1, (len(data) - length) // unit))) * unit
    return offset, length


def mutate(data: bytes, kind: str, rng: np.random.Generator, ts: bool) -> bytes:
    buf = bytearray(data)
    unit = 188 if ts else 1
    if kind == "bitflip":  # a few flipped bits anywhere: header, index or payload
        for pos in rng.integers(0, len(buf), int(rng.integers(1, 33))):
            buf[pos] ^= 1 << int(rng.integers(0, 8))
    elif kind == "truncate":
        buf = buf[: int(rng.integers(1, len(buf)))]
    elif kind == "overwrite":  # a run of random bytes, as a bad sector or a lost network packet leaves
        offset, length = _chunk(rng, data, 1)
        buf[offset:offset + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    elif kind == "swap":  # two chunks trade places (same length, so the file size stays)
        a, length = _chunk(rng, data, unit)
        b = int(rng.integers(0, max(1, (len(data) - length) // unit))) * unit
        first, second = bytes(buf[a:a + length]), bytes(buf[b:b + length])
        buf[b:b + length], buf[a:a + length] = first, second
    elif kind == "duplicate":  # a chunk repeated in place, as a resent packet or a bad concatenation does
        offset, length = _chunk(rng, data, unit)
        buf[offset:offset] = data[offset:offset + length]
    elif kind in ("box-swap", "box-dup"):
        boxes = _mp4_boxes(data) or [(0, len(data))]
        offset, size = boxes[int(rng.integers(0, len(boxes)))]
        if kind == "box-dup":
            buf[offset:offset] = data[offset:offset + size]
        else:  # swap with a later box; offsets inside the file (stco, mdat) now point elsewhere
            later = [b for b in boxes if b[0] >= offset + size] or [(offset, size)]
            o2, s2 = later[int(rng.integers(0, len(later)))]
            buf = bytearray(data[:offset] + data[o2:o2 + s2] + data[offset + size:o2] + data[offset:offset + size]
                            + data[o2 + s2:]) if o2 != offset else buf
    else:
        raise ValueError(kind)
    return bytes(buf)


GENERIC = ["bitflip", "truncate", "overwrite", "swap", "duplicate"]


@dataclass(frozen=True)
class Case:
    number: int
    source: str
    kind: str
    out_ext: str

    def __str__(self) -> str:
        return f"case {self.number} ({self.kind} of {self.source} -> {self.out_ext})"


def plan(number: int) -> Case:
    """Case ``number`` walks the sources first; each source starts at another mutation kind, so the first two
    rounds (14 cases) already use every kind, and a few dozen cover every pair."""
    names = list(CORPUS)
    source = names[number % len(names)]
    kinds = ["box-swap", "bitflip", "box-dup", "truncate", "overwrite", "swap", "duplicate"] \
        if source.startswith("mp4") else GENERIC
    kind = kinds[(number // len(names) + names.index(source)) % len(kinds)]
    return Case(number, source, kind, [".mp4", ".mkv"][(number // 3) % 2])


# --- one run --------------------------------------------------------------------------------------------------


def run_case(case: Case, corpus: dict[str, bytes], root: Path) -> str | None:
    """Run one mutated file through the CLI; None if the outcome is one a user may see, else what went wrong."""
    rng = np.random.default_rng([SEED, case.number])
    data = mutate(corpus[case.source], case.kind, rng, ts=case.source == "ts")
    work = root / f"case{case.number:04d}"
    out_dir = work / "out"
    out_dir.mkdir(parents=True)
    src = work / ("input" + Path(CORPUS[case.source][0]).suffix)
    src.write_bytes(data)
    out = out_dir / f"upscaled{case.out_ext}"
    cmd = [sys.executable, "-m", "vsrapp.cli", "upscale", str(src), str(out), "--model", "bicubic", "-q",
           "--threads", "1", "--preset", "ultrafast"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # its own group, so a hang is killed with its children
    try:
        _, err = proc.communicate(timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"{case}: no result after {TIME_LIMIT:.0f} s (hang); input kept at {src}"
    lines = [line for line in err.splitlines() if line.strip()]
    left = sorted(p.name for p in out_dir.iterdir())
    problems = []
    if proc.returncode < 0:
        problems.append(f"killed by signal {-proc.returncode}")
    if "Traceback" in err:
        problems.append("a traceback")
    if proc.returncode == 0:
        if left != [out.name]:
            problems.append(f"output folder holds {left}")
        else:
            try:
                with av.open(str(out)) as c:
                    if not any(True for _ in c.decode(video=0)):
                        problems.append("the output has no frame")
            except (av.error.FFmpegError, UnicodeDecodeError) as exc:
                problems.append(f"the output does not decode ({exc})")
    elif proc.returncode > 0:
        if not lines or not lines[-1].startswith("vsrapp: error: "):
            problems.append("no one-line error at the end")
        if left:
            problems.append(f"left behind after the failure: {left}")
    if not problems:
        return None
    tail = "\n    ".join(lines[-6:])
    return f"{case}, exit {proc.returncode}: {'; '.join(problems)}; input kept at {src}\n    {tail}"


def test_mutated_files_work_or_fail_cleanly(corpus, tmp_path):
    numbers = ONLY or list(range(CASES))
    with ThreadPoolExecutor(WORKERS) as pool:
        found = [p for p in pool.map(lambda n: run_case(plan(n), corpus, tmp_path), numbers) if p]
    assert not found, f"{len(found)} of {len(numbers)} cases:\n" + "\n".join(found)


# Cases the fuzzer found, kept as they were drawn (same seed and case number, so the same bytes): a TS whose
# swapped packets send audio dts backwards (nudged by one 1/90000 tick, it rounded back onto the previous dts in
# mp4's 1/48000 and the muxer refused it), and an mp4 whose moved boxes leave an audio track without a codec
# (a traceback in the side-stream planner). Both now give the x4 video.
FOUND = [Case(25, "ts", "swap", ".mp4"), Case(50, "mp4-vfr", "box-swap", ".mp4")]


@pytest.mark.skipif(SEED != 20, reason="the found cases are those of seed 20")
@pytest.mark.parametrize("case", FOUND, ids=str)
def test_found_cases_stay_fixed(corpus, tmp_path, case):
    assert run_case(case, corpus, tmp_path) is None
    assert (tmp_path / f"case{case.number:04d}" / "out" / f"upscaled{case.out_ext}").is_file()


# --- the harness itself ---------------------------------------------------------------------------------------


def test_mutations_are_seeded_and_change_the_file(corpus):
    data = corpus["mp4"]
    assert len(_mp4_boxes(data)) > 10  # ftyp, moov and its tree, mdat: the box mutations have material
    for kind in [*GENERIC, "box-swap", "box-dup"]:
        a = mutate(data, kind, np.random.default_rng([SEED, 1]), ts=False)
        b = mutate(data, kind, np.random.default_rng([SEED, 1]), ts=False)
        assert a == b and a != data, kind
    assert {plan(n).kind for n in range(len(CORPUS) * 2)} == {*GENERIC, "box-swap", "box-dup"}
    assert {plan(n).source for n in range(CASES)} == set(CORPUS)
