"""One code path for QGIS 3.22 (PyQt5, tested here) and QGIS 3.44 / 4.x (Qt6): QGIS enums by their new name where
the running QGIS has it, else by their 3.22 scoped name. Qt enums are written fully scoped everywhere
(``Qt.ItemDataRole.UserRole``), which PyQt5 and PyQt6 both accept; tests/test_qt6_ready.py fails on any short form.
"""
from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=None)
def qgis_enum(new: str, old: str) -> Any:
    """The enum value ``new`` (e.g. ``Qgis.ProcessingSourceType.Raster``, QGIS 3.36+ and 4) if it exists, else
    ``old`` (e.g. ``QgsProcessing.SourceType.TypeRaster``, QGIS 3.22); both paths start with a name of qgis.core or
    qgis.gui."""
    for path in (new, old):
        value = _resolve(path)
        if value is not None:
            return value
    raise AttributeError(f"neither {new} nor {old} exists in this QGIS")


def _resolve(path: str) -> Any:
    import qgis.core
    import qgis.gui

    head, *rest = path.split(".")
    value = getattr(qgis.core, head, None)
    if value is None:
        value = getattr(qgis.gui, head, None)
    for part in rest:
        if value is None:
            return None
        value = getattr(value, part, None)
    return value


def message_level(name: str) -> Any:
    """``Qgis.MessageLevel.<name>`` (Info, Warning, Critical, Success)."""
    from qgis.core import Qgis

    return getattr(Qgis.MessageLevel, name)
