"""Lazy torch import and device selection (auto -> CUDA when available, else CPU; Apple GPUs as ``mps``).

Without torch the classic methods run on NumPy (core/arrays.py): the only device is then the CPU."""
from __future__ import annotations

from typing import Any

from .errors import InputError, MissingDependencyError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pip_instructions(packages: str) -> str:
    """How a QGIS user installs ``packages`` by hand for the Python that runs QGIS, on their platform: into this
    plugin's private folder (core/installer.py), which needs no admin rights, is allowed under PEP 668 (Debian 12,
    Ubuntu 24.04) and never replaces the numpy GDAL was built against; the plugin adds the folder at start-up."""
    import platform
    import sys

    from .installer import private_site

    target = private_site()
    system = platform.system()
    if system == "Windows":
        return (f'open the OSGeo4W Shell (Start menu, QGIS folder) and run: python -m pip install --target "{target}" '
                f"{packages}")
    if system == "Darwin":
        return ('in a Terminal run: "$(ls -d /Applications/QGIS*.app | head -1)/Contents/MacOS/bin/python3" -m pip '
                f'install --target "{target}" {packages}')
    # (inside QGIS sys.executable may be the qgis binary: name the interpreter by its version)
    return (f"in a terminal run: python{sys.version_info.major}.{sys.version_info.minor} -m pip install --target "
            f"'{target}' {packages}")


def install_hint() -> str:
    """How a QGIS user installs PyTorch (and numba) for the Python that runs QGIS, on their platform."""
    how = pip_instructions("torch numba")
    return ("PyTorch is not installed in the Python that runs QGIS; the deep-learning methods (STFDCNN, STF3DCNN, "
            "the DCNN, DCSTFN, STFSR) and GPUs need it (STARFM, ESTARFM, FSDAF, Fit-FC, the benchmarks, product "
            "preparation and evaluation run without it). To install it, use "
            f"Plugins > Spatiotemporal fusion > Install PyTorch and numba, or {how}; "
            "then restart QGIS. A CPU build is enough; for a GPU, pick the CUDA build at https://pytorch.org.")


def torch_available() -> bool:
    """True when torch can be imported (checked without importing it)."""
    from .arrays import torch_importable

    return torch_importable()


def import_torch() -> Any:
    """Import torch, or raise :class:`MissingDependencyError` that says how to install it."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(install_hint()) from None
    return torch


def mps_available() -> bool:
    """True where torch is installed and has a usable Apple GPU (checked without failing when torch is missing)."""
    try:
        return _mps_available(import_torch())
    except MissingDependencyError:
        return False


def _mps_available(torch: Any) -> bool:
    backends = getattr(torch, "backends", None)
    mps = getattr(backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str = "auto") -> Any:
    """The ``torch.device`` for ``name`` (auto / cpu / cuda / cuda:N / mps).

    ``auto`` picks CUDA when a GPU is usable, else the CPU (never ``mps`` by itself: Apple GPUs are offered but
    could not be measured here). Asking for a GPU where there is none is an error that says so (rather than a
    silent fall-back that would mislead timings).
    """
    torch = import_torch()
    key = (name or "auto").strip().lower()
    if key == "mps":
        if not _mps_available(torch):
            raise InputError("DEVICE is 'mps' but this PyTorch has no usable Apple GPU; choose 'auto' or 'cpu'.")
        return torch.device("mps")
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


def array_device(name: str = "auto") -> Any:
    """The device of the classic methods (core/arrays.py): :func:`resolve_device` with torch, the CPU of the NumPy
    backend without it. Apple GPUs are refused: the classic methods' window sums are float64, which mps lacks."""
    from .arrays import backend, is_numpy

    key = (name or "auto").strip().lower()
    if key == "mps":
        raise InputError("Apple GPUs (DEVICE 'mps') have no float64, which the classic methods' window sums need; "
                         "choose 'auto' or 'cpu' (the deep-learning methods can use 'mps').")
    xp = backend()
    if not is_numpy(xp):
        return resolve_device(name)
    if key in ("auto", "cpu"):
        return xp.device("cpu")
    if key.startswith("cuda"):
        raise InputError(f"DEVICE is '{name}': a GPU needs PyTorch. {install_hint()} Or choose 'auto' or 'cpu'.")
    raise InputError(f"Unknown DEVICE '{name}'; use one of {', '.join(DEVICES)}.")


def describe_device(device: Any) -> str:
    """Human description, e.g. 'CUDA: NVIDIA H100 80GB HBM3', 'CPU (2 threads)' or 'CPU (NumPy, 2 cores)'."""
    if device.type == "mps":
        return "Apple GPU (mps)"
    if device.type == "cuda":
        return f"CUDA: {import_torch().cuda.get_device_name(device)}"
    from .arrays import device as numpy_device, get_num_threads

    if isinstance(device, numpy_device):
        return f"CPU (NumPy, {get_num_threads()} cores)"
    return f"CPU ({import_torch().get_num_threads()} threads)"


def detected_devices() -> str:
    """What this machine offers, for help text and dialogs: 'CUDA: <GPU name>' or 'CPU only'."""
    try:
        torch = import_torch()
    except MissingDependencyError:
        return "CPU only (PyTorch not installed: classic methods only)"
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    if _mps_available(torch):
        return "Apple GPU (mps)"
    return "CPU only"
