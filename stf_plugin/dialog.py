"""The "Spatiotemporal fusion..." dialog: pick fine and coarse images (dates shown and editable), a method, a device
and an output folder, and run the whole workflow as one background task."""
from __future__ import annotations

import os

from qgis.core import QgsApplication, QgsProject
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..algorithms.base import source_path
from ..algorithms.compat import qgis_enum
from ..algorithms.layers import layer_date, set_layer_date
from ..core.dates import date_from_name, parse_date, parse_date_list
from ..core.device import DEVICES, detected_devices, install_hint, mps_available, torch_available
from ..core.errors import InputError
from ..core.executor import SCHEDULER_HELP
from ..core.resample import RESAMPLING_METHODS
from ..core.workflow import WorkflowConfig
from .task import FusionTask, PrepareTask

SETTINGS_GROUP = "stf_fusion/dialog"
# parameters the dialog sets itself (images, dates, encodings, device, outputs, epochs)
SHARED_PARAMETERS = {"FINE", "COARSE", "DATES", "PREDICT_DATES", "SCALE", "FINE_SCALE", "FINE_OFFSET",
                     "COARSE_SCALE", "COARSE_OFFSET", "DEVICE", "OUTPUT_FOLDER", "MODEL", "MAX_NODATA",
                     "TRAIN_DATES", "EPOCHS", "SCHEDULER"}

METHODS = [
    ("naive", "Naive (nearest fine image, benchmark)"),
    ("auto", "Best prediction (classic methods judged on your pairs, combined)"),
    ("starfm", "STARFM"),
    ("estarfm", "ESTARFM (needs pairs before and after)"),
    ("fsdaf", "FSDAF"),
    ("fitfc", "Fit-FC"),
    ("model", "Trained model file (STFDCNN, DCNN, STF3DCNN, DCSTFN, STFSR, refinement)"),
    ("train_stfdcnn", "Train now: STFDCNN"),
    ("train_dcnn", "Train now: patch DCNN"),
    ("train_stf3dcnn", "Train now: STF3DCNN"),
    ("train_dcstfn", "Train now: DCSTFN"),
    ("train_stfsr", "Train now: STFSR (sparse representation)"),
    ("train_refine", "Train now: refinement (a network on ESTARFM / FSDAF, learned on your pairs)"),
    ("cross_validate", "Which method suits this scene? (cross-validation of the classic methods)"),
]


_FINE_NAMES = ("fine", "landsat", "lc08", "lc09", "le07", "lt05", "lt04", "hls", "l30", "s30", "sentinel2", "s2a",
               "s2b", "s2c")
_COARSE_NAMES = ("coarse", "modis", "mod09", "myd09", "mcd43", "viirs", "vnp09", "vnp43", "vj109", "vj143")


def _name_hint(*names: str) -> str | None:
    """'fine' or 'coarse' when a word of a layer's name or file name says so (fine_2021-04-01, LC08_L2SP_...,
    HLS.S30..., MOD09GA.A2021..., coarse_...); None when no word does, or both do."""
    import re

    words = [w for name in names for w in re.split(r"[^a-z0-9]+", os.path.basename(name or "").lower()) if w]
    fine = any(w.startswith(_FINE_NAMES) for w in words)
    coarse = any(w.startswith(_COARSE_NAMES) for w in words)
    return "fine" if fine and not coarse else "coarse" if coarse and not fine else None


def _needs_torch(method: str) -> bool:
    """The learned methods need PyTorch; the benchmarks and the classic methods run on NumPy (core/arrays.py)."""
    return method == "model" or method.startswith("train_")


def _is_prediction(layer) -> bool:
    """True for a layer whose file is a prediction of this plugin (its metadata names the method)."""
    from osgeo import gdal

    try:
        ds = gdal.Open(source_path(layer.source()))
    except RuntimeError:
        return False
    return ds is not None and bool(ds.GetMetadataItem("STF_METHOD"))


FROM_FILE = Qt.ItemDataRole.UserRole + 1  # a row added with "Add files" (kept when the project's layers are listed again)


class ImageTable(QTableWidget):
    """Images with a check box, the source and an editable date (parsed from the name when possible)."""

    def __init__(self, parent=None) -> None:
        super().__init__(0, 2, parent)
        self.setHorizontalHeaderLabels(["Image", "Date (YYYY-MM-DD)"])
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)
        self.setMinimumHeight(130)

    def add(self, name: str, source: str, checked: bool, date=None) -> None:
        """A row; ``itemChanged`` fires once, when the row is complete (a slot never sees half a row). ``date``
        (the layer's temporal range) comes before a date in the name."""
        blocked = self.blockSignals(True)
        try:
            self._add(name, source, checked, date)
        finally:
            self.blockSignals(blocked)
        self.itemChanged.emit(self.item(self.rowCount() - 1, 0))

    def _add(self, name: str, source: str, checked: bool, date=None) -> None:
        row = self.rowCount()
        self.insertRow(row)
        item = QTableWidgetItem(name)
        item.setData(Qt.ItemDataRole.UserRole, source)
        item.setToolTip(source)
        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        self.setItem(row, 0, item)
        date = date or date_from_name(source) or date_from_name(name)
        self.setItem(row, 1, QTableWidgetItem(date.isoformat() if date else ""))

    def state(self) -> dict[str, tuple]:
        """What the user set, per source: (checked, date text, name, added from a file rather than the project)."""
        return {self.item(r, 0).data(Qt.ItemDataRole.UserRole): (
            self.item(r, 0).checkState() == Qt.CheckState.Checked, self.item(r, 1).text(), self.item(r, 0).text(),
            bool(self.item(r, 0).data(FROM_FILE))) for r in range(self.rowCount())}

    def restore(self, state: dict[str, tuple]) -> None:
        """Apply an earlier :meth:`state` to the rows listed again, and keep the images added from files."""
        blocked = self.blockSignals(True)
        try:
            listed = set()
            for row in range(self.rowCount()):
                source = self.item(row, 0).data(Qt.ItemDataRole.UserRole)
                listed.add(source)
                if source in state:
                    checked, date_text, _, _ = state[source]
                    self.item(row, 0).setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
                    self.item(row, 1).setText(date_text)
            for source, (checked, date_text, name, from_file) in state.items():
                if from_file and source not in listed:
                    self._add(name, source, checked)
                    self.item(self.rowCount() - 1, 0).setData(FROM_FILE, True)
                    self.item(self.rowCount() - 1, 1).setText(date_text)
        finally:
            self.blockSignals(blocked)

    def selected(self, what: str) -> list[tuple]:
        """(source, date) of the checked rows; a missing or bad date is an error that names the image."""
        rows = []
        for row in range(self.rowCount()):
            item = self.item(row, 0)
            if item.checkState() != Qt.CheckState.Checked:
                continue
            text = self.item(row, 1).text().strip()
            if not text:
                raise InputError(f"The {what} image '{item.text()}' has no date: type it in the Date column.")
            try:
                date = parse_date(text)
            except InputError as exc:
                raise InputError(f"The {what} image '{item.text()}': {exc}") from None
            rows.append((item.data(Qt.ItemDataRole.UserRole), date))
        return rows


class FusionDialog(QDialog):
    """Collects a :class:`WorkflowConfig` and runs it as a :class:`FusionTask`."""

    def __init__(self, iface=None, parent=None, project: QgsProject | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.project = project or QgsProject.instance()
        self.task: FusionTask | None = None
        self.setWindowTitle("Spatiotemporal fusion")
        self.resize(720, 700)  # fits a 1366 x 768 laptop screen; the settings scroll, Run stays in view
        outer = QVBoxLayout(self)
        content = QWidget()
        layout = QVBoxLayout(content)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer.addWidget(scroll, 1)
        products = QHBoxLayout()  # step 0: downloaded products -> the series (stf:prepare_series)
        products.addWidget(QLabel("Products folder:"))
        self.products = QgsFileWidget()
        self.products.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.products.setToolTip("A folder of Landsat Collection 2 Level-2, Sentinel-2 L2A, HLS, MODIS or VIIRS "
                                  "products: Prepare writes the series (clouds as nodata, coarse images on the fine "
                                  "grid) into <output folder>/series and lists it below.")
        products.addWidget(self.products, 1)
        self.prepare_button = QPushButton("Prepare")
        self.prepare_button.clicked.connect(lambda _=False: self.prepare_products())
        products.addWidget(self.prepare_button)
        layout.addLayout(products)
        self.prepare_task = None
        self.fine = ImageTable()
        self.coarse = ImageTable()
        for title, table, what in (("Fine images (the pairs)", self.fine, "fine"),
                                   ("Coarse images (pair dates and dates to predict)", self.coarse, "coarse")):
            box = QGroupBox(title)
            inner = QVBoxLayout(box)
            inner.addWidget(table)
            buttons = QHBoxLayout()
            add = QPushButton("Add files...")
            add.clicked.connect(lambda _=False, t=table, w=what: self._add_files(t, w))
            buttons.addWidget(add)
            buttons.addStretch(1)
            inner.addLayout(buttons)
            layout.addWidget(box)
        form = QFormLayout()
        self.method = QComboBox()
        self.method.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.method.setMinimumContentsLength(30)  # long labels do not widen the dialog beyond a laptop screen
        for key, label in METHODS:
            self.method.addItem(label, key)
        self.torch_missing = not torch_available()
        if self.torch_missing:  # grey out the learned methods (the classic ones run on NumPy), and say why
            for index in range(self.method.count()):
                if _needs_torch(self.method.itemData(index)):
                    self.method.model().item(index).setEnabled(False)
            self.method.setToolTip(install_hint())
        self.method.setCurrentIndex(1)
        self.method.currentIndexChanged.connect(self._update_enabled)
        form.addRow("Method", self.method)
        self.model = QgsFileWidget()
        self.model.setFilter("STF model (*.stfmodel)")
        form.addRow("Model file", self.model)
        self.epochs = QSpinBox()
        self.epochs.setRange(-1, 100000)
        self.epochs.setSpecialValueText("method default")
        self.epochs.setValue(-1)
        self.epochs.setToolTip("At most this many epochs (training stops early when the held-out pairs stop "
                               "improving); 0 keeps the untrained model (a baseline).")
        form.addRow("Training epochs (at most)", self.epochs)
        self.device = QComboBox()
        self.device.addItems([d for d in DEVICES if d != "mps" or mps_available()])  # Apple GPUs where torch has one
        device_row = QHBoxLayout()
        device_row.addWidget(self.device)
        self.detected = QLabel(f"Detected: {detected_devices()}")
        self.detected.setWordWrap(True)
        device_row.addWidget(self.detected)
        form.addRow("Device", device_row)
        self.scheduler = QLineEdit()
        self.scheduler.setPlaceholderText("empty: this process; local:2; tcp://host:8786")
        self.scheduler.setToolTip(SCHEDULER_HELP)
        form.addRow("Scheduler (distributed tiles)", self.scheduler)
        self.resample = QComboBox()
        self.resample.addItems(list(RESAMPLING_METHODS))
        self.resample.setCurrentText("bicubic")
        form.addRow("Resampling of coarse images", self.resample)
        self.holdout = QLineEdit()
        self.holdout.setPlaceholderText("e.g. 2021-06-04 (pairs kept out of the fusion and used to evaluate it)")
        form.addRow("Hold out pairs for evaluation", self.holdout)
        self.encodings = {}
        for kind, scale_tip in (("fine", "Landsat Collection 2 Level-2: 0.0000275 with offset -0.2"),
                                ("coarse", "MODIS MOD09: 0.0001")):
            row = QHBoxLayout()
            scale, offset = QLineEdit("0.0001"), QLineEdit("0")
            scale.setToolTip(f"Reflectance = stored value x scale + offset. {scale_tip}; 1 for 0-1 floats.")
            offset.setToolTip("Added after the scale, in reflectance.")
            row.addWidget(QLabel("scale"))
            row.addWidget(scale)
            row.addWidget(QLabel("offset"))
            row.addWidget(offset)
            self.encodings[kind] = (scale, offset)
            form.addRow(f"{kind.title()} images' encoding", row)
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        form.addRow("Output folder", self.output)
        layout.addLayout(form)
        from qgis.gui import QgsCollapsibleGroupBox

        self.advanced = QgsCollapsibleGroupBox("Advanced: the method's parameters")
        self.advanced.setCollapsed(True)
        self.advanced_form = QFormLayout(self.advanced)
        self.wrappers: dict = {}  # parameter name -> QGIS widget wrapper, for the chosen method
        layout.addWidget(self.advanced)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        # two lines, always: a longer or shorter summary does not move what is below it under the cursor
        self.summary.setFixedHeight(2 * self.summary.fontMetrics().lineSpacing() + 4)
        layout.addWidget(self.summary)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        outer.addWidget(self.progress)
        outer.addWidget(self.status)
        # after "Which method suits this scene?": one click from the ranking to a fused series (issue 25)
        self.use_best = QPushButton("")
        self.use_best.setVisible(False)
        self.use_best.clicked.connect(self._use_best)
        outer.addWidget(self.use_best)
        self.buttons = QDialogButtonBox()
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton("Cancel run", QDialogButtonBox.ButtonRole.RejectRole)
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        close.clicked.connect(self.close)
        self.cancel_button.setEnabled(False)  # only while a run is in progress
        outer.addWidget(self.buttons)
        self._fill_from_project()
        self._restore_settings()
        self._update_enabled()
        for table in (self.fine, self.coarse):
            table.itemChanged.connect(self._update_summary)
        self.holdout.textChanged.connect(self._update_summary)
        self._update_summary()

    def showEvent(self, event) -> None:  # noqa: N802
        """The project's layers may have changed since the dialog was built: list them again."""
        if self.task is None:
            states = [table.state() for table in (self.fine, self.coarse)]
            for table in (self.fine, self.coarse):
                table.blockSignals(True)
                table.setRowCount(0)
                table.blockSignals(False)
            self._fill_from_project()
            for table, state in zip((self.fine, self.coarse), states):  # the ticks and dates the user set stay
                table.restore(state)
            self._update_summary()
        super().showEvent(event)

    # --- settings (remembered between sessions) ----------------------------------------------------------------
    def _settings(self) -> dict:
        return {"method": self.method, "device": self.device, "resample": self.resample, "output": self.output,
                "scheduler": self.scheduler,
                **{f"{kind}_{part}": widget for kind, pair in self.encodings.items()
                   for part, widget in zip(("scale", "offset"), pair)}}

    def _restore_settings(self) -> None:
        from qgis.core import QgsSettings

        stored = QgsSettings()
        for key, widget in self._settings().items():
            value = stored.value(f"{SETTINGS_GROUP}/{key}", None)
            if value in (None, ""):
                continue
            if isinstance(widget, QComboBox):
                index = widget.findData(value) if widget.findData(value) >= 0 else widget.findText(value)
                item = widget.model().item(index) if index >= 0 and hasattr(widget.model(), "item") else None
                if index >= 0 and (item is None or item.isEnabled()):  # not a method greyed out (no torch)
                    widget.setCurrentIndex(index)
            elif isinstance(widget, QgsFileWidget):
                widget.setFilePath(value)
            else:
                widget.setText(value)

    def _save_settings(self) -> None:
        from qgis.core import QgsSettings

        stored = QgsSettings()
        for key, widget in self._settings().items():
            if isinstance(widget, QComboBox):
                value = widget.currentData() if widget.currentData() is not None else widget.currentText()
            elif isinstance(widget, QgsFileWidget):
                value = widget.filePath()
            else:
                value = widget.text()
            stored.setValue(f"{SETTINGS_GROUP}/{key}", value)

    def _update_summary(self, *_args) -> None:
        """What the run will do, before it starts: pairs, dates, dates to predict, held-out pairs. (A slot: an
        exception escaping it would abort QGIS, so every one becomes the summary's text.)"""
        try:
            fine, coarse = self.fine.selected("fine"), self.coarse.selected("coarse")
            holdout = set(parse_date_list(self.holdout.text()))
        except Exception as exc:  # noqa: BLE001
            self.summary.setText(str(exc))
            return
        pairs = {d for _, d in fine} - holdout
        dates = {d for _, d in coarse}
        predict = dates - pairs
        text = f"{len(pairs)} pair(s), {len(dates)} coarse date(s), {len(predict)} to predict"
        if self.method.currentData() == "cross_validate":
            interior = max(len(pairs) - 2, 0)
            text = (f"{len(pairs)} pair(s): {interior or len(pairs)} held out in turn and predicted by naive, "
                    "additive, STARFM, ESTARFM and FSDAF, ranked by RMSE")
        elif holdout:
            text += f" ({len(holdout & predict)} held out for evaluation)"
        missing = sorted(pairs - dates)
        if missing:
            text += f"; no coarse image on the pair date(s) {', '.join(d.isoformat() for d in missing)}"
        self.summary.setText(text + ".")

    # --- filling -------------------------------------------------------------------------------------------
    def _fill_from_project(self) -> None:
        """Every raster layer of the project in both lists, except this plugin's own predictions (files that say
        STF_METHOD: outputs, not inputs). Pre-checked (a guess the user can change): what its name says
        (:func:`_name_hint`: fine_ / coarse_, Landsat, Sentinel-2, HLS, MODIS, VIIRS), else by pixel size, the
        finest as fine and the rest as coarse (nothing when every layer has one pixel size and no name says)."""
        raster = qgis_enum("Qgis.LayerType.Raster", "QgsMapLayerType.RasterLayer")
        layers = [layer for layer in self.project.mapLayers().values()
                  if layer.type() == raster and layer.isValid() and not _is_prediction(layer)]
        if not layers:
            return
        finest = min(layer.rasterUnitsPerPixelX() for layer in layers)
        several = len({layer.rasterUnitsPerPixelX() for layer in layers}) > 1

        def by_size(layer) -> str | None:
            if not several:
                return None
            return "fine" if abs(layer.rasterUnitsPerPixelX() - finest) < 1e-9 * max(finest, 1) else "coarse"

        kinds = {layer.id(): _name_hint(layer.name(), source_path(layer.source())) or by_size(layer)
                 for layer in layers}

        by_name = sorted(layers, key=lambda lyr: lyr.name())
        dates = {}
        for layer in by_name:  # the layer's temporal range first; a date parsed from its name makes it temporal
            dates[layer.id()] = layer_date(layer)
            if dates[layer.id()] is None:
                dates[layer.id()] = date_from_name(source_path(layer.source())) or date_from_name(layer.name())
                if dates[layer.id()] is not None:
                    set_layer_date(layer, dates[layer.id()])
        # each list shows its likely images first
        for layer in sorted(by_name, key=lambda lyr: kinds[lyr.id()] != "fine"):
            self.fine.add(layer.name(), source_path(layer.source()), kinds[layer.id()] == "fine", dates[layer.id()])
        for layer in sorted(by_name, key=lambda lyr: kinds[lyr.id()] != "coarse"):
            self.coarse.add(layer.name(), source_path(layer.source()), kinds[layer.id()] == "coarse",
                            dates[layer.id()])

    def _add_files(self, table: ImageTable, what: str) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, f"Add {what} images", "", "Rasters (*.tif *.tiff *.img *.vrt);;"
                                                "All files (*)")
        for path in files:
            table.add(os.path.basename(path), path, True)
            table.item(table.rowCount() - 1, 0).setData(FROM_FILE, True)

    def _update_enabled(self) -> None:
        key = self.method.currentData()
        self.model.setEnabled(key == "model")
        self.epochs.setEnabled(key.startswith("train_") and key != "train_stfsr")  # STFSR learns without epochs
        if hasattr(self, "holdout"):  # cross-validation holds the pairs out itself
            self.holdout.setEnabled(key != "cross_validate")
        self._build_advanced(key)
        if hasattr(self, "summary"):
            self._update_summary()

    def _algorithm(self, key: str):
        """The registered algorithm whose parameters the method shares (None: naive, model file)."""
        alg_id = {"starfm": "fuse_starfm", "estarfm": "fuse_estarfm", "fsdaf": "fuse_fsdaf",
                  "fitfc": "fuse_fitfc"}.get(key, key)
        alg = QgsApplication.processingRegistry().algorithmById(f"stf:{alg_id}")
        return alg if alg is not None and hasattr(alg, "PARAMS") and alg.PARAMS is not object else None

    def _build_advanced(self, key: str) -> None:
        """Widgets for the method's own parameters, built by QGIS from the algorithm's parameter definitions: one
        source for the toolbox, the modeler, qgis_process and this dialog."""
        from qgis.core import QgsProcessingContext
        from qgis.gui import QgsGui

        while self.advanced_form.rowCount():
            self.advanced_form.removeRow(0)
        self.wrappers = {}
        alg = self._algorithm(key)
        self.advanced.setEnabled(alg is not None)
        if alg is None:
            return
        context = QgsProcessingContext()
        for definition in alg.parameterDefinitions():
            if definition.name() in SHARED_PARAMETERS or definition.isDestination():
                continue
            wrapper = QgsGui.processingGuiRegistry().createParameterWidgetWrapper(definition,
                                                                                  qgis_enum("Qgis.ProcessingMode.Standard", "QgsProcessingGui.WidgetType.Standard"))
            if wrapper is None:
                continue
            widget = wrapper.createWrappedWidget(context)
            widget.setToolTip(definition.help())
            self.advanced_form.addRow(definition.description(), widget)
            self.wrappers[definition.name()] = wrapper

    def method_params(self):
        """The chosen method's settings from the Advanced section (None: no such section)."""
        from qgis.core import QgsProcessingContext

        alg = self._algorithm(self.method.currentData())
        if alg is None or not self.wrappers:
            return None
        values = {name: wrapper.parameterValue() for name, wrapper in self.wrappers.items()}
        return alg.settings(values, QgsProcessingContext(), alg.PARAMS)

    # --- running -------------------------------------------------------------------------------------------
    def config(self) -> WorkflowConfig:
        """The workflow settings; raises InputError with a message for the user."""
        fine = self.fine.selected("fine")
        coarse = self.coarse.selected("coarse")
        if not fine:
            raise InputError("Check at least one fine image.")
        if not coarse:
            raise InputError("Check the coarse images.")
        key = self.method.currentData()
        if key == "model" and not self.model.filePath():
            raise InputError("Choose a model file, or another method.")
        if not self.output.filePath():
            raise InputError("Choose an output folder.")
        numbers = {}
        for kind, (scale, offset) in self.encodings.items():
            for part, widget in (("scale", scale), ("offset", offset)):
                try:
                    numbers[f"{kind}_{part}"] = float(widget.text().strip() or ("0" if part == "offset" else "nan"))
                except ValueError:
                    raise InputError(f"The {kind} images' {part} must be a number, not '{widget.text()}'.") \
                        from None
        return WorkflowConfig(fine=fine, coarse=coarse, method=key, output_folder=self.output.filePath(),
                              model_path=self.model.filePath(), epochs=self.epochs.value(),
                              device=self.device.currentText(), resample_method=self.resample.currentText(),
                              holdout_dates=parse_date_list(self.holdout.text()), params=self.method_params(),
                              scheduler=self.scheduler.text().strip(),
                              **numbers)

    def prepare_products(self, background: bool = True):
        """Run stf:prepare_series on the products folder into <output folder>/series, then list its images
        (checked; the other rows unchecked). ``background=False`` runs it here (scripts, tests)."""
        folder, out = self.products.filePath().strip(), self.output.filePath().strip()
        if not folder or not out:
            self.status.setText("Choose the products folder and the output folder first (the series is written "
                                "into <output folder>/series).")
            return None
        task = PrepareTask([folder], os.path.join(out, "series"), self._prepared)
        self.prepare_button.setEnabled(False)
        self.status.setText("Preparing the series from the products (see the task bar)...")
        if background:
            self.prepare_task = task
            QgsApplication.taskManager().addTask(task)
        else:
            task.finished(task.run())
        return task

    def _prepared(self, task) -> None:
        self.prepare_button.setEnabled(True)
        self.prepare_task = None
        if task.result is None:
            self.status.setText(task.error or "Preparing the series failed.")
            return
        for table, paths in ((self.fine, task.result.fine), (self.coarse, task.result.coarse)):
            for row in range(table.rowCount()):
                table.item(row, 0).setCheckState(Qt.CheckState.Unchecked)
            for path in paths:
                table.add(os.path.basename(path)[:-4], path, True)
        for scale, offset in self.encodings.values():  # the prepared series' encoding
            scale.setText("0.0001")
            offset.setText("0")
        self.status.setText(f"Prepared {len(task.result.fine)} fine and {len(task.result.coarse)} coarse images "
                            f"(manifest: {task.result.manifest}); they are checked below.")

    def start(self) -> FusionTask | None:
        """Start the task (returns it), or show why it cannot start."""
        try:
            config = self.config()
            config.scales  # noqa: B018  refused here, with the message, when not finite (or a scale not positive)
        except InputError as exc:
            self.status.setText(str(exc))
            return None
        self._save_settings()
        self.use_best.setVisible(False)
        self.task = FusionTask(config, self.iface, self._finished, self.project)
        self.task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText("Running in the background (see the task bar); you can keep working.")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def _use_best(self) -> None:
        """The cross-validation's best method becomes the method, and the series is fused with it."""
        self.use_best.setVisible(False)
        self.method.setCurrentIndex(self.method.findData(self.use_best.property("method")))
        self.start()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _finished(self, task: FusionTask) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.task = None
        if task.result is None:
            self.progress.setValue(0)  # an error or a cancel: no bar left half way
        if task.result is not None:
            self.status.setText(f"Done: best method {task.result.best} (see the report)." if task.result.best else
                                f"Done: {len(task.result.predictions)} prediction(s) in '{task.group_name}'.")
            self.progress.setValue(100)
            index = self.method.findData(task.result.best) if task.result.best else -1
            if index >= 0 and self.method.model().item(index).isEnabled():
                self.use_best.setText(f"Fuse the series with {self.method.itemText(index)}")
                self.use_best.setProperty("method", task.result.best)
                self.use_best.setVisible(True)
        elif task.cancelled:
            self.status.setText("Cancelled; no output was written.")
        else:
            self.status.setText(task.error or "Failed.")
