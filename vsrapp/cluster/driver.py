"""Scale out on Ray: every segment of every input video is one Ray task.

``vsrapp upscale IN OUT --ray [ADDRESS]`` calls :func:`upscale_on_ray`. Ray does the scheduling (one GPU per
task where the cluster has GPUs, else ``cpus_per_task`` cores), retries a task whose worker dies, and moves
the data; vsrapp only plans segments (the job's segment plan, :mod:`vsrapp.jobs.segments`) and joins what
comes back. The job is the same :class:`vsrapp.jobs.JobSpec` as a single-process run's, recorded with
``mode: "ray"``.

- The driver resolves the model once and puts it in Ray's object store, so workers need no weights. With a
  graph backend (``--backend onnxruntime|openvino``, ``--precision int8``) it first exports (and quantizes) the
  graphs once into its cache, then puts the export folder's files in the object store
  (:class:`~.worker.GraphFiles`: a multi-node cluster's workers do not see the driver's disk); the workers write
  them into a temporary folder and run them on the CPU, ``cpus_per_task`` threads each.
- Workers read the input by path (it must be on storage every node sees; ``docs/CLUSTER.md``) and return
  each encoded segment as bytes through the object store: only the driver writes, into the same job folder
  (``.<name>.vsrapp-job/``) as a single-process run, with a manifest of planned and finished segments.
  A stopped job resumes from it with ``--resume``; a segment is stored under its own index exactly once,
  however often Ray ran it.
- When all segments of a file are in, they are joined losslessly with the source's audio and subtitles, and
  the file appears under its final name.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from vsrapp_models.contract import Traits, traits

from .. import export, zoo
from ..engine import upscaler
from ..engine.backends import AUTO, GRAPH_BACKENDS, resolve_backend
from ..engine.recurrence import precision_name
from ..engine.upscaler import DEFAULT_LOOKAHEAD, DEFAULT_MODEL, DEFAULT_TILE_OVERLAP, DEFAULT_WINDOW, set_threads
from ..errors import ResourceError
from ..jobs.folder import JobFolder
from ..jobs.segments import DEFAULT_WARMUP, Segment, SegmentPlan, default_segment_length
from ..jobs.spec import EncodeOptions, EngineOptions, JobSpec
from ..pipeline import check_out_scale, environment_error, environment_message
from ..video import VideoError, VideoInfo, probe, timeline
from ..video.codecs import choose_video_codec
from ..video.concat import join_segments
from ..video.limits import check_output_size
from ..video.notes import warn_about_input
from .worker import GraphFiles, upscale_segment

__all__ = ["ClusterError", "ClusterReport", "FileJob", "JobStatus", "connect", "upscale_on_ray"]

TASK_RETRIES = 3
ProgressCallback = Callable[[int, int], None]
StatusCallback = Callable[["JobStatus"], None]


class ClusterError(ResourceError, RuntimeError):
    """Ray is missing or unreachable, or a task failed for a reason that is not the input's fault."""


def require_ray():
    try:
        import ray
    except ImportError as exc:
        raise ClusterError('--ray needs Ray: pip install "vsrapp[cluster]"  (or: pip install ray)') from exc
    return ray


# ------------------------------------------------------------------------------------------- progress
class _ProgressBoard:
    """A tiny Ray actor: tasks post ``(segment key, attempt, frames written)``; the driver reads a snapshot.
    The newest attempt of a segment replaces an older one, so a retried segment is not counted twice."""

    def __init__(self) -> None:
        self.posts: dict[str, tuple[str, int]] = {}
        self.attempts: dict[str, set[str]] = {}

    def post(self, key: str, attempt: str, frames: int) -> None:
        self.posts[key] = (attempt, frames)
        self.attempts.setdefault(key, set()).add(attempt)

    def snapshot(self) -> tuple[dict[str, tuple[str, int]], dict[str, int]]:
        return dict(self.posts), {k: len(v) for k, v in self.attempts.items()}


@dataclass
class JobStatus:
    """What the driver knows at one moment: frames written (finished segments plus running ones), and which
    worker (``host:pid``) is on which running segment."""

    frames_done: int
    frames_total: int
    seconds: float
    running: dict[str, str] = field(default_factory=dict)  # segment key -> "host:pid"
    frames_resumed: int = 0  # finished by an earlier, interrupted run of this job

    @property
    def fps(self) -> float:
        return (self.frames_done - self.frames_resumed) / self.seconds if self.seconds > 0 else 0.0


def _attempt_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"


def _segment_task(info: VideoInfo, segment: Segment, key: str, model: nn.Module | GraphFiles,
                  upscaler_options: dict, writer_options: dict, suffix: str, board: Any,
                  deinterlace: bool = False) -> tuple[bytes, dict]:
    """Runs on a worker: upscale one segment into a local temporary file and return its bytes. ``model`` is a
    torch module, or the files of an export folder for a graph backend (written out beside the segment)."""
    # The worker is an entry point: it sets its process's threads (the cores Ray gave the task), not the Upscaler.
    set_threads(upscaler_options.get("threads"), upscaler_options.get("device", "auto"))
    attempt = _attempt_id()
    last_post = 0.0

    def post(frames: int, force: bool = False) -> None:
        nonlocal last_post
        now = time.monotonic()
        if board is not None and (force or now - last_post > 0.25):
            last_post = now
            board.post.remote(key, attempt, frames)  # fire and forget: progress must never fail a task

    post(0, force=True)
    with tempfile.TemporaryDirectory(prefix="vsrapp-seg-") as tmp:
        path = Path(tmp) / f"segment{suffix}"
        runs = str(model.write(Path(tmp) / "graphs")) if isinstance(model, GraphFiles) else model
        result = upscale_segment(info, segment, path, runs, upscaler_options=upscaler_options,
                                 writer_options=writer_options, progress=post, deinterlace=deinterlace)
        post(result.frames, force=True)
        return path.read_bytes(), {**asdict(result), "worker": attempt.rsplit(":", 1)[0]}


# ------------------------------------------------------------------------------------------- one file
class FileJob(JobFolder):
    """One input file: its segment plan, the finished segments on disk, and the manifest that lists both."""

    def __init__(self, spec: JobSpec) -> None:
        super().__init__(spec)
        self.src, self.dst = spec.input, spec.output
        self.info: VideoInfo | None = None
        self.segments: list[Segment] = []
        self.done: dict[int, dict] = {}
        self.error: str | None = None
        self.resumed_frames = 0

    @property
    def frames_total(self) -> int:
        return sum(s.frames for s in self.segments)

    @property
    def frames_done(self) -> int:
        return sum(self.segments[k].frames for k in self.done)

    @property
    def todo(self) -> list[Segment]:
        return [s for s in self.segments if s.index not in self.done]

    def key(self, segment: Segment) -> str:
        return f"{self.dst}#{segment.index}"

    def prepare(self, *, workers: int, bidirectional: bool, resume: bool, overwrite: bool,
                scale: float = 4) -> None:
        """Probe the input, refuse an output too large to encode at ``scale``, plan segments (or load the plan
        of an interrupted job). Raises VideoError."""
        self.info = probe(self.src)
        self.spec = self.spec.for_input(self.info)  # deinterlace "auto" decided for this file
        # The codec for this file's container (asked for, or chosen per file: VP9 for .webm), before any work.
        self.spec = replace(self.spec, encode=replace(self.spec.encode,
                                                      codec=choose_video_codec(self.spec.encode.codec, self.dst)))
        check_output_size(self.src, self.info.width, self.info.height, scale, self.spec.encode.codec)
        self.check_output(overwrite)
        warn_about_input(self.info, self.spec.encode.codec, self.spec.deinterlacing)
        manifest = self.open(resume, overwrite)
        if manifest is not None:
            self._load(manifest)
            self.resumed_frames = self.frames_done
            return
        tl = timeline(self.src, self.info)
        engine = self.spec.engine
        plan = SegmentPlan(self.spec.segment_frames or default_segment_length(tl.frames, workers), bidirectional,
                           engine.window, engine.lookahead, self.spec.warmup or 0, self.spec.deinterlacing)
        self.segments = plan.cut(tl)
        self.start_fresh()
        self._save()

    def _load(self, manifest: dict) -> None:
        self.segments = [Segment.from_json(s) for s in manifest["segments"]]
        # Trust only segments whose file is there (a crash can come between the file and the manifest).
        self.done = {int(k): {**v, "resumed": True} for k, v in manifest["done"].items()
                     if (self.dir / v["file"]).is_file()}

    def _save(self) -> None:
        self.save(segments=[s.to_json() for s in self.segments],
                  done={str(k): v for k, v in sorted(self.done.items())})

    def store(self, segment: Segment, data: bytes, result: dict) -> None:
        """Write a finished segment (atomically) and record it; a second copy of the same segment is ignored."""
        if segment.index in self.done:
            return
        name = self.segment_path(segment.index).name
        tmp = self.dir / f".{name}.partial"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, self.dir / name)
        except OSError:  # a full disk: no half-written segment stays behind
            tmp.unlink(missing_ok=True)
            raise
        self.done[segment.index] = {"file": name, **result}
        self._save()

    def finish(self, copy_streams: bool = True) -> None:
        parts = [self.dir / self.done[s.index]["file"] for s in self.segments]
        join_segments(parts, self.info, self.dst, copy_streams=copy_streams)
        self.remove()

    @property
    def reader_errors(self) -> list[str]:
        return [e for k in sorted(self.done) for e in self.done[k].get("reader_errors", [])]


# ------------------------------------------------------------------------------------------- the driver
@dataclass
class ClusterReport:
    input: str
    output: str
    frames: int
    resumed_from: int
    segments: int
    seconds: float
    error: str | None = None
    reader_errors: list[str] = field(default_factory=list)
    retried_segments: int = 0


def connect(address: str | None = None, num_cpus: int | None = None):
    """Join the cluster at ``address`` ("auto" for the one ``ray start`` made on this machine), or start a
    local Ray instance with ``num_cpus`` workers. Reuses a connection that already exists."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    import logging

    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    try:
        if address and address != "local":
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot connect to Ray at {address or 'a new local instance'}: {exc}") from exc
    return ray


def _one_precision(spec: JobSpec, task_device: str, runs_on: str) -> JobSpec:
    """The job with ``auto`` precision decided once, here: a worker deciding for itself would pick bf16 on a CPU
    with AMX and fp32 on one without, and a video's segments would differ at their seams. The driver's CPU
    decides for CPU tasks (on one machine, the workers' own); graph backends run their graphs' precision."""
    if spec.engine.precision != "auto" or runs_on in GRAPH_BACKENDS:
        return spec
    import torch

    name = precision_name(upscaler.pick_precision("auto", torch.device(task_device)))
    return replace(spec, engine=replace(spec.engine, precision=name))


def upscale_on_ray(
    jobs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    model: str | nn.Module = DEFAULT_MODEL,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_task: int = 1,
    device: str = "auto",
    precision: str = "auto",
    backend: str = AUTO,
    window: int = DEFAULT_WINDOW,
    lookahead: int = DEFAULT_LOOKAHEAD,
    tile: int | None = None,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
    warmup: int = DEFAULT_WARMUP,
    segment_frames: int | None = None,
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    out_scale: float | None = None,
    deinterlace: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    copy_streams: bool = True,
    progress: ProgressCallback | None = None,
    status: StatusCallback | None = None,
    spec: JobSpec | None = None,
) -> list[ClusterReport]:
    """Upscale each ``(input, output)`` pair on a Ray cluster, all segments of all files in one pool.

    A file that cannot be read gets a report with ``error`` set; the others go on. ``progress(done, total)``
    counts frames over the whole job; ``status`` gets a :class:`JobStatus` about twice a second. ``spec``: the
    job as a front end already described it (:class:`vsrapp.jobs.JobSpec`, model name resolved, applied to every
    pair); the engine, segment and encode options above are then not read.

    ``backend`` ``onnxruntime`` or ``openvino``, or ``precision`` ``int8``: the graphs are made once, here, before
    any task (:func:`vsrapp.engine.upscaler.prepare_graphs`), and every task runs them on ``cpus_per_task`` CPU cores,
    GPUs or not. A combination that cannot run raises :class:`vsrapp.engine.backends.BackendError` before any task.
    """
    ray = connect(address, num_cpus)
    engine = spec.engine if spec is not None else EngineOptions(precision, window, lookahead, tile, tile_overlap,
                                                                device, None, backend)
    if spec is not None and isinstance(model, str):
        model = spec.model  # already resolved by the front end: no second look in the zoo
    # The backend decides where tasks run: exported graphs run on the CPU (a GPU task would sit idle).
    runs_on = resolve_backend(engine.backend, model, engine.precision)
    gpus = (runs_on not in GRAPH_BACKENDS and ray.cluster_resources().get("GPU", 0) > 0
            and engine.device in ("auto", "cuda"))
    task_device = "cuda" if gpus else "cpu"
    if spec is None:
        model, name = zoo.resolve_model(model, task_device, engine.precision)
        spec = JobSpec("", "", name, engine, EncodeOptions(codec, crf, preset, pix_fmt, out_scale), segment_frames,
                       warmup=warmup, deinterlace=deinterlace)
    spec = _one_precision(spec, task_device, runs_on).for_ray(task_device)
    engine = spec.engine
    payload, shape = _model_for_tasks(model, engine, runs_on)
    bidirectional = bool(shape.bidirectional)
    workers = max(1, int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1) // (1 if gpus else cpus_per_task)))
    scale = check_out_scale(spec.encode.out_scale, shape.scale)

    files: list[FileJob] = []
    for src, dst in jobs:
        fj = FileJob(spec.for_file(src, dst))
        try:
            fj.prepare(workers=workers, bidirectional=bidirectional, resume=resume, overwrite=overwrite, scale=scale)
        except VideoError as exc:
            fj.error = str(exc)
        except OSError as exc:  # its job folder cannot be made or written: a full disk, a read-only folder
            fj.error = _stopped_by_the_machine(fj, exc)
        files.append(fj)

    started = time.perf_counter()
    upscaler_options = replace(spec.engine, device=task_device, threads=cpus_per_task,
                               backend=runs_on).upscaler_kwargs()
    board = ray.remote(max_restarts=-1, num_cpus=0)(_ProgressBoard).remote()
    task = ray.remote(_segment_task).options(num_cpus=0 if gpus else cpus_per_task, num_gpus=1 if gpus else 0,
                                             max_retries=TASK_RETRIES, retry_exceptions=False)
    model_ref = ray.put(payload)
    pending: dict[Any, tuple[FileJob, Segment]] = {}
    for fj in files:
        if fj.error is None:
            info_ref = ray.put(fj.info)
            writer_options = fj.spec.encode.writer_kwargs()  # the codec is the file's own (its container's)
            for seg in fj.todo:
                ref = task.remote(info_ref, seg, fj.key(seg), model_ref, upscaler_options, writer_options,
                                  fj.suffix, board, fj.spec.deinterlacing)
                pending[ref] = (fj, seg)
    for fj in files:  # a resumed file with nothing left to do is joined at once
        if fj.error is None and not fj.todo:
            _finish(fj, copy_streams)

    total = sum(fj.frames_total for fj in files if fj.error is None)
    attempts: dict[str, int] = {}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in ready:
                fj, seg = pending.pop(ref)
                try:
                    data, result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - each failure becomes the file's one error line
                    _fail_file(fj, _task_error(exc, fj, seg), pending, ray)
                    continue
                try:
                    fj.store(seg, data, result)
                except OSError as exc:  # the driver's disk is full or no longer writable: this file stops
                    _fail_file(fj, _stopped_by_the_machine(fj, exc), pending, ray)
                    continue
                if not fj.todo:
                    _finish(fj, copy_streams)
            attempts = _report(ray, board, files, total, started, progress, status) or attempts
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    attempts = _report(ray, board, files, total, started, progress, status) or attempts
    seconds = round(time.perf_counter() - started, 3)
    return [ClusterReport(fj.src, fj.dst, fj.frames_total if fj.error is None else 0, fj.resumed_frames,
                          len(fj.segments), seconds, fj.error, fj.reader_errors,
                          sum(1 for s in fj.segments if attempts.get(fj.key(s), 1) > 1)) for fj in files]


def _model_for_tasks(model: str | nn.Module, engine: EngineOptions, backend: str) -> tuple[nn.Module | GraphFiles,
                                                                                         Traits]:
    """What the tasks get (a torch module, or an export folder's files) and the model's contract traits.

    A graph backend's graphs are exported, and for int8 quantized, here, once, into the driver's cache, before
    any task starts: N workers that each made them would quantize the same model N times at once (minutes each
    for the dense model) and race for the same cache folder on a shared disk. The workers get the folder's files
    (:class:`GraphFiles`), never its path: see there why."""
    if backend in GRAPH_BACKENDS:
        _, folder = upscaler.prepare_graphs(model, engine.device, engine.precision, backend, engine.threads)
        if folder is not None:
            manifest = export.read_manifest(folder)
            return GraphFiles.read(folder), Traits(scale=int(manifest["scale"]),
                                                   bidirectional=bool(manifest["bidirectional"]),
                                                   modulus=int(manifest["pad_multiple"]),
                                                   min_size=int(manifest["min_size"]))
    # torch, or a model without a network (bicubic: nothing to export, it runs in torch whatever was asked).
    net = (zoo.get_model(model) if isinstance(model, str) else model).cpu().eval()
    return net, traits(net)


def _finish(fj: FileJob, copy_streams: bool) -> None:
    try:
        fj.finish(copy_streams)
    except (VideoError, OSError) as exc:
        fj.error = _stopped_by_the_machine(fj, exc) if environment_error(exc) else str(exc)


def _stopped_by_the_machine(fj: FileJob, exc: OSError | VideoError) -> str:
    """The one line for a file the machine stopped (a full disk, lost permissions, an I/O error; anything else
    is re-raised): its job folder stays for --resume if it holds finished segments, else it goes, so the space
    is given back and nothing is left beside the output. Worded as for a single-process job."""
    cause = environment_error(exc)
    if cause is None:
        raise exc
    kept = fj.frames_done
    if not kept:
        fj.remove()
    return environment_message(fj.dst, cause, kept, fj.dir)


def _fail_file(fj: FileJob, message: str, pending: dict, ray) -> None:
    """One file failed: drop its other tasks (its finished segments stay for --resume); the others go on."""
    if fj.error is None:
        fj.error = message
    for ref, (other, _) in list(pending.items()):
        if other is fj:
            ray.cancel(ref, force=True)
            del pending[ref]


def _task_error(exc: BaseException, fj: FileJob, seg: Segment) -> str:
    """A one-line message: the input's own error if the task raised one, else what happened to the worker."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, VideoError):
        return str(cause)
    first_line = (str(cause or exc).strip().splitlines() or [type(exc).__name__])[-1]
    return (f"{fj.src}: segment {seg.index} (frames {seg.first}..{seg.end - 1}) failed after "
            f"{TASK_RETRIES + 1} attempts: {first_line}")


def _report(ray, board, files: list[FileJob], total: int, started: float, progress: ProgressCallback | None,
            status: StatusCallback | None) -> dict[str, int] | None:
    try:
        posts, attempts = ray.get(board.snapshot.remote(), timeout=5)
    except Exception:  # noqa: BLE001 - the board is a convenience; it restarts by itself
        return None
    done = resumed = 0
    running: dict[str, str] = {}
    for fj in files:
        if fj.error is not None:
            continue
        for seg in fj.segments:
            key = fj.key(seg)
            if seg.index in fj.done:
                done += seg.frames
                resumed += seg.frames if fj.done[seg.index].get("resumed") else 0
            elif key in posts:
                attempt, frames = posts[key]
                done += min(frames, seg.frames)
                running[key] = attempt.rsplit(":", 1)[0]
    if progress:
        progress(done, total)
    if status:
        status(JobStatus(done, total, time.perf_counter() - started, running, resumed))
    return attempts

