"""Upscale a file while showing the result as it is made: :func:`stream_upscale` yields progress, preview
chunks, and at the end the full-quality file.

The network runs once. :func:`vsrapp.upscale_file` does the real job (threads, segments, audio, timing,
colour) on a worker thread with a :class:`TeeUpscaler`, an :class:`~vsrapp.Upscaler` that also hands every
upscaled frame to a bounded queue; the generator drains it into :class:`ChunkWriter`, which cuts the frames into
H.264 MPEG-TS files of equal length. Those are what a streaming ``gr.Video`` takes without re-encoding (Gradio
only remuxes ``.ts`` H.264 chunks; ``.mp4`` chunks would be encoded a second time).

Preview chunks are video only: the audio is in the final file. Chunks are scaled down to ``max_side`` and
encoded fast (``veryfast``); the final file is never touched by this.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from torch import nn

from .. import zoo
from ..engine.upscaler import Upscaler, pick_device
from ..jobs import EncodeOptions, EngineOptions, JobSpec
from ..pipeline import UpscaleReport, upscale_file
from ..video import probe

DEFAULT_CHUNK_SECONDS = 2.0
DEFAULT_MAX_SIDE = 1280
_FALLBACK_FPS = Fraction(25)
_ENGINE_OPTIONS = ("window", "lookahead", "tile", "tile_overlap", "threads", "backend")  # EngineOptions
_ENCODE_OPTIONS = ("codec", "crf", "preset", "pix_fmt", "out_scale")  # EncodeOptions
_POLL = 0.1  # seconds between checks for cancellation while a queue is full or empty


@dataclass(frozen=True)
class Progress:
    done: int
    total: int | None
    fps: float
    eta: float | None  # seconds; None while unknown

    def text(self) -> str:
        total = f"/{self.total}" if self.total else ""
        eta = f" · ETA {_clock(self.eta)}" if self.eta is not None else ""
        return f"frames {self.done}{total} · {self.fps:.2f} frames/s{eta}"


@dataclass(frozen=True)
class Chunk:
    path: Path
    index: int
    frames: int
    seconds: float


@dataclass(frozen=True)
class Done:
    path: Path
    report: UpscaleReport


Event = Progress | Chunk | Done


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s} s"


class ChunkWriter:
    """RGB frames in, consecutive ``chunk_NNNN.ts`` files of ``frames_per_chunk`` frames out (the last may be
    shorter). Each chunk is a separate H.264 stream starting with a key frame at time 0, so it plays alone."""

    def __init__(self, folder: str | os.PathLike, fps: Fraction | None, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                 max_side: int = DEFAULT_MAX_SIDE) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fps = Fraction(fps) if fps else _FALLBACK_FPS
        self.frames_per_chunk = max(1, round(chunk_seconds * self.fps))
        self.max_side = max_side
        self.index = 0
        self._out: av.container.OutputContainer | None = None
        self._stream = None
        self._count = 0
        self._size: tuple[int, int] | None = None

    def add(self, image: np.ndarray) -> Chunk | None:
        """Encode one frame; return the chunk it completed, if any."""
        if self._out is None:
            self._open(image.shape[1], image.shape[0])
        frame = av.VideoFrame.from_ndarray(_to_rgb24(image), format="rgb24")
        w, h = self._size
        frame = frame.reformat(width=w, height=h, format="yuv420p", dst_colorspace="ITU709",
                               interpolation="BILINEAR")
        frame.pts, frame.time_base = self._count, 1 / self.fps
        self._out.mux(self._stream.encode(frame))
        self._count += 1
        return self._close() if self._count == self.frames_per_chunk else None

    def finish(self) -> Chunk | None:
        """Close the last, partial chunk (None if there is none)."""
        return self._close() if self._out is not None else None

    def abort(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def _open(self, width: int, height: int) -> None:
        if self._size is None:
            self._size = _fit(width, height, self.max_side)
        path = self.folder / f"chunk_{self.index:04d}.ts"
        self._out = av.open(str(path), "w", format="mpegts")
        stream = self._out.add_stream("libx264", rate=self.fps,
                                      options={"preset": "veryfast", "crf": "23", "bf": "0"})
        stream.width, stream.height = self._size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self.fps
        # The frames are converted with the BT.709 matrix above; say so, or players guess.
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = 1, 1, 1, 1
        self._stream = stream
        self._count = 0

    def _close(self) -> Chunk:
        self._out.mux(self._stream.encode(None))
        self._out.close()
        chunk = Chunk(self.folder / f"chunk_{self.index:04d}.ts", self.index, self._count,
                      float(self._count / self.fps))
        self._out, self.index = None, self.index + 1
        return chunk


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size within ``max_side`` with the same aspect, both even (4:2:0 needs it)."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _to_rgb24(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:  # 10-bit sources: the preview is 8-bit anyway
        return (image >> 8).astype(np.uint8)
    return image


class _Cancelled(Exception):
    """Raised in a pipeline thread when the caller has gone: upscale_file stops all its threads and re-raises."""


class TeeUpscaler(Upscaler):
    """An :class:`Upscaler` that also passes every frame it outputs to ``sink`` (set after construction)."""

    sink = None

    def push(self, frame):
        return self._tee(super().push(frame))

    def flush(self):
        return self._tee(super().flush())

    def _tee(self, frames: list) -> list:
        if self.sink is not None:
            for f in frames:
                self.sink(f)
        return frames


def stream_upscale(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model: str | nn.Module,
    preview_dir: str | os.PathLike | None,
    *,
    device: str = "auto",
    precision: str = "auto",
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    max_side: int = DEFAULT_MAX_SIDE,
    progress_every: float = 0.5,
    model_name: str | None = None,
    **upscale_options,
) -> Iterator[Event]:
    """Upscale ``src`` into ``dst`` with :func:`vsrapp.upscale_file`; yield :class:`Progress` (at most every
    ``progress_every`` s), each :class:`Chunk` of the preview as soon as it is encoded, and finally
    :class:`Done`. With ``preview_dir=None`` there are no chunks, only progress and the end (the point is then
    that the caller gets control back regularly). Closing the generator early stops the job and waits for its
    threads."""
    info = probe(src)
    # The job, described once as every front end describes it (vsrapp.jobs); what is left of the options is
    # how to run it (resume, overwrite, copy_streams).
    model, name = zoo.resolve_model(model, pick_device(device))
    engine = EngineOptions(precision=precision, device=device,
                           **{k: upscale_options.pop(k) for k in _ENGINE_OPTIONS if k in upscale_options})
    encode = EncodeOptions(**{k: upscale_options.pop(k) for k in _ENCODE_OPTIONS if k in upscale_options})
    spec = JobSpec(os.fspath(src), os.fspath(dst), model_name or name, engine, encode,
                   upscale_options.pop("segment_frames", None))
    upscaler = TeeUpscaler(model, **engine.upscaler_kwargs())
    job = _Job(spec, upscaler, upscale_options,
               queue_frames=max(8, round(chunk_seconds * float(info.fps or _FALLBACK_FPS))))
    chunks = ChunkWriter(preview_dir, info.fps, chunk_seconds, max_side) if preview_dir is not None else None
    if chunks is None:
        upscaler.sink = None  # no preview: frames need not cross threads
    job.start()
    last_progress = 0.0
    try:
        while True:
            item = job.next_item()
            now = time.monotonic()
            if item is not None and item[0] == "frame":
                chunk = chunks.add(item[1]) if chunks is not None else None
                if chunk is not None:
                    yield chunk
            elif item is not None and item[0] == "done":
                tail = chunks.finish() if chunks is not None else None
                if tail is not None:
                    yield tail
                yield job.progress()
                yield Done(Path(dst), item[1])
                return
            elif item is not None and item[0] == "error":
                raise item[1]
            if now - last_progress >= progress_every:
                last_progress = now
                yield job.progress()
    finally:
        job.stop()
        if chunks is not None:
            chunks.abort()


class _Job:
    """upscale_file on a worker thread; its frames, outcome and progress reach the caller through a queue."""

    def __init__(self, spec: JobSpec, upscaler: TeeUpscaler, options: dict, queue_frames: int) -> None:
        self.spec, self.options = spec, options
        self.upscaler = upscaler
        self.items: queue.Queue = queue.Queue(maxsize=queue_frames)
        self.cancel = threading.Event()
        self.done = 0
        self.total: int | None = None
        self.started = time.monotonic()
        self.first_frame_at: float | None = None
        self.thread = threading.Thread(target=self._run, name="vsrapp-web-job", daemon=True)
        upscaler.sink = self._frame

    def start(self) -> None:
        self.started = time.monotonic()
        self.thread.start()

    def stop(self) -> None:
        self.cancel.set()
        self.thread.join()

    def next_item(self):
        try:
            return self.items.get(timeout=_POLL)
        except queue.Empty:
            return None

    def progress(self) -> Progress:
        done, total = self.done, self.total
        # Speed from the first output frame on: model loading and the first window's latency are not speed.
        t0 = self.first_frame_at
        elapsed = time.monotonic() - t0 if t0 is not None else 0.0
        fps = (done - 1) / elapsed if done > 1 and elapsed > 0 else 0.0
        eta = (total - done) / fps if total and fps > 0 else None
        return Progress(done, total, fps, max(0.0, eta) if eta is not None else None)

    def _put(self, item) -> None:
        while True:
            if self.cancel.is_set():
                raise _Cancelled()
            try:
                self.items.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _frame(self, image) -> None:
        self._put(("frame", image))

    def _on_progress(self, done: int, total: int | None) -> None:
        # Called by the encode thread after each frame: raising here stops upscale_file even with no preview.
        if self.cancel.is_set():
            raise _Cancelled()
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        self.done, self.total = done, total

    def _run(self) -> None:
        try:
            report = upscale_file(self.spec.input, self.spec.output, spec=self.spec, upscaler=self.upscaler,
                                  progress=self._on_progress, **self.options)
        except _Cancelled:
            return
        except BaseException as exc:  # handed to the caller, which raises it on its own thread
            try:
                self._put(("error", exc))
            except _Cancelled:
                pass
            return
        try:
            self._put(("done", report))
        except _Cancelled:
            pass
