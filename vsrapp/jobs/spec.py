"""``JobSpec``: one description of an upscale job, built once by every front end and written to its manifest.

The CLI (one file, a folder, ``--resume``), the web page, :func:`vsrapp.upscale_file` and the Ray driver all
describe a job with the same frozen :class:`JobSpec`: what goes in and out, the model's resolved name, the
engine's options, the encoder's options and the segment length. The job folder's manifest stores the part that
decides what the frames look like; a job resumes only if the spec read back from its manifest equals the one
asked for now (dataclass equality: fields that change how fast, not what, are left out of the comparison).

The manifest format is the one vsrapp has always written (``version`` 1), so job folders made before this module
existed resume as they did; a manifest this code cannot read is refused with one line (:func:`read_manifest`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..engine.recurrence import precision_name
from ..engine.upscaler import DEFAULT_LOOKAHEAD, DEFAULT_TILE_OVERLAP, DEFAULT_WINDOW, PRECISIONS
from ..video import VideoError, VideoInfo
from ..video.deinterlace import wanted
from .segments import DEFAULT_WARMUP, stream_segment_length

MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
RAY = "ray"  # the ``mode`` of a job run by the Ray driver; a single-process job has none

# The manifest of a single-process job names the precision that ran by torch's dtype name ("float32"); the
# options name it "fp32". Both directions in one table, so the two spellings cannot drift apart.
_DTYPE_NAMES = {short: str(dtype).removeprefix("torch.") for short, dtype in PRECISIONS.items()}
_SHORT_NAMES = {dtype: short for short, dtype in _DTYPE_NAMES.items()}


class ManifestError(VideoError):
    """A job folder this run cannot continue: one line that says why and what to do. A VideoError, as these
    refusals always were: the folder mode reports it for its file and goes on."""


@dataclass(frozen=True)
class EngineOptions:
    """How the :class:`~vsrapp.Upscaler` runs the network. ``precision`` is what was asked ("auto" included)
    until the job is resolved for one process, where it becomes what runs ("fp32", "fp16", "bf16")."""

    precision: str = "auto"
    window: int = DEFAULT_WINDOW
    lookahead: int = DEFAULT_LOOKAHEAD
    tile: int | None = None
    tile_overlap: int = DEFAULT_TILE_OVERLAP
    # Where and with what the network runs changes its speed, not the job's identity; the manifest never
    # recorded them for a single-process job (the resolved precision says what matters), so they do not compare.
    device: str = field(default="auto", compare=False)
    threads: int | None = field(default=None, compare=False)
    backend: str = field(default="auto", compare=False)  # auto: torch for a network (vsrapp.engine.backends)

    def upscaler_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~vsrapp.Upscaler` (all but the model)."""
        return {"device": self.device, "precision": self.precision, "window": self.window,
                "lookahead": self.lookahead, "tile": self.tile, "tile_overlap": self.tile_overlap,
                "threads": self.threads, "backend": self.backend}

    @classmethod
    def of(cls, upscaler: Any) -> EngineOptions:
        """The options an existing Upscaler runs with (a caller may hand one in, built its own way)."""
        # ``precision`` says what runs ("int8" for quantized graphs, which torch's dtype cannot tell).
        return cls(getattr(upscaler, "precision", None) or precision_name(upscaler.dtype), upscaler.window,
                   upscaler.lookahead, upscaler.tile, upscaler.tile_overlap, str(upscaler.device), None,
                   getattr(upscaler, "backend", "torch"))


@dataclass(frozen=True)
class EncodeOptions:
    """How the upscaled frames are encoded (:class:`vsrapp.video.VideoWriter`); ``out_scale`` resizes first."""

    codec: str = "libx264"
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    out_scale: float | None = None

    def writer_kwargs(self) -> dict[str, Any]:
        return {"codec": self.codec, "crf": self.crf, "preset": self.preset, "pix_fmt": self.pix_fmt,
                "out_scale": self.out_scale}


@dataclass(frozen=True)
class JobSpec:
    """One upscale job. ``model`` is a resolved name (``auto`` already decided; a caller's own module is named
    by its class). ``segment_frames`` is what was asked (``None``: the default) until :meth:`for_stream` or
    :meth:`for_ray` fixes it: whole windows for one process, the requested length or 0 ("planned per file")
    for Ray. ``mode`` is ``None`` for one process, ``"ray"`` for the Ray driver, which also records the
    ``warmup`` of its segments and the ``device`` its workers run on ("auto" precision depends on it).
    ``deinterlace`` is what was asked ("auto", "on", "off") until :meth:`for_input` decides it for one file."""

    input: str = field(compare=False)  # the input itself is checked by its signature (:func:`source_signature`)
    output: str = field(compare=False)  # the job folder sits beside it: a manifest is always its own output's
    model: str
    engine: EngineOptions = EngineOptions()
    encode: EncodeOptions = EncodeOptions()
    segment_frames: int | None = None
    mode: str | None = None
    warmup: int | None = None
    device: str | None = None
    deinterlace: str = "auto"

    @property
    def deinterlacing(self) -> bool:
        """Whether the frames go through bwdif (after :meth:`for_input`)."""
        return self.deinterlace == "on"

    # ------------------------------------------------------------------------------------------ building
    def for_file(self, src: str | os.PathLike, dst: str | os.PathLike) -> JobSpec:
        """The same job for another (input, output) pair: the folder mode makes one spec and applies it to
        every file."""
        return replace(self, input=os.fspath(src), output=os.fspath(dst))

    def for_input(self, info: VideoInfo) -> JobSpec:
        """The job for the probed input ``info``: ``auto`` deinterlacing decided ("on" for an interlaced
        input, else "off"), so that the manifest records what the frames went through."""
        return replace(self, deinterlace="on" if wanted(self.deinterlace, info) else "off")

    def for_stream(self, engine: EngineOptions, bidirectional: bool) -> JobSpec:
        """The single-process job as it runs: ``engine`` with its precision resolved (the Upscaler's), and
        segments of whole windows, so each ends exactly where the recurrent state is checkpointed."""
        return replace(self, engine=engine, mode=None, warmup=None, device=None,
                       segment_frames=stream_segment_length(self.segment_frames, bidirectional, engine.window))

    def for_ray(self, device: str) -> JobSpec:
        """The Ray job: workers on ``device``, segments of the requested length (0: planned per file)."""
        return replace(self, mode=RAY, device=device, segment_frames=self.segment_frames or 0,
                       warmup=DEFAULT_WARMUP if self.warmup is None else self.warmup)

    # ------------------------------------------------------------------------------------------ the manifest
    def settings(self) -> dict[str, Any]:
        """The manifest's ``settings``: exactly the keys and spellings vsrapp has always written."""
        e, c = self.engine, self.encode
        precision = e.precision if self.mode == RAY else _DTYPE_NAMES.get(e.precision, e.precision)
        out = {"model": self.model, "precision": precision, "window": e.window, "lookahead": e.lookahead,
               "tile": e.tile, "tile_overlap": e.tile_overlap, "codec": c.codec, "crf": c.crf, "preset": c.preset,
               "pix_fmt": c.pix_fmt, "segment_frames": self.segment_frames, "out_scale": c.out_scale,
               "deinterlace": self.deinterlace}
        if self.mode == RAY:
            out |= {"warmup": self.warmup, "device": self.device}
        return out

    @classmethod
    def from_settings(cls, settings: dict[str, Any], mode: str | None, input: str = "", output: str = "") -> JobSpec:
        """The spec a manifest's ``settings`` describe. Raises KeyError/TypeError/ValueError for settings that
        are not vsrapp's (the caller turns that into one line)."""
        s = dict(settings)
        known = {"model", "precision", "window", "lookahead", "tile", "tile_overlap", "codec", "crf", "preset",
                 "pix_fmt", "segment_frames", "out_scale", "deinterlace"} | ({"warmup", "device"} if mode == RAY
                                                                             else set())
        if set(s) - known:
            raise ValueError(f"unknown settings {sorted(set(s) - known)}")
        precision = s["precision"] if mode == RAY else _SHORT_NAMES.get(s["precision"], s["precision"])
        engine = EngineOptions(precision, int(s["window"]), int(s["lookahead"]), s["tile"], int(s["tile_overlap"]))
        # `out_scale` came after the first manifests: one without it was made with the model's own scale.
        encode = EncodeOptions(s["codec"], s["crf"], s["preset"], s["pix_fmt"], s.get("out_scale"))
        # `deinterlace` came with bwdif: a job folder made before never deinterlaced.
        return cls(input, output, str(s["model"]), engine, encode, int(s["segment_frames"]), mode,
                   s.get("warmup") if mode == RAY else None, s.get("device") if mode == RAY else None,
                   str(s.get("deinterlace", "off")))

    def manifest(self, **parts: Any) -> dict[str, Any]:
        """A full manifest: version, mode (Ray only), source signature, settings, then ``parts`` (the segments
        and, for Ray, the finished ones) in that order, as before."""
        head: dict[str, Any] = {"version": MANIFEST_VERSION}
        if self.mode is not None:
            head["mode"] = self.mode
        return head | {"source": source_signature(self.input), "settings": self.settings()} | parts

    def check_resume(self, manifest: dict[str, Any], where: Path) -> None:
        """Refuse (ManifestError, one line) to continue a job folder this spec would not finish the same way:
        made by the other kind of run, from another or a changed input, or with other settings."""
        if manifest.get("version", MANIFEST_VERSION) != MANIFEST_VERSION:
            raise ManifestError(f"{where}: this job folder was written by another version of vsrapp (manifest "
                                f"version {manifest.get('version')!r}); start over with --overwrite")
        if manifest.get("mode") != self.mode:
            how = "with --ray; resume it with --ray" if manifest.get("mode") == RAY else \
                "without --ray; resume it without --ray"
            raise ManifestError(f"{where}: this job was started {how}")
        if manifest.get("source") != source_signature(self.input):
            raise ManifestError(f"{where}: the interrupted job was made from a different or changed input file; "
                                "start over without --resume")
        recorded = manifest.get("settings")
        try:
            before = JobSpec.from_settings(recorded, self.mode)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: the job manifest's settings cannot be read ({exc}); start over with "
                                "--overwrite") from exc
        if before != self:
            mine = self.settings()
            diff = {k: v for k, v in before.settings().items() if mine.get(k) != v}
            raise ManifestError(f"{where}: the interrupted job used other settings {diff}; resume with the same "
                                "options or start over")


def job_dir_for(output: str | os.PathLike) -> Path:
    """The job folder of an output: hidden, beside it, so the output's name is free until the job is done."""
    out = Path(output)
    return out.parent / f".{out.name}.vsrapp-job"


def source_signature(path: str | os.PathLike) -> dict[str, Any]:
    """What identifies an input across runs: its absolute path, size and modification time."""
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_manifest(path: Path, spec: JobSpec) -> dict[str, Any]:
    """The manifest of the job folder to resume, checked against ``spec`` (:meth:`JobSpec.check_resume`)."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path.parent}: no readable job manifest to resume from ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path.parent}: no readable job manifest to resume from (not a JSON object)")
    spec.check_resume(manifest, path.parent)
    return manifest


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)  # atomic: a crash leaves the old or the new manifest, never half

