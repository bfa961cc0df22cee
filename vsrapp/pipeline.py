"""``upscale_file``: decode → upscale → encode on three threads, in resumable segments.

- Three stages with bounded queues: a decode thread, the network (the calling thread), an encode thread. The
  network never waits on I/O unless a queue runs dry, and memory is bounded by the queues and the window.
- The output is encoded in segments of whole windows into a job folder beside the output
  (``.<name>.vsrapp-job/``), with a manifest and, at each segment's end, the recurrent state (a few MB). An
  interrupted job (Ctrl-C, crash, power loss) continues with ``resume=True`` from the last finished segment
  and gives the same frames as an uninterrupted run. At the end the segments are joined losslessly (packet
  copy) with the source's audio and subtitles in one write, the file is renamed to its final name, and the
  job folder is removed. Until then nothing exists under the final name.
- The job is a :class:`vsrapp.jobs.JobSpec` (built here from the keywords, or handed in by a front end); its
  folder, manifest, resume check and segment plan are :mod:`vsrapp.jobs`'.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NoReturn

import torch
from torch import nn

from . import zoo
from .engine.upscaler import (
    DEFAULT_LOOKAHEAD,
    DEFAULT_MODEL,
    DEFAULT_TILE_OVERLAP,
    DEFAULT_WINDOW,
    Upscaler,
    pick_device,
)
from .jobs.folder import JobFolder
from .jobs.segments import DEFAULT_SEGMENT_FRAMES, SegmentPlan
from .jobs.spec import (
    MANIFEST_VERSION,
    EncodeOptions,
    EngineOptions,
    JobSpec,
    job_dir_for,
    read_manifest,
    write_manifest,
)
from .video import Frame, VideoError, VideoInfo, VideoReader, VideoWriter, probe
from .video.codecs import choose_video_codec
from .video.concat import join_segments
from .video.limits import check_output_size
from .video.notes import warn_about_input

# Kept importable from here, where they used to live (vsrapp.jobs holds them now).
__all__ = ["DEFAULT_SEGMENT_FRAMES", "MANIFEST_VERSION", "Job", "UpscaleReport", "check_out_scale",
           "environment_error", "environment_message", "job_dir_for", "read_manifest", "upscale_file", "write_manifest"]

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
    precision: str = ""  # what ran: fp32, fp16, bf16 (autocast) or int8

    @property
    def fps(self) -> float:
        return (self.frames - self.resumed_from) / self.seconds if self.seconds else 0.0


class Job(JobFolder):
    """A single-process job's folder: finished segments, their end states, and the manifest that lists them."""

    def __init__(self, spec: JobSpec) -> None:
        super().__init__(spec)
        self.segments: list[dict] = []

    @property
    def frames_done(self) -> int:
        return sum(s["frames"] for s in self.segments)

    def load(self, manifest: dict) -> None:
        """Continue from the manifest of an interrupted job (already checked against the spec)."""
        # Trust only segments whose files are all there (a crash can come between a file and the manifest).
        for seg in manifest["segments"]:
            if not all((self.dir / seg[k]).is_file() for k in ("file", "state")):
                break
            self.segments.append(seg)

    def save(self) -> None:
        super().save(segments=self.segments)

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
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    segment_frames: int | None = None,
    out_scale: float | None = None,
    deinterlace: str = "auto",
    copy_streams: bool = True,
    progress: ProgressCallback | None = None,
    upscaler: Upscaler | None = None,
    spec: JobSpec | None = None,
) -> UpscaleReport:
    """Upscale the video file ``src`` into ``dst`` (container from its extension), keeping audio, subtitles,
    timing and colour. ``resume=True`` continues an interrupted job for the same ``dst``. ``out_scale``
    (at most the model's scale) resizes the network's output to that multiple of the input before encoding.
    ``codec``: the video encoder; None picks one the output's container holds (libx264; libvpx-vp9 for .webm),
    and one the container cannot hold is refused before any work (:func:`vsrapp.video.codecs.choose_video_codec`).
    ``deinterlace``: "auto" runs interlaced inputs through FFmpeg's bwdif before the network, "on" every input,
    "off" none (:mod:`vsrapp.video.deinterlace`).

    ``spec``: the job as a front end already described it (:class:`vsrapp.jobs.JobSpec`, model name resolved);
    the engine and encode options above are then not read, and the zoo is not consulted again. With
    ``upscaler``, the engine options are the Upscaler's own.

    An output too large for the codec (see :mod:`vsrapp.video.limits`) is refused before any decoding."""
    src, dst = os.fspath(src), os.fspath(dst)
    info = probe(src)  # raises VideoError for anything that is not a readable video
    if spec is None:
        model, name = zoo.resolve_model(model, upscaler.device if upscaler is not None else pick_device(device),
                                        upscaler.precision if upscaler is not None else precision)
        spec = JobSpec(src, dst, name, EngineOptions(precision, window, lookahead, tile, tile_overlap, device),
                       EncodeOptions(codec, crf, preset, pix_fmt, out_scale), segment_frames,
                       deinterlace=deinterlace)
    else:
        spec = spec.for_file(src, dst)
        model = spec.model if isinstance(model, str) else model  # a module stays; a name is the resolved one
    spec = spec.for_input(info)
    # The codec asked for if the output's container holds it (else one line, before any work), or with none asked
    # for, the first that fits: H.264, VP9 for WebM (issue #20).
    spec = replace(spec, encode=replace(spec.encode, codec=choose_video_codec(spec.encode.codec, dst)))
    job = Job(spec)
    job.check_output(overwrite)
    if upscaler is None:
        upscaler = Upscaler(model, **spec.engine.upscaler_kwargs())
    check_output_size(src, info.width, info.height, check_out_scale(spec.encode.out_scale, upscaler.scale),
                      spec.encode.codec)
    warn_about_input(info, spec.encode.codec, spec.deinterlacing)  # interlaced, lost HDR metadata: a line each
    # What runs: the Upscaler's options (precision resolved), segments of whole windows.
    job.spec = spec = spec.for_stream(EngineOptions.of(upscaler), upscaler.bidirectional)
    plan = SegmentPlan.for_stream(spec.segment_frames, upscaler.bidirectional, upscaler.window, upscaler.lookahead)
    manifest = job.open(resume, overwrite)
    if manifest is not None:
        job.load(manifest)
    else:
        try:
            job.start_fresh()
            job.save()
        except OSError as exc:  # an output folder that is read-only, full, or not ours
            _job_failed(exc, job, dst)

    start = job.frames_done
    upscaler.reset()
    if start:
        upscaler.load_state_dict(job.last_state(), start)
    run = _Run(info, job, upscaler, start, progress, plan, spec.encode.writer_kwargs() | {"scale": upscaler.scale})
    started = time.perf_counter()
    try:
        frames, network_seconds, errors = run.execute()
        parts = [job.dir / s["file"] for s in job.segments]
        join_segments(parts, info, dst, copy_streams=copy_streams)
    except Exception as exc:  # not KeyboardInterrupt: an interrupted job always keeps its folder for --resume
        _job_failed(exc, job, dst)
    job.remove()
    return UpscaleReport(src, dst, spec.model, str(upscaler.device), frames, start,
                         round(time.perf_counter() - started, 3), round(network_seconds, 3), errors,
                         upscaler.precision)


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


def environment_error(exc: BaseException) -> OSError | None:
    """The OS error behind ``exc`` when the machine is at fault (a full disk, lost permissions, an I/O error):
    what ``--resume`` gets past once it is fixed. None for anything else."""
    cause = _os_error(exc)
    return cause if cause is not None and cause.errno in _ENVIRONMENT_ERRNOS else None


def environment_message(dst: str | os.PathLike, cause: OSError, frames_kept: int, job_dir: str | os.PathLike) -> str:
    """One line for a job stopped by ``cause``: what happened, and what to do (run again, or continue with
    --resume when ``frames_kept`` frames are kept in ``job_dir``). The single-process and the Ray jobs share it."""
    what = cause.strerror or str(cause)
    if cause.filename:
        what += f": {cause.filename}"
    fix = "free some space" if cause.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "fix that"
    todo = (f"{fix}, then continue with --resume (the {frames_kept} frames done are kept in {job_dir})"
            if frames_kept else f"{fix} and run again")
    return f"{os.fspath(dst)}: {what}; {todo}"


def _job_failed(exc: Exception, job: Job, dst: str) -> NoReturn:
    """Raise the failure of a job as one line, and keep its folder only where --resume can get past it.

    A failure of the input (a :class:`VideoError` not caused by the system) would recur on every resume, so its
    folder goes: the next run starts clean instead of asking for --resume or --overwrite. A full disk, lost
    permissions or an I/O error keep finished segments for --resume; so does an unexpected error (it is re-raised
    as it is), since hours of finished segments are worth more than a tidy folder."""
    cause = environment_error(exc)
    keep = bool(job.segments) and (cause is not None or not isinstance(exc, VideoError))
    if not keep:
        job.remove()
    if cause is None:
        raise exc
    raise VideoError(environment_message(dst, cause, job.frames_done if keep else 0, job.dir)) from exc


class _Run:
    """One pass over the frames still to do: the three stages and what flows between them."""

    def __init__(self, info: VideoInfo, job: Job, upscaler: Upscaler, start: int,
                 progress: ProgressCallback | None, plan: SegmentPlan, writer_options: dict) -> None:
        self.info, self.job, self.upscaler, self.start = info, job, upscaler, start
        self.progress = progress
        self.writer_options = writer_options
        self.plan = plan
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
            with VideoReader(self.info.path, deinterlace=self.job.spec.deinterlacing) as reader:
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
        upscaler, plan = self.upscaler, self.plan
        while True:
            item = self._get(self.decoded)
            if item is _END:
                break
            pending.append(item)
            t0 = time.perf_counter()
            outs = upscaler.push(item.image)
            spent += time.perf_counter() - t0
            if not self._emit(outs, pending, at_boundary=plan.ends_segment(upscaler.frames_out)):
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
