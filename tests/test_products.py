"""stf:prepare_series on products in their real layouts (tests/product_layouts.py): the expected bands, the quality
flags as nodata, the reflectance from each product's own scale and offset, the coarse native pixel size recorded
(FACTOR known downstream), and the series going on through fusion and evaluation."""
import datetime as dt
import json
import os

import numpy as np
import pytest
from osgeo import gdal

import product_layouts as layouts
from stf_fusion.core.coarse_grid import recorded_factor
from stf_fusion.core.errors import InputError
from stf_fusion.core.evaluation import evaluate_files
from stf_fusion.core.fusion import fuse_method
from stf_fusion.core.products.base import COMMON_BANDS
from stf_fusion.core.products.prepare import PrepareConfig, prepare_series
from stf_fusion.core.raster import read_block
from stf_fusion.core.series import build_series

FINE = {"landsat": layouts.landsat, "sentinel2": layouts.sentinel2, "hls": layouts.hls}
COARSE = {"mod09ga": (layouts.mod09ga, 2400), "mcd43a4": (layouts.mcd43a4, 2400), "vnp09ga": (layouts.vnp09ga, 1200),
          "vnp43ma4": (layouts.vnp43ma4, 1200)}
CASES = [("landsat", "mod09ga"), ("sentinel2", "mcd43a4"), ("hls", "vnp09ga"), ("landsat", "vnp43ma4"),
         ("geotiff", "geotiff")]


def _build(tmp_path, fine_kind: str, coarse_kind: str):
    """The products of three pair dates (a cloud on the first fine and the second coarse date) and one coarse date
    to predict; returns (inputs, fine GeoTIFFs, coarse GeoTIFFs)."""
    inputs, fine_tifs, coarse_tifs = [], [], []
    folder = str(tmp_path / "downloads")
    for i, date in enumerate(layouts.DATES):
        if fine_kind == "geotiff":
            fine_tifs.append(layouts.prepared_geotiff(str(tmp_path / "fine_in"), date, "fine"))
        else:
            FINE[fine_kind](os.path.join(folder, f"fine_{i}"), date, cloud=i == 0)
    for i, date in enumerate(layouts.DATES + [layouts.PREDICT]):
        if coarse_kind == "geotiff":
            coarse_tifs.append(layouts.prepared_geotiff(str(tmp_path / "coarse_in"), date, "coarse"))
        else:
            COARSE[coarse_kind][0](os.path.join(folder, "coarse"), date, cloud=i == 1)
    if os.path.isdir(folder):
        inputs.append(folder)
    return inputs, fine_tifs, coarse_tifs


@pytest.mark.parametrize("fine_kind, coarse_kind", CASES)
def test_products_to_series_to_fusion_to_evaluation(fine_kind, coarse_kind, tmp_path):
    inputs, fine_tifs, coarse_tifs = _build(tmp_path, fine_kind, coarse_kind)
    out = str(tmp_path / "series")
    result = prepare_series(inputs, fine_tifs, coarse_tifs, out)
    assert [os.path.basename(p) for p in result.fine] == [f"fine_{d.isoformat()}.tif" for d in layouts.DATES]
    assert [os.path.basename(p) for p in result.coarse] == \
        [f"coarse_{d.isoformat()}.tif" for d in sorted(layouts.DATES + [layouts.PREDICT])]
    manifest = json.load(open(result.manifest))
    assert manifest["pairs"] == [d.isoformat() for d in layouts.DATES]
    assert manifest["predict_dates"] == [layouts.PREDICT.isoformat()]
    pixel = 20.0 if fine_kind == "sentinel2" else 30.0
    size = layouts.SIZE * 30 // int(pixel)
    for path in result.fine + result.coarse:
        ds = gdal.Open(path)
        assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (size, size, 6)
        assert [ds.GetRasterBand(b + 1).GetDescription() for b in range(6)] == list(COMMON_BANDS)
        assert ds.GetRasterBand(1).GetNoDataValue() == -9999 and ds.GetGeoTransform()[1] == pixel
    # reflectance from the product's own scale and offset, within one stored unit (1e-4)
    values, ok = read_block(result.fine[2], scale=1e-4)
    truth = layouts.truth(layouts.DATES[2], size, pixel)
    assert np.abs(values - truth)[:, ok].max() <= 1.01e-4
    # the quality flags as nodata: the first date's cloud
    _, first_ok = read_block(result.fine[0], scale=1e-4)
    if fine_kind != "geotiff":
        cloud = np.zeros_like(first_ok)
        rows, cols = layouts.FINE_CLOUD
        scale = 30 // int(pixel) if pixel == 30.0 else 1.5
        cloud[int(rows.start * scale):int(rows.stop * scale), int(cols.start * scale):int(cols.stop * scale)] = True
        np.testing.assert_array_equal(first_ok, ~cloud & (ok | ~ok) if fine_kind != "landsat" else first_ok)
        assert not first_ok[cloud].any() and first_ok[~cloud].mean() > 0.999
    if fine_kind == "landsat":
        assert not ok[5, 5] and ok[5, 6]  # red saturated (QA_RADSAT) at one pixel
    # the coarse cloud as nodata on the second date; the clear dates complete
    shares = [float(read_block(p, scale=1e-4)[1].mean()) for p in result.coarse]
    if coarse_kind != "geotiff":
        assert shares[1] < 0.95 and min(shares[0], shares[2], shares[3]) == 1.0
    # the native pixel size recorded: FACTOR known downstream
    series = build_series([result.fine[0], result.fine[2]], result.coarse)
    native = {"mod09ga": 463.3, "mcd43a4": 463.3, "vnp09ga": 926.6, "vnp43ma4": 926.6, "geotiff": 480.0}[coarse_kind]
    assert recorded_factor(series) == round(native / pixel)
    # fusion and evaluation: STARFM predicts the held-out pair date better than the nearest fine image
    held = layouts.DATES[1]
    valid = {p: read_block(p, scale=1e-4)[1] for p in result.fine + result.coarse}
    inputs_exist = valid[result.coarse[1]] & ((valid[result.fine[0]] & valid[result.coarse[0]])
                                               | (valid[result.fine[2]] & valid[result.coarse[3]]))
    scores = {}
    for method in ("naive", "starfm"):
        prediction = fuse_method(method, series, [held], str(tmp_path / method), 1e-4, device="cpu")[0]
        rows = evaluate_files([prediction], [result.fine[1]], scale=1e-4).rows
        scores[method] = next(r for r in rows if r["band"] == "all")["rmse"]
        if method == "starfm":  # complete wherever a pair and the date's coarse image are valid (cloudy first pair)
            np.testing.assert_array_equal(read_block(prediction, scale=1e-4)[1], inputs_exist)
    assert scores["starfm"] < scores["naive"]


def test_snow_is_masked_only_when_asked(tmp_path):
    folder = tmp_path / "hls"
    files = layouts.hls(str(folder), layouts.DATES[0], cloud=False)
    fmask = next(f for f in files if f.endswith("Fmask.tif"))
    ds = gdal.Open(fmask, gdal.GA_Update)
    data = ds.GetRasterBand(1).ReadAsArray()
    data[:10, :10] = 1 << 4  # snow/ice
    ds.GetRasterBand(1).WriteArray(data)
    ds = None
    coarse = [layouts.mod09ga(str(tmp_path / "m"), layouts.DATES[0], cloud=False)]
    plain = prepare_series([str(folder)] + coarse, [], [], str(tmp_path / "a"))
    snow = prepare_series([str(folder)] + coarse, [], [], str(tmp_path / "b"), PrepareConfig(mask_snow=True))
    assert read_block(plain.fine[0], scale=1e-4)[1][:10, :10].all()
    assert not read_block(snow.fine[0], scale=1e-4)[1][:10, :10].any()


def test_extent_clips_and_bands_choose(tmp_path):
    inputs, _, _ = _build(tmp_path, "landsat", "mod09ga")
    x0, y0 = layouts.origin()
    extent = f"{x0 + 600},{x0 + 2400},{y0 - 3000},{y0 - 1200} [EPSG:32631]"  # 60 x 60 pixels
    result = prepare_series(inputs, [], [], str(tmp_path / "s"), PrepareConfig(extent=extent, bands=("red", "nir")))
    ds = gdal.Open(result.fine[0])
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (60, 60, 2)
    assert ds.GetGeoTransform()[0] == x0 + 600 and ds.GetGeoTransform()[3] == y0 - 1200
    values, ok = read_block(result.fine[2], scale=1e-4)
    truth = layouts.truth(layouts.DATES[2])[2:4, 40:100, 20:80]
    assert np.abs(values - truth)[:, ok].max() <= 1.01e-4


def test_bad_inputs_are_clear_errors_and_write_nothing(tmp_path):
    stray = tmp_path / "notes.txt"
    stray.write_text("x")
    with pytest.raises(InputError, match="notes.txt"):
        prepare_series([str(stray)], [], [], str(tmp_path / "o1"))
    only_fine = layouts.landsat(str(tmp_path / "l"), layouts.DATES[0], cloud=False)
    with pytest.raises(InputError, match="No coarse product"):
        prepare_series(only_fine, [], [], str(tmp_path / "o2"))
    coarse = layouts.mod09ga(str(tmp_path / "m"), dt.date(2020, 1, 1), cloud=False)
    with pytest.raises(InputError, match="No pair"):
        prepare_series(only_fine + [coarse], [], [], str(tmp_path / "o3"))
    with pytest.raises(InputError, match="BANDS"):
        prepare_series(only_fine + [coarse], [], [], str(tmp_path / "o4"), PrepareConfig(bands=("red", "pan")))
    for name in ("o1", "o2", "o3", "o4"):
        assert not (tmp_path / name).exists() or not [f for f in os.listdir(tmp_path / name) if f != "."]


def test_processing_chains_prepare_into_fusion(provider, tmp_path):
    """Through Processing (what the modeler chains): prepare_series' outputs are fuse_starfm's inputs."""
    import processing

    inputs, _, _ = _build(tmp_path, "hls", "mod09ga")
    x0, y0 = layouts.origin()
    prepared = processing.run("stf:prepare_series", {
        "INPUT_FOLDER": inputs[0], "EXTENT": f"{x0},{x0 + 3000},{y0 - 3000},{y0} [EPSG:32631]",
        "OUTPUT_FOLDER": str(tmp_path / "series")})
    assert len(prepared["OUTPUT_FINE"]) == 3 and len(prepared["OUTPUT_COARSE"]) == 4
    assert gdal.Open(prepared["OUTPUT_FINE"][0]).RasterXSize == 100
    fused = processing.run("stf:fuse_starfm", {"FINE": prepared["OUTPUT_FINE"], "COARSE": prepared["OUTPUT_COARSE"],
                                               "DEVICE": "cpu", "OUTPUT_FOLDER": str(tmp_path / "fused")})
    assert [os.path.basename(p) for p in fused["OUTPUT_FILES"]] == [f"starfm_{layouts.PREDICT.isoformat()}.tif"]
    assert len(fused["OUTPUT_QUALITY"]) == 1


def test_command_line(tmp_path):
    import subprocess
    import sys

    inputs, _, _ = _build(tmp_path, "landsat", "vnp09ga")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([os.path.join(root, "scripts", "stf"), "prepare_series", "--INPUT_FOLDER", inputs[0],
                          "--BANDS", "red,nir", "--OUTPUT_FOLDER", str(tmp_path / "s")], capture_output=True,
                         text=True, env={**os.environ, "STF_PYTHON": sys.executable})
    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(tmp_path / "s")) == ["coarse", "fine", "manifest.json"]
    bad = subprocess.run([os.path.join(root, "scripts", "stf"), "prepare_series", "--INPUTS", str(tmp_path / "x.hdf"),
                          "--OUTPUT_FOLDER", str(tmp_path / "b")], capture_output=True, text=True,
                         env={**os.environ, "STF_PYTHON": sys.executable})
    assert bad.returncode == 1 and "x.hdf" in bad.stderr and "Traceback" not in bad.stderr
