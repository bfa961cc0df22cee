"""One description of an upscale job, used by every front end (issue #19).

- :mod:`vsrapp.jobs.spec`: :class:`JobSpec` (input, output, resolved model name, engine and encode options,
  segment length), its manifest form, and the resume check (equality of specs);
- :mod:`vsrapp.jobs.segments`: the one segment plan of single-process resume and Ray;
- :mod:`vsrapp.jobs.folder`: the job folder beside the output, shared by both ways of running.

The CLI (files, folders, ``--resume``, ``--ray``), :func:`vsrapp.upscale_file`, the web page
(:mod:`vsrapp.web.preview`) and :func:`vsrapp.cluster.upscale_on_ray` build a JobSpec once and hand it down.
"""

from .folder import JobFolder
from .segments import Segment, SegmentPlan
from .spec import EncodeOptions, EngineOptions, JobSpec, ManifestError, job_dir_for

__all__ = ["EncodeOptions", "EngineOptions", "JobFolder", "JobSpec", "ManifestError", "Segment", "SegmentPlan",
           "job_dir_for"]
