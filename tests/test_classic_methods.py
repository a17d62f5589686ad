"""The classic methods on the bundled sample series: each beats the naive nearest-fine-image prediction, the
result does not depend on the tiling, and each runs as a Processing algorithm."""
import datetime as dt
import os

import numpy as np
import pytest
from conftest import ROOT, files_in
from qgis.core import QgsProcessingException

from stf_fusion.core.classic.estarfm import EstarfmParams, fuse_estarfm
from stf_fusion.core.classic.fitfc import FitfcParams, fuse_fitfc
from stf_fusion.core.classic.fsdaf import FsdafParams, fuse_fsdaf
from stf_fusion.core.classic.starfm import StarfmParams, fuse_starfm
from stf_fusion.core.evaluation import evaluate_files
from stf_fusion.core.naive import fuse_naive
from stf_fusion.core.raster import read_raw

SAMPLE = os.path.join(ROOT, "resources", "sample")
# phenology between the pairs (2021-05-03, 2021-06-20) and the flood (2021-07-06)
DATES = [dt.date(2021, 5, 3), dt.date(2021, 6, 20), dt.date(2021, 7, 6)]
METHODS = {
    "starfm": lambda s, d, f, **k: fuse_starfm(s, d, f, params=StarfmParams(**k)),
    "estarfm": lambda s, d, f, **k: fuse_estarfm(s, d, f, params=EstarfmParams(**k)),
    "fsdaf": lambda s, d, f, **k: fuse_fsdaf(s, d, f, params=FsdafParams(**k)),
    "fitfc": lambda s, d, f, **k: fuse_fitfc(s, d, f, params=FitfcParams(**k)),
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory, sample_on_fine_grid):
    folder = tmp_path_factory.mktemp("sample")
    series = sample_on_fine_grid
    naive = fuse_naive(series, DATES, str(folder / "naive"))
    truth = [os.path.join(SAMPLE, "truth", f"truth_{d.isoformat()}.tif") for d in DATES]
    return series, folder, naive, truth


def _rmse(files, truth):
    return [r["rmse"] for r in evaluate_files(files, truth, keep_details=False).rows if r["band"] == "all"]


@pytest.mark.parametrize("method", list(METHODS))
def test_beats_the_naive_prediction(sample, method):
    series, folder, naive, truth = sample
    files = METHODS[method](series, DATES, str(folder / method))
    ours, baseline = _rmse(files, truth), _rmse(naive, truth)
    print(method, "RMSE", np.round(ours, 4), "naive", np.round(baseline, 4))
    for date, a, b in zip(DATES, ours, baseline):
        assert a < 0.8 * b, f"{method} {date}: RMSE {a:.4f} vs naive {b:.4f}"
        assert a < 0.045, f"{method} {date}: RMSE {a:.4f}"


@pytest.mark.parametrize("method, kwargs", [
    ("starfm", dict(window=9)), ("estarfm", dict(window=9)), ("fsdaf", dict(window=9, similar=8)),
    ("fitfc", dict(window=9, similar=8, regression_radius=2))])
def test_tiling_does_not_change_the_result(sample, method, kwargs):
    series, folder, _, _ = sample
    date = DATES[:1]
    small = METHODS[method](series, date, str(folder / f"{method}_t48"), tile_size=48, **kwargs)
    whole = METHODS[method](series, date, str(folder / f"{method}_t192"), tile_size=192, **kwargs)
    np.testing.assert_array_equal(read_raw(small[0]), read_raw(whole[0]))


@pytest.mark.parametrize("alg_id", ["stf:fuse_starfm", "stf:fuse_estarfm", "stf:fuse_fsdaf", "stf:fuse_fitfc"])
def test_processing_algorithm(provider, sample, tmp_path, alg_id):
    import processing

    series, _, _, _ = sample
    params = {"FINE": [f.path for f in series.fine], "COARSE": [c.path for c in series.coarse],
              "PREDICT_DATES": "2021-06-20", "WINDOW": 7, "DEVICE": "cpu", "OUTPUT_FOLDER": str(tmp_path / "out")}
    result = processing.run(alg_id, params)
    name = alg_id.split("_")[1]
    assert [os.path.basename(p) for p in result["OUTPUT_FILES"]] == [f"{name}_2021-06-20.tif"]
    with pytest.raises(QgsProcessingException, match="No coarse image on the prediction date"):
        processing.run(alg_id, dict(params, PREDICT_DATES="2022-01-01", OUTPUT_FOLDER=str(tmp_path / "bad")))
    assert not (tmp_path / "bad").exists() or files_in(tmp_path / "bad") == []


@pytest.mark.parametrize("method", ["starfm", "estarfm", "fsdaf", "fitfc"])
def test_no_negative_reflectance_on_the_flood_dates(method, sample_on_fine_grid, tmp_path):
    """The flood drives the coarse change far below the pairs' values (issue 12): no method writes a negative
    value (STARFM writes nodata there, as USDA STARFM writes its fill value)."""
    flood = [dt.date(2021, 7, 6), dt.date(2021, 7, 22)]
    for path in METHODS[method](sample_on_fine_grid, flood, str(tmp_path)):
        values = read_raw(path)
        assert values[values != -9999].min() >= 0


def test_the_first_run_says_it_compiles_the_kernels(monkeypatch):
    """Issue 26: the first run of a classic method compiles numba kernels for ~20 s; it says so."""
    from stf_fusion.core.classic import kernels
    from stf_fusion.core.feedback import RecordingFeedback

    if not kernels.enabled("cpu"):
        pytest.skip("numba is not installed: nothing is compiled")
    for listing, expected in (([], 1), (["kernels._starfm_sum-48.py311.nbi"], 0)):
        monkeypatch.setattr(kernels.os, "listdir", lambda _path, listing=listing: listing)
        feedback = RecordingFeedback()
        kernels.announce_compilation("cpu", feedback)
        assert sum("Compiling the CPU kernels" in line for line in feedback.lines) == expected


def test_auto_keeps_fsdaf_and_fitfc_on_the_cpu_kernels_where_a_gpu_is(monkeypatch, sample_on_fine_grid, tmp_path):
    """Issue 28, measured on an NVIDIA H200: FSDAF's and Fit-FC's GPU paths were slower than their compiled CPU
    kernels, so DEVICE auto keeps them on the CPU (and says so) while STARFM and ESTARFM take the GPU; DEVICE cuda
    still means the GPU. The GPU is faked (no CUDA here): what is checked is the choice, and that Fit-FC then runs
    with the GPU "present" and gives the CPU's values."""
    torch = pytest.importorskip("torch")
    from stf_fusion.core.classic import kernels
    from stf_fusion.core.classic.common import method_device
    from stf_fusion.core.feedback import RecordingFeedback

    if not kernels.enabled("cpu"):
        pytest.skip("numba is not installed")
    series = sample_on_fine_grid
    reference = fuse_fitfc(series, DATES[:1], str(tmp_path / "cpu"), device="cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    feedback = RecordingFeedback()
    assert method_device("auto", "fsdaf", feedback).type == "cpu"
    assert any("FSDAF runs its compiled CPU kernels" in line for line in feedback.lines)
    assert method_device("auto", "starfm").type == "cuda"
    assert method_device("auto", "estarfm").type == "cuda"
    assert method_device("cuda", "fitfc").type == "cuda"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "no such GPU")
    feedback = RecordingFeedback()
    files = fuse_fitfc(series, DATES[:1], str(tmp_path / "auto"), device="auto", feedback=feedback)
    assert any("Fit-FC runs its compiled CPU kernels" in line for line in feedback.lines)
    assert np.array_equal(read_raw(files[0]), read_raw(reference[0]))
