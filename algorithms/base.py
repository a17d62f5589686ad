"""Shared base class of every ``stf`` algorithm: ids, groups, typed parameters, help, errors, feedback.

Algorithms are thin: they read parameters with the helpers here, call ``core`` and return their outputs. Errors
the core raises on purpose (:class:`~..core.errors.StfError`) reach the user as a ``QgsProcessingException`` with
the core's message; cancelling raises too, after the core has removed its partial outputs.
"""
from __future__ import annotations

import datetime as _dt
import html
import os
import re
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.dates import parse_date_list
from ..core.device import DEVICES
from ..core.errors import StfError

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
    """Base of the provider's algorithms. Subclasses set the class attributes and implement :meth:`execute`."""

    ALG_ID = ""  # stable lowercase id, no spaces
    DISPLAY_NAME = ""
    GROUP = "data"  # a key of GROUPS
    SHORT_HELP = ""  # one paragraph: what it does, the method's reference
    NEEDS_TORCH = False  # checked before the run starts

    def __init__(self) -> None:
        super().__init__()
        self._output_help: dict[str, str] = {}

    # --- identity -------------------------------------------------------------------------------------------
    def name(self) -> str:
        return self.ALG_ID

    def displayName(self) -> str:  # noqa: N802
        return self.tr(self.DISPLAY_NAME)

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

    # --- parameter helpers ----------------------------------------------------------------------------------
    def _add(self, parameter: QgsProcessingParameterDefinition, help_text: str, advanced: bool = False) -> None:
        parameter.setHelp(help_text)
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    def add_rasters(self, name: str, label: str, help_text: str, optional: bool = False) -> None:
        """Several raster layers (on the command line: repeat ``NAME=path``)."""
        self._add(QgsProcessingParameterMultipleLayers(name, label, QgsProcessing.TypeRaster, None, optional),
                  help_text)

    def add_raster(self, name: str, label: str, help_text: str, optional: bool = False) -> None:
        self._add(QgsProcessingParameterRasterLayer(name, label, None, optional), help_text)

    def _add_number(self, kind, name: str, label: str, help_text: str, default: float, minimum: float | None,
                    maximum: float | None, advanced: bool, optional: bool = False) -> None:
        parameter = QgsProcessingParameterNumber(name, label, kind, default, optional)
        if minimum is not None:
            parameter.setMinimum(minimum)
        if maximum is not None:
            parameter.setMaximum(maximum)
        self._add(parameter, help_text, advanced)

    def add_int(self, name: str, label: str, help_text: str, default: int, minimum: int | None = None,
                maximum: int | None = None, advanced: bool = False) -> None:
        self._add_number(QgsProcessingParameterNumber.Integer, name, label, help_text, default, minimum, maximum,
                         advanced)

    def add_float(self, name: str, label: str, help_text: str, default: float | None,
                  minimum: float | None = None, maximum: float | None = None, advanced: bool = False,
                  optional: bool = False) -> None:
        self._add_number(QgsProcessingParameterNumber.Double, name, label, help_text, default, minimum, maximum,
                         advanced, optional)

    def add_enum(self, name: str, label: str, help_text: str, options: list[str] | tuple[str, ...],
                 default: str, advanced: bool = False) -> None:
        """A choice; qgis_process accepts the option text (``METHOD=bicubic``) or its index."""
        parameter = QgsProcessingParameterEnum(name, label, list(options), False, default, False)
        parameter.setUsesStaticStrings(True)
        self._add(parameter, help_text + " Options: " + ", ".join(options) + ".", advanced)

    def add_string(self, name: str, label: str, help_text: str, default: str = "", optional: bool = True,
                   advanced: bool = False) -> None:
        self._add(QgsProcessingParameterString(name, label, default, False, optional), help_text, advanced)

    def add_bool(self, name: str, label: str, help_text: str, default: bool, advanced: bool = False) -> None:
        self._add(QgsProcessingParameterBoolean(name, label, default), help_text, advanced)

    def add_scale(self, per_kind: bool = True) -> None:
        """``SCALE`` (reflectance = stored value x SCALE) and, with ``per_kind``, the advanced ``FINE_SCALE``,
        ``FINE_OFFSET``, ``COARSE_SCALE``, ``COARSE_OFFSET`` for fine and coarse images encoded differently."""
        self.add_float("SCALE", "Reflectance scale factor",
                       "Reflectance = stored value x SCALE: 0.0001 for surface reflectance stored as 0-10000 "
                       "integers (Landsat, MODIS), 1 for rasters already in 0-1.", 0.0001, minimum=1e-12)
        if not per_kind:
            return
        for kind, example in (("FINE", "2.75e-5 with offset -0.2 for Landsat Collection 2 Level-2"),
                              ("COARSE", "0.0001 for MODIS MOD09")):
            self.add_float(f"{kind}_SCALE", f"{kind.title()} images' scale factor",
                           f"Reflectance = stored value x {kind}_SCALE + {kind}_OFFSET for the {kind.lower()} "
                           f"images, when they are encoded differently from the other kind (e.g. {example}). "
                           "Empty: SCALE.", None, minimum=1e-12, advanced=True, optional=True)
            self.add_float(f"{kind}_OFFSET", f"{kind.title()} images' offset",
                           f"Added after {kind}_SCALE (reflectance units).", 0.0, advanced=True)

    def add_device(self) -> None:
        """The ``DEVICE`` parameter: auto (CUDA if available, else CPU), cpu or cuda."""
        self.add_enum("DEVICE", "Device", "Where torch computes: auto picks a CUDA GPU when one is usable, "
                      "else the CPU.", DEVICES, "auto", advanced=True)

    def add_series_inputs(self, predict_dates: bool = True) -> None:
        """FINE, COARSE, DATES (and PREDICT_DATES), SCALE: the scene series every fusion algorithm takes."""
        self.add_rasters("FINE", "Fine images (pairs)",
                         "The fine (Landsat-like) images of the pair dates.")
        self.add_rasters("COARSE", "Coarse images",
                         "The coarse (MODIS-like) images: one on every pair date and on every date to predict, on "
                         "the fine grid (see stf:resample_coarse).")
        self.add_string("DATES", "Dates",
                        "One date per file, the FINE files' first, then the COARSE files' (YYYY-MM-DD, YYYYMMDD or "
                        "YYYYDDD, separated by commas). Empty: dates are read from the file names.")
        if predict_dates:
            self.add_string("PREDICT_DATES", "Dates to predict",
                            "The dates to predict, separated by commas. Empty: every coarse date without a fine "
                            "image.")
        self.add_scale()

    def read_series(self, parameters: dict, context: QgsProcessingContext):
        """The validated scene series of FINE, COARSE and DATES."""
        from ..core.series import build_series

        return build_series(self.raster_paths(parameters, "FINE", context),
                            self.raster_paths(parameters, "COARSE", context),
                            self.dates(parameters, "DATES", context))

    def add_model_output(self) -> None:
        """MODEL (the .stfmodel file) plus the loss curve CSV and PNG written beside it."""
        from qgis.core import QgsProcessingOutputFile, QgsProcessingParameterFileDestination

        self._add(QgsProcessingParameterFileDestination("MODEL", "Trained model", "STF model (*.stfmodel)"),
                  "The model file (.stfmodel): weights and everything stf:predict needs (method, bands, scale, "
                  "training dates, loss history, hyper-parameters).")
        self.addOutput(QgsProcessingOutputFile("LOSS_CSV", "Loss history (CSV)"))
        self.addOutput(QgsProcessingOutputFile("LOSS_PNG", "Loss curves (PNG)"))
        self._output_help["LOSS_CSV"] = "Training and validation loss per epoch of every network (<model>.loss.csv)."
        self._output_help["LOSS_PNG"] = "The same as a plot (<model>.loss.png)."

    def save_trained_model(self, parameters: dict, context: QgsProcessingContext, method: str, networks: dict,
                           metadata: dict) -> dict[str, Any]:
        """Write the model and its loss curves all together; returns the algorithm's outputs."""
        from ..core.deep.api import write_model
        from ..core.raster import OutputTransaction

        path = self.parameterAsFileOutput(parameters, "MODEL", context)
        with OutputTransaction() as tx:
            model, loss_csv, loss_png = write_model(path, method, networks, metadata, tx)
        return {"MODEL": model, "LOSS_CSV": loss_csv, "LOSS_PNG": loss_png}

    def prediction_inputs(self, parameters: dict, context: QgsProcessingContext):
        """(series with the coarse images on the fine grid, dates to predict, OUTPUT_FOLDER, SCALE)."""
        from ..core.series import require_fine_grid

        series = self.read_series(parameters, context)
        require_fine_grid(series)
        dates = series.check_predict_dates(self.dates(parameters, "PREDICT_DATES", context))
        return (series, dates, self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                self.scale(parameters, context))

    def add_output_folder(self, help_text: str) -> None:
        """``OUTPUT_FOLDER`` (a folder destination, chainable in the modeler)."""
        self._add(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"), help_text)

    def add_max_nodata(self) -> None:
        """``MAX_NODATA`` (advanced): the largest share of nodata a prediction may have."""
        self.add_float("MAX_NODATA", "Largest nodata share", "A prediction with more nodata than this share of the "
                       "values (where its nearest fine image is valid) fails the run with the reason (an empty "
                       "input, rejected pixels) instead of writing a silent hole; 1 accepts anything.", 0.5, 0.0,
                       1.0, advanced=True)

    def add_output_layers(self, name: str, label: str, help_text: str) -> None:
        """A list of files the algorithm wrote, declared so that the modeler can chain it."""
        self.addOutput(QgsProcessingOutputMultipleLayers(name, label))
        self._output_help[name] = help_text

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

    def enum_string(self, parameters: dict, name: str, context: QgsProcessingContext) -> str:
        return self.parameterAsEnumString(parameters, name, context)

    def dates(self, parameters: dict, name: str, context: QgsProcessingContext) -> list[_dt.date]:
        """A list of dates (YYYY-MM-DD, YYYYMMDD or YYYYDDD, separated by commas or spaces); empty -> []."""
        return parse_date_list(self.parameterAsString(parameters, name, context))

    def int_list(self, parameters: dict, name: str, context: QgsProcessingContext) -> list[int]:
        """A list of integers separated by commas or spaces; empty -> []."""
        text = self.parameterAsString(parameters, name, context) or ""
        tokens = [t for t in re.split(r"[,;\s]+", text.strip()) if t]
        try:
            return [int(t) for t in tokens]
        except ValueError:
            raise QgsProcessingException(f"{name} must be a list of whole numbers, got '{text}'.") from None

    def settings(self, parameters: dict, context: QgsProcessingContext, cls: type) -> Any:
        """An instance of the dataclass ``cls`` whose fields are read from the parameters named after them
        (field ``max_patches`` <- parameter ``MAX_PATCHES``); fields without a parameter keep their default."""
        import dataclasses

        values = {}
        for f in dataclasses.fields(cls):
            definition = self.parameterDefinition(f.name.upper())
            if definition is None:
                continue
            name, default = f.name.upper(), f.default
            if isinstance(definition, QgsProcessingParameterEnum):
                values[f.name] = self.enum_string(parameters, name, context)
            elif isinstance(default, bool):
                values[f.name] = self.parameterAsBool(parameters, name, context)
            elif isinstance(default, int):
                values[f.name] = self.parameterAsInt(parameters, name, context)
            elif isinstance(default, float):
                values[f.name] = self.parameterAsDouble(parameters, name, context)
            else:
                values[f.name] = self.parameterAsString(parameters, name, context)
        return cls(**values)

    # --- running --------------------------------------------------------------------------------------------
    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        import signal
        import threading

        from ..core.errors import CancelledError, os_error_message
        from ..core.fusion import nodata_limit
        from ..core.raster import protect_inputs

        def terminate(signum, frame):  # SIGTERM (qgis_process killed) is a cancel: every output is rolled back
            raise CancelledError("Stopped by a termination signal; no output was written.")

        if self.NEEDS_TORCH:  # before any input is read or resampled: the install instructions, not a late failure
            from ..core.device import install_hint, torch_available

            if not torch_available():
                raise QgsProcessingException(install_hint())
        main = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
        previous = signal.signal(signal.SIGTERM, terminate) if main else None
        try:
            limit = (self.parameterAsDouble(parameters, "MAX_NODATA", context)
                     if self.parameterDefinition("MAX_NODATA") is not None else 0.5)
            with protect_inputs(self.input_paths(parameters, context)), nodata_limit(limit):
                return self.execute(parameters, context, QgisFeedback(feedback))
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

    def scale(self, parameters: dict, context: QgsProcessingContext):
        """The encodings of the inputs: a :class:`~..core.series.Scales` from SCALE and, where the algorithm has
        them, FINE_SCALE/FINE_OFFSET and COARSE_SCALE/COARSE_OFFSET (an empty FINE_SCALE or COARSE_SCALE means
        SCALE). Every value is refused unless finite (scales positive)."""
        from ..core.raster import Encoding
        from ..core.series import Scales

        def number(name: str) -> float:
            return self.parameterAsDouble(parameters, name, context)

        common = Encoding(number("SCALE"), name="SCALE")
        if self.parameterDefinition("FINE_SCALE") is None:
            return Scales(common, common)
        kinds = []
        for kind in ("FINE", "COARSE"):
            given = parameters.get(f"{kind}_SCALE") not in (None, "")
            kinds.append(Encoding(number(f"{kind}_SCALE") if given else common.scale, number(f"{kind}_OFFSET"),
                                  name=f"{kind}_SCALE" if given else "SCALE"))
        return Scales(*kinds)

    def input_paths(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        """Every input file of the run (raster layers, multiple layers, files): no output may replace one."""
        paths: list[str] = []
        for definition in self.parameterDefinitions():
            if definition.isDestination():
                continue
            name = definition.name()
            if isinstance(definition, QgsProcessingParameterMultipleLayers):
                paths += self.raster_paths(parameters, name, context)
            elif isinstance(definition, QgsProcessingParameterRasterLayer):
                paths.append(self.raster_path(parameters, name, context) or "")
            elif isinstance(definition, QgsProcessingParameterFile):
                paths.append(self.parameterAsFile(parameters, name, context) or "")
        return [p for p in paths if p]

    def execute(self, parameters: dict, context: QgsProcessingContext, feedback: QgisFeedback) -> dict[str, Any]:
        """Do the work; raise :class:`StfError` for anything the user must fix."""
        raise NotImplementedError
