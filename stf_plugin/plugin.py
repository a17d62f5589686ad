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
        self.install_action = None
        self.install_task = None
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
        self.install_action = QAction("Install PyTorch and numba...", self.iface.mainWindow())
        self.install_action.triggered.connect(lambda _=False: self.install_dependencies())
        self.iface.addPluginToRasterMenu("&Spatiotemporal fusion", self.install_action)

    def install_dependencies(self, confirm: bool = True, background: bool = True, **kwargs) -> None:
        """Install PyTorch (CPU build) and numba into the plugin's private folder (core/installer.py), as a
        background task; the result in the message bar. ``kwargs`` go to the installer (tests)."""
        from qgis.core import Qgis, QgsTask

        from ..core.errors import StfError
        from ..core.installer import PACKAGES, install, private_site

        if confirm:
            from qgis.PyQt.QtWidgets import QMessageBox

            answer = QMessageBox.question(
                self.iface.mainWindow(), "Install PyTorch and numba",
                f"Download and install {', '.join(PACKAGES)} (CPU build, several hundred MB) into {private_site()}? "
                "QGIS's own Python packages are not touched; restart QGIS afterwards.")
            if answer != QMessageBox.StandardButton.Yes:
                return
        outcome = {}

        def work(task=None):
            try:
                outcome["removed"] = install(**kwargs)
            except StfError as exc:
                outcome["error"] = str(exc)
            return True

        def done(*_args):
            self.install_task = None
            bar = self.iface.messageBar()
            if "error" in outcome:
                bar.pushMessage("Spatiotemporal fusion", outcome["error"], Qgis.MessageLevel.Critical, 0)
            else:
                bar.pushMessage("Spatiotemporal fusion", "PyTorch and numba installed: restart QGIS to use them.",
                                Qgis.MessageLevel.Success, 0)

        if not background:
            work()
            done()
            return
        self.install_task = QgsTask.fromFunction("Installing PyTorch and numba", work, on_finished=done)
        QgsApplication.taskManager().addTask(self.install_task)

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
        if self.install_action is not None and self.iface is not None:
            self.iface.removePluginRasterMenu("&Spatiotemporal fusion", self.install_action)
            self.install_action = None
        if self.dialog is not None:
            self.dialog.close()
            self.dialog = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
