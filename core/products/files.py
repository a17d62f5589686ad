"""Product files where the user keeps them: plain files, folders, and archives as they are downloaded (USGS
Landsat ``.tar`` / ``.tar.gz``, Copernicus Sentinel-2 ``.SAFE.zip``, any ``.zip`` / ``.tgz``), read in place through
GDAL's virtual file systems (``/vsitar/``, ``/vsizip/``): nothing is ever extracted beside the user's files.

Every reader sees one flat list of paths (a plain path, or ``/vsitar/<archive>/<member>``) and reads metadata with
:func:`read_text`, so a product inside an archive is read exactly as the same product in a folder.
"""
from __future__ import annotations

import os
import re

from osgeo import gdal

from ..errors import InputError

# GDAL would write '<archive>.tar.gz.properties' (a seek index) beside a compressed archive it reads: never beside
# the user's files
gdal.SetConfigOption("CPL_VSIL_GZIP_WRITE_PROPERTIES", "NO")

ARCHIVES = {".tar": "/vsitar/", ".tar.gz": "/vsitar/", ".tgz": "/vsitar/", ".zip": "/vsizip/"}


def archive_prefix(path: str) -> str | None:
    """The GDAL virtual file system of an archive name (``/vsitar/``, ``/vsizip/``), None for other files."""
    lower = path.lower()
    for ext, prefix in ARCHIVES.items():
        if lower.endswith(ext):
            return prefix
    return None


def archive_members(path: str) -> list[str]:
    """Every file of the archive ``path`` as a GDAL virtual path (``/vsitar/<path>/<member>``), sorted."""
    root = archive_prefix(path) + os.path.abspath(path)
    try:
        names = gdal.ReadDirRecursive(root)
    except RuntimeError as exc:
        raise InputError(f"Cannot read the archive '{path}': {exc}") from None
    if names is None:
        raise InputError(f"Cannot read the archive '{path}': not a readable tar / zip file (damaged, or not "
                         "completely downloaded?).")
    return sorted(f"{root}/{n}" for n in names if not n.endswith("/"))


def expand(path: str) -> list[str]:
    """The files of an input: itself, a folder's files (recursively, archives in it opened too), or an archive's
    members."""
    if os.path.isdir(path):
        found = []
        for base, dirs, names in os.walk(path):
            dirs.sort()
            for n in sorted(names):
                full = os.path.join(base, n)
                found += archive_members(full) if archive_prefix(n) else [full]
        return found
    if archive_prefix(path) and os.path.isfile(path):
        return archive_members(path)
    return [path]


def read_text(path: str) -> str:
    """The text of a file, plain or inside an archive (GDAL virtual path)."""
    if path.startswith("/vsi"):
        handle = gdal.VSIFOpenL(path, "rb")
        if handle is None:
            raise InputError(f"Cannot read '{path}'.")
        try:
            gdal.VSIFSeekL(handle, 0, 2)
            size = gdal.VSIFTellL(handle)
            gdal.VSIFSeekL(handle, 0, 0)
            data = gdal.VSIFReadL(1, size, handle)
        finally:
            gdal.VSIFCloseL(handle)
        return data.decode("utf-8", errors="replace")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError as exc:
        raise InputError(f"Cannot read '{path}': {exc.strerror or exc}.") from None


def shown(path: str) -> str:
    """A path as a user recognises it: an archive member as '<member> in <archive>', a URL without its query."""
    path = redact(path)
    for prefix in set(ARCHIVES.values()):
        if path.startswith(prefix):
            rest = path[len(prefix):]
            lower = rest.lower()
            for ext in ARCHIVES:
                i = lower.find(ext + "/")
                if i >= 0:
                    return f"{rest[i + len(ext) + 1:]} in {rest[:i + len(ext)]}"
    return path


def redact(text: str) -> str:
    """``text`` with every URL's credentials (``user:password@``) and query (signed tokens) removed: for
    messages, logs and the manifest."""
    text = re.sub(r"(\w+://)[^/\s@'\"]+@", r"\1", text)
    return re.sub(r"(\w+://[^\s?'\"]*)\?[^\s'\"]*", r"\1", text)
