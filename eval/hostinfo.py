"""What CPU a benchmark ran on. Throughput ratios depend on it: ONNX Runtime's int8 kernels use
VNNI / AMX where the CPU has them (the int8-vs-fp32 torch ratio roughly doubles), and two vCPUs
that are SMT siblings scale worse than two cores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

INT8_FLAGS = ("avx_vnni", "avx512_vnni", "amx_int8")


def cpu() -> dict[str, Any]:
    info: dict[str, str] = {}
    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    flags = set(info.get("flags", "").split())
    siblings, cores = info.get("siblings"), info.get("cpu cores")
    return {
        "model": info.get("model name", "unknown"),
        "cpus": len(os.sched_getaffinity(0)),
        "threads_per_core": int(siblings) // int(cores) if siblings and cores else None,
        "int8_instructions": [flag for flag in INT8_FLAGS if flag in flags] or ["avx2 only"],
    }


def describe(host: dict[str, Any]) -> str:
    smt = host.get("threads_per_core")
    return (
        f"{host['model']}, {host['cpus']} CPUs"
        + (f" ({smt} thread(s) per core)" if smt else "")
        + f", int8: {', '.join(host['int8_instructions'])}"
    )
