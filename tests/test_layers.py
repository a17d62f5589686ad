"""Results in the map (issue 15, items 1-2): a Processing run adds every prediction as a dated layer with the
series' style: true colour from the band names, one stretch for the whole series, from a .qml beside each output."""
import os

import pytest

from stf_fusion.core.style import display_bands, style_path


def test_display_bands_follow_the_band_names():
    assert display_bands(["blue", "green", "red", "nir", "swir1", "swir2"], 6) == ([3, 2, 1], "true colour")
    assert display_bands(["green", "red", "nir"], 3) == ([3, 2, 1], "false colour (NIR, red, green)")
    assert display_bands(["", "", "", ""], 4) == ([3, 2, 1], "bands 3-2-1")
    assert display_bands(["ndvi"], 1) == ([1], "band 1 in grey")


def test_a_processing_run_adds_dated_true_colour_layers_with_one_stretch(provider, sample_on_fine_grid, tmp_path):
    import processing
    from qgis.core import QgsProject, QgsRasterLayerTemporalProperties

    series = sample_on_fine_grid
    project = QgsProject.instance()
    project.removeAllMapLayers()
    result = processing.runAndLoadResults("stf:fuse_additive", {
        "FINE": [f.path for f in series.fine], "COARSE": [c.path for c in series.coarse],
        "PREDICT_DATES": "2021-05-03,2021-07-06", "OUTPUT_FOLDER": str(tmp_path / "out")})
    styles = [open(style_path(p)).read() for p in result["OUTPUT_FILES"]]
    assert len(styles) == 2 and styles[0] == styles[1]  # one style, one stretch for the series
    layers = {layer.name(): layer for layer in project.mapLayers().values()}
    assert sorted(layers) == ["additive 2021-05-03", "additive 2021-07-06"]
    group = project.layerTreeRoot().findGroup("STF additive (out)")  # one group per series (method, folder)
    assert group is not None and sorted(n.layer().name() for n in group.findLayers()) == sorted(layers)
    assert len(project.layerTreeRoot().findLayers()) == 2  # no second entry outside the group
    # a second run into the same folder: the same group, its dates added, a replaced date not listed twice
    processing.runAndLoadResults("stf:fuse_additive", {
        "FINE": [f.path for f in series.fine], "COARSE": [c.path for c in series.coarse],
        "PREDICT_DATES": "2021-07-06,2021-07-22", "OUTPUT_FOLDER": str(tmp_path / "out")})
    root = project.layerTreeRoot()
    assert [g.name() for g in root.children()] == ["STF additive (out)"]
    assert sorted(n.layer().name() for n in root.findGroup("STF additive (out)").findLayers()) == [
        "additive 2021-05-03", "additive 2021-07-06", "additive 2021-07-22"]
    layers = {layer.name(): layer for layer in project.mapLayers().values()}
    stretches = []
    for name, layer in layers.items():
        properties = layer.temporalProperties()
        assert properties.isActive()
        assert properties.mode() == QgsRasterLayerTemporalProperties.ModeFixedTemporalRange
        assert properties.fixedTemporalRange().begin().date().toString("yyyy-MM-dd") == name.split()[1]
        renderer = layer.renderer()
        assert renderer.type() == "multibandcolor"
        assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)  # red, green, blue
        red = renderer.redContrastEnhancement()
        stretches.append((red.minimumValue(), red.maximumValue()))
    assert stretches[0] == stretches[1] and stretches[0][0] < stretches[0][1]
    _screenshot(layers["additive 2021-05-03"])
    project.removeAllMapLayers()
    assert not [f for f in os.listdir(tmp_path / "out") if f.startswith(".")]


def _screenshot(layer):
    """The styled layer as the map shows it, saved to build/screenshots/styled_prediction.png for review."""
    from conftest import ROOT
    from qgis.core import QgsMapRendererSequentialJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize

    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(400, 400))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    colours = {image.pixel(x, y) for x in range(0, 400, 20) for y in range(0, 400, 20)}
    assert len(colours) > 20  # a picture, not a blank or one-colour canvas
    folder = os.path.join(ROOT, "build", "screenshots")
    os.makedirs(folder, exist_ok=True)
    assert image.save(os.path.join(folder, "styled_prediction.png"))


def test_a_models_intermediate_predictions_stay_off_the_map(provider, sample_on_fine_grid):
    """Issue 26: inside a model, a step whose predictions are not a model output added them to the map. The model
    hands such a step a destination it generated in the Processing temp folder: nothing is loaded; a toolbox run
    into a temporary folder (TEMPORARY_OUTPUT) still is."""
    import processing
    from qgis.core import (
        QgsProcessing,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProject,
    )

    series = sample_on_fine_grid
    static = QgsProcessingModelChildParameterSource.fromStaticValue
    model = QgsProcessingModelAlgorithm("intermediate", "tests")
    step = QgsProcessingModelChildAlgorithm("stf:fuse_naive")
    step.setChildId("naive")
    step.addParameterSources("FINE", [static([f.path for f in series.fine])])
    step.addParameterSources("COARSE", [static([c.path for c in series.coarse])])
    step.addParameterSources("PREDICT_DATES", [static("2021-05-03")])
    model.addChildAlgorithm(step)  # OUTPUT_FOLDER is no model output: an intermediate result
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    results, ok = model.run({}, context, QgsProcessingFeedback())
    written = results["CHILD_RESULTS"]["naive"]["OUTPUT_FILES"]
    assert ok and len(written) == 1 and os.path.isfile(written[0])
    assert list(context.layersToLoadOnCompletion()) == []
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    direct = processing.run("stf:fuse_naive", {"FINE": [f.path for f in series.fine],
                                                "COARSE": [c.path for c in series.coarse], "PREDICT_DATES": "2021-05-03",
                                                "OUTPUT_FOLDER": QgsProcessing.TEMPORARY_OUTPUT}, context=context)
    assert list(context.layersToLoadOnCompletion()) == direct["OUTPUT_FILES"]
