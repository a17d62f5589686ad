"""Desktop experience, headless: the dialog builds with the project's layers, the task runs the whole workflow and
adds a group of layers with dates, cancel leaves nothing, a bad input ends with the clear error; a screenshot of
the dialog is saved to build/screenshots for review."""
import datetime as dt
import os

import numpy as np
import pytest
from conftest import ROOT, files_in
from helpers import make_raster
from pytest_qgis.utils import wait_until
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt

from stf_fusion.core.errors import InputError
from stf_fusion.stf_plugin.dialog import FusionDialog


@pytest.fixture()
def project(qgis_app, small_series):
    """A project of its own (the singleton is wired to pytest-qgis's mock canvas); no remembered dialog settings."""
    from qgis.core import QgsSettings

    from stf_fusion.stf_plugin.dialog import SETTINGS_GROUP

    QgsSettings().remove(SETTINGS_GROUP)
    project = QgsProject()
    for path in small_series.fine + small_series.coarse:
        project.addMapLayer(QgsRasterLayer(path, os.path.basename(path)[:-4]))
    yield project
    project.clear()


def _run(dialog, timeout=120000):
    done = []
    task = dialog.start()
    assert task is not None, dialog.status.text()
    previous = task.on_finished
    task.on_finished = lambda t: (previous(t), done.append(t))
    wait_until(lambda: bool(done), timeout_milliseconds=timeout)
    return done[0]


def test_dialog_lists_the_project_layers_with_dates_and_a_screenshot(qgis_iface, project, provider):
    dialog = FusionDialog(qgis_iface, project=project)
    assert dialog.fine.rowCount() == dialog.coarse.rowCount() == 8
    fine = dialog.fine.selected("fine")
    coarse = dialog.coarse.selected("coarse")
    assert sorted(d.isoformat() for _, d in fine) == ["2021-04-01", "2021-06-20"]  # the 30 m layers
    assert len(coarse) == 6 and dt.date(2021, 5, 3) in [d for _, d in coarse]
    assert dialog.detected.text().startswith("Detected: ")
    assert dialog.method.currentData() == "auto"  # the best prediction without expertise is the default
    os.makedirs(os.path.join(ROOT, "build", "screenshots"), exist_ok=True)
    dialog.resize(720, 760)
    assert dialog.grab().save(os.path.join(ROOT, "build", "screenshots", "fusion_dialog.png"))


def test_task_adds_a_group_of_dated_layers(qgis_iface, project, tmp_path):
    dialog = FusionDialog(qgis_iface, project=project)
    dialog.method.setCurrentIndex(dialog.method.findData("starfm"))
    dialog.output.setFilePath(str(tmp_path / "out"))
    dialog.holdout.setText("2021-06-20")
    task = _run(dialog)
    assert task.error is None and task.result is not None, task.error
    group = project.layerTreeRoot().findGroup(task.group_name)
    layers = [node.layer() for node in group.findLayers()]
    # 2021-06-20 was held out: predicted and evaluated, with the four coarse-only dates
    assert [lyr.name() for lyr in layers] == [f"starfm 2021-{d}" for d in ("04-17", "05-03", "05-19", "06-04",
                                                                           "06-20")]
    for layer in layers:
        properties = layer.temporalProperties()
        assert properties.isActive()
        start = properties.fixedTemporalRange().begin().date()
        assert start.toString("yyyy-MM-dd") == layer.name().split()[-1]
    assert os.path.exists(task.result.report) and not any(".scratch-" in f for f in files_in(tmp_path / "out"))
    assert "Done: 5 prediction(s)" in dialog.status.text()
    import csv

    rows = [r for r in csv.DictReader(open(task.result.table)) if r["band"] == "all"]
    assert sorted(r["method"] for r in rows) == ["naive", "starfm"]  # the held-out date against the baseline
    assert float(next(r for r in rows if r["method"] == "naive")["maec"]) == 0


def test_cancel_removes_every_output(qgis_iface, project, tmp_path):
    dialog = FusionDialog(qgis_iface, project=project)
    dialog.method.setCurrentIndex(dialog.method.findData("train_stf3dcnn"))
    dialog.epochs.setValue(500)
    dialog.output.setFilePath(str(tmp_path / "out"))
    done = []
    task = dialog.start()
    task.on_finished = lambda t: done.append(t)
    wait_until(lambda: task.progress() > 5 or bool(done), timeout_milliseconds=60000)
    task.cancel()
    wait_until(lambda: bool(done), timeout_milliseconds=60000)
    assert done[0].cancelled and done[0].result is None
    assert files_in(tmp_path / "out") == []
    assert project.layerTreeRoot().findGroups() == []


def test_bad_input_ends_with_the_clear_error(qgis_iface, project, small_series, tmp_path):
    odd = make_raster(tmp_path / "fine_2021-05-19.tif", np.zeros((6, 64, 64)),
                      geotransform=(600000.0, 20.0, 0.0, 5800020.0, 0.0, -20.0))
    dialog = FusionDialog(qgis_iface, project=project)
    dialog.fine.add("odd", odd, True)
    dialog.output.setFilePath(str(tmp_path / "out"))
    task = _run(dialog)
    assert task.result is None and "is not on the grid of" in task.error and "pixel size" in task.error
    assert "is not on the grid of" in dialog.status.text()
    from qgis.core import Qgis

    assert any("is not on the grid of" in m for m in qgis_iface.messageBar().get_messages(Qgis.Critical))
    assert files_in(tmp_path / "out") == []


def test_missing_date_is_reported_before_running(qgis_iface, project):
    dialog = FusionDialog(qgis_iface, project=project)
    dialog.fine.item(0, 0).setCheckState(Qt.Checked)
    dialog.fine.item(0, 1).setText("")
    with pytest.raises(InputError, match="has no date: type it in the Date column"):
        dialog.config()
    dialog.fine.item(0, 1).setText("2021-04-01")
    with pytest.raises(InputError, match="Choose an output folder"):
        dialog.config()
    dialog.fine.item(0, 1).setText("")
    assert dialog.start() is None and "has no date" in dialog.status.text()


def test_plugin_adds_and_removes_its_menu_entry(qgis_iface, provider, tmp_path):
    from stf_fusion.stf_plugin.plugin import StfPlugin

    plugin = StfPlugin(qgis_iface)
    plugin.provider = provider  # already registered by the test fixture: do not register it twice
    plugin.initGui()
    assert plugin.action is not None and plugin.action.text() == "Spatiotemporal fusion..."
    assert plugin.install_action.text() == "Install PyTorch and numba..."
    calls = []

    def fake_pip(command, **kwargs):  # the menu action runs the installer (here without downloading anything)
        calls.append(command)
        return type("R", (), {"returncode": 1, "stderr": "no network", "stdout": ""})()

    messages = []
    qgis_iface.messageBar().pushMessage = lambda *args: messages.append(args)
    plugin.install_dependencies(confirm=False, background=False, run=fake_pip, target=str(tmp_path / "deps"))
    assert calls and "--target" in calls[0] and "torch" in calls[0]
    assert "To install by hand" in messages[-1][1]
    plugin.show_dialog()
    assert plugin.dialog.isVisible()
    plugin.provider = None  # keep the fixture's provider registered
    plugin.unload()
    assert plugin.action is None and plugin.dialog is None and plugin.install_action is None


def test_dialog_summary_encodings_refresh_and_remembered_settings(qgis_iface, project, small_series, tmp_path):
    dialog = FusionDialog(qgis_iface, project=project)
    assert dialog.summary.text() == "2 pair(s), 6 coarse date(s), 4 to predict."
    dialog.holdout.setText("2021-06-20")
    assert "1 pair(s)" in dialog.summary.text() and "1 held out" in dialog.summary.text()
    scale, offset = dialog.encodings["fine"]
    scale.setText("0.0000275")
    offset.setText("-0.2")
    dialog.output.setFilePath(str(tmp_path / "out"))
    config = dialog.config()
    assert (config.scales.fine.scale, config.scales.fine.offset, config.scales.coarse.scale) == (2.75e-5, -0.2, 1e-4)
    offset.setText("abc")
    assert dialog.start() is None and "offset must be a number" in dialog.status.text()
    offset.setText("-0.2")
    dialog._save_settings()  # what start() does before it runs
    again = FusionDialog(qgis_iface, project=project)
    assert again.encodings["fine"][0].text() == "0.0000275" and again.output.filePath() == str(tmp_path / "out")
    project.addMapLayer(QgsRasterLayer(small_series.coarse[0], "one more"))
    again.show()  # the list is built again when the dialog is shown
    assert again.coarse.rowCount() == 9
    again.close()


def test_the_advanced_section_is_built_from_the_algorithms_parameters(qgis_iface, project, provider, tmp_path):
    from stf_fusion.core.classic.starfm import StarfmParams

    dialog = FusionDialog(qgis_iface, project=project)
    dialog.method.setCurrentIndex(dialog.method.findData("starfm"))
    assert "WINDOW" in dialog.wrappers and "FINE" not in dialog.wrappers and "DEVICE" not in dialog.wrappers
    from qgis.core import QgsProcessingContext

    dialog.wrappers["WINDOW"].setParameterValue(21, QgsProcessingContext())
    dialog.output.setFilePath(str(tmp_path / "out"))
    params = dialog.config().params
    assert isinstance(params, StarfmParams) and params.window == 21 and params.classes == StarfmParams().classes
    import dataclasses

    from stf_fusion.core.workflow import run_workflow

    with pytest.raises(InputError, match="window must have an odd side"):  # the workflow runs with them
        run_workflow(dataclasses.replace(dialog.config(), params=dataclasses.replace(params, window=4)))
    dialog.method.setCurrentIndex(dialog.method.findData("train_stfdcnn"))
    assert "OPTIMIZER" in dialog.wrappers and "EPOCHS" not in dialog.wrappers
    assert dialog.config().params.optimizer == "adam"  # the same default as stf:train_stfdcnn
    dialog.method.setCurrentIndex(dialog.method.findData("naive"))
    assert dialog.wrappers == {} and not dialog.advanced.isEnabled()


def test_a_dialog_run_is_in_the_processing_history_and_its_commands_reproduce_it(qgis_iface, project, provider,
                                                                                  tmp_path):
    """The task writes the run as processing.run(...) lines to the Processing history; run again, they write the
    same predictions (byte-identical values) and the same evaluation."""
    import processing
    from processing.core.ProcessingLog import ProcessingLog

    from stf_fusion.core.raster import read_raw

    dialog = FusionDialog(qgis_iface, project=project)
    dialog.method.setCurrentIndex(dialog.method.findData("starfm"))
    from qgis.core import QgsProcessingContext

    dialog.wrappers["WINDOW"].setParameterValue(21, QgsProcessingContext())  # an Advanced setting travels too
    dialog.output.setFilePath(str(tmp_path / "out"))
    dialog.holdout.setText("2021-06-20")
    dialog.scheduler.setText("local:2")  # the tiles on two worker processes; the history says so
    task = _run(dialog)
    assert task.error is None, task.error
    assert [line.split("(")[1].split(",")[0] for line in task.history] == [
        "'stf:resample_coarse'", "'stf:fuse_starfm'", "'stf:fuse_naive'", "'stf:evaluate'"]
    assert "'WINDOW': 21" in task.history[1] and "'SCHEDULER': 'local:2'" in task.history[1]
    logged = [e.text for e in ProcessingLog.getLogEntries()]
    assert all(line in logged for line in task.history)
    before = {p: read_raw(p) for _, p in task.result.predictions}
    for path in before:
        os.remove(path)
    for line in task.history:
        eval(line, {"processing": processing})  # noqa: S307  the history's own lines
    for path, values in before.items():
        assert np.array_equal(read_raw(path), values), path


def test_without_torch_the_dialog_greys_out_what_needs_it(qgis_iface, project, monkeypatch):
    import stf_fusion.stf_plugin.dialog as dialog_module

    monkeypatch.setattr(dialog_module, "torch_available", lambda: False)
    dialog = FusionDialog(qgis_iface, project=project)
    enabled = {dialog.method.itemData(i): dialog.method.model().item(i).isEnabled()
               for i in range(dialog.method.count())}
    # issue 26: the benchmarks, the classic methods, fuse_auto and the cross-validation run on NumPy
    assert [m for m, on in enabled.items() if on] == ["naive", "auto", "starfm", "estarfm", "fsdaf", "fitfc",
                                                      "cross_validate"]
    assert dialog.method.currentData() == "auto" and "pip install" in dialog.method.toolTip()


def test_which_method_suits_this_scene(qgis_iface, project, provider, tmp_path):
    """The dialog's cross-validation entry: one task (resampling the coarse layers first), a ranking and its report,
    no prediction layers, and a Processing-history line that gives the same table."""
    import processing

    dialog = FusionDialog(qgis_iface, project=project)
    dialog.method.setCurrentIndex(dialog.method.findData("cross_validate"))
    assert not dialog.holdout.isEnabled() and "held out in turn" in dialog.summary.text()
    dialog.output.setFilePath(str(tmp_path / "cv"))
    groups = len(project.layerTreeRoot().children())
    task = _run(dialog)
    assert task.error is None, task.error
    assert task.result.best in ("naive", "additive", "starfm", "fsdaf", "fitfc") and task.result.predictions == []
    assert os.path.isfile(task.result.report) and f"best method {task.result.best}" in dialog.status.text()
    assert len(project.layerTreeRoot().children()) == groups  # nothing added to the map
    assert "'stf:cross_validate'" in task.history[-1]
    table = open(task.result.table, encoding="utf-8").read()
    os.remove(task.result.table)
    eval(task.history[-1], {"processing": processing})  # noqa: S307  the history's own line
    assert open(task.result.table, encoding="utf-8").read() == table
    # issue 25: one click from the ranking to a fused series with the best method
    best = task.result.best
    assert dialog.use_best.isVisibleTo(dialog) == (dialog.method.findData(best) >= 0)
    if dialog.method.findData(best) >= 0:
        assert dialog.use_best.text() == f"Fuse the series with {dialog.method.itemText(dialog.method.findData(best))}"
        done = []
        dialog.use_best.click()
        assert dialog.method.currentData() == best and dialog.task is not None and not dialog.use_best.isVisibleTo(dialog)
        previous = dialog.task.on_finished
        dialog.task.on_finished = lambda t: (previous(t), done.append(t))
        wait_until(lambda: bool(done), timeout_milliseconds=120000)
        assert done[0].result.method == best and len(done[0].result.predictions) > 0


def test_layer_dates_come_before_file_names_and_parsed_dates_make_layers_temporal(qgis_iface, small_series, tmp_path):
    """Issue 24 item 4: a layer's active fixed temporal range is its date in the dialog; a layer without one gets
    the date parsed from its name as its temporal range."""
    from stf_fusion.algorithms.layers import layer_date, set_layer_date

    project = QgsProject()
    undated = tmp_path / "scene_a.tif"
    undated.write_bytes(open(small_series.fine[0], "rb").read())
    layer = QgsRasterLayer(str(undated), "scene a")
    set_layer_date(layer, dt.date(2021, 4, 1))
    named = QgsRasterLayer(small_series.coarse[2], os.path.basename(small_series.coarse[2])[:-4])
    project.addMapLayer(layer)
    project.addMapLayer(named)
    assert layer_date(named) is None
    dialog = FusionDialog(qgis_iface, project=project)
    rows = {dialog.fine.item(r, 0).text(): dialog.fine.item(r, 1).text() for r in range(dialog.fine.rowCount())}
    assert rows["scene a"] == "2021-04-01"  # from the temporal range: the name has no date
    from stf_fusion.core.dates import date_from_name

    assert layer_date(named) == date_from_name(small_series.coarse[2])  # made temporal
    project.clear()


def test_processing_takes_dates_from_the_layers_temporal_properties(provider, sample_on_fine_grid, tmp_path):
    """FINE / COARSE given as map layers with temporal ranges: no date in the file names is needed, and a
    misleading one is overruled."""
    import processing

    project = QgsProject.instance()
    project.removeAllMapLayers()
    ids = {"FINE": [], "COARSE": []}
    for kind, items in (("FINE", sample_on_fine_grid.fine), ("COARSE", sample_on_fine_grid.coarse)):
        for i, item in enumerate(items):
            path = tmp_path / f"{kind.lower()}_{i}_2030-01-0{i + 1}.tif"  # a wrong date in the name
            path.write_bytes(open(item.path, "rb").read())
            layer = QgsRasterLayer(str(path), path.stem)
            from stf_fusion.algorithms.layers import set_layer_date

            set_layer_date(layer, item.date)
            project.addMapLayer(layer)
            ids[kind].append(layer.id())
    target = sample_on_fine_grid.predict_dates[0]
    result = processing.run("stf:fuse_additive", {"FINE": ids["FINE"], "COARSE": ids["COARSE"],
                                                  "PREDICT_DATES": target.isoformat(),
                                                  "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert [os.path.basename(p) for p in result["OUTPUT_FILES"]] == [f"additive_{target.isoformat()}.tif"]
    project.removeAllMapLayers()


def test_the_dialog_prepares_a_series_from_downloaded_products(qgis_iface, project, tmp_path):
    """Issue 24 item 1, the dialog's step: a products folder -> <output>/series, listed and checked."""
    import product_layouts as layouts

    for i, date in enumerate(layouts.DATES):
        layouts.hls(str(tmp_path / "downloads" / f"f{i}"), date, cloud=i == 0)
    for date in layouts.DATES + [layouts.PREDICT]:
        layouts.mod09ga(str(tmp_path / "downloads" / "modis"), date, cloud=False)
    dialog = FusionDialog(qgis_iface, project=project)
    assert dialog.prepare_products(background=False) is None  # no folders chosen: said, nothing run
    assert "products folder" in dialog.status.text()
    dialog.products.setFilePath(str(tmp_path / "downloads"))
    dialog.output.setFilePath(str(tmp_path / "out"))
    dialog.prepare_products(background=False)
    assert "Prepared 3 fine and 4 coarse" in dialog.status.text(), dialog.status.text()
    assert [d for _, d in dialog.fine.selected("fine")] == layouts.DATES
    assert sorted(d for _, d in dialog.coarse.selected("coarse")) == sorted(layouts.DATES + [layouts.PREDICT])
    assert os.path.exists(tmp_path / "out" / "series" / "manifest.json")


def test_the_dialog_fits_a_laptop_screen_and_its_buttons_follow_the_run(qgis_iface, project, tmp_path):
    """Issue 26: at 1366 x 768 (a window of 700 px under the task bar) Run is on screen, with Advanced open;
    'Cancel run' is enabled only while a run is in progress; a failed run leaves no bar half way."""
    from qgis.PyQt.QtCore import QPoint

    dialog = FusionDialog(qgis_iface, project=project)
    assert dialog.height() <= 700
    dialog.resize(dialog.width(), 700)
    dialog.advanced.setCollapsed(False)
    dialog.show()
    from qgis.PyQt.QtWidgets import QApplication, QScrollArea

    QApplication.processEvents()
    scroll = dialog.findChild(QScrollArea)
    assert scroll.widget().minimumSizeHint().width() <= scroll.viewport().width()  # no sideways scrolling
    bottom = dialog.run_button.mapTo(dialog, QPoint(0, dialog.run_button.height())).y()
    assert dialog.run_button.isVisible() and bottom <= dialog.height()
    os.makedirs(os.path.join(ROOT, "build", "screenshots"), exist_ok=True)
    assert dialog.grab().save(os.path.join(ROOT, "build", "screenshots", "fusion_dialog_1366x768.png"))
    assert not dialog.cancel_button.isEnabled()
    dialog.method.setCurrentIndex(dialog.method.findData("naive"))
    dialog.output.setFilePath(str(tmp_path / "out"))
    task = _run(dialog)
    assert task.result is not None and not dialog.cancel_button.isEnabled() and dialog.run_button.isEnabled()
    dialog.close()


def test_earlier_predictions_are_not_listed_as_inputs(qgis_iface, project, sample_on_fine_grid, tmp_path):
    from stf_fusion.core.fusion import fuse_method

    before = FusionDialog(qgis_iface, project=project).fine.rowCount()
    prediction = fuse_method("naive", sample_on_fine_grid, sample_on_fine_grid.predict_dates[:1],
                             str(tmp_path / "p"), 1e-4)[0]
    project.addMapLayer(QgsRasterLayer(prediction, "naive 2021-04-17"))
    dialog = FusionDialog(qgis_iface, project=project)
    assert dialog.fine.rowCount() == dialog.coarse.rowCount() == before


def test_a_model_trained_in_the_dialog_offers_its_training_curves(qgis_app, tmp_path):
    """Issue 26: the loss plot was never shown. The run's message offers it beside the report when the model's
    ``<model>.loss.png`` exists."""
    import types

    from qgis.core import Qgis
    from qgis.gui import QgsMessageBar
    from qgis.PyQt.QtWidgets import QPushButton

    from stf_fusion.stf_plugin.task import FusionTask, loss_plot

    model = tmp_path / "stfdcnn.stfmodel"
    model.write_bytes(b"")
    assert loss_plot(str(model)) is None and loss_plot(None) is None
    (tmp_path / "stfdcnn.loss.png").write_bytes(b"")
    assert loss_plot(str(model)) == str(tmp_path / "stfdcnn.loss.png")
    bar = QgsMessageBar()
    stand_in = types.SimpleNamespace(iface=types.SimpleNamespace(messageBar=lambda: bar))
    FusionTask._message(stand_in, "done", Qgis.MessageLevel.Success, str(tmp_path / "report.html"), loss_plot(str(model)))
    labels = [b.text() for b in bar.currentItem().findChildren(QPushButton)]
    assert "Open the evaluation report" in labels and "Show the training curves" in labels


def test_the_dialog_keeps_what_the_user_ticked_and_reads_fine_and_coarse_from_names(qgis_iface, sample_on_fine_grid,
                                                                                   tmp_path):
    """Issue 26: showing the dialog again forgot the ticks (and the images added from files); with the coarse
    images already on the fine grid nothing was pre-checked although the names say fine_ / coarse_; the summary
    changed height with its text."""
    from qgis.PyQt.QtCore import Qt

    from stf_fusion.stf_plugin.dialog import _name_hint

    assert [_name_hint(n) for n in ("fine_2021-04-01", "LC08_L2SP_093084_20210401_02_T1_SR_B4.TIF",
                                    "HLS.S30.T55HCU.2021091T000000.v2.0.B04.tif", "coarse_2021-04-01.tif",
                                    "MOD09GA.A2021091.h29v12.061.hdf", "VNP43MA4.A2021091.h29v12.002.h5",
                                    "refined_values", "scene_2021-04-01")] == [
        "fine", "fine", "fine", "coarse", "coarse", "coarse", None, None]
    project = QgsProject()
    for item in sample_on_fine_grid.fine + sample_on_fine_grid.coarse:  # one pixel size: names decide
        project.addMapLayer(QgsRasterLayer(item.path, os.path.basename(item.path)[:-4]))
    dialog = FusionDialog(qgis_iface, project=project)
    fine, coarse = dialog.fine.selected("fine"), dialog.coarse.selected("coarse")
    assert sorted(p for p, _ in fine) == sorted(f.path for f in sample_on_fine_grid.fine)
    assert sorted(p for p, _ in coarse) == sorted(c.path for c in sample_on_fine_grid.coarse)
    dialog.fine.item(0, 0).setCheckState(Qt.CheckState.Unchecked)  # the user's choices
    dialog.coarse.item(0, 1).setText("2021-04-02")
    extra = str(tmp_path / "fine_2021-09-01.tif")
    dialog.fine.add("fine_2021-09-01", extra, True)
    from stf_fusion.stf_plugin.dialog import FROM_FILE

    dialog.fine.item(dialog.fine.rowCount() - 1, 0).setData(FROM_FILE, True)
    before = (dialog.fine.state(), dialog.coarse.state())
    height = dialog.summary.height()
    dialog.show()  # shown again: the project's layers are listed again
    assert (dialog.fine.state(), dialog.coarse.state()) == before
    dialog.summary.setText("A much longer summary that wraps onto more lines than the usual one does, " * 4)
    assert dialog.summary.height() == height
    dialog.close()
    project.clear()


def test_the_device_list_offers_apple_gpus_only_where_torch_has_one(qgis_iface, project, monkeypatch):
    import stf_fusion.stf_plugin.dialog as dialog_module

    for available in (False, True):
        monkeypatch.setattr(dialog_module, "mps_available", lambda available=available: available)
        dialog = FusionDialog(qgis_iface, project=project)
        items = [dialog.device.itemText(i) for i in range(dialog.device.count())]
        assert items == ["auto", "cpu", "cuda"] + (["mps"] if available else [])
