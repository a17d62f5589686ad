"""The provider registers, lists its algorithms with stable ids, help and declared outputs."""
import re

import pytest

from qgis.core import QgsApplication, QgsProcessingOutputMultipleLayers


EXPECTED = {"stf:make_sample_series", "stf:resample_coarse", "stf:fuse_naive", "stf:evaluate"}


def test_provider_lists_its_algorithms(provider):
    registry = QgsApplication.processingRegistry()
    assert registry.providerById("stf") is provider
    ids = {alg.id() for alg in provider.algorithms()}
    assert EXPECTED <= ids
    for alg_id in ids:
        assert registry.algorithmById(alg_id) is not None
    assert not provider.icon().isNull()


def test_ids_names_groups_and_help(provider):
    for alg in provider.algorithms():
        assert re.fullmatch(r"[a-z0-9_]+", alg.name()), alg.name()
        assert alg.group() and alg.groupId() in ("data", "classic", "deep", "evaluation")
        text = alg.shortHelpString()
        assert not re.search(r"</?(p|h3|br|b|ul|li)>", text), "headless help must be plain text"
        for parameter in alg.parameterDefinitions():
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", parameter.name()), parameter.name()
            assert parameter.help(), f"{alg.id()} {parameter.name()} has no help"
            assert f"({parameter.name()})" in text
        assert alg.outputDefinitions(), f"{alg.id()} declares no output"
        if "OUTPUT_FOLDER" in [p.name() for p in alg.parameterDefinitions()]:
            assert any(isinstance(o, QgsProcessingOutputMultipleLayers) for o in alg.outputDefinitions()), \
                f"{alg.id()} writes a folder but does not declare the list of files"


def test_evaluate_declares_an_html_output(provider):
    from qgis.core import QgsProcessingOutputHtml

    alg = QgsApplication.processingRegistry().algorithmById("stf:evaluate")
    assert isinstance(alg.outputDefinition("OUTPUT_HTML"), QgsProcessingOutputHtml)


def test_plugin_entry_point():
    import stf_fusion

    from stf_fusion.stf_plugin.plugin import StfPlugin

    plugin = stf_fusion.classFactory(None)
    assert isinstance(plugin, StfPlugin)
    assert all(callable(getattr(plugin, m)) for m in ("initProcessing", "initGui", "unload"))


def test_method_settings_are_read_from_the_parameters_named_after_them(provider):
    from qgis.core import QgsProcessingContext

    from stf_fusion.core.classic.starfm import StarfmParams
    from stf_fusion.core.deep.stf3dcnn import Stf3dcnnParams

    context = QgsProcessingContext()
    registry = QgsApplication.processingRegistry()
    starfm = registry.createAlgorithmById("stf:fuse_starfm")
    params = starfm.settings({"WINDOW": 7, "LOG_WEIGHTS": True, "FINE_UNCERTAINTY": 0.01, "PAIRS": "1"}, context,
                             StarfmParams)
    assert (params.window, params.log_weights, params.fine_uncertainty, params.pairs) == (7, True, 0.01, 1)
    assert params.classes == 4 and params.tile_size == 0  # parameter defaults and fields without a parameter
    stf3d = registry.createAlgorithmById("stf:train_stf3dcnn")
    params = stf3d.settings({"TIME_WEIGHTING": "off", "DEPTH": 3, "LR": "0.005"}, context, Stf3dcnnParams)
    assert (params.time_weighting, params.depth, params.lr, params.width) == ("off", 3, 0.005, 24)


def test_toolbox_polish(provider):
    """The one-line description is a whole sentence (not cut at "et al."), labels carry no "(optional)" of their
    own, every algorithm has search tags and a help URL."""
    for alg in provider.algorithms():
        assert not alg.shortDescription().endswith("et al."), alg.id()
        assert alg.tags() and "fusion" in alg.tags(), alg.id()
        assert alg.helpUrl().startswith("file://"), alg.id()
        for p in alg.parameterDefinitions():
            assert "(optional)" not in p.description(), (alg.id(), p.name())
    estarfm = provider.algorithm("fuse_estarfm")
    assert estarfm.shortDescription().startswith("Enhanced STARFM (Zhu et al. 2010")


def test_evaluate_writes_the_table_alone(provider, sample_on_fine_grid, tmp_path):
    import os

    import processing

    truth = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "sample", "truth",
                         "truth_2021-05-03.tif")
    out = processing.run("stf:fuse_naive", {"FINE": [f.path for f in sample_on_fine_grid.fine],
                                            "COARSE": [c.path for c in sample_on_fine_grid.coarse],
                                            "PREDICT_DATES": "2021-05-03", "OUTPUT_FOLDER": str(tmp_path / "p")})
    result = processing.run("stf:evaluate", {"PREDICTIONS": out["OUTPUT_FILES"], "REFERENCES": [truth],
                                             "OUTPUT_CSV": str(tmp_path / "t.csv")})
    assert os.path.isfile(result["OUTPUT_CSV"]) and not result["OUTPUT_HTML"]
    assert sorted(os.listdir(tmp_path)) == ["p", "t.conventions.json", "t.csv"]  # no report


def test_a_missing_torch_is_reported_before_any_work_with_install_instructions(provider, sample_on_fine_grid,
                                                                                tmp_path, monkeypatch):
    import importlib.util

    import processing
    from qgis.core import QgsProcessingException

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(QgsProcessingException, match="PyTorch is not installed.*pip install"):
        processing.run("stf:predict", {"MODEL": str(tmp_path / "m.stfmodel"),
                                       "FINE": [f.path for f in sample_on_fine_grid.fine],
                                       "COARSE": [c.path for c in sample_on_fine_grid.coarse],
                                       "OUTPUT_FOLDER": str(tmp_path / "o")})
    assert not (tmp_path / "o").exists()
    with pytest.raises(QgsProcessingException, match="PyTorch is not installed"):  # a learned member asked for
        processing.run("stf:cross_validate", {"FINE": [f.path for f in sample_on_fine_grid.fine],
                                              "COARSE": [c.path for c in sample_on_fine_grid.coarse],
                                              "METHODS": "starfm, stfdcnn", "OUTPUT_CSV": str(tmp_path / "cv.csv")})
    assert not (tmp_path / "cv.csv").exists()
    out = processing.run("stf:fuse_naive", {"FINE": [f.path for f in sample_on_fine_grid.fine],  # needs no torch
                                            "COARSE": [c.path for c in sample_on_fine_grid.coarse],
                                            "PREDICT_DATES": "2021-05-03", "OUTPUT_FOLDER": str(tmp_path / "n")})
    assert len(out["OUTPUT_FILES"]) == 1


def test_the_metadata_states_what_the_methods_need():
    import configparser
    import os

    meta = configparser.ConfigParser()
    meta.read(os.path.join(os.path.dirname(os.path.dirname(__file__)), "metadata.txt"))
    about = meta["general"]["about"]
    assert "STARFM, ESTARFM, FSDAF" in about and "PyTorch is needed only by the deep-learning methods" in about
    assert meta["general"]["changelog"]


def test_every_group_has_its_icon(provider):
    groups = {}
    for alg in provider.algorithms():
        assert not alg.icon().isNull(), alg.id()
        groups.setdefault(alg.groupId(), alg.icon().cacheKey())
    assert len(groups) == 4
