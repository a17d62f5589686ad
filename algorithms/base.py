"""The one Processing algorithm class: every ``stf`` algorithm is this class over an entry of
:mod:`..core.catalog` (the one source of truth for ids, help, parameters and outputs, shared with the QGIS-free
command line).

It declares the catalog's parameters as ``QgsProcessingParameter*`` definitions, turns what QGIS passes into the
catalog's plain values and runs :func:`..core.catalog.execute`. Errors the core raises on purpose
(:class:`~..core.errors.StfError`) reach the user as a ``QgsProcessingException`` with the core's message;
cancelling raises too, after the core has removed its partial outputs.
"""
from __future__ import annotations

import datetime as _dt
import html
import os
import re
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core import catalog
from ..core.catalog import Param, Spec
from ..core.errors import StfError
from .compat import qgis_enum
from .layers import load_on_completion

PLUGIN_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_path(source: str) -> str:
    """The file of a layer source. QGIS appends ``|layername=...``-style options to some sources; only such a
    suffix is removed, so a ``|`` that is part of a file name is kept."""
    if os.path.exists(source):
        return source
    head, sep, tail = source.partition("|")
    return head if sep and re.match(r"[A-Za-z_:]+=", tail) else source


GROUPS = {
    "data": "Data preparation",
    "classic": "Classic fusion methods",
    "deep": "Deep learning fusion",
    "evaluation": "Evaluation",
}


class QgisFeedback:
    """The core's feedback interface on top of a ``QgsProcessingFeedback``."""

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        self.feedback = feedback or QgsProcessingFeedback()

    def set_progress(self, percent: float) -> None:
        self.feedback.setProgress(percent)

    def is_canceled(self) -> bool:
        return self.feedback.isCanceled()

    def info(self, message: str) -> None:
        self.feedback.pushInfo(message)


class StfAlgorithm(QgsProcessingAlgorithm):
    """A ``stf`` algorithm; subclasses (made in ``algorithms/__init__.py``) set ``ALG_ID``."""

    ALG_ID = ""  # stable lowercase id, no spaces: a key of core.catalog

    def __init__(self) -> None:
        super().__init__()
        self._output_help: dict[str, str] = {}

    @property
    def spec(self) -> Spec:
        return catalog.spec(self.ALG_ID)

    @property
    def PARAMS(self) -> type:  # noqa: N802  the method's settings dataclass (the dialog's Advanced section)
        return self.spec.settings or object

    @property
    def NEEDS_TORCH(self) -> bool:  # noqa: N802  always (learned methods), or only for some METHODS
        return bool(self.spec.needs_torch)

    @property
    def GROUP(self) -> str:  # noqa: N802
        return self.spec.group

    @property
    def SHORT_HELP(self) -> str:  # noqa: N802
        return self.spec.help

    # --- identity -------------------------------------------------------------------------------------------
    def name(self) -> str:
        return self.ALG_ID

    def displayName(self) -> str:  # noqa: N802
        return self.tr(self.spec.name)

    def group(self) -> str:
        return self.tr(GROUPS[self.GROUP])

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP

    def icon(self):
        """One icon per group (resources/icons/<group>.svg)."""
        from qgis.PyQt.QtGui import QIcon

        return QIcon(os.path.join(PLUGIN_ROOT, "resources", "icons", f"{self.GROUP}.svg"))

    def createInstance(self) -> "StfAlgorithm":  # noqa: N802
        return type(self)()

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("stf", text)

    def shortDescription(self) -> str:  # noqa: N802
        """The help's first sentence (a full stop after "et al", "e.g", "i.e" or a capital initial ends none)."""
        first = re.split(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\b[A-Z])\.\s+(?=[A-Z])", self.SHORT_HELP, maxsplit=1)[0]
        return first.rstrip(".") + "."

    def tags(self) -> list[str]:
        """Search words of the toolbox."""
        words = ["spatiotemporal", "fusion", "landsat", "modis", "stf", "satellite", "time series"]
        return words + [w for w in re.split(r"[_\s]+", self.ALG_ID) if w not in ("fuse", "train")]

    def helpUrl(self) -> str:  # noqa: N802
        """The README shipped with the plugin (the Help button opens it)."""
        from qgis.PyQt.QtCore import QUrl

        readme = os.path.join(PLUGIN_ROOT, "README.md")
        return QUrl.fromLocalFile(readme).toString() if os.path.isfile(readme) else ""

    # --- help -----------------------------------------------------------------------------------------------
    def help_items(self) -> list[tuple[str, str]]:
        """(label, text) for every parameter, then every declared output, that has help."""
        items = [(f"{p.description()} ({p.name()})", p.help()) for p in self.parameterDefinitions() if p.help()]
        items += [(f"{o.description()} ({o.name()}, output)", self._output_help[o.name()])
                  for o in self.outputDefinitions() if o.name() in self._output_help]
        return items

    def shortHelpString(self) -> str:  # noqa: N802
        """HTML in the desktop, plain text headless (qgis_process 3.22 prints the string raw)."""
        items = self.help_items()
        if QgsApplication.platform() == "desktop":
            body = f"<p>{html.escape(self.SHORT_HELP)}</p>"
            body += "".join(f"<h3>{html.escape(k)}</h3><p>{html.escape(v)}</p>" for k, v in items)
            return body
        return self.SHORT_HELP + "\n\n" + "\n".join(f"{k}: {v}" for k, v in items)

    # --- parameters from the catalog ------------------------------------------------------------------------
    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        for param in self.spec.params:
            self.add_param(param)
        for output in self.spec.outputs:
            cls = {"layers": QgsProcessingOutputMultipleLayers, "file": QgsProcessingOutputFile,
                   "string": QgsProcessingOutputString}[output.kind]
            self.addOutput(cls(output.name, output.label))
            self._output_help[output.name] = output.help

    def add_param(self, p: Param) -> None:
        """The QGIS definition of a catalog parameter."""
        e = qgis_enum  # the QGIS 3.36+ / 4 name, else the 3.22 one (algorithms/compat.py)
        if p.kind in ("rasters", "files"):  # on the command line: repeat NAME=path; files: products, HDF, metadata
            kind = (e("Qgis.ProcessingSourceType.Raster", "QgsProcessing.SourceType.TypeRaster") if p.kind == "rasters"
                    else e("Qgis.ProcessingSourceType.File", "QgsProcessing.SourceType.TypeFile"))
            definition = QgsProcessingParameterMultipleLayers(p.name, p.label, kind, None, p.optional)
        elif p.kind == "raster":
            definition = QgsProcessingParameterRasterLayer(p.name, p.label, None, p.optional)
        elif p.kind in ("file", "folder"):
            behavior = (e("Qgis.ProcessingFileParameterBehavior.File", "QgsProcessingParameterFile.Behavior.File")
                        if p.kind == "file" else
                        e("Qgis.ProcessingFileParameterBehavior.Folder", "QgsProcessingParameterFile.Behavior.Folder"))
            definition = QgsProcessingParameterFile(p.name, p.label, behavior, p.extension, None, p.optional)
        elif p.kind == "extent":
            definition = QgsProcessingParameterExtent(p.name, p.label, None, p.optional)
        elif p.kind in ("int", "float"):
            kind = (e("Qgis.ProcessingNumberParameterType.Integer", "QgsProcessingParameterNumber.Type.Integer")
                    if p.kind == "int" else
                    e("Qgis.ProcessingNumberParameterType.Double", "QgsProcessingParameterNumber.Type.Double"))
            definition = QgsProcessingParameterNumber(p.name, p.label, kind, p.default, p.optional)
            if p.minimum is not None:
                definition.setMinimum(p.minimum)
            if p.maximum is not None:
                definition.setMaximum(p.maximum)
        elif p.kind == "enum":  # qgis_process accepts the option text (METHOD=bicubic) or its index
            definition = QgsProcessingParameterEnum(p.name, p.label, list(p.options), False, p.default, p.optional)
            definition.setUsesStaticStrings(True)
        elif p.kind == "string":
            definition = QgsProcessingParameterString(p.name, p.label, p.default, False, p.optional)
        elif p.kind == "bool":
            definition = QgsProcessingParameterBoolean(p.name, p.label, p.default, p.optional)
        elif p.kind == "folder_out":
            definition = QgsProcessingParameterFolderDestination(p.name, p.label, None, p.optional)
        elif p.kind == "file_out":
            definition = QgsProcessingParameterFileDestination(p.name, p.label, p.extension, None, p.optional,
                                                               not p.optional)
        elif p.kind == "raster_out":
            definition = QgsProcessingParameterRasterDestination(p.name, p.label, None, p.optional)
        else:
            raise ValueError(f"unknown parameter kind {p.kind}")
        definition.setHelp(p.full_help)
        if p.advanced:
            definition.setFlags(definition.flags() | e("Qgis.ProcessingParameterFlag.Advanced",
                                                       "QgsProcessingParameterDefinition.Flag.FlagAdvanced"))
        self.addParameter(definition)

    def values(self, parameters: dict, context: QgsProcessingContext) -> dict[str, Any]:
        """What QGIS passes, as the catalog's plain values (paths, numbers, option texts)."""
        values: dict[str, Any] = {}
        for p in self.spec.params:
            if self.parameterDefinition(p.name) is None:
                continue
            values[p.name] = self._value(p, parameters, context)
        if "DATES" in values and not values["DATES"] and "FINE" in values and "COARSE" in values:
            dates = self.layer_dates(parameters, ("FINE", "COARSE"), context)
            if dates is not None:  # the layers' temporal properties come before the dates in the file names
                values["DATES"] = ",".join(d.isoformat() for d in dates)
        return values

    def layer_dates(self, parameters: dict, names: tuple[str, ...], context: QgsProcessingContext
                    ) -> list[_dt.date] | None:
        """The days of the layers of ``names`` (in order) from their temporal properties, when every one of them is
        a map layer with an active fixed temporal range; else None (file paths, or a layer without one)."""
        from .layers import layer_date

        dates: list[_dt.date] = []
        for name in names:
            if self.file_values(parameters, name) is not None:
                return None
            for layer in self.parameterAsLayerList(parameters, name, context) or []:
                date = layer_date(layer)
                if date is None:
                    return None
                dates.append(date)
        return dates or None

    def _value(self, p: Param, parameters: dict, context: QgsProcessingContext) -> Any:
        name = p.name
        if p.kind == "rasters":
            return self.raster_paths(parameters, name, context)
        if p.kind == "raster":
            return self.raster_path(parameters, name, context)
        if p.kind == "file":
            return self.parameterAsFile(parameters, name, context) or None
        if p.kind == "files":
            value = parameters.get(name)
            if isinstance(value, str):
                return [v for v in value.split(";") if v] if value else []
            return [str(v) for v in (value or [])]
        if p.kind == "folder":
            return self.parameterAsFile(parameters, name, context) or None
        if p.kind == "extent":
            if parameters.get(name) in (None, ""):
                return ""
            rect = self.parameterAsExtent(parameters, name, context)
            if rect.isNull() or rect.isEmpty():
                return ""
            crs = self.parameterAsExtentCrs(parameters, name, context)
            suffix = f" [{crs.authid() or crs.toWkt()}]" if crs.isValid() else ""
            return f"{rect.xMinimum()!r},{rect.xMaximum()!r},{rect.yMinimum()!r},{rect.yMaximum()!r}{suffix}"
        if p.kind == "int":
            return self.parameterAsInt(parameters, name, context)
        if p.kind == "float":
            if p.optional and parameters.get(name) in (None, ""):
                return p.default
            return self.parameterAsDouble(parameters, name, context)
        if p.kind == "bool":
            return self.parameterAsBool(parameters, name, context)
        if p.kind == "enum":
            return self.parameterAsEnumString(parameters, name, context)
        if p.kind in ("string", "folder_out"):
            return self.parameterAsString(parameters, name, context)
        if p.kind == "file_out":
            return self.parameterAsFileOutput(parameters, name, context) or None
        return self.parameterAsOutputLayer(parameters, name, context)

    # --- parameter readers (accept what qgis_process passes: strings) ---------------------------------------
    @staticmethod
    def file_values(parameters: dict, name: str) -> list[str] | None:
        """The values of a raster parameter when every one is the path of an existing file, else None (layers of
        the project, layer ids). Such files are read by the core directly: opened as QGIS map layers, GDAL would
        write statistics into ``.aux.xml`` files beside the user's inputs, and a file that is not a raster would
        give QGIS's "Unable to load mesh" instead of a message naming it."""
        value = parameters.get(name)
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values or not all(isinstance(v, str) and os.path.isfile(v) for v in values):
            return None
        return values

    def raster_paths(self, parameters: dict, name: str, context: QgsProcessingContext) -> list[str]:
        """File paths of a multiple-raster parameter, in the order given."""
        files = self.file_values(parameters, name)
        if files is not None:
            return files
        layers = self.parameterAsLayerList(parameters, name, context) or []
        return [source_path(layer.source()) for layer in layers]

    def raster_path(self, parameters: dict, name: str, context: QgsProcessingContext) -> str | None:
        files = self.file_values(parameters, name)
        if files is not None:
            return files[0]
        layer = self.parameterAsRasterLayer(parameters, name, context)
        return source_path(layer.source()) if layer is not None else None

    def checkParameterValues(self, parameters: dict, context: QgsProcessingContext):  # noqa: N802
        """QGIS's check, except for raster parameters given as existing files: QGIS would open them as map layers
        (see :meth:`file_values`); the core checks them when it opens them, with messages naming the file."""
        for definition in self.parameterDefinitions():
            name = definition.name()
            if isinstance(definition, (QgsProcessingParameterMultipleLayers, QgsProcessingParameterRasterLayer)) \
                    and self.file_values(parameters, name) is not None:
                continue
            if not definition.checkValueIsAcceptable(parameters.get(name), context):
                return False, f"Incorrect parameter value for {name}"
        return True, ""

    def settings(self, parameters: dict, context: QgsProcessingContext, cls: type) -> Any:
        """An instance of the dataclass ``cls`` whose fields are read from the parameters named after them
        (field ``max_patches`` <- parameter ``MAX_PATCHES``); fields without a parameter keep their default."""
        values = {p.name: self._value(p, parameters, context) for p in self.spec.params
                  if p.kind not in catalog.INPUT_KINDS + catalog.DESTINATION_KINDS}
        return catalog.settings_of(values, cls)

    # --- running --------------------------------------------------------------------------------------------
    def loads_layers(self, parameters: dict) -> bool:
        """Whether the outputs go into the map. A model's intermediate step is not added (issue 26): the model hands
        it a destination it generated itself, ``<Processing temp folder>/<32 hex digits>/<PARAMETER>`` (a toolbox
        run's "temporary folder" arrives as TEMPORARY_OUTPUT instead and is loaded). A destination given as a
        QgsProcessingOutputLayerDefinition loads when it names a project, QGIS's own rule."""
        import re

        from qgis.core import QgsProcessingOutputLayerDefinition, QgsProcessingUtils

        temp = os.path.realpath(QgsProcessingUtils.tempFolder())
        for p in self.spec.params:
            if p.kind not in catalog.DESTINATION_KINDS:
                continue
            value = parameters.get(p.name)
            if isinstance(value, QgsProcessingOutputLayerDefinition):
                return value.destinationProject is not None
            if isinstance(value, str) and value:
                parent, name = os.path.split(os.path.realpath(value))
                if (os.path.dirname(parent) == temp and re.fullmatch(r"[0-9a-f]{32}", os.path.basename(parent))
                        and name.split(".")[0] == p.name):
                    return False
        return True

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        import signal
        import threading

        from ..core.errors import CancelledError, os_error_message

        def terminate(signum, frame):  # SIGTERM (qgis_process killed) is a cancel: every output is rolled back
            raise CancelledError("Stopped by a termination signal; no output was written.")

        main = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
        previous = signal.signal(signal.SIGTERM, terminate) if main else None
        try:
            outputs = catalog.execute(self.spec, self.values(parameters, context), QgisFeedback(feedback))
        except StfError as exc:
            raise QgsProcessingException(str(exc)) from None
        except OSError as exc:  # full disk, read-only file system...: the problem and the path, no traceback
            raise QgsProcessingException(os_error_message(exc)) from None
        except MemoryError:
            raise QgsProcessingException("Not enough memory for this run: lower the tile memory budget or the batch "
                                         "size, or close other programs. No output was written.") from None
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
        if self.spec.layers and self.loads_layers(parameters):
            load_on_completion(context, outputs[self.spec.layers], self.spec.layers)  # dated, styled layers
        return outputs
