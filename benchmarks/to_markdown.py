"""Render a ``vsrapp bench`` result file (schema vsrapp-bench v1) as the Markdown tables of docs/BENCHMARKS.md.

    python benchmarks/to_markdown.py benchmarks/results/cpu-180x320-*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(doc: dict[str, Any]) -> str:
    host, st = doc["host"], doc["settings"]
    device = host.get("gpu") or f"{host['cpu']}, {host['torch_threads']} threads"
    lines = [
        f"Run {doc['date']}, `{doc['command']}`",
        "",
        f"Device: {device}; torch {host['torch']}, PyAV {host['av']}, numpy {host['numpy']}, Python {host['python']}; "
        f"commit {host.get('git_commit')}; load average (1/5/15 min) {host['load_avg_1_5_15']} before, "
        f"{host.get('load_avg_after')} after. Precision {st['precision']}, {st['frames']} frames, warm-up "
        f"{st['warmup']}, window {st['window']} + look-ahead {st['lookahead']}, encoder {st['codec']} "
        f"preset {st['preset'] or 'default'}.",
        "",
        "| model | LR → HR | params (M) total / w/o SpyNet | GMACs/frame | model ms/frame | model frames/s | "
        "SpyNet / trunks / upsampler | network-only frames/s | e2e frames/s | e2e ÷ network | peak MB | "
        "roofline % | × dense (model / e2e) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["results"]:
        mo, e2e, vs = r["model_only"], r.get("e2e", {}), r.get("vs_reference", {})
        share = mo.get("steady_parts_share") or mo.get("parts_share", {})
        parts = " / ".join(f"{100 * share.get(p, 0):.0f}%" for p in ("spynet", "trunks", "upsampler"))
        p = r["params"]
        roof = r.get("roofline", {}).get("efficiency")
        lines.append(
            f"| {r['model']}{'' if r['trained'] else ' (untrained)'} | {r['lr_size'][0]}×{r['lr_size'][1]} → "
            f"{r['out_size'][0]}×{r['out_size'][1]} | {p['total'] / 1e6:.3f} / {p['without_spynet'] / 1e6:.3f} | "
            f"{r['macs']['total'] / 1e9:.1f} | {mo['ms_per_frame']:.1f} | {_f(mo['fps'], 3)} | {parts} | "
            f"{_f(e2e.get('network_only_fps'), 3)} | {_f(e2e.get('fps'), 3)} | {_f(e2e.get('e2e_over_network'))} | "
            f"{_f(mo['memory'].get('peak_mb'), 0)} | {_f(None if roof is None else 100 * roof, 1)} | "
            f"{_f(vs.get('model_only_speedup'))} / {_f(vs.get('e2e_speedup'))} |")
    for size in doc["sizes"]:
        roof = size["roofline"]
        lines += ["", f"Roofline ceiling at {size['lr_size'][0]}×{size['lr_size'][1]}: "
                      f"{roof['macs_per_s'] / 1e9:.1f} GMAC/s (3×3 conv 64→64, {roof['at_lr_size']['dtype']}, "
                      f"shape {roof['at_lr_size']['shape']})."]
    for r in doc["results"]:
        if r["model_only"].get("top_ops"):
            ops = ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in r["model_only"]["top_ops"][:5])
            lines.append(f"- top ops, {r['model']}: {ops}")
        for v in r.get("gpu_opts", []):
            if "ms_per_frame" in v:
                lines.append(f"- variant {v['variant']}, {r['model']}: {v['ms_per_frame']:.1f} ms/frame, "
                             f"PSNR vs fp32 {v['psnr_vs_fp32_db']} dB")
            else:
                lines.append(f"- variant {v['variant']}, {r['model']}: {v.get('skipped') or v.get('error')}")
    return "\n".join(lines)


def main(paths: list[str]) -> int:
    for path in paths:
        print(render(json.loads(Path(path).read_text())))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
