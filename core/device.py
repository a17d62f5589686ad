"""Lazy torch import and device selection (auto -> CUDA when available, else CPU)."""
from __future__ import annotations

from typing import Any

from .errors import InputError, MissingDependencyError

DEVICES = ("auto", "cpu", "cuda")

INSTALL_HINT = (
    "PyTorch is not installed in the Python that runs QGIS. Install it with "
    "'python3 -m pip install torch' for that Python (on this project's set-up: 'make setup'), then restart QGIS."
)


def import_torch() -> Any:
    """Import torch, or raise :class:`MissingDependencyError` that says how to install it."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(INSTALL_HINT) from None
    return torch


def resolve_device(name: str = "auto") -> Any:
    """The ``torch.device`` for ``name`` (auto / cpu / cuda / cuda:N).

    ``auto`` picks CUDA when a GPU is usable, else the CPU. Asking for CUDA where there is none is an error that
    says so (rather than a silent fall-back that would mislead timings).
    """
    torch = import_torch()
    key = (name or "auto").strip().lower()
    if key == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if key == "cpu":
        return torch.device("cpu")
    if key.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("DEVICE is 'cuda' but no CUDA GPU is usable here; choose 'auto' or 'cpu'.")
        index = int(key.split(":", 1)[1]) if ":" in key else 0
        index = min(max(index, 0), torch.cuda.device_count() - 1)
        return torch.device("cuda", index)
    raise InputError(f"Unknown DEVICE '{name}'; use one of {', '.join(DEVICES)}.")


def describe_device(device: Any) -> str:
    """Human description, e.g. 'CUDA: NVIDIA H100 80GB HBM3' or 'CPU (2 threads)'."""
    torch = import_torch()
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} threads)"


def detected_devices() -> str:
    """What this machine offers, for help text and dialogs: 'CUDA: <GPU name>' or 'CPU only'."""
    try:
        torch = import_torch()
    except MissingDependencyError:
        return "PyTorch not installed"
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    return "CPU only"
