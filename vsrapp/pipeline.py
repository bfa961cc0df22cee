"""``upscale_file``: decode → upscale → encode on three threads, in resumable segments.

- Three stages with bounded queues: a decode thread, the network (the calling thread), an encode thread. The
  network never waits on I/O unless a queue runs dry, and memory is bounded by the queues and the window.
- The output is encoded in segments of whole windows into a job folder beside the output
  (``.<name>.vsrapp-job/``), with a manifest and, at each segment's end, the recurrent state (a few MB). An
  interrupted job (Ctrl-C, crash, power loss) continues with ``resume=True`` from the last finished segment
  and gives the same frames as an uninterrupted run. At the end the segments are joined losslessly (packet
  copy) with the source's audio and subtitles in one write, the file is renamed to its final name, and the
  job folder is removed. Until then nothing exists under the final name.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NoReturn

import torch
from torch import nn

from . import zoo
from .upscaler import DEFAULT_LOOKAHEAD, DEFAULT_MODEL, DEFAULT_TILE_OVERLAP, DEFAULT_WINDOW, Upscaler, pick_device
from .video import Frame, VideoError, VideoInfo, VideoReader, VideoWriter, probe
from .video.concat import join_segments
from .video.limits import check_output_size

MANIFEST_VERSION = 1
DEFAULT_SEGMENT_FRAMES = 480
QUEUE_FRAMES = 16
ProgressCallback = Callable[[int, int | None], None]
_END = object()


@dataclass
class UpscaleReport:
    input: str
    output: str
    model: str
    device: str
    frames: int
    resumed_from: int
    seconds: float
    network_seconds: float
    reader_errors: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return (self.frames - self.resumed_from) / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class JobSettings:
    """What must be the same for a resumed job to produce the same file."""

    model: str
    precision: str
    window: int
    lookahead: int
    tile: int | None
    tile_overlap: int
    codec: str
    crf: int | None
    preset: str | None
    pix_fmt: str | None
    segment_frames: int
    out_scale: float | None = None


def job_dir_for(output: str | os.PathLike) -> Path:
    out = Path(output)
    return out.parent / f".{out.name}.vsrapp-job"


def _source_signature(path: str) -> dict:
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_manifest(path: Path, source: dict, settings: dict, mode: str | None) -> dict:
    """A job manifest to resume from, refused (VideoError) if unreadable, made by the other kind of run
    (``mode``: None for single-process, "ray" for ``--ray``), from another or a changed input, or with other
    settings."""
    where = path.parent
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VideoError(f"{where}: no readable job manifest to resume from ({exc})") from exc
    if manifest.get("mode") != mode:
        how = "with --ray; resume it with --ray" if manifest.get("mode") == "ray" else \
            "without --ray; resume it without --ray"
        raise VideoError(f"{where}: this job was started {how}")
    if manifest.get("source") != source:
        raise VideoError(f"{where}: the interrupted job was made from a different or changed input file; "
                         "start over without --resume")
    if manifest.get("settings") != settings:
        diff = {k: v for k, v in manifest.get("settings", {}).items() if settings.get(k) != v}
        raise VideoError(f"{where}: the interrupted job used other settings {diff}; resume with the same "
                         "options or start over")
    return manifest


def write_manifest(path: Path, manifest: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)  # atomic: a crash leaves the old or the new manifest, never half


class Job:
    """The job folder: finished segments, their end states, and the manifest that lists them."""

    def __init__(self, directory: Path, source: str, settings: JobSettings, ext: str) -> None:
        self.dir = directory
        self.source = _source_signature(source)
        self.settings = settings
        self.ext = ext
        self.segments: list[dict] = []

    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    @property
    def frames_done(self) -> int:
        return sum(s["frames"] for s in self.segments)

    def start_fresh(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.save()

    def load(self) -> None:
        """Read the manifest of an interrupted job; refuse one made from another input or other settings."""
        manifest = read_manifest(self.manifest_path, self.source, asdict(self.settings), mode=None)
        # Trust only segments whose files are all there (a crash can come between a file and the manifest).
        for seg in manifest["segments"]:
            if not all((self.dir / seg[k]).is_file() for k in ("file", "state")):
                break
            self.segments.append(seg)

    def save(self) -> None:
        write_manifest(self.manifest_path, {"version": MANIFEST_VERSION, "source": self.source,
                                            "settings": asdict(self.settings), "segments": self.segments})

    def segment_path(self, k: int) -> Path:
        return self.dir / f"segment_{k:05d}{self.ext}"

    def finish_segment(self, k: int, first: int, frames: int, state: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save

        state_name = f"state_{k:05d}.safetensors"
        # Serialized in memory (a few MB) and written by Python: a full disk is then an OSError with its errno,
        # not safetensors' own error type.
        (self.dir / state_name).write_bytes(save({n: t.contiguous() for n, t in state.items()}))
        self.segments.append({"index": k, "first_frame": first, "frames": frames,
                              "file": self.segment_path(k).name, "state": state_name})
        self.save()

    def last_state(self) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(str(self.dir / self.segments[-1]["state"])) if self.segments else {}


def check_out_scale(out_scale: float | None, model_scale: int) -> float:
    """The output's scale: the model's, or ``out_scale`` if given (a resize down, never up: Lanczos past the
    network would only blur)."""
    if out_scale is None:
        return model_scale
    if not 0 < out_scale <= model_scale:
        raise VideoError(f"--scale {out_scale:g}: must be above 0 and at most the model's scale ({model_scale})")
    return out_scale


def _segment_length(requested: int | None, upscaler: Upscaler) -> int:
    """Segments hold whole windows, so each one ends exactly where the recurrent state is checkpointed."""
    n = requested or DEFAULT_SEGMENT_FRAMES
    unit = upscaler.window if upscaler.bidirectional else 1
    return max(unit, -(-n // unit) * unit)


def upscale_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model: str | nn.Module = DEFAULT_MODEL,
    *,
    device: str = "auto",
    precision: str = "auto",
    window: int = DEFAULT_WINDOW,
    lookahead: int = DEFAULT_LOOKAHEAD,
    tile: int | None = None,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
    codec: str = "libx264",
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    segment_frames: int | None = None,
    out_scale: float | None = None,
    copy_streams: bool = True,
    progress: ProgressCallback | None = None,
    upscaler: Upscaler | None = None,
) -> UpscaleReport:
    """Upscale the video file ``src`` into ``dst`` (container from its extension), keeping audio, subtitles,
    timing and colour. ``resume=True`` continues an interrupted job for the same ``dst``. ``out_scale``
    (at most the model's scale) resizes the network's output to that multiple of the input before encoding.

    An output too large for the codec (see :mod:`vsrapp.video.limits`) is refused before any decoding."""
    src, dst = os.fspath(src), os.fspath(dst)
    info = probe(src)  # raises VideoError for anything that is not a readable video
    if os.path.exists(dst) and not overwrite:
        if os.path.abspath(dst) == os.path.abspath(src) or os.path.samefile(dst, src):
            raise VideoError(f"{dst}: refusing to write over the input file")
        raise VideoError(f"{dst}: already exists (use --overwrite to replace it)")
    model, model_name = zoo.resolve_model(model, upscaler.device if upscaler is not None else pick_device(device))
    if upscaler is None:
        upscaler = Upscaler(model, device=device, precision=precision, window=window, lookahead=lookahead,
                            tile=tile, tile_overlap=tile_overlap)
    check_output_size(src, info.width, info.height, check_out_scale(out_scale, upscaler.scale), codec)
    settings = JobSettings(model_name, str(upscaler.dtype).removeprefix("torch."), upscaler.window,
                           upscaler.lookahead, upscaler.tile, upscaler.tile_overlap, codec, crf, preset, pix_fmt,
                           _segment_length(segment_frames, upscaler), out_scale)
    job = Job(job_dir_for(dst), src, settings, Path(dst).suffix or ".mkv")
    if resume and job.manifest_path.exists():
        job.load()
    elif job.dir.exists() and not overwrite:
        raise VideoError(f"{dst}: an interrupted job is in {job.dir}; continue it with --resume, or start over "
                         "with --overwrite")
    else:
        try:
            job.start_fresh()
        except OSError as exc:  # an output folder that is read-only, full, or not ours
            _job_failed(exc, job, dst)

    start = job.frames_done
    upscaler.reset()
    if start:
        upscaler.load_state_dict(job.last_state(), start)
    run = _Run(info, job, upscaler, start, progress,
               dict(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, scale=upscaler.scale, out_scale=out_scale))
    started = time.perf_counter()
    try:
        frames, network_seconds, errors = run.execute()
        parts = [job.dir / s["file"] for s in job.segments]
        join_segments(parts, info, dst, copy_streams=copy_streams)
    except Exception as exc:  # not KeyboardInterrupt: an interrupted job always keeps its folder for --resume
        _job_failed(exc, job, dst)
    shutil.rmtree(job.dir, ignore_errors=True)
    return UpscaleReport(src, dst, model_name, str(upscaler.device), frames, start,
                         round(time.perf_counter() - started, 3), round(network_seconds, 3), errors)


# Failures of the machine, not of the input: once fixed (space freed, permissions or the drive back), --resume
# gets past them.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM}


def _os_error(exc: BaseException) -> OSError | None:
    """The OS error behind ``exc`` (itself, or what it was raised from), if any; PyAV's av.error.OSError is one."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc = exc.__cause__
    return None


def _job_failed(exc: Exception, job: Job, dst: str) -> NoReturn:
    """Raise the failure of a job as one line, and keep its folder only where --resume can get past it.

    A failure of the input (a :class:`VideoError` not caused by the system) would recur on every resume, so its
    folder goes: the next run starts clean instead of asking for --resume or --overwrite. A full disk, lost
    permissions or an I/O error keep finished segments for --resume; so does an unexpected error (it is re-raised
    as it is), since hours of finished segments are worth more than a tidy folder."""
    cause = _os_error(exc)
    system = cause is not None and cause.errno in _ENVIRONMENT_ERRNOS
    keep = bool(job.segments) and (system or not isinstance(exc, VideoError))
    if not keep:
        shutil.rmtree(job.dir, ignore_errors=True)
    if not system:
        raise exc
    what = cause.strerror or str(cause)
    if cause.filename:
        what += f": {cause.filename}"
    fix = "free some space" if cause.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "fix that"
    todo = (f"{fix}, then continue with --resume (the {job.frames_done} frames done are kept in {job.dir})"
            if keep else f"{fix} and run again")
    raise VideoError(f"{dst}: {what}; {todo}") from exc


class _Run:
    """One pass over the frames still to do: the three stages and what flows between them."""

    def __init__(self, info: VideoInfo, job: Job, upscaler: Upscaler, start: int,
                 progress: ProgressCallback | None, writer_options: dict) -> None:
        self.info, self.job, self.upscaler, self.start = info, job, upscaler, start
        self.progress = progress
        self.writer_options = writer_options
        self.segment_frames = job.settings.segment_frames
        self.decoded: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.upscaled: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.reader_errors: list[str] = []
        self.frames_written = start

    # ------------------------------------------------------------------------------------------- plumbing
    def _put(self, q: queue.Queue, item) -> bool:
        """Put unless the run is stopping; never blocks forever on a queue nobody reads any more."""
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue):
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return _END

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        self.stop.set()

    # ------------------------------------------------------------------------------------------- stages
    def _decode(self) -> None:
        try:
            with VideoReader(self.info.path) as reader:
                for frame in reader.frames(start=self.start):
                    if not self._put(self.decoded, frame):
                        return
                self.reader_errors = list(reader.errors)
            self._put(self.decoded, _END)
        except BaseException as exc:
            self._fail(exc)

    def _encode(self) -> None:
        writer: VideoWriter | None = None
        k = len(self.job.segments)
        first = self.start
        try:
            while True:
                item = self._get(self.upscaled)
                if item is _END:
                    break
                frame, state = item
                if writer is None:
                    writer = VideoWriter(self.job.segment_path(k), self.info, copy_streams=False,
                                         **self.writer_options)
                writer.write(frame)
                self.frames_written += 1
                if self.progress:
                    self.progress(self.frames_written, self.info.frame_count)
                if state is not None:  # the last frame of a segment (or of the video) carries the state
                    writer.close()
                    self.job.finish_segment(k, first, self.frames_written - first, state)
                    writer, k, first = None, k + 1, self.frames_written
            if writer is not None and self.stop.is_set():  # stopped mid-segment: that segment is discarded
                writer.abort()
            elif writer is not None:  # the end of the video closes the last segment; nothing follows it
                writer.close()
                self.job.finish_segment(k, first, self.frames_written - first, {})
        except BaseException as exc:
            if writer is not None:
                writer.abort()
            self._fail(exc)

    def _network(self) -> float:
        """Runs on the calling thread; returns the seconds spent in the network (push/flush)."""
        pending: deque[Frame] = deque()
        spent = 0.0
        upscaler, seg = self.upscaler, self.segment_frames
        while True:
            item = self._get(self.decoded)
            if item is _END:
                break
            pending.append(item)
            t0 = time.perf_counter()
            outs = upscaler.push(item.image)
            spent += time.perf_counter() - t0
            if not self._emit(outs, pending, at_boundary=upscaler.frames_out % seg == 0):
                return spent
        if self.stop.is_set():
            return spent
        t0 = time.perf_counter()
        outs = upscaler.flush()
        spent += time.perf_counter() - t0
        self._emit(outs, pending, at_boundary=False)
        self._put(self.upscaled, _END)
        return spent

    def _emit(self, outs: list, pending: deque[Frame], at_boundary: bool) -> bool:
        for i, image in enumerate(outs):
            src = pending.popleft()
            last = i == len(outs) - 1
            state = self.upscaler.state_dict() if last and at_boundary else None
            frame = Frame(image=image, pts=src.pts, time_base=src.time_base, index=src.index,
                          duration=src.duration)
            if not self._put(self.upscaled, (frame, state)):
                return False
        return True

    def execute(self) -> tuple[int, float, list[str]]:
        decoder = threading.Thread(target=self._decode, name="vsrapp-decode", daemon=True)
        encoder = threading.Thread(target=self._encode, name="vsrapp-encode", daemon=True)
        decoder.start()
        encoder.start()
        spent = 0.0
        try:
            spent = self._network()
        except BaseException as exc:  # Ctrl-C lands here too: stop the other stages, keep finished segments
            self._fail(exc)
        finally:
            decoder.join()
            encoder.join()
        if self.failure is not None:
            raise self.failure
        if self.frames_written == 0:
            raise VideoError(f"{self.info.path}: no frames could be decoded")
        return self.frames_written, spent, self.reader_errors
