"""``python -m vsrapp.bench ...``: the same as ``vsrapp bench ...`` (the command lines in docs/BENCHMARKS.md and
the JSON files of benchmarks/results/ are written this way)."""

from .run import main

if __name__ == "__main__":
    raise SystemExit(main())
