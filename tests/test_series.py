import datetime as dt
import os
import shutil

import numpy as np
import pytest
from helpers import make_raster

from stf_fusion.core.errors import CancelledError, GridMismatchError, InputError
from stf_fusion.core.raster import OutputTransaction, grid_differences, raster_info, read_block
from stf_fusion.core.resample import resample_to_grid
from stf_fusion.core.series import build_series, require_fine_grid, resample_series


def test_series_from_file_names_is_sorted_and_knows_its_pairs(small_series):
    series = build_series(list(reversed(small_series.fine)), list(reversed(small_series.coarse)))
    assert [d.isoformat() for d in series.dates] == small_series.dates
    assert [d.isoformat() for d in series.pair_dates] == small_series.pair_dates
    assert len(series.predict_dates) == 4 and not set(series.predict_dates) & set(series.pair_dates)
    assert series.grid.width == 64 and not series.coarse_on_fine_grid
    assert series.check_predict_dates([]) == series.predict_dates
    with pytest.raises(InputError, match="No coarse image on the prediction date"):
        series.check_predict_dates([dt.date(1999, 1, 1)])


def test_explicit_dates_fine_first_then_coarse(small_series, tmp_path):
    fine = [shutil.copy(small_series.fine[0], tmp_path / "f.tif")]
    coarse = [shutil.copy(small_series.coarse[0], tmp_path / "c1.tif"),
              shutil.copy(small_series.coarse[1], tmp_path / "c2.tif")]
    d1, d2 = dt.date(2020, 5, 1), dt.date(2020, 5, 9)
    series = build_series(fine, coarse, [d1, d1, d2])
    assert series.pair_dates == [d1] and series.predict_dates == [d2]
    with pytest.raises(InputError, match="2 dates given for 1 fine and 2 coarse"):
        build_series(fine, coarse, [d1, d2])


def test_duplicate_dates_name_both_files(small_series, tmp_path):
    twin = shutil.copy(small_series.coarse[1], tmp_path / "MOD_A2021091_copy.tif")  # 2021-04-01 again
    with pytest.raises(InputError, match="share the date 2021-04-01.*coarse_2021-04-01.tif.*MOD_A2021091_copy"):
        build_series(small_series.fine, small_series.coarse + [twin])


def test_coarse_missing_on_pair_date(small_series):
    with pytest.raises(InputError, match=r"fine_2021-04-01.tif' \(2021-04-01\) has no coarse image"):
        build_series(small_series.fine, small_series.coarse[1:])


def test_fine_grids_must_match(small_series, tmp_path):
    other = make_raster(tmp_path / "fine_2021-05-03.tif", np.zeros((6, 64, 64)),
                        geotransform=(600000.0, 20.0, 0.0, 5800020.0, 0.0, -20.0))
    with pytest.raises(GridMismatchError, match="fine_2021-05-03.tif' is not on the grid of 'fine_2021-04-01.tif'"
                                                ".*pixel size"):
        build_series(small_series.fine + [other], small_series.coarse)


def test_band_count_must_match(small_series, tmp_path):
    coarse = [make_raster(tmp_path / os.path.basename(p), np.zeros((4, 4, 4))) for p in small_series.coarse]
    with pytest.raises(InputError, match="has 4 bands but the fine image .* has 6"):
        build_series(small_series.fine, coarse)


def test_resampling_puts_coarse_on_fine_grid(small_series, tmp_path):
    series = build_series(small_series.fine, small_series.coarse)
    with pytest.raises(InputError, match="Resample the coarse images first"):
        require_fine_grid(series)
    with OutputTransaction() as tx:
        resampled = resample_series(series, str(tmp_path / "res"), "bilinear", tx)
    final = sorted(os.listdir(tmp_path / "res"))
    assert final == [f"coarse_{d}.tif" for d in small_series.dates]
    on_fine = build_series(small_series.fine, [str(tmp_path / "res" / n) for n in final])
    require_fine_grid(on_fine)
    assert len(resampled.coarse) == 6
    # the resampled coarse image is a smooth version of the fine truth: the same means per band
    truth, _ = read_block(small_series.truth[0], scale=1e-4)
    coarse, valid = read_block(on_fine.coarse[0].path, scale=1e-4)
    assert valid.all()
    np.testing.assert_allclose(coarse.mean(axis=(1, 2)), truth.mean(axis=(1, 2)), atol=0.02)


@pytest.mark.parametrize("method", ["nearest", "bilinear", "bicubic"])
def test_resample_values(tmp_path, method):
    """A linear ramp on an 8 x 8 coarse grid: nearest copies the coarse values, bilinear and bicubic reproduce
    the ramp inside the image (both are exact on linear functions), at the right half-pixel offset."""
    coarse = make_raster(tmp_path / "c.tif", np.arange(64).reshape(1, 8, 8) * 100,
                         geotransform=(600000.0, 480.0, 0.0, 5800020.0, 0.0, -480.0), nodata=-9999)
    fine = make_raster(tmp_path / "f.tif", np.zeros((1, 128, 128)))
    out = resample_to_grid(coarse, raster_info(fine), str(tmp_path / "o.tif"), method)
    assert not grid_differences(raster_info(fine), raster_info(out))
    values = read_block(out)[0][0]
    if method == "nearest":
        np.testing.assert_array_equal(values[::16, ::16], np.arange(64).reshape(8, 8) * 100)
    else:
        # fine pixel (64, 56) sits at coarse coordinates (64.5 / 16 - 0.5, 56.5 / 16 - 0.5) = (3.53125, 3.03125)
        assert abs(values[64, 56] - 100 * (8 * 3.53125 + 3.03125)) <= 0.5


def test_resample_cancel_leaves_nothing(tmp_path):
    coarse = make_raster(tmp_path / "c.tif", np.ones((1, 4, 4)),
                         geotransform=(600000.0, 480.0, 0.0, 5800020.0, 0.0, -480.0))
    fine = make_raster(tmp_path / "f.tif", np.zeros((1, 64, 64)))

    class Cancelled:
        def set_progress(self, p):
            pass

        def is_canceled(self):
            return True

        def info(self, m):
            pass

    out_dir = tmp_path / "out"
    with pytest.raises(CancelledError):
        with OutputTransaction() as tx:
            resample_to_grid(coarse, raster_info(fine), tx.add(str(out_dir / "o.tif")), "bilinear", Cancelled())
    assert os.listdir(out_dir) == []


def test_the_value_range_is_read_once_per_file_and_again_when_it_changes(tmp_path, monkeypatch):
    """series_value_range (the clamp of every prediction) is remembered per file identity: the steps of one run
    read each fine image once (issue 28), a rewritten file is read again, and the range is hand-checkable."""
    from osgeo import gdal

    from stf_fusion.core import fusion

    data = np.full((2, 8, 8), 500, np.int16)
    data[0, 0, 0], data[1, 1, 1], data[0, 2, 2] = -300, 12000, -9999  # -0.03, 1.2 and nodata
    fine = [make_raster(tmp_path / "fine_2021-01-01.tif", data, nodata=-9999),
            make_raster(tmp_path / "fine_2021-01-21.tif", np.full((2, 8, 8), 400, np.int16), nodata=-9999)]
    coarse = [make_raster(tmp_path / f"coarse_2021-01-{d:02d}.tif", np.full((2, 8, 8), 400, np.int16))
              for d in (1, 11, 21)]
    series = build_series(fine, coarse)
    reads = []
    original = fusion.read_raw
    monkeypatch.setattr(fusion, "read_raw", lambda path, window=None: reads.append(path) or original(path, window))
    assert fusion.series_value_range(series, 1e-4) == pytest.approx((-0.03, 1.2))
    assert fusion.series_value_range(series, 1e-4) == pytest.approx((-0.03, 1.2))
    assert sorted(reads) == sorted(fine)  # once each
    ds = gdal.Open(fine[0], gdal.GA_Update)
    ds.GetRasterBand(2).WriteArray(np.full((8, 8), 500, np.int16))
    ds = None
    os.utime(fine[0], ns=(1, os.stat(fine[0]).st_mtime_ns + 10**9))
    series = build_series(fine, coarse)
    assert fusion.series_value_range(series, 1e-4) == pytest.approx((-0.03, 1.0))
    assert reads.count(fine[0]) == 2
