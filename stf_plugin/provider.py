"""The ``stf`` Processing provider."""
from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..algorithms import ALGORITHMS

RESOURCES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources")


class StfProvider(QgsProcessingProvider):
    """Spatiotemporal fusion algorithms: data preparation, fusion methods, evaluation."""

    def id(self) -> str:  # noqa: A003 (QGIS API name)
        return "stf"

    def name(self) -> str:
        return "Spatiotemporal fusion"

    def longName(self) -> str:  # noqa: N802
        return "Spatiotemporal fusion of fine (Landsat-like) and coarse (MODIS-like) images"

    def icon(self) -> QIcon:
        return QIcon(os.path.join(RESOURCES, "icon.svg"))

    def svgIconPath(self) -> str:  # noqa: N802
        return os.path.join(RESOURCES, "icon.svg")

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
