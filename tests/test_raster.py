import os

import numpy as np
import pytest
from helpers import make_raster, read, wkt

from stf_fusion.core.errors import CancelledError, GridMismatchError, InputError, StfError
from stf_fusion.core.raster import (
    OutputTransaction, RasterWriter, check_same_grid, from_reflectance, raster_info, read_block, same_crs,
    to_reflectance, write_raster,
)
from stf_fusion.core.tiles import Window


def _reflectance(rng, shape=(3, 20, 30)):
    return rng.uniform(0.0, 0.6, shape).astype(np.float32)


def test_int16_round_trip_keeps_georeferencing_nodata_and_values(tmp_path):
    rng = np.random.default_rng(0)
    src = make_raster(tmp_path / "src.tif", np.zeros((3, 20, 30)), nodata=-9999)
    like = raster_info(src)
    values = _reflectance(rng)
    valid = np.ones((20, 30), bool)
    valid[5, 7] = False
    out = tmp_path / "out.tif"
    write_raster(str(out), values, like, valid=valid, scale=1e-4, dtype="int16", nodata=-9999,
                 descriptions=["blue", "green", "red"])
    info = raster_info(str(out))
    assert info.geotransform == like.geotransform
    assert same_crs(info.crs_wkt, wkt())
    assert info.nodata == (-9999.0,) * 3 and info.dtype == "int16"
    assert info.descriptions == ("blue", "green", "red")
    assert read(out)[:, 5, 7].tolist() == [-9999] * 3
    back, back_valid = read_block(str(out), scale=1e-4)
    assert not back_valid[5, 7] and back_valid.sum() == valid.sum()
    assert np.all(back[:, 5, 7] == 0)
    np.testing.assert_allclose(back[:, valid], values[:, valid], atol=0.5e-4 + 1e-7)


def test_float_round_trip_and_tiled_compressed_output(tmp_path):
    from osgeo import gdal

    src = make_raster(tmp_path / "src.tif", np.zeros((2, 300, 260)), dtype=gdal.GDT_Float32)
    values = _reflectance(np.random.default_rng(1), (2, 300, 260))
    out = tmp_path / "out.tif"
    write_raster(str(out), values, raster_info(src))
    ds = gdal.Open(str(out))
    assert ds.GetRasterBand(1).GetBlockSize() == [256, 256]
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == "DEFLATE"
    np.testing.assert_array_equal(read_block(str(out))[0], values)


def test_validity_combines_nodata_nonfinite_and_mask_raster(tmp_path):
    from osgeo import gdal

    data = np.full((2, 4, 5), 0.2, np.float32)
    data[0, 0, 0] = -1  # band nodata
    data[1, 1, 1] = np.nan
    data[0, 2, 2] = np.inf
    src = make_raster(tmp_path / "f.tif", data, nodata=-1, dtype=gdal.GDT_Float32)
    mask = np.ones((4, 5), np.uint8)
    mask[3, 4] = 0
    mask_path = make_raster(tmp_path / "mask.tif", mask, dtype=gdal.GDT_Byte)
    values, valid = read_block(src, mask_path=mask_path)
    expected = np.ones((4, 5), bool)
    expected[0, 0] = expected[1, 1] = expected[2, 2] = expected[3, 4] = False
    np.testing.assert_array_equal(valid, expected)
    assert np.isfinite(values).all() and np.all(values[:, ~valid] == 0)


def test_windowed_read_equals_slice_of_whole(tmp_path):
    data = np.random.default_rng(2).integers(0, 10000, (3, 40, 50))
    src = make_raster(tmp_path / "w.tif", data)
    whole, _ = read_block(src, scale=1e-4)
    part, _ = read_block(src, Window(7, 11, 20, 13), scale=1e-4)
    np.testing.assert_array_equal(part, whole[:, 11:24, 7:27])
    with pytest.raises(InputError, match="outside"):
        read_block(src, Window(40, 0, 20, 5))


def test_scale_conversion():
    raw = np.array([0, 1234, 10000], np.int16)
    refl = to_reflectance(raw, 1e-4)
    assert refl.dtype == np.float32
    np.testing.assert_allclose(refl, [0, 0.1234, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(from_reflectance(refl, 1e-4, "int16"), raw)
    assert from_reflectance(np.array([9.0], np.float32), 1e-4, "int16")[0] == 32767  # clipped, not wrapped


@pytest.mark.parametrize("change, prop", [
    (dict(epsg=4326), "CRS: EPSG:4326 vs EPSG:32633"),
    (dict(geotransform=(600000.0, 60.0, 0.0, 5800020.0, 0.0, -60.0)), "pixel size"),
    (dict(geotransform=(600300.0, 30.0, 0.0, 5800020.0, 0.0, -30.0)), "geotransform origin"),
    (dict(shape=(2, 10, 11)), "size: 11 x 10 vs 12 x 10"),
    (dict(shape=(3, 10, 12)), "band count: 3 vs 2"),
])
def test_grid_mismatch_names_both_files_and_property(tmp_path, change, prop):
    ref = make_raster(tmp_path / "ref.tif", np.zeros((2, 10, 12)))
    shape = change.pop("shape", (2, 10, 12))
    other = make_raster(tmp_path / "other.tif", np.zeros(shape), **change)
    with pytest.raises(GridMismatchError) as err:
        check_same_grid(raster_info(ref), raster_info(other))
    message = str(err.value)
    assert "other.tif" in message and "ref.tif" in message and prop in message


def test_unreadable_inputs_are_named(tmp_path):
    with pytest.raises(InputError, match="missing.tif' does not exist"):
        raster_info(str(tmp_path / "missing.tif"))
    bad = tmp_path / "not_a_raster.tif"
    bad.write_text("hello")
    with pytest.raises(InputError, match="not_a_raster.tif' cannot be read as a raster"):
        raster_info(str(bad))
    nogeo = tmp_path / "nogeo.tif"
    from osgeo import gdal
    gdal.GetDriverByName("GTiff").Create(str(nogeo), 4, 4, 1, gdal.GDT_Byte).FlushCache()
    with pytest.raises(InputError, match="nogeo.tif' has no georeferencing"):
        raster_info(str(nogeo))


def test_nonfinite_prediction_is_refused_and_nothing_is_left(tmp_path):
    like = raster_info(make_raster(tmp_path / "ref.tif", np.zeros((1, 8, 8))))
    values = np.zeros((1, 8, 8), np.float32)
    values[0, 3, 4] = np.nan
    out = tmp_path / "out" / "pred.tif"
    with pytest.raises(StfError, match="non-finite values in valid pixels.*row 3, column 4"):
        with OutputTransaction() as tx:
            write_raster(tx.add(str(out)), values, like, scale=1e-4)
    assert os.listdir(tmp_path / "out") == []
    # a non-finite value in an invalid pixel is fine: it becomes nodata
    valid = np.isfinite(values[0])
    with OutputTransaction() as tx:
        write_raster(tx.add(str(out)), values, like, valid=valid, scale=1e-4, nodata=-9999)
    assert read(out)[0, 3, 4] == -9999


def test_transaction_is_all_or_nothing(tmp_path):
    like = raster_info(make_raster(tmp_path / "ref.tif", np.zeros((1, 8, 8))))
    folder = tmp_path / "outs"
    with pytest.raises(CancelledError):
        with OutputTransaction() as tx:
            write_raster(tx.add(str(folder / "a.tif")), np.zeros((1, 8, 8)), like)
            with RasterWriter(tx.add(str(folder / "b.tif")), like) as writer:
                writer.write(np.zeros((1, 4, 8)), Window(0, 0, 8, 4))
                raise CancelledError()
    assert os.listdir(folder) == []
    with OutputTransaction() as tx:
        write_raster(tx.add(str(folder / "a.tif")), np.ones((1, 8, 8)) * 0.5, like, scale=1e-4)
        assert not (folder / "a.tif").exists()  # not before the commit
    assert sorted(os.listdir(folder)) == ["a.tif"] and tx.committed == [str(folder / "a.tif")]
    assert read(folder / "a.tif").max() == 5000


def test_reads_decode_on_threads_without_changing_the_callers_setting(tmp_path):
    """Issue 28: a file is opened with GDAL_NUM_THREADS set for this thread only (multi-threaded block decoding)
    where nobody set it, and unset again afterwards; a value the caller set (thread-local or global, e.g. in QGIS)
    is used and kept."""
    from osgeo import gdal

    from stf_fusion.core.raster import read_raw

    path = make_raster(str(tmp_path / "a.tif"), (np.arange(6 * 300 * 300) % 10000).astype(np.int16).reshape(6, 300, 300))
    whole = read_raw(path)
    assert gdal.GetThreadLocalConfigOption("GDAL_NUM_THREADS", None) is None
    np.testing.assert_array_equal(read_raw(path, Window(10, 20, 280, 270)), whole[:, 20:290, 10:290])
    for setter in (gdal.SetThreadLocalConfigOption, gdal.SetConfigOption):  # the caller's own setting is kept
        setter("GDAL_NUM_THREADS", "1")
        try:
            np.testing.assert_array_equal(read_raw(path), whole)
            assert gdal.GetConfigOption("GDAL_NUM_THREADS") == "1"
        finally:
            setter("GDAL_NUM_THREADS", None)
    assert gdal.GetConfigOption("GDAL_NUM_THREADS") is None
