"""The plugin object QGIS creates through ``classFactory``."""
from __future__ import annotations

from qgis.core import QgsApplication

from .provider import StfProvider


class StfPlugin:
    """Registers the ``stf`` Processing provider (also headless, through :meth:`initProcessing`)."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: StfProvider | None = None
        self.action = None
        self.dialog = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API name)
        """Called by QGIS, also under qgis_process, where :meth:`initGui` is not."""
        if self.provider is None:
            self.provider = StfProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 (QGIS API name)
        """Desktop start-up: the provider, and the "Spatiotemporal fusion..." menu entry and toolbar button."""
        import os

        from qgis.PyQt.QtGui import QIcon
        try:  # Qt6 (QGIS 4): QtGui; Qt5: QtWidgets
            from qgis.PyQt.QtGui import QAction
        except ImportError:
            from qgis.PyQt.QtWidgets import QAction

        self.initProcessing()
        if self.iface is None:
            return
        icon = QIcon(os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icon.svg"))
        self.action = QAction(icon, "Spatiotemporal fusion...", self.iface.mainWindow())
        self.action.triggered.connect(self.show_dialog)
        self.iface.addPluginToRasterMenu("&Spatiotemporal fusion", self.action)
        self.iface.addToolBarIcon(self.action)  # the Plugins toolbar: shown in a fresh profile (Raster is not)

    def show_dialog(self) -> None:
        """Open (or raise) the fusion dialog."""
        from .dialog import FusionDialog

        if self.dialog is None:
            self.dialog = FusionDialog(self.iface, self.iface.mainWindow() if self.iface else None)
        self.dialog.show()
        self.dialog.raise_()

    def unload(self) -> None:
        """Remove everything the plugin added."""
        if self.action is not None and self.iface is not None:
            self.iface.removePluginRasterMenu("&Spatiotemporal fusion", self.action)
            self.iface.removeToolBarIcon(self.action)
            self.action = None
        if self.dialog is not None:
            self.dialog.close()
            self.dialog = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
