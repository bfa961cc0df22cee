"""The speed/quality curve: one `vsrapp bench` run (every model timed side by side) joined with one
`vsrapp eval` JSON per model, written as a markdown table, a JSON file and a plot (PSNR against ms/frame).

    python benchmarks/pareto.py --bench benchmarks/results/curve-cpu.json \
        --row "dense BasicVSR" basicvsr-vimeo-bi docs/results/vid4_basicvsr-vimeo-bi.json \
        --row "SSL r0.5" ssl-bi docs/results/vid4_ssl-bi.json ... \
        --plot docs/pareto.png --json docs/results/pareto.json

MODEL is the name the bench JSON lists the model under (what was passed to `vsrapp bench --models`). Rows whose
model is ``bicubic`` or a dense ``basicvsr*`` are drawn as reference markers, the rest as the curve, in the order
given. Nothing is measured here: every number comes from the two kinds of files.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Point:
    label: str
    model: str
    params: int
    params_without_spynet: int
    gmacs: float
    ms_per_frame: float
    fps: float
    psnr: float
    ssim: float
    worst_frame_psnr: float  # the lowest single-frame PSNR: a recurrent state that blows up shows here first
    kind: str  # "reference" | "curve" | "point" (a model off the curve, e.g. a shipped one)


def load_points(bench_path: Path, rows: list[tuple[str, str, str]],
                extra: list[tuple[str, str, str]] = ()) -> tuple[list[Point], dict]:
    bench = json.loads(Path(bench_path).read_text())
    by_model = {r["model"]: r for r in bench["results"]}
    points = []
    for (label, model, eval_path), on_curve in [(r, True) for r in rows] + [(r, False) for r in extra]:
        if model not in by_model:
            raise SystemExit(f"pareto: {model!r} is not in {bench_path} (it has: {', '.join(by_model)})")
        r = by_model[model]
        score = json.loads(Path(eval_path).read_text())
        if len(score.get("clips", [])) != 4:
            raise SystemExit(f"pareto: {eval_path} is not a whole-Vid4 result (4 clips expected)")
        reference = _is_reference(model)
        points.append(Point(label, model, r["params"]["total"], r["params"]["without_spynet"],
                            r["macs"]["total"] / 1e9, r["model_only"]["ms_per_frame"], r["model_only"]["fps"],
                            score["psnr_y"], score["ssim_y"], _worst_frame(score),
                            "reference" if reference else "curve" if on_curve else "point"))
    return points, bench


def _is_reference(model: str) -> bool:
    """Bicubic and the official dense models (zoo entries that do not ship in the package) are the markers the
    pruned models are measured against; a bundled model or a folder is a point of its own."""
    if model == "bicubic":
        return True
    from vsrapp.zoo import ZooError, get_entry

    try:
        return not get_entry(model).bundled
    except ZooError:  # a folder or a checkpoint path
        return False


def _worst_frame(score: dict) -> float:
    frames = [v for c in score["clips"] for v in c.get("psnr_y_per_frame", [])]
    return min(frames) if frames else float("nan")


def markdown(points: list[Point], bench: dict) -> str:
    dense = next((p for p in points if p.kind == "reference" and p.model != "bicubic"), None)
    lines = ["| model | params M (w/o SpyNet) | GMACs / 180×320 frame | CPU ms/frame | frames/s | × dense speed "
             "| Vid4 PSNR / SSIM (Y) | worst frame dB |", "|---|---|---|---|---|---|---|---|"]
    for p in points:
        ratio = f"{dense.ms_per_frame / p.ms_per_frame:.2f}" if dense else "—"
        lines.append(f"| {p.label} | {p.params / 1e6:.2f} ({p.params_without_spynet / 1e6:.2f}) | {p.gmacs:.1f} "
                     f"| {p.ms_per_frame:,.0f} | {p.fps:.2f} | {ratio} | {p.psnr:.2f} / {p.ssim:.4f} "
                     f"| {p.worst_frame_psnr:.2f} |")
    host = bench.get("host", {})
    lines.append("")
    device = f"{host.get('cpu', '?')}, {host.get('torch_threads', '?')} threads, torch {host.get('torch', '?')}"
    lines.append(f"Timing: `{bench.get('command', '')}` ({device}; {bench.get('date', '')}).")
    return "\n".join(lines)


def plot(points: list[Point], out: Path, threshold: float | None, paper: float | None,
         curve_label: str = "pruning ratios, one recipe") -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    curve = [p for p in points if p.kind == "curve"]
    if curve:
        ax.plot([p.ms_per_frame for p in curve], [p.psnr for p in curve], "o-", color="tab:blue",
                label=curve_label)
    markers = iter(["D", "^", "v", "P", "X"])
    for p in points:
        if p.kind == "point":
            ax.plot([p.ms_per_frame], [p.psnr], marker=next(markers, "o"), color="tab:green", linestyle="none",
                    label=p.label)
        if p.kind != "reference":  # the legend has a point's full label; next to it, its name is enough
            name, dy = (p.label, -10) if p.kind == "curve" else (p.label.split(" (")[0], 4)
            ax.annotate(name, (p.ms_per_frame, p.psnr), textcoords="offset points", xytext=(6, dy), fontsize=7)
    for p in points:
        if p.kind == "reference":
            marker = "s" if p.model == "bicubic" else "*"
            ax.plot([p.ms_per_frame], [p.psnr], marker, markersize=12 if marker == "*" else 8, color="black"
                    if marker == "*" else "tab:gray", linestyle="none", label=p.label)
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", linestyle=":", linewidth=1, label=f"{threshold:g} dB (ssl-bi-fast bar)")
    if paper is not None:
        ax.axhline(paper, color="tab:purple", linestyle="--", linewidth=1, label=f"paper SSL-bi {paper:g} dB (GPU "
                   "schedule)")
    ax.set_xscale("log")
    ax.set_xlabel("CPU ms per 180×320 LR frame (model only, log scale)")
    ax.set_ylabel("Vid4 BI ×4 PSNR-Y (dB)")
    ax.set_title("Speed against quality, measured side by side on one machine")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left")  # fast and mid-quality: empty (bicubic sits low, models right)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", type=Path, required=True, help="JSON from vsrapp bench")
    p.add_argument("--row", nargs=3, action="append", required=True, metavar=("LABEL", "MODEL", "EVAL_JSON"),
                   help="a reference (bicubic, dense BasicVSR) or a point of the curve, joined in order")
    p.add_argument("--point", nargs=3, action="append", default=[], metavar=("LABEL", "MODEL", "EVAL_JSON"),
                   help="a model drawn on its own (e.g. a shipped one trained longer)")
    p.add_argument("--plot", type=Path, help="PNG to write")
    p.add_argument("--curve-label", default="pruning ratios, one recipe", help="legend of the --row line")
    p.add_argument("--json", type=Path, help="joined table as JSON")
    p.add_argument("--threshold", type=float, default=26.5, help="quality bar drawn on the plot (dB)")
    p.add_argument("--paper", type=float, default=27.15, help="paper's SSL-bi PSNR drawn on the plot (dB)")
    args = p.parse_args(argv)
    points, bench = load_points(args.bench, [tuple(r) for r in args.row], [tuple(r) for r in args.point])
    print(markdown(points, bench))
    if args.plot:
        plot(points, args.plot, args.threshold, args.paper, args.curve_label)
        print(f"plot written to {args.plot}")
    if args.json:
        args.json.write_text(json.dumps({"bench": str(args.bench), "points": [asdict(q) for q in points]},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
