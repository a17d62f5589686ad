"""The plugin object QGIS creates through ``classFactory``."""
from __future__ import annotations

from qgis.core import QgsApplication

from .provider import StfProvider


class StfPlugin:
    """Registers the ``stf`` Processing provider (also headless, through :meth:`initProcessing`)."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: StfProvider | None = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API name)
        """Called by QGIS, also under qgis_process, where :meth:`initGui` is not."""
        if self.provider is None:
            self.provider = StfProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 (QGIS API name)
        """Desktop start-up."""
        self.initProcessing()

    def unload(self) -> None:
        """Remove everything the plugin added."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
