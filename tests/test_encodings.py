"""Fine and coarse images in different encodings (issue 13, item 5): FINE_SCALE/FINE_OFFSET and
COARSE_SCALE/COARSE_OFFSET read each kind in its own encoding and write predictions in the fine one; a scale that
does not match the files is an error that names the scale, never a silent result."""
import os
import re
import shutil

import numpy as np
import pytest
from conftest import files_in
from helpers import read
from osgeo import gdal
from qgis.core import QgsProcessingException

from stf_fusion.core.errors import InputError
from stf_fusion.core.raster import Encoding, from_reflectance, read_block

C2 = Encoding(2.75e-5, -0.2)  # Landsat Collection 2 Level-2 surface reflectance


def test_an_encoding_with_an_offset_round_trips_hand_computed_values():
    assert C2.decode(np.array([10000, 7273], np.uint16)).tolist() == pytest.approx([0.075, 0.0000075], abs=1e-6)
    assert from_reflectance(np.array([0.075, 0.5], np.float32), C2, "uint16").tolist() == [10000, 25455]
    assert C2.describe() == "x 2.75e-05 - 0.2"
    with pytest.raises(InputError, match="FINE_SCALE must be a finite positive number"):
        Encoding(float("nan"), name="FINE_SCALE")


def _as_collection2(source, target):
    """``source`` (int16, x 0.0001, nodata -9999) re-encoded as Landsat Collection 2 (uint16, x 2.75e-5 - 0.2,
    nodata 0), with the same grid and band names."""
    data, valid = read_block(source, scale=1e-4)
    stored = from_reflectance(data, C2, "uint16")
    stored[:, ~valid] = 0
    src = gdal.Open(source)
    ds = gdal.GetDriverByName("GTiff").Create(target, src.RasterXSize, src.RasterYSize, src.RasterCount,
                                              gdal.GDT_UInt16)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    for b in range(src.RasterCount):
        band = ds.GetRasterBand(b + 1)
        band.SetNoDataValue(0)
        band.SetDescription(src.GetRasterBand(b + 1).GetDescription())
        band.WriteArray(stored[b])
    ds = None
    return target


@pytest.fixture
def mixed(sample_on_fine_grid, tmp_path):
    """The sample with its fine images in the Collection 2 encoding and its coarse images as they are (x 0.0001)."""
    w = tmp_path / "w"
    w.mkdir()
    fine = [_as_collection2(f.path, str(w / os.path.basename(f.path))) for f in sample_on_fine_grid.fine]
    coarse = [shutil.copy(c.path, w) for c in sample_on_fine_grid.coarse]
    return w, fine, coarse, sample_on_fine_grid


def test_one_scale_for_differently_encoded_images_is_an_error_naming_the_scales(provider, mixed, tmp_path):
    import processing

    w, fine, coarse, _ = mixed
    listing = files_in(w)
    with pytest.raises(QgsProcessingException, match="stored in different scales.*FINE_SCALE/FINE_OFFSET"):
        processing.run("stf:fuse_starfm", {"FINE": fine, "COARSE": coarse, "OUTPUT_FOLDER": str(tmp_path / "o")})
    assert files_in(w) == listing and not os.path.exists(tmp_path / "o" / "starfm_2021-04-17.tif")


@pytest.mark.parametrize("scale", [10000, 1e30])
def test_a_scale_far_from_reflectance_is_an_error(provider, mixed, tmp_path, scale):
    import processing

    _, _, coarse, series = mixed
    fine = [f.path for f in series.fine]
    expected = re.escape(f"With SCALE (x {scale:g}) the fine image") + ".* not reflectance"
    with pytest.raises(QgsProcessingException, match=expected):
        processing.run("stf:fuse_naive", {"FINE": fine, "COARSE": coarse, "SCALE": scale,
                                          "OUTPUT_FOLDER": str(tmp_path / "o")})
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


@pytest.mark.parametrize("alg", ["fuse_starfm", "fuse_additive"])
def test_per_kind_encodings_give_the_prediction_of_one_encoding_written_in_the_fine_one(provider, mixed, tmp_path,
                                                                                         alg):
    """The same series in two encodings gives the same reflectance (to the stored precision), on every date."""
    import processing

    w, fine, coarse, series = mixed
    reference = processing.run(f"stf:{alg}", {"FINE": [f.path for f in series.fine], "COARSE": coarse,
                                              "OUTPUT_FOLDER": str(tmp_path / "ref")})["OUTPUT_FILES"]
    mixed_out = processing.run(f"stf:{alg}", {"FINE": fine, "COARSE": coarse, "FINE_SCALE": 2.75e-5,
                                              "FINE_OFFSET": -0.2, "COARSE_SCALE": 1e-4,
                                              "OUTPUT_FOLDER": str(tmp_path / "mix")})["OUTPUT_FILES"]
    assert len(mixed_out) == len(reference) == len(series.predict_dates)
    for a, b in zip(reference, mixed_out):
        assert gdal.Open(b).GetRasterBand(1).DataType == gdal.GDT_UInt16  # the fine images' type and encoding
        ra, va = read_block(a, scale=1e-4)
        rb, vb = read_block(b, scale=C2)
        assert (va == vb).mean() > 0.999  # nodata in the same places (STARFM leaves a few percent unpredicted)
        both = va & vb
        diff = np.abs(ra - rb)[:, both]
        assert np.percentile(diff, 99) <= 2e-4 and diff.mean() < 5e-5, (b, diff.max())
    assert read(mixed_out[0]).max() > 10000  # stored in Collection 2 units, not x 0.0001


def test_training_refuses_differently_encoded_images(mixed):
    from stf_fusion.core.deep.dcnn import DcnnParams, train_dcnn
    from stf_fusion.core.series import build_series

    _, fine, coarse, _ = mixed
    with pytest.raises(InputError, match="different scales"):
        train_dcnn(build_series(fine, coarse), None, 1e-4, DcnnParams(epochs=0))
