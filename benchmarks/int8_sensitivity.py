"""Graph-local int8 error of one exported graph under NNCF settings: SNR of its output against fp32, in dB.

Inputs are recorded while the fp32 graphs upscale 8 calibration clips (as vsrapp.quantize does); half of them
calibrate, the other half are held out for the SNR. This is how the fp32 rules of vsrapp.quantize were chosen
(docs/RESULTS.md, "int8 on the CPU"):

    python benchmarks/int8_sensitivity.py ~/.cache/vsrapp/onnx/basicvsr-vimeo-bi-<hash> backward_step \
        default,no-warp,base,base+concat,base+concat+mixed
"""

from __future__ import annotations

import sys
import time

import nncf
import numpy as np
import openvino as ov
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
from nncf.quantization.range_estimator import RangeEstimatorParametersSet

from vsrapp import quantize
from vsrapp.engine import backends


def ignored(names: list[str] | None = None, types: tuple[str, ...] = quantize.FP32_OP_TYPES) -> nncf.IgnoredScope:
    return nncf.IgnoredScope(names=list(names or []), types=list(types), validate=False)


def main() -> int:
    folder, graph = sys.argv[1], sys.argv[2]
    clips = quantize.calibration_clips(sys.argv[4] if len(sys.argv) > 4 else "runs/calib", max_clips=8)
    reference = backends.GraphModel(folder, backends.OPENVINO, threads=2)
    feeds = quantize.collect_inputs(reference, clips, samples=80)[graph]
    calib, held = feeds[::2], feeds[1::2]
    core = ov.Core()
    model = core.read_model(f"{folder}/{graph}.onnx")
    config = backends.openvino_config(2)
    fp32 = core.compile_model(model, "CPU", config)
    want = [fp32(f)[0] for f in held]

    def snr(q: ov.Model) -> float:
        c = core.compile_model(q, "CPU", config)
        err = [np.mean((c(f)[0] - w) ** 2) / np.mean(w**2) for f, w in zip(held, want)]
        return float(-10 * np.log10(np.mean(err)))

    concat_fed = quantize.concat_fed_convolutions(model)
    mixed = nncf.QuantizationPreset.MIXED
    quantile = AdvancedQuantizationParameters(
        activations_range_estimator_params=RangeEstimatorParametersSet.MEAN_QUANTILE)
    configs = {
        "default": {},
        "mixed": dict(preset=mixed),
        "no-warp": dict(ignored_scope=ignored(types=("GridSample", "Gather"))),
        "base": dict(ignored_scope=ignored()),  # no-warp + residual adds
        "base+fullbc": dict(ignored_scope=ignored(), fast_bias_correction=False),
        "base+quantile": dict(ignored_scope=ignored(), advanced_parameters=quantile),
        "base+mixed": dict(ignored_scope=ignored(), preset=mixed),
        "base+concat": dict(ignored_scope=ignored(concat_fed)),
        "base+concat+mixed": dict(ignored_scope=ignored(concat_fed), preset=mixed),
    }
    for name in (sys.argv[3].split(",") if len(sys.argv) > 3 else list(configs)):
        start = time.time()
        kw = {"fast_bias_correction": True, **configs[name]}
        q = nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib), **kw)
        print(f"{graph} {name}: SNR {snr(q):.2f} dB ({time.time() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
