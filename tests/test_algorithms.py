"""Each algorithm through processing.run: outputs, bad inputs (clear error, no output), cancel (no output)."""
import os
import shutil

import numpy as np
import pytest
from conftest import files_in
from helpers import make_raster
from qgis.core import QgsProcessingException, QgsProcessingFeedback

from stf_fusion.core.raster import grid_differences, raster_info


def run(alg_id, params, feedback=None):
    import processing

    return processing.run(alg_id, params, feedback=feedback)


def test_make_sample_series(provider, tmp_path):
    out = tmp_path / "series"
    result = run("stf:make_sample_series", {
        "SIZE": 48, "FACTOR": 16, "N_DATES": 4, "PAIRS": "0,3", "FLOOD": "2", "SEED": 5, "OUTPUT_FOLDER": str(out)})
    assert len(result["FINE"]) == 2 and len(result["COARSE"]) == 4 and len(result["TRUTH"]) == 4
    assert all(os.path.exists(p) for p in result["FINE"] + result["COARSE"] + result["TRUTH"])
    assert result["OUTPUT_FOLDER"] == str(out)
    assert raster_info(result["COARSE"][0]).width == 3


def test_make_sample_series_bad_parameters(provider, tmp_path):
    with pytest.raises(QgsProcessingException, match="multiple of the coarse factor"):
        run("stf:make_sample_series", {"SIZE": 50, "FACTOR": 16, "OUTPUT_FOLDER": str(tmp_path / "s")})
    with pytest.raises(QgsProcessingException, match="PAIRS must be a list of whole numbers"):
        run("stf:make_sample_series", {"SIZE": 48, "PAIRS": "first", "OUTPUT_FOLDER": str(tmp_path / "s")})
    assert not (tmp_path / "s").exists() or files_in(tmp_path / "s") == []


def test_resample_coarse(provider, small_series, tmp_path):
    out = tmp_path / "resampled"
    result = run("stf:resample_coarse", {
        "COARSE": small_series.coarse, "REFERENCE": small_series.fine[0], "METHOD": "bilinear",
        "OUTPUT_FOLDER": str(out)})
    assert [os.path.basename(p) for p in result["OUTPUT_FILES"]] == [f"coarse_{d}.tif" for d in small_series.dates]
    fine = raster_info(small_series.fine[0])
    for path in result["OUTPUT_FILES"]:
        assert not grid_differences(fine, raster_info(path))
    with pytest.raises(QgsProcessingException, match="Incorrect parameter value for METHOD"):
        run("stf:resample_coarse", {"COARSE": small_series.coarse[:1], "REFERENCE": small_series.fine[0],
                                    "METHOD": "lanczos", "OUTPUT_FOLDER": str(tmp_path / "bad")})


def test_resample_refuses_to_overwrite_inputs(provider, small_series, tmp_path):
    folder = tmp_path / "in_place"
    folder.mkdir()
    coarse = [shutil.copy(p, folder) for p in small_series.coarse[:2]]
    before = {p: open(p, "rb").read() for p in coarse}
    with pytest.raises(QgsProcessingException, match="would overwrite an input"):
        run("stf:resample_coarse", {"COARSE": coarse, "REFERENCE": small_series.fine[0],
                                    "OUTPUT_FOLDER": str(folder)})
    assert files_in(folder) == sorted(os.path.basename(p) for p in coarse)
    assert all(open(p, "rb").read() == data for p, data in before.items())


def test_resample_without_crs_is_a_clear_error_and_writes_nothing(provider, small_series, tmp_path):
    nocrs = make_raster(tmp_path / "coarse_2021-04-01.tif", np.ones((6, 4, 4)), epsg=None,
                        geotransform=(600000.0, 480.0, 0.0, 5800020.0, 0.0, -480.0))
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match="coarse_2021-04-01.tif' has no CRS"):
        run("stf:resample_coarse", {"COARSE": [small_series.coarse[1], nocrs], "REFERENCE": small_series.fine[0],
                                    "OUTPUT_FOLDER": str(out)})
    assert not out.exists() or files_in(out) == []


class CancelAfter(QgsProcessingFeedback):
    """Cancels once progress has passed ``percent``."""

    def __init__(self, percent):
        super().__init__()
        self.percent = percent
        self.progressChanged.connect(self._check)

    def _check(self, value):
        if value >= self.percent:
            self.cancel()


@pytest.mark.parametrize("alg_id", ["stf:make_sample_series", "stf:resample_coarse", "stf:fuse_naive",
                                    "stf:fuse_starfm", "stf:fuse_fsdaf"])
def test_cancel_leaves_no_output(provider, small_series, tmp_path, alg_id):
    out = tmp_path / "cancelled"
    params = {"OUTPUT_FOLDER": str(out)}
    if alg_id == "stf:resample_coarse":
        params.update(COARSE=small_series.coarse, REFERENCE=small_series.fine[0])
    elif alg_id != "stf:make_sample_series":
        coarse = run("stf:resample_coarse", {"COARSE": small_series.coarse, "REFERENCE": small_series.fine[0],
                                             "OUTPUT_FOLDER": str(tmp_path / "coarse")})["OUTPUT_FILES"]
        params.update(FINE=small_series.fine, COARSE=coarse)
        if alg_id != "stf:fuse_naive":
            params.update(WINDOW=5, DEVICE="cpu")
    else:
        params.update(SIZE=64, N_DATES=6, PAIRS="0,5", FLOOD="")
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run(alg_id, params, CancelAfter(40))
    assert not out.exists() or files_in(out) == []


def test_fuse_naive_then_evaluate(provider, small_series, tmp_path):
    coarse = run("stf:resample_coarse", {"COARSE": small_series.coarse, "REFERENCE": small_series.fine[0],
                                         "OUTPUT_FOLDER": str(tmp_path / "coarse")})["OUTPUT_FILES"]
    naive = run("stf:fuse_naive", {"FINE": small_series.fine, "COARSE": coarse, "PREDICT_DATES": "2021-05-03",
                                   "OUTPUT_FOLDER": str(tmp_path / "pred")})["OUTPUT_FILES"]
    assert [os.path.basename(p) for p in naive] == ["naive_2021-05-03.tif"]
    result = run("stf:evaluate", {"PREDICTIONS": naive, "REFERENCES": small_series.truth, "BASELINE": naive,
                                  "RATIO": 0.0625, "OUTPUT_CSV": str(tmp_path / "ev.csv"),
                                  "OUTPUT_HTML": str(tmp_path / "ev.html")})
    assert os.path.exists(result["OUTPUT_CSV"]) and os.path.exists(result["OUTPUT_HTML"])
    lines = open(result["OUTPUT_CSV"]).read().splitlines()
    assert len(lines) == 1 + 7 and lines[-1].startswith("2021-05-03,naive,all,4096,")


def test_fuse_naive_needs_coarse_on_fine_grid_and_writes_nothing(provider, small_series, tmp_path):
    out = tmp_path / "pred"
    with pytest.raises(QgsProcessingException, match="Resample the coarse images first"):
        run("stf:fuse_naive", {"FINE": small_series.fine, "COARSE": small_series.coarse, "OUTPUT_FOLDER": str(out)})
    with pytest.raises(QgsProcessingException, match="has no coarse image on its date"):
        run("stf:fuse_naive", {"FINE": small_series.fine, "COARSE": small_series.coarse[1:],
                               "OUTPUT_FOLDER": str(out)})
    assert not out.exists() or files_in(out) == []


def test_evaluate_bad_scale_writes_nothing(provider, small_series, tmp_path):
    with pytest.raises(QgsProcessingException, match="not reflectance within the data range"):
        run("stf:evaluate", {"PREDICTIONS": small_series.truth[:1], "REFERENCES": small_series.truth[:1],
                             "SCALE": 1.0, "OUTPUT_CSV": str(tmp_path / "e" / "ev.csv"),
                             "OUTPUT_HTML": str(tmp_path / "e" / "ev.html")})
    assert not (tmp_path / "e").exists() or files_in(tmp_path / "e") == []
