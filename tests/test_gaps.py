"""Gap-aware fusion (SPEC "Gaps", core/gaps.py): a cloud over 20 % of one of two pairs leaves no hole in any
method's prediction; inside the cloud the prediction is as good as the method's own from the clear pair (within
10 %), outside it is the method's usual prediction; the quality raster says which pixels were filled; a pixel is
nodata only where no input exists; REFERENCE_RULES=strict keeps the reference programs' holes.

Set-up: the bundled sample (coarse on the fine grid), pairs 2021-04-01 and 2021-08-23, the held-out pair date
2021-06-04 predicted (its fine image is the truth); the cloud (nodata) is on 2021-04-01, the nearer pair, so the
one-pair methods and the two-pair methods both lose it there."""
import datetime as dt
import os
import shutil

import numpy as np
import pytest
from osgeo import gdal

from stf_fusion.core.deep.api import predict_with_model
from stf_fusion.core.fusion import fuse_method
from stf_fusion.core.gaps import FALLBACK, FULL, NO_INPUT, quality_path
from stf_fusion.core.raster import read_block
from stf_fusion.core.series import build_series

TARGET = dt.date(2021, 6, 4)
CLOUD = (slice(40, 126), slice(60, 146))  # 86 x 86 of 192 x 192 pixels: 20 % of the scene
MARGIN = 20  # the widest window (FSDAF, Fit-FC: 41 pixels) reaches this far outside the cloud
CLASSIC = ("naive", "additive", "starfm", "estarfm", "fsdaf", "fitfc")
LEARNED = ("stfdcnn", "dcnn", "stf3dcnn", "dcstfn", "stfsr", "refine")


def _cloudy_copy(path: str, out: str, rows: slice, cols: slice) -> str:
    shutil.copy(path, out)
    ds = gdal.Open(out, gdal.GA_Update)
    for b in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(b)
        data = band.ReadAsArray()
        data[rows, cols] = band.GetNoDataValue()
        band.WriteArray(data)
    ds = None
    return out


@pytest.fixture(scope="module")
def cases(sample_on_fine_grid, tmp_path_factory):
    """The clean series (two pairs), the cloudy one, the one-pair series of the clear pair, the truth and masks."""
    folder = tmp_path_factory.mktemp("gaps")
    fine = {f.date: f.path for f in sample_on_fine_grid.fine}
    coarse = [c.path for c in sample_on_fine_grid.coarse]
    first, last = dt.date(2021, 4, 1), dt.date(2021, 8, 23)
    cloudy = _cloudy_copy(fine[first], str(folder / "fine_2021-04-01.tif"), *CLOUD)
    truth, ok = read_block(fine[TARGET], scale=1e-4)
    assert ok.all()
    cloud = np.zeros(ok.shape, bool)
    cloud[CLOUD] = True
    outside = np.ones(ok.shape, bool)
    outside[CLOUD[0].start - MARGIN:CLOUD[0].stop + MARGIN, CLOUD[1].start - MARGIN:CLOUD[1].stop + MARGIN] = False
    return {"clean": build_series([fine[first], fine[last]], coarse),
            "cloudy": build_series([cloudy, fine[last]], coarse),
            "one": build_series([fine[last]], coarse),
            "truth": truth, "cloud": cloud, "outside": outside}


def _rmse(path: str, truth: np.ndarray, where: np.ndarray) -> float:
    values, ok = read_block(path, scale=1e-4)
    assert ok[where].all(), f"{path}: {int((~ok[where]).sum())} holes"
    return float(np.sqrt(np.mean((values - truth)[:, where] ** 2)))


def _check(name: str, clean: str, cloudy: str, one: str, cases: dict, folder: str) -> None:
    truth, cloud, outside = cases["truth"], cases["cloud"], cases["outside"]
    values, ok = read_block(cloudy, scale=1e-4)
    assert ok.all(), f"{name}: {int((~ok).sum())} holes although every pixel has a valid pair and coarse value"
    inside, alone = _rmse(cloudy, truth, cloud), _rmse(one, truth, cloud)
    print(f"{name}: RMSE in the cloud {inside:.5f} (one-pair {alone:.5f}); outside {_rmse(cloudy, truth, outside):.5f}"
          f" (clean {_rmse(clean, truth, outside):.5f})")
    assert inside <= 1.10 * alone
    assert _rmse(cloudy, truth, outside) <= 1.01 * _rmse(clean, truth, outside)  # the method's own prediction
    quality = gdal.Open(quality_path(folder, name, TARGET)).ReadAsArray()
    assert (quality[cloud] == FALLBACK).all()
    assert (quality[outside] == FULL).mean() > 0.95  # STARFM's own fill rule leaves ~1 % to the fallback
    assert not (quality == NO_INPUT).any()


@pytest.mark.parametrize("method", CLASSIC)
def test_a_cloud_in_one_pair_leaves_no_hole_classic(method, cases, tmp_path):
    runs = {}
    for kind in ("clean", "cloudy", "one"):
        # ESTARFM needs two pairs: its one-pair form is STARFM (the method it extends)
        used = "starfm" if kind == "one" and method == "estarfm" else method
        runs[kind] = fuse_method(used, cases[kind], [TARGET], str(tmp_path / kind), 1e-4, device="cpu")[0]
    _check(method, runs["clean"], runs["cloudy"], runs["one"], cases, str(tmp_path / "cloudy"))


@pytest.fixture(scope="module")
def stfsr_model(sample_on_fine_grid, tmp_path_factory):
    """STFSR trained with its defaults on the sample (it is not among the shared default models)."""
    from stf_fusion.core.deep.api import write_model
    from stf_fusion.core.deep.stfsr import StfsrParams, train_stfsr
    from stf_fusion.core.raster import OutputTransaction

    networks, meta = train_stfsr(sample_on_fine_grid, None, 1e-4, StfsrParams(), "cpu")
    with OutputTransaction() as tx:
        path, _, _ = write_model(str(tmp_path_factory.mktemp("stfsr") / "stfsr.stfmodel"), "stfsr", networks, meta,
                                 tx)
    return path


@pytest.mark.parametrize("method", LEARNED)
def test_a_cloud_in_one_pair_leaves_no_hole_learned(method, cases, request, tmp_path):
    model = (request.getfixturevalue("stfsr_model") if method == "stfsr"
             else request.getfixturevalue("default_models")[method]["trained"])
    runs = {kind: predict_with_model(model, cases[kind], [TARGET], str(tmp_path / kind), 1e-4, "cpu")[0]
            for kind in ("clean", "cloudy", "one")}
    _check(method, runs["clean"], runs["cloudy"], runs["one"], cases, str(tmp_path / "cloudy"))


def test_strict_rules_keep_the_reference_holes_and_fill_says_where_it_filled(cases, tmp_path):
    strict = fuse_method("starfm", cases["cloudy"], [TARGET], str(tmp_path / "s"), 1e-4, device="cpu",
                         rules="strict")[0]
    _, ok = read_block(strict, scale=1e-4)
    assert not ok[cases["cloud"]].any()  # USDA STARFM: no prediction where a pair is nodata
    assert not os.path.exists(os.path.join(tmp_path / "s", "quality"))
    filled = fuse_method("starfm", cases["cloudy"], [TARGET], str(tmp_path / "f"), 1e-4, device="cpu")[0]
    quality = gdal.Open(quality_path(str(tmp_path / "f"), "starfm", TARGET)).ReadAsArray()
    np.testing.assert_array_equal(quality == FALLBACK, ~ok)  # exactly the strict run's holes were filled
    # QGIS shows the quality with its classes (the .qml beside it is the layer's default style)
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(quality_path(str(tmp_path / "f"), "starfm", TARGET), "quality")
    renderer = layer.renderer()  # owned by the layer: keep the layer
    assert renderer.type() == "paletted"
    assert [(c.value, c.label) for c in renderer.classes()] == [(0, "full method"), (1, "fallback"), (2, "no input")]
    a, b = read_block(strict, scale=1e-4)[0], read_block(filled, scale=1e-4)[0]
    np.testing.assert_array_equal(a[:, ok], b[:, ok])  # and nothing else changed


def test_nodata_only_where_no_input_exists(sample_on_fine_grid, tmp_path):
    """A cloud over the same place in both pairs (and a coarse gap elsewhere) leaves exactly those pixels empty."""
    fine = {f.date: f.path for f in sample_on_fine_grid.fine}
    first, last = dt.date(2021, 4, 1), dt.date(2021, 8, 23)
    both = (slice(10, 30), slice(10, 30))
    a = _cloudy_copy(fine[first], str(tmp_path / "fine_2021-04-01.tif"), *both)
    b = _cloudy_copy(fine[last], str(tmp_path / "fine_2021-08-23.tif"), *both)
    coarse = [c.path for c in sample_on_fine_grid.coarse]
    gap = (slice(150, 170), slice(150, 170))
    index = next(i for i, c in enumerate(sample_on_fine_grid.coarse) if c.date == TARGET)
    coarse[index] = _cloudy_copy(coarse[index], str(tmp_path / os.path.basename(coarse[index])), *gap)
    series = build_series([a, b], coarse)
    path = fuse_method("fsdaf", series, [TARGET], str(tmp_path / "out"), 1e-4, device="cpu")[0]
    _, ok = read_block(path, scale=1e-4)
    expected = np.ones(ok.shape, bool)
    expected[both] = False
    expected[gap] = False
    np.testing.assert_array_equal(ok, expected)
    quality = gdal.Open(quality_path(str(tmp_path / "out"), "fsdaf", TARGET)).ReadAsArray()
    np.testing.assert_array_equal(quality == NO_INPUT, ~expected)
