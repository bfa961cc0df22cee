"""The Gradio page: upload or pick a clip, choose model/device/precision, upscale with a live preview, compare a
frame with bicubic, or upscale the webcam live. ``python app.py`` and ``vsrapp serve`` start it through
:mod:`vsrapp.web.cli`.

Everything here is wiring: the work is done by :func:`vsrapp.web.preview.stream_upscale` (which drives
:func:`vsrapp.upscale_file`), :func:`vsrapp.web.compare.compare_frame` and :class:`vsrapp.web.live.LiveSession`; inputs
are checked by :mod:`vsrapp.web.guard`. Every heavy event shares one concurrency group of size one, so one job
at a time touches the accelerator and the others wait in Gradio's queue (their position is shown).

Endpoints: ``/upscale`` (file in, upscaled mp4 and a status line out; the one for API clients) and
``/upscale_live`` (the same with a streamed preview: Gradio's clients do not consume media streams).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import gradio as gr

from ..engine.upscaler import INT8, PRECISION_CHOICES
from .guard import DEFAULT_EXAMPLES, Limits, Rejected, check_video, trim_cache
from .menu import ModelChoice, ModelMenu, UnknownModel, zoo_choices

GPU = "gpu"  # the concurrency group of every event that runs a network
VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".webm")
# Gradio finds the progress tracker by its default value; one shared instance is how its docs spell it too.
_PROGRESS = gr.Progress()
_FOLDERS = re.compile(r"/(?:[^/\s:]+/)+")  # the directory part of an absolute path
CACHE_TRIM_SECONDS = 30.0  # how often the running server bounds its cache by size (and at every job's start)


def precision_choices() -> list[str]:
    """The precisions this server offers: torch's, and int8 where the ``openvino`` extra is installed."""
    from .. import quantize

    return [p for p in PRECISION_CHOICES if p != INT8 or quantize.available()]


def device_choices() -> list[str]:
    import torch

    devices = ["auto", "cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def _safe_stem(path: str | os.PathLike) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("._") or "video"
    return stem[:60]


class WebApp:
    """The server's state (models, limits, folders) and the event handlers."""

    def __init__(self, menu: ModelMenu, limits: Limits, work_dir: Path, examples_dir: Path | None,
                 threads: int | None = None) -> None:
        self.menu, self.limits = menu, limits
        self.work_dir = work_dir
        self.examples_dir = examples_dir if examples_dir and examples_dir.is_dir() else None
        self.threads = threads
        self.devices = device_choices()
        self.precisions = precision_choices()
        self.blocks: gr.Blocks | None = None  # set by build_app: whose cached files trim_cache bounds
        self.in_use: Counter[str] = Counter()  # inputs of the jobs running now: never trimmed

    # ------------------------------------------------------------------------------------------- cache
    def trim_cache(self) -> list[str]:
        """Bound Gradio's cache of this app's uploads and results by total size (``Limits.cache_mb``), oldest
        first; Gradio itself deletes them by age only. Spared: the inputs of running jobs, files Gradio keeps on
        purpose (cached examples), and anything younger than a minute. Returns the paths deleted."""
        blocks = self.blocks
        if blocks is None:
            return []
        sets = list(getattr(blocks, "temp_file_sets", ()))  # Gradio's record of the files this app cached
        keep = {path for path, n in self.in_use.items() if n}
        for component in list(getattr(blocks, "blocks", {}).values()):
            keep.update(getattr(component, "keep_in_cache", ()))
        files = {f for fileset in sets for f in list(fileset)}
        removed = trim_cache(files, self.limits.cache_mb * 2**20, keep)
        for fileset in sets:
            fileset.difference_update(removed)
        return removed

    def _hold(self, path: str | os.PathLike) -> Callable[[], None]:
        """A job starts reading ``path``: it is not trimmed until the returned function is called. The cache is
        trimmed now, so the job finds room for its result."""
        real = os.path.realpath(path)
        self.in_use[real] += 1
        self.trim_cache()

        def release() -> None:
            self.in_use[real] -= 1

        return release

    # ------------------------------------------------------------------------------------------- checks
    def roots(self) -> list[Path]:
        """Where a visitor's file may come from: Gradio's upload cache and the bundled examples."""
        from gradio.utils import get_upload_folder

        roots = [Path(get_upload_folder())]
        return roots + [self.examples_dir] if self.examples_dir else roots

    def _checked(self, video: str | None, model: str, device: str, precision: str):
        if device not in self.devices:
            raise _refuse(f"Unknown device {device!r}; choose one from the list.")
        if precision not in self.precisions:
            raise _refuse(f"Unknown precision {precision!r}; choose one from the list.")
        try:
            info = check_video(video, self.roots(), self.limits)
            network = self.menu.network(model)
        except (Rejected, UnknownModel) as exc:
            raise _refuse(str(exc)) from exc
        return info, network

    def _new_job(self) -> Path:
        job = self.work_dir / f"job-{uuid.uuid4().hex[:12]}"
        job.mkdir(parents=True)
        return job

    # ------------------------------------------------------------------------------------------- upscale
    def upscale_live(self, video: str | None, model: str, device: str, precision: str,
                     progress: gr.Progress = _PROGRESS) -> Iterator[tuple]:
        """Outputs: (preview chunk, status, final file). Yields a preview chunk as each is encoded."""
        from .preview import Chunk, Done, Progress, stream_upscale

        info, network = self._checked(video, model, device, precision)
        job = self._new_job()
        dst = job / f"{_safe_stem(video)}_x4_{_safe_stem(model)}.mp4"
        release = self._hold(info.path)
        try:
            events = stream_upscale(info.path, dst, network, job / "preview", device=device, precision=precision,
                                    chunk_seconds=self.limits.chunk_seconds, max_side=self.limits.preview_max_side,
                                    model_name=model, pix_fmt="yuv420p", threads=self.threads)
            yield gr.skip(), "Starting…", None
            for event in _friendly(events):
                if isinstance(event, Chunk):
                    yield str(event.path), gr.skip(), gr.skip()
                elif isinstance(event, Progress):
                    if event.total:
                        progress((event.done, event.total), desc="upscaling", unit="frames")
                    yield gr.skip(), event.text(), gr.skip()
                elif isinstance(event, Done):
                    yield gr.skip(), self._finished(event.report, info), str(event.path)
        finally:
            release()
            # Gradio has copied every yielded file into its own cache by the time the generator resumes.
            shutil.rmtree(job, ignore_errors=True)

    def upscale(self, video: str | None, model: str, device: str, precision: str,
                progress: gr.Progress = _PROGRESS) -> Iterator[tuple]:
        """Outputs: (final file, status); no preview. A generator so that a cancelled job stops (Gradio closes it)
        and the job folder is removed once Gradio has copied the result."""
        from .preview import Done, Progress, stream_upscale

        info, network = self._checked(video, model, device, precision)
        job = self._new_job()
        dst = job / f"{_safe_stem(video)}_x4_{_safe_stem(model)}.mp4"
        release = self._hold(info.path)
        try:
            events = stream_upscale(info.path, dst, network, None, device=device, precision=precision,
                                    model_name=model, pix_fmt="yuv420p", threads=self.threads)
            for event in _friendly(events):
                if isinstance(event, Progress):
                    if event.total:
                        progress((event.done, event.total), desc="upscaling", unit="frames")
                    yield gr.skip(), event.text()
                elif isinstance(event, Done):
                    yield str(event.path), self._finished(event.report, info)
        finally:
            release()
            shutil.rmtree(job, ignore_errors=True)

    def _finished(self, report, info) -> str:
        size = f"{info.width}x{info.height}"
        self.menu.record_speed(report.model, report.device, report.fps, size)
        audio = ", ".join(a.codec for a in info.audio) or "none"
        warnings = "".join(f"\n- warning: {w}" for w in report.reader_errors)
        return (f"Done: {report.frames} frames in {report.seconds:.1f} s ({report.fps:.2f} frames/s) with "
                f"**{report.model}** on {report.device}, {size} → {info.width * 4}x{info.height * 4}; "
                f"audio kept: {audio}.{warnings}")

    # ------------------------------------------------------------------------------------------- compare
    def compare(self, video: str | None, model: str, device: str, precision: str, seconds: float):
        from .compare import compare_frame

        info, network = self._checked(video, model, device, precision)
        release = self._hold(info.path)
        try:
            pair = compare_frame(info.path, float(seconds or 0), network, device=device, precision=precision,
                                 threads=self.threads)
        except Exception as exc:
            raise _as_gr_error(exc) from exc
        finally:
            release()
        caption = f"Frame {pair.index} ({pair.seconds:.2f} s): left bicubic, right **{model}**. Drag to compare."
        return (pair.bicubic, pair.model), caption

    def describe_video(self, video: str | None):
        """On upload: what the file is, and the comparison slider's range. Never raises: it is only a hint."""
        if not video:
            return "", gr.update(maximum=1, value=0)
        try:
            info = check_video(video, self.roots(), self.limits)
        except Rejected as exc:
            return f"⚠ {exc}", gr.update()
        audio = ", ".join(f"{a.codec}" for a in info.audio) or "no audio"
        fps = f"{float(info.fps):.3g} fps" if info.fps else "unknown fps"
        text = (f"{info.width}x{info.height}, {info.duration:.1f} s, {fps}, {info.frame_count or '?'} frames, "
                f"{audio} → output {info.width * 4}x{info.height * 4}")
        return text, gr.update(maximum=max(0.0, round(info.duration, 2)), value=0)

    # ------------------------------------------------------------------------------------------- webcam
    def live_frame(self, image, model: str, device: str, precision: str, session):
        """One webcam frame. ``session`` (per visitor) keeps the forward-only upscaler between frames."""
        from .live import LiveSession, NotLiveCapable

        if image is None:
            return None, "Waiting for the camera…", session
        note = ""
        choice = self.menu.choices.get(model)
        live_default = self.menu.default(forward_only=True)
        if choice is not None and not choice.forward_only and live_default:
            # A bidirectional pick needs future frames a camera does not have: live input gets the best
            # forward-only model instead, and the visitor is told.
            model = live_default
            note = f"Live input uses {model} (the selected model needs future frames). "
        key = (model, device, precision)
        if session is None or session[0] != key:
            if device not in self.devices or precision not in self.precisions:
                raise _refuse("Unknown device or precision; choose one from the lists.")
            try:
                network = self.menu.network(model)
                live = LiveSession(network, device=device, precision=precision,
                                   max_side=self.limits.webcam_max_side, interval=self.limits.webcam_interval,
                                   threads=self.threads)
            except (UnknownModel, NotLiveCapable) as exc:
                raise _refuse(str(exc)) from exc
            session = (key, live)
        out, status = session[1].process(image)
        return out, note + status.text(), session


def _refuse(message: str) -> gr.Error:
    """An error shown to the visitor; the visitor's mistake, so no traceback in the server log."""
    return gr.Error(message, print_exception=False)


def _friendly(events):
    """Re-raise what the pipeline raises as a message for the visitor."""
    try:
        yield from events
    except Exception as exc:
        raise _as_gr_error(exc) from exc


def _as_gr_error(exc: Exception) -> Exception:
    from ..video import VideoError

    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, VideoError):
        # Only file names: the visitor has no business knowing the server's folders.
        return _refuse(f"The video could not be processed: {_FOLDERS.sub('', str(exc))}")
    if isinstance(exc, (RuntimeError, ValueError)) and "out of memory" in str(exc).lower():
        return _refuse("The accelerator ran out of memory on this video; try a smaller video or fp16.")
    return exc  # a bug: Gradio shows a generic error and logs the traceback


# ---------------------------------------------------------------------------------------------- the page
def build_app(models: Sequence[ModelChoice] | None = None, limits: Limits | None = None, *,
              examples_dir: str | os.PathLike | None = DEFAULT_EXAMPLES, work_dir: str | os.PathLike | None = None,
              threads: int | None = None) -> gr.Blocks:
    """The Blocks app. ``models`` defaults to the zoo; tests pass their own (e.g. bicubic and a tiny network).
    ``work_dir`` (default: a new temporary folder, removed at exit) holds each job's files until Gradio has
    copied the results into its cache."""
    limits = limits or Limits()
    menu = ModelMenu(models if models is not None else zoo_choices())
    if work_dir is None:
        work_dir = tempfile.mkdtemp(prefix="vsrapp-web-")
        atexit.register(shutil.rmtree, work_dir, True)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    app = WebApp(menu, limits, work, Path(examples_dir) if examples_dir else None, threads)

    with gr.Blocks(title="vsrapp: x4 video super-resolution", analytics_enabled=False,
                   delete_cache=(limits.cache_seconds, limits.cache_seconds)) as demo:
        demo.vsrapp = app  # for tests and launch()
        app.blocks = demo
        gr.Markdown("# vsrapp: x4 video super-resolution\nRecurrent (BasicVSR-family) networks; the result keeps "
                    "the source's audio, timing and colour.")
        default = menu.default()
        with gr.Row():
            model = gr.Dropdown([(menu.choices[n].label(), n) for n in menu.names()], value=default, label="Model",
                                elem_id="model")
            device = gr.Dropdown(app.devices, value="auto", label="Device", elem_id="device")
            precision = gr.Dropdown(app.precisions, value="auto", label="Precision",
                                    info="auto: fp16 on a GPU, bf16 on a CPU with AMX, else fp32"
                                         + ("; int8: OpenVINO on the CPU, faster (the first run with a model "
                                            "quantizes it: minutes)" if INT8 in app.precisions else ""))
        model_info = gr.Markdown(menu.info(default), elem_id="model-info")

        with gr.Tab("Upscale a video"):
            with gr.Row():
                with gr.Column():
                    video = gr.Video(label="Input video", sources=["upload"], elem_id="input-video")
                    video_info = gr.Markdown(elem_id="video-info")
                    if app.examples_dir:
                        clips = sorted(p for p in app.examples_dir.iterdir() if p.suffix.lower() in VIDEO_EXTS)
                        if clips:
                            gr.Examples([[str(p)] for p in clips], inputs=[video], label="Example clips")
                    with gr.Row():
                        run = gr.Button("Upscale", variant="primary", elem_id="upscale", scale=3)
                        stop = gr.Button("Stop", variant="stop", elem_id="stop", scale=1)
                    api_run = gr.Button(visible=False)
                with gr.Column():
                    status = gr.Markdown("Upload a video, then press **Upscale**.", elem_id="status")
                    preview = gr.Video(label="Live preview (video only, scaled down)", streaming=True,
                                       autoplay=True, interactive=False, elem_id="preview")
                    result = gr.Video(label="Result (full quality, with audio)", interactive=False,
                                      elem_id="result")
            with gr.Accordion("Compare one frame: bicubic vs the model", open=False):
                with gr.Row():
                    seconds = gr.Slider(0, 1, value=0, step=0.04, label="Time (s)", elem_id="compare-time")
                    compare = gr.Button("Compare frame", elem_id="compare")
                slider = gr.ImageSlider(label="bicubic | model", type="numpy", elem_id="compare-slider")
                caption = gr.Markdown()

        with gr.Tab("Webcam (live)"):
            gr.Markdown(f"Forward-only models only (latency one frame); frames are scaled to "
                        f"{limits.webcam_max_side} px before the x4 upscale, and a session lasts up to "
                        f"{limits.webcam_seconds:g} s while it holds the accelerator. Models: "
                        f"{', '.join(menu.names(forward_only=True)) or 'none on this server'}.")
            with gr.Row():
                cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera")
                cam_out = gr.Image(type="numpy", label="Upscaled x4", streaming=True, elem_id="live-output")
            cam_status = gr.Markdown(elem_id="live-status")
            session = gr.State(None)

        with gr.Tab("Limits"):
            gr.Markdown("This server's limits:\n\n" + limits.describe())

        model.change(menu.info, model, model_info, queue=False, api_visibility="private")
        video.change(app.describe_video, video, [video_info, seconds], api_visibility="private",
                     concurrency_limit=None)
        running = run.click(app.upscale_live, [video, model, device, precision], [preview, status, result],
                            api_name="upscale_live", concurrency_id=GPU, concurrency_limit=1,
                            show_progress_on=[status])
        running.then(menu.info, model, model_info, queue=False, api_visibility="private")  # shows the new speed
        # Cancelling closes the generator, which stops the job's threads and deletes its files.
        stop.click(None, cancels=[running], api_visibility="private")
        api_run.click(app.upscale, [video, model, device, precision], [result, status], api_name="upscale",
                      concurrency_id=GPU, concurrency_limit=1, show_progress_on=[status])
        compare.click(app.compare, [video, model, device, precision, seconds], [slider, caption],
                      api_name="compare", concurrency_id=GPU, concurrency_limit=1)
        cam.stream(app.live_frame, [cam, model, device, precision, session], [cam_out, cam_status, session],
                   stream_every=limits.webcam_interval, time_limit=limits.webcam_seconds, api_visibility="private",
                   concurrency_id=GPU, concurrency_limit=1, show_progress="hidden")
    demo.queue(max_size=limits.queue_size, default_concurrency_limit=1)
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, **kwargs):
    """Start the server with the app's limits and folders; returns what ``Blocks.launch`` returns. While it
    runs, its cache is bounded by size every :data:`CACHE_TRIM_SECONDS` (Gradio's own cleaning goes by age)."""
    app: WebApp = demo.vsrapp
    allowed = [str(app.examples_dir)] if app.examples_dir else []
    app_kwargs = dict(kwargs.pop("app_kwargs", None) or {})
    app_kwargs.setdefault("lifespan", _trimming_cache(app))  # Gradio runs it beside its own cleaning
    return demo.launch(server_name=host, server_port=port, max_file_size=f"{app.limits.max_upload_mb}mb",
                       allowed_paths=allowed, show_error=True, app_kwargs=app_kwargs, **kwargs)


def _trimming_cache(app: WebApp):
    """The server's lifespan hook: :meth:`WebApp.trim_cache` every :data:`CACHE_TRIM_SECONDS` until it stops, so
    a flood of uploads that starts no job is bounded too."""

    @asynccontextmanager
    async def lifespan(_server) -> AsyncIterator[None]:
        async def every_while() -> None:
            while True:
                await asyncio.sleep(CACHE_TRIM_SECONDS)
                await asyncio.to_thread(app.trim_cache)

        task = asyncio.create_task(every_while())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    return lifespan
