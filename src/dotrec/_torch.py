"""PyTorch helpers shared by the torch models: a lazy import and the device choice.

torch is an optional dependency (``dotrec[torch]``); it is imported only when a torch model is
trained, so loading, scoring and serving need NumPy only.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

from dotrec._optional import import_optional
from dotrec.errors import ConfigError

#: Values of ``device=`` / ``--device``: ``auto`` picks CUDA when torch sees a GPU, else CPU.
DEVICES = ("cpu", "cuda", "auto")
#: Values of ``precision=`` / ``--precision`` for the torch models' matrix products.
PRECISIONS = ("fp32", "bf16")


def import_torch() -> Any:
    """``import torch``, or a :class:`ConfigError` saying how to install it."""
    return import_optional(
        "torch",
        "this",
        "pip install 'dotrec[torch]' (CPU wheel: pip install torch==2.13.0 first)",
        "PyTorch",
    )


def check_device(device: str) -> str:
    """Validate ``device`` (without importing torch); returns it."""
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    return device


def resolve_device(device: str) -> str:
    """The concrete torch device for ``device``: ``cpu`` or ``cuda``.

    ``cuda`` without a GPU visible to torch is an error; ``auto`` falls back to the CPU.
    """
    check_device(device)
    if device == "cpu":
        return "cpu"
    available = bool(import_torch().cuda.is_available())
    if device == "cuda" and not available:
        raise ConfigError(
            "device 'cuda' requested but torch sees no CUDA device; use --device cpu or auto"
        )
    return "cuda" if available else "cpu"


def check_precision(precision: str) -> str:
    """Validate ``precision``; returns it."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), as Linux reports."""
    cpuinfo = Path("/proc/cpuinfo")
    if not sys.platform.startswith("linux") or not cpuinfo.exists():
        return False
    flags = cpuinfo.read_text(errors="replace")
    return "avx512_bf16" in flags or "amx_bf16" in flags


def warn_slow_bf16(device: str) -> None:
    """Warn once per call site when bf16 runs on a CPU that only emulates it (slow)."""
    if device == "cpu" and not cpu_has_bf16():
        warnings.warn(
            "precision='bf16' on a CPU without AVX512-BF16 or AMX: bfloat16 "
            "products are emulated and slower than float32",
            stacklevel=3,
        )
