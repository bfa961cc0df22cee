"""``vsrapp export MODEL OUT``: a model as ONNX graphs (:mod:`vsrapp.export`), or as int8 OpenVINO graphs
(:mod:`vsrapp.quantize`). The command sits above both, so that the exporter never imports the quantizer that
builds on it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from . import quantize, zoo
from .export import DEFAULT_OPSET, PHOTOS, ExportError, cached_export, export_onnx, read_manifest


def add_command(subparsers: Any) -> None:
    """Register ``export`` on the ``vsrapp`` sub-parsers (``func(args) -> int``)."""
    p = subparsers.add_parser("export", help="export a model to ONNX graphs (flow, trunk steps, reconstruction) "
                                             "with a manifest, for ONNX Runtime and OpenVINO; int8 for OpenVINO")
    p.add_argument("model", help="zoo name, official .pth, or pruned-model folder")
    p.add_argument("out", help="output folder (created; it appears only once the export is complete)")
    p.add_argument("--format", default="onnx", choices=["onnx", "openvino"],
                   help="onnx (default: fp32 graphs that ONNX Runtime and OpenVINO both run) or openvino (with "
                        "--int8: int8 graphs for --backend openvino)")
    p.add_argument("--int8", action="store_true", help="quantize to int8 (--format openvino; "
                   "pip install \"vsrapp[openvino]\")")
    p.add_argument("--calibrate", metavar="CLIPS", help="calibration video(s): a video file, a folder of frames, "
                   "or a folder of either; video like what you will upscale (never your evaluation clips). "
                   "Default: the photographs that ship with vsrapp")
    p.add_argument("--calibration-clips", type=int, default=24, help="at most this many clips (default 24)")
    p.add_argument("--keep-fp32", nargs="+", default=[], metavar="GRAPH",
                   help="graphs that stay fp32 in an int8 export (flow, backward_step, forward_step, reconstruct)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip running the graphs in ONNX Runtime against torch at a second frame size")
    p.add_argument("--threads", type=int, help="CPU threads for calibration (default: all cores)")
    p.add_argument("--overwrite", "-y", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_export)


def cmd_export(args: Any) -> int:
    if args.int8 and args.format != "openvino":
        print("vsrapp: error: --int8 needs --format openvino (int8 graphs are OpenVINO's)", file=sys.stderr)
        return 2
    if args.format == "openvino" and not args.int8:
        print("vsrapp: error: --format openvino is for int8 graphs (add --int8 --calibrate CLIPS); OpenVINO runs "
              "the fp32 --format onnx export as it is", file=sys.stderr)
        return 2
    try:
        out = Path(args.out)
        if out.exists() and not args.overwrite:
            raise ExportError(f"{out} already exists (pass --overwrite to replace it)")
        name = zoo.resolve_name(args.model)
        model = zoo.get_model(name)
        label = name if name in {e.name for e in zoo.list_models()} else Path(name).name
        if args.int8:
            if args.calibrate:
                clips = quantize.calibration_clips(args.calibrate, max_clips=args.calibration_clips)
            else:  # no video of the user's: the photographs that ship with vsrapp
                clips = quantize.photo_clips(min(args.calibration_clips, 16))
            fp32 = cached_export(model, label, opset=args.opset)
            out = quantize.quantize_export(fp32, out, clips, keep_fp32=args.keep_fp32, threads=args.threads,
                                           calibration=Path(args.calibrate).name if args.calibrate else PHOTOS,
                                           overwrite=args.overwrite)
        else:
            out = export_onnx(model, out, name=label, opset=args.opset, check=args.check, overwrite=args.overwrite)
    except ExportError as exc:
        print(f"vsrapp: error: {exc}", file=sys.stderr)
        return 2
    manifest = read_manifest(out)
    if args.int8:
        q = manifest["quantization"]
        kept = f"; fp32: {', '.join(q['fp32_graphs'])}" if q["fp32_graphs"] else ""
        print(f"{out}: {label} as {len(manifest['graphs'])} OpenVINO int8 graphs, calibrated on {q['clips']} clips "
              f"of {args.calibrate or PHOTOS}{kept}")
        return 0
    print(f"{out}: {label} as {len(manifest['graphs'])} ONNX graphs (opset {args.opset}): "
          + ", ".join(g["file"] for g in manifest["graphs"].values()))
    if "check" in manifest:
        c = manifest["check"]
        worst = max(c["max_abs_diff"].values())
        print(f"checked in ONNX Runtime at {c['size'][0]}x{c['size'][1]}: largest difference to torch {worst:.2g}")
    return 0
