"""PyTorch and numba installed from inside QGIS without breaking it.

QGIS brings its own Python with numpy and GDAL built for it; ``pip install`` into that Python (OSGeo4W's Program
Files, QGIS.app, Debian's system Python with PEP 668) needs admin rights, is refused, or replaces the numpy GDAL
was built against. So the packages go into a folder of this plugin's own, one per Python version
(:func:`private_site`), with ``pip install --target``; the folder is appended to ``sys.path`` at start-up
(:func:`activate`), after QGIS's own packages, so QGIS's numpy, GDAL and Qt always win; and whatever pip brought
along that QGIS already has (numpy, scipy, GDAL, Qt, matplotlib: ``PROTECTED``) is removed from the folder again.
Where it fails, the message gives the platform's manual instructions (:func:`..device.pip_instructions`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Callable, Sequence

from .errors import StfError
from .feedback import Feedback

PROTECTED = ("numpy", "scipy", "osgeo", "gdal", "pyqt5", "pyqt6", "sip", "qgis", "matplotlib")
PACKAGES = ("torch", "numba")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # the CPU build (PyPI's Linux wheel carries CUDA, ~2.5 GB)


def private_site(root: str | None = None) -> str:
    """``<root>/python<major>.<minor>``; root: STF_DEPS_DIR, else the platform's user data folder."""
    if root is None:
        root = os.environ.get("STF_DEPS_DIR")
    if root is None:
        if sys.platform.startswith("win"):
            base = os.environ.get("APPDATA") or os.path.expanduser("~")
        elif sys.platform == "darwin":
            base = os.path.expanduser("~/Library/Application Support")
        else:
            base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        root = os.path.join(base, "stf_fusion", "deps")
    return os.path.join(root, f"python{sys.version_info.major}.{sys.version_info.minor}")


def activate(site: str | None = None) -> bool:
    """Append the private folder to ``sys.path`` (after everything QGIS has) when it exists; True if it does."""
    site = site or private_site()
    if not os.path.isdir(site):
        return False
    if site not in sys.path:
        sys.path.append(site)
    return True


def python_executable() -> str:
    """The Python interpreter that runs QGIS (inside QGIS ``sys.executable`` may be the QGIS program itself)."""
    exe = sys.executable or ""
    if os.path.basename(exe).lower().startswith("python"):
        return exe
    names = ["python.exe"] if sys.platform.startswith("win") else [
        f"bin/python{sys.version_info.major}.{sys.version_info.minor}", "bin/python3"]
    for name in names:
        candidate = os.path.join(sys.exec_prefix, name)
        if os.path.isfile(candidate):
            return candidate
    found = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}")
    return found or exe


def pip_command(packages: Sequence[str], target: str, python: str, extra: Sequence[str] = ()) -> list[str]:
    """The pip call: into ``target`` only, upgrading there, never asking."""
    command = [python, "-m", "pip", "install", "--target", target, "--upgrade", "--no-input",
               "--disable-pip-version-check", "--no-warn-script-location"]
    if "torch" in packages and sys.platform != "darwin" and not extra:
        command += ["--extra-index-url", TORCH_CPU_INDEX]
    return command + list(extra) + list(packages)


def install(packages: Sequence[str] = PACKAGES, target: str | None = None, python: str | None = None,
            feedback: Feedback | None = None, extra: Sequence[str] = (),
            run: Callable = subprocess.run) -> list[str]:
    """Install ``packages`` into the private folder; returns what was removed again as QGIS's own. A failure is
    a :class:`StfError` with pip's last lines and the manual instructions."""
    from .device import pip_instructions

    target = target or private_site()
    os.makedirs(target, exist_ok=True)
    command = pip_command(packages, target, python or python_executable(), extra)
    if feedback is not None:
        feedback.info("Installing " + ", ".join(packages) + f" into {target} (this can take minutes).")
    result = run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-6:])
        raise StfError(f"Installing {', '.join(packages)} failed:\n{tail}\nTo install by hand, "
                       f"{pip_instructions(' '.join(packages))}.")
    removed = []
    for entry in sorted(os.listdir(target)):
        name = entry.split("-")[0].split(".")[0].lower()
        if name in PROTECTED:
            path = os.path.join(target, entry)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            removed.append(entry)
    if feedback is not None:
        feedback.info("Installed. Restart QGIS to use them."
                      + (f" Left to QGIS's own: {', '.join(removed)}." if removed else ""))
    activate(target)
    return removed
