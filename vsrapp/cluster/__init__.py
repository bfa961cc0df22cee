"""Scale-out on Ray (``vsrapp upscale --ray``): one job, the cluster's.

- :mod:`.driver`: :func:`~.driver.upscale_on_ray` plans every file's segments, runs each as a Ray task,
  stores what comes back in the job folder and joins the segments (:class:`~.driver.FileJob`,
  :class:`~.driver.ClusterError`);
- :mod:`.worker`: :func:`~.worker.upscale_segment`, one segment with a cold state, which is what a task runs
  (no Ray needed, so it is tested on its own).

The segment plan and the job description are :mod:`vsrapp.jobs`'s, shared with single-process runs. Nothing is
imported here (callers import the module they use), as in :mod:`vsrapp.web` and :mod:`vsrapp.bench`.
"""
