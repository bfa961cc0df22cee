"""Turn a pruned-model export into a model that ships inside the package (``vsrapp/weights/<name>/``).

    python -m pruning.bundle runs/curve/r05-ft --name ssl-bi

The weights are stored in fp16 (half the bytes; the loader casts them back to fp32, and the shipped file is
what ``vsrapp eval --model <name>`` measures, so the zoo's numbers include the rounding). ``meta.json`` keeps the
recipe but loses this machine's paths. The command prints the sha256 and size that the zoo entry must quote.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from vsrapp_models.pruned import read_meta, save_pruned

from .zoo import BUNDLED_DIR, sha256_of

NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_PATH_KEYS = ("data", "out")


def _without_paths(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with local paths (the training cache, the run folder) reduced to their last component."""
    meta = json.loads(json.dumps(meta))
    for phase in meta.get("recipe", {}).values():
        config = phase.get("config", {}) if isinstance(phase, dict) else {}
        for key in _PATH_KEYS:
            if isinstance(config.get(key), str):
                config[key] = Path(config[key]).name
    if isinstance(meta.get("source_model"), str):
        meta["source_model"] = Path(meta["source_model"]).name
    return meta


def bundle(export_dir: str | Path, name: str, target_root: Path = BUNDLED_DIR) -> Path:
    """Write ``target_root/name`` from ``export_dir`` (fp16 weights, same plan, path-free meta)."""
    from safetensors.torch import load_file

    if not NAME.match(name):
        raise ValueError(f"model name {name!r}: lower-case letters, digits, '.' and '-' only")
    export_dir = Path(export_dir)
    state = load_file(str(export_dir / "model.safetensors"))
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    plan = json.loads((export_dir / "plan.json").read_text())
    meta = _without_paths(read_meta(export_dir))
    meta["bundled_as"] = name
    meta["stored_dtype"] = "float16"
    return save_pruned(target_root / name, half, plan, meta)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pruning.bundle", description=__doc__.splitlines()[0])
    p.add_argument("export", type=Path, help="pruned-model export folder")
    p.add_argument("--name", required=True, help="zoo name (the folder under vsrapp/weights/)")
    args = p.parse_args(argv)
    out = bundle(args.export, args.name)
    weights = out / "model.safetensors"
    print(f"{out}: {weights.stat().st_size:,} bytes, sha256 {sha256_of(weights)} (quote both in vsrapp/zoo.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
