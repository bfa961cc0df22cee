"""Upscale one segment of a video: what one Ray task of :mod:`vsrapp.cluster.driver` runs on a worker.

It needs no Ray, so it is tested and usable on its own. Where segments are cut (warm-up, look-ahead, keyframes)
is the job's segment plan, :mod:`vsrapp.jobs.segments`, the same one a single-process job uses.
:class:`GraphFiles` is how an export folder (the graphs of ``--backend onnxruntime|openvino`` and
``--precision int8``) travels from the driver to the workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .. import export
from ..engine.upscaler import Upscaler
from ..jobs.segments import Segment
from ..video import Frame, VideoError, VideoInfo, VideoReader, VideoWriter

__all__ = ["GraphFiles", "SegmentResult", "upscale_segment"]


@dataclass(frozen=True)
class GraphFiles:
    """The files of an export folder (manifest and graphs: a few MB to ~30 MB), by name, to be written out again
    on a worker.

    Why the bytes and not the folder's path: the driver makes the graphs in its own cache, and on a cluster of
    several machines that path does not exist on the other nodes (nor should every node export and quantize the
    model itself: that is what the driver does once). Ray's object store holds one copy per node, shared by all
    the tasks there, which is what it is for; a shared file system would work too but is not required of a
    cluster for anything else (only the inputs are read by path)."""

    name: str
    files: dict[str, bytes]

    @classmethod
    def read(cls, folder: str | os.PathLike) -> GraphFiles:
        """The manifest and the graph files it names (nothing else in the folder travels)."""
        folder = Path(folder)
        manifest = export.read_manifest(folder)  # also checks that every file it names is there
        names = [export.MANIFEST] + [f for g in manifest["graphs"].values() for f in (g["file"], g.get("weights"))
                                     if f]
        return cls(folder.name, {n: (folder / n).read_bytes() for n in names})

    def write(self, parent: str | os.PathLike) -> Path:
        """Write the folder under ``parent`` (a fresh directory of the task's) and return its path."""
        folder = Path(parent) / self.name
        for name, data in self.files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return folder


@dataclass
class SegmentResult:
    frames: int
    seconds: float
    network_seconds: float
    reader_errors: list[str]


def upscale_segment(info: VideoInfo, segment: Segment, out_path: str | os.PathLike, model: str | nn.Module, *,
                    upscaler_options: dict[str, Any] | None = None, writer_options: dict[str, Any] | None = None,
                    progress: Callable[[int], None] | None = None, deinterlace: bool = False) -> SegmentResult:
    """Upscale ``segment`` of the video ``info.path`` into the video-only file ``out_path`` (its frames through
    bwdif first when ``deinterlace``).

    ``progress(frames_written)`` is called as frames are written. Raises VideoError for a broken input.
    """
    started = time.perf_counter()
    upscaler = Upscaler(model, **(upscaler_options or {}))
    options = {"scale": upscaler.scale, **(writer_options or {})}
    pending: list[Frame] = []  # decoded frames whose output has not come back yet, in order
    written = 0
    network = 0.0
    with (VideoReader(info.path, deinterlace=deinterlace) as reader,
          VideoWriter(out_path, info, copy_streams=False, **options) as writer):

        def emit(images: list) -> None:
            nonlocal written
            for image in images:
                src = pending.pop(0)
                if segment.first <= src.index < segment.end:
                    writer.write(Frame(image, src.pts, src.time_base, src.index, src.duration))
                    written += 1
                    if progress:
                        progress(written)

        for frame in reader.frames(start=segment.decode_from, seek=segment.seek):
            if frame.index >= segment.decode_to:
                break
            pending.append(frame)
            t0 = time.perf_counter()
            outs = upscaler.push(frame.image)
            network += time.perf_counter() - t0
            emit(outs)
            if written == segment.frames:
                break  # the look-ahead frames after the last window that matters need no network pass
        if written < segment.frames:
            t0 = time.perf_counter()
            outs = upscaler.flush()
            network += time.perf_counter() - t0
            emit(outs)
        errors = list(reader.errors)
    if written != segment.frames:
        # the file has fewer frames than its packet headers promised (damaged mid-way)
        raise VideoError(f"{info.path}: segment {segment.index} expected frames {segment.first}..{segment.end - 1} "
                         f"but decoded only {written} of them")
    return SegmentResult(written, time.perf_counter() - started, network, errors)

