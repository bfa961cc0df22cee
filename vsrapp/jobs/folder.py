"""The job folder (``.<output name>.vsrapp-job/`` beside the output): one place for the checks and the manifest
I/O that a single-process job (:class:`vsrapp.pipeline.Job`) and a Ray job (:class:`vsrapp.cluster.FileJob`)
share. What each keeps in it besides the manifest (segments and states; planned and finished segments) is
their own."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..video import VideoError
from .segments import expected_suffix, segment_file_name
from .spec import MANIFEST_NAME, JobSpec, job_dir_for, read_manifest, write_manifest


class JobFolder:
    """The folder of the job ``spec`` describes."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.dir = job_dir_for(spec.output)
        self.suffix = expected_suffix(spec.output)

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_NAME

    def segment_path(self, index: int) -> Path:
        return self.dir / segment_file_name(index, self.suffix)

    def check_output(self, overwrite: bool) -> None:
        """Refuse an output that exists (unless ``overwrite``), and always one that is the input itself."""
        src, dst = self.spec.input, self.spec.output
        if os.path.exists(dst) and not overwrite:
            if os.path.abspath(dst) == os.path.abspath(src) or os.path.samefile(dst, src):
                raise VideoError(f"{dst}: refusing to write over the input file")
            raise VideoError(f"{dst}: already exists (use --overwrite to replace it)")

    def open(self, resume: bool, overwrite: bool) -> dict[str, Any] | None:
        """The manifest of the interrupted job to continue (``resume`` and a manifest there; refused with one
        line if it is not this job's), or None for a fresh start, which the caller makes with
        :meth:`start_fresh`. A folder left by an interrupted job is never thrown away silently."""
        if resume and self.manifest_path.exists():
            return read_manifest(self.manifest_path, self.spec)
        if self.dir.exists() and not overwrite:
            raise VideoError(f"{self.spec.output}: an interrupted job is in {self.dir}; continue it with --resume, "
                             "or start over with --overwrite")
        return None

    def start_fresh(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)

    def save(self, **parts: Any) -> None:
        """Write the manifest: the spec's head and settings, then ``parts`` (the caller's segment lists)."""
        write_manifest(self.manifest_path, self.spec.manifest(**parts))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
