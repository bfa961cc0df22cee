"""``vsrapp bench`` (also ``python -m vsrapp.bench``): measuring models, one job of its own.

- :mod:`.run`: the command: which models (:func:`~.run.load_bench_model`, :func:`~.run.random_plan`), what is
  measured for each (parameters, MACs, model-only and end-to-end time, memory, roofline), the JSON and the table;
- :mod:`.profiling`: the measurement primitives it uses (the engine's recurrence timed part by part, conv
  throughput, peak memory, speed variants).

Nothing is imported here; the CLI, the tests and the scripts under ``benchmarks/`` import the module they use.
"""
