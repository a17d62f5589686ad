"""Outputs into the map: every prediction as a dated layer (fixed temporal range = its day, so the temporal
controller animates a series) with the series' style (the ``.qml`` written beside it, core/style.py). One code path
for the Processing algorithms (layers loaded on completion, through a layer post-processor) and the dialog's task.
"""
from __future__ import annotations

import datetime as _dt
import os

from qgis.core import (
    QgsDateTimeRange,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
)
from qgis.PyQt.QtCore import QDateTime, QTime

from ..core.dates import date_from_name
from .compat import qgis_enum
from ..core.style import style_path

# Processing keeps only a C++ pointer to a post-processor: the Python objects must outlive the run
_POST_PROCESSORS: list = []


def _fixed_range_mode():
    """The fixed-temporal-range mode of raster layers: ``Qgis.RasterTemporalMode`` where QGIS has it (3.44, 4.x),
    else the 3.22 form."""
    return qgis_enum("Qgis.RasterTemporalMode.FixedTemporalRange",
                     "QgsRasterLayerTemporalProperties.TemporalMode.ModeFixedTemporalRange")


def layer_date(layer) -> _dt.date | None:
    """The day of a raster layer's fixed temporal range when its temporal properties are active (what the user
    set in QGIS comes before any date in the file name); None otherwise."""
    try:
        properties = layer.temporalProperties()
    except AttributeError:
        return None
    if properties is None or not properties.isActive() or properties.mode() != _fixed_range_mode():
        return None
    begin = properties.fixedTemporalRange().begin()
    return begin.date().toPyDate() if begin.isValid() else None


def set_layer_date(layer, date: _dt.date) -> None:
    """Give ``layer`` the day ``date`` as its active fixed temporal range (the temporal controller then shows it)."""
    properties = layer.temporalProperties()
    properties.setMode(_fixed_range_mode())
    properties.setFixedTemporalRange(QgsDateTimeRange(QDateTime(date, QTime(0, 0, 0)),
                                                      QDateTime(date, QTime(23, 59, 59))))
    properties.setIsActive(True)


def date_and_style(layer, date: _dt.date | None, qml: str | None = None) -> None:
    """Give ``layer`` the day ``date`` as its fixed temporal range, and the style ``qml`` (default: the side-car
    of its file) when there is one."""
    qml = qml or style_path(layer.source())
    if os.path.isfile(qml):
        layer.loadNamedStyle(qml)
    if date is not None:
        set_layer_date(layer, date)
    layer.triggerRepaint()


def series_group(method: str, folder: str) -> str:
    """One layer group per series (the predictions of a method in an output folder), not per run: a later run into
    the same folder adds its dates to the same group."""
    return f"STF {method} ({os.path.basename(os.path.normpath(folder)) or folder})"


def replace_earlier(project, layer) -> None:
    """Remove the project's other layers of the same file (a run that replaced its outputs)."""
    for other in list(project.mapLayers().values()):
        if other.id() != layer.id() and other.source() == layer.source():
            project.removeMapLayer(other.id())


class DatedStyledLayer(QgsProcessingLayerPostProcessorInterface):
    """Runs on each output layer once Processing has loaded it into the project: date, style, and a place in the
    run's group (QGIS 3.22's LayerDetails cannot name a group, so the layer is moved into it here)."""

    def __init__(self, date: _dt.date | None, group: str) -> None:
        super().__init__()
        self.date = date
        self.group = group

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        date_and_style(layer, self.date)
        project = context.project()
        root = project.layerTreeRoot() if project is not None else None
        node = root.findLayer(layer.id()) if root is not None else None
        if node is None:
            return
        replace_earlier(project, layer)
        group = root.findGroup(self.group) or root.insertGroup(0, self.group)
        group.addLayer(layer)  # a second node for the layer in the group; the original one is removed
        node.parent().removeChildNode(node)


def load_on_completion(context: QgsProcessingContext, files: list[str], output_name: str) -> None:
    """Ask Processing to add every file to the map when the run ends (the toolbox and the modeler do; qgis_process
    has no map and ignores it), each dated and styled."""
    if context.project() is None:
        return
    if len(_POST_PROCESSORS) > 1000:  # runs long finished
        del _POST_PROCESSORS[:500]
    prefix = os.path.basename(files[0]).rsplit("_", 1)[0] if files else "stf"
    group = series_group(prefix, os.path.dirname(files[0])) if files else f"STF {prefix}"
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0]
        date = date_from_name(name)
        method = name.rsplit("_", 1)[0]
        details = QgsProcessingContext.LayerDetails(f"{method} {date.isoformat()}" if date else name,
                                                    context.project(), output_name)
        post = DatedStyledLayer(date, group)
        _POST_PROCESSORS.append(post)
        details.setPostProcessor(post)
        context.addLayerToLoadOnCompletion(path, details)
