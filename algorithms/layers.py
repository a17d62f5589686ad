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
    QgsRasterLayerTemporalProperties,
)
from qgis.PyQt.QtCore import QDateTime, QTime

from ..core.dates import date_from_name
from ..core.style import style_path

# Processing keeps only a C++ pointer to a post-processor: the Python objects must outlive the run
_POST_PROCESSORS: list = []


def date_and_style(layer, date: _dt.date | None, qml: str | None = None) -> None:
    """Give ``layer`` the day ``date`` as its fixed temporal range, and the style ``qml`` (default: the side-car
    of its file) when there is one."""
    qml = qml or style_path(layer.source())
    if os.path.isfile(qml):
        layer.loadNamedStyle(qml)
    if date is not None:
        properties = layer.temporalProperties()
        properties.setMode(QgsRasterLayerTemporalProperties.ModeFixedTemporalRange)
        properties.setFixedTemporalRange(QgsDateTimeRange(QDateTime(date, QTime(0, 0, 0)),
                                                          QDateTime(date, QTime(23, 59, 59))))
        properties.setIsActive(True)
    layer.triggerRepaint()


class DatedStyledLayer(QgsProcessingLayerPostProcessorInterface):
    """Runs on each output layer once Processing has loaded it into the project."""

    def __init__(self, date: _dt.date | None) -> None:
        super().__init__()
        self.date = date

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        date_and_style(layer, self.date)


def load_on_completion(context: QgsProcessingContext, files: list[str], output_name: str) -> None:
    """Ask Processing to add every file to the map when the run ends (the toolbox and the modeler do; qgis_process
    has no map and ignores it), each dated and styled."""
    if context.project() is None:
        return
    if len(_POST_PROCESSORS) > 1000:  # runs long finished
        del _POST_PROCESSORS[:500]
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0]
        date = date_from_name(name)
        method = name.rsplit("_", 1)[0]
        details = QgsProcessingContext.LayerDetails(f"{method} {date.isoformat()}" if date else name,
                                                    context.project(), output_name)
        post = DatedStyledLayer(date)
        _POST_PROCESSORS.append(post)
        details.setPostProcessor(post)
        context.addLayerToLoadOnCompletion(path, details)
