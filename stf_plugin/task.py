"""The desktop workflow as one QgsTask, and what happens when it ends (layers with dates, messages)."""
from __future__ import annotations

import os

import traceback
from typing import Callable

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMessageLog,
    QgsProject,
    QgsRasterLayer,
    QgsTask,
)
from qgis.PyQt.QtCore import QDateTime, QTime

from ..algorithms.layers import date_and_style, replace_earlier, series_group
from ..core.errors import CancelledError, StfError
from ..core.workflow import WorkflowConfig, WorkflowResult, run_workflow

LOG_TAG = "Spatiotemporal fusion"


class _TaskFeedback:
    """The core's feedback on top of a QgsTask (progress bar in the task manager, cancel button)."""

    def __init__(self, task: QgsTask) -> None:
        self.task = task

    def set_progress(self, percent: float) -> None:
        self.task.setProgress(percent)

    def is_canceled(self) -> bool:
        return self.task.isCanceled()

    def info(self, message: str) -> None:
        QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Info)


def history_commands(result: WorkflowResult, config: WorkflowConfig) -> list[str]:
    """The run as ``processing.run(...)`` lines, the method's own settings included (the Advanced section)."""
    import dataclasses

    lines = []
    registry = QgsApplication.processingRegistry()
    for alg_id, params in result.commands:
        params = dict(params)
        alg = registry.algorithmById(alg_id)
        if config.params is not None and alg is not None and getattr(alg, "PARAMS", None) is type(config.params):
            for f in dataclasses.fields(config.params):
                if alg.parameterDefinition(f.name.upper()) is not None and f.name.upper() not in params:
                    params[f.name.upper()] = getattr(config.params, f.name)
        lines.append(f"processing.run({alg_id!r}, {params!r})")
    return lines


def add_to_processing_history(lines: list[str]) -> None:
    """Write the lines to the Processing history (Processing > History), where they can be run again: through
    QGIS's public history registry where it has a Processing provider (3.32 and later, 4.x), else through
    Processing's own log (3.22)."""
    try:
        from qgis.gui import QgsGui

        registry = QgsGui.historyProviderRegistry()
    except (ImportError, AttributeError):
        registry = None
    if registry is not None and registry.providerById("processing") is not None:
        for line in lines:
            registry.addEntry("processing", {"python_command": line, "algorithm_id": "stf", "parameters": {}})
        return
    try:
        from processing.core.ProcessingLog import ProcessingLog
    except ImportError:  # no Processing plugin (e.g. a bare test environment)
        return
    for line in lines:
        ProcessingLog.addToLog(line)


class FusionTask(QgsTask):
    """Runs :func:`..core.workflow.run_workflow` in the background; on success adds the predictions to the project
    as a group of layers with fixed temporal ranges (so the temporal controller animates them)."""

    def __init__(self, config: WorkflowConfig, iface=None, on_finished: Callable[["FusionTask"], None] | None = None,
                 project: QgsProject | None = None) -> None:
        super().__init__(f"Spatiotemporal fusion ({config.method})", QgsTask.Flag.CanCancel)
        self.config = config
        self.iface = iface
        self.on_finished = on_finished
        self.project = project or QgsProject.instance()
        self.result: WorkflowResult | None = None
        self.error: str | None = None
        self.cancelled = False
        self.group_name: str | None = None
        self.layer_dates: list[tuple[str, QDateTime]] = []
        self.history: list[str] = []

    def run(self) -> bool:  # runs in a worker thread: no GUI here
        try:
            self.result = run_workflow(self.config, _TaskFeedback(self))
            return True
        except CancelledError:
            self.cancelled = True
        except StfError as exc:
            self.error = str(exc)
        except Exception as exc:  # an unexpected failure: the user gets the message, the log the traceback
            self.error = f"Unexpected error: {exc}"
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.MessageLevel.Critical)
        return False

    def finished(self, ok: bool) -> None:  # back in the main thread
        if ok and self.result is not None:
            if self.result.predictions:
                self._add_layers(self.result)
            self.history = history_commands(self.result, self.config)
            add_to_processing_history(self.history)
            text = (f"Cross-validation: the best method on this scene is {self.result.best}."
                    if self.result.best else
                    f"{len(self.result.predictions)} prediction(s) added to the group '{self.group_name}'.")
            self._message(text, Qgis.MessageLevel.Success, self.result.report, loss_plot(self.result.model))
        elif self.cancelled or self.isCanceled():
            self.cancelled = True
            self._message("Fusion cancelled; no output was written.", Qgis.MessageLevel.Info)
        else:
            self._message(self.error or "Fusion failed.", Qgis.MessageLevel.Critical)
        if self.on_finished is not None:
            self.on_finished(self)

    def _add_layers(self, result: WorkflowResult) -> None:
        self.group_name = series_group(result.method, self.config.output_folder)
        root = self.project.layerTreeRoot()
        group = root.findGroup(self.group_name) or root.insertGroup(0, self.group_name)
        for date, path in result.predictions:
            layer = QgsRasterLayer(path, f"{result.method} {date.isoformat()}")
            date_and_style(layer, date)  # the same as the Processing algorithms' outputs (algorithms/layers.py)
            self.project.addMapLayer(layer, False)
            replace_earlier(self.project, layer)
            group.addLayer(layer)
            self.layer_dates.append((layer.id(), QDateTime(date, QTime(0, 0, 0))))

    def _message(self, text: str, level, report: str | None = None, curves: str | None = None) -> None:
        QgsMessageLog.logMessage(text, LOG_TAG, level)
        if self.iface is None or not hasattr(self.iface, "messageBar"):
            return
        bar = self.iface.messageBar()
        links = [(label, path) for label, path in (("Open the evaluation report", report),
                                                   ("Show the training curves", curves)) if path]
        if links:
            from qgis.PyQt.QtCore import QUrl
            from qgis.PyQt.QtGui import QDesktopServices
            from qgis.PyQt.QtWidgets import QPushButton

            widget = bar.createMessage(LOG_TAG, text)
            for label, path in links:
                button = QPushButton(label)
                button.clicked.connect(lambda _checked=False, p=path: QDesktopServices.openUrl(QUrl.fromLocalFile(p)))
                widget.layout().addWidget(button)
            bar.pushWidget(widget, level, 0)
        else:
            bar.pushMessage(LOG_TAG, text, level, 0 if level == Qgis.MessageLevel.Critical else 10)


def loss_plot(model: str | None) -> str | None:
    """The training curves written beside a model trained in this run (``<model>.loss.png``), when there are."""
    if not model:
        return None
    path = os.path.splitext(model)[0] + ".loss.png"
    return path if os.path.isfile(path) else None


class PrepareTask(QgsTask):
    """stf:prepare_series as a background task (the dialog's "From downloaded products" step); ``on_finished`` gets
    the task, whose ``result`` is the prepared series (or ``error`` the message)."""

    def __init__(self, inputs: list[str], folder: str, on_finished) -> None:
        super().__init__("Prepare a series from downloaded products", QgsTask.Flag.CanCancel)
        self.inputs, self.folder, self.on_finished = inputs, folder, on_finished
        self.result = None
        self.error = ""

    def run(self) -> bool:
        from ..core.errors import StfError
        from ..core.products.prepare import prepare_series

        try:
            self.result = prepare_series(self.inputs, [], [], self.folder, feedback=_TaskFeedback(self))
            return True
        except StfError as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001  a bug: said, not a traceback in the user's face
            self.error = f"Internal error while preparing the series: {exc!r}"
            return False

    def finished(self, ok: bool) -> None:  # noqa: D401
        self.on_finished(self)
