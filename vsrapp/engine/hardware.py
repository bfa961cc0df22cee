"""What the CPU is: its name and the instruction sets that decide its int8 and bf16 speed (Linux' /proc/cpuinfo;
nothing elsewhere). One place for the benchmarks' host record, the training recipe's device and the precision
rule of the engine."""

from __future__ import annotations

import functools
import platform


@functools.cache
def _cpuinfo_field(name: str) -> str:
    """The first ``name : value`` of /proc/cpuinfo (all cores report the same); empty where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


# The instruction sets that decide the CPU figures: int8 dot products (VNNI), bf16 arithmetic, AMX tiles. Two
# machines that /proc/cpuinfo both calls "Intel Xeon" can differ by 3x in bf16 and int8 through these.
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_features() -> list[str]:
    """Which of :data:`CPU_FEATURES` the CPU has (Linux; empty elsewhere)."""
    flags = set(_cpuinfo_field("flags").split())
    return [name for name in CPU_FEATURES if name in flags]


def cpu_name() -> str:
    """The CPU's model name (figures change with it: AMD EPYC and Intel Xeon machines take turns here)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def has_amx_bf16() -> bool:
    """Whether the CPU multiplies bf16 in AMX tiles (Xeon since Sapphire Rapids): there torch's bf16 autocast runs
    the networks 3.4-3.5x faster than fp32 (docs/BENCHMARKS.md). Without AMX, bf16 is unmeasured at full size
    (slower than fp32 on an AVX2-only CPU in a tiny-model check), so it is not chosen there."""
    return "amx_bf16" in cpu_features()
