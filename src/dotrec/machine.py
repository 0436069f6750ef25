"""A one-line description of the machine, printed by every benchmark beside its figures."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def machine_info() -> dict[str, object]:
    """CPU, core count, OS and the versions of the numeric libraries that set the speed."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for pkg in ("numpy", "scipy", "numba", "torch", "faiss-cpu", "implicit"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
            if k in os.environ
        },
    }


def machine_line() -> str:
    """:func:`machine_info` as one printable line."""
    m = machine_info()
    versions: dict[str, str] = m["versions"]  # type: ignore[assignment]
    libs = " ".join(f"{k}={v}" for k, v in versions.items())
    return (
        f"machine: {m['cpu']} | {m['cores']} cores | {m['platform']} | "
        f"python {m['python']} | {libs}"
    )


def machine_label(device: str = "cpu") -> str:
    """A short name of the hardware a computation ran on, recorded with study trials and fits.

    ``device`` is the torch device that did the work (``"cpu"`` or ``"cuda"``): a GPU run is
    labelled by the GPU's name with the host CPU beside it, a CPU run by the CPU and its cores.
    """
    m = machine_info()
    cpu = f"{m['cpu']}, {m['cores']} cores"
    if device.startswith("cuda"):
        from dotrec._torch import import_torch

        return f"{import_torch().cuda.get_device_name()} (host {cpu})"
    return cpu
