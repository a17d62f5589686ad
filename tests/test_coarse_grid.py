"""The coarse factor is never a silent 16: read from what stf:resample_coarse recorded, else estimated from the
resampling period of a coarse image on the fine grid, else refused with a message that asks for FACTOR."""
import glob
import os

import pytest
from osgeo import gdal

from helpers import on_fine_grid as _on_fine_grid, unrecorded_series as _unrecorded_series

from stf_fusion.core.classic.fitfc import FitfcParams, fuse_fitfc
from stf_fusion.core.classic.fsdaf import FsdafParams, fuse_fsdaf
from stf_fusion.core.coarse_grid import estimate_factor, recorded_factor, resolve_factor
from stf_fusion.core.errors import InputError
from stf_fusion.core.feedback import RecordingFeedback
from stf_fusion.core.raster import raster_info
from stf_fusion.core.series import build_series
from stf_fusion.core.synthetic import SampleSeriesConfig, make_sample_series

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "sample")


def _estimate(path: str):
    return estimate_factor(path, raster_info(path).nodata)


@pytest.mark.parametrize("algorithm", ["near", "bilinear", "cubic"])
def test_the_factor_is_estimated_from_the_resampling_period(algorithm, tmp_path):
    fine = sorted(glob.glob(os.path.join(SAMPLE, "fine", "*.tif")))[0]
    coarse = sorted(glob.glob(os.path.join(SAMPLE, "coarse", "*.tif")))[0]  # 12 x 12 pixels of 480 m
    assert _estimate(_on_fine_grid(coarse, fine, str(tmp_path / "c16.tif"), algorithm)) == 16
    # a realistic coarse sensor (PSF, noise, misregistration) at another factor
    sample = make_sample_series(str(tmp_path / "s"), SampleSeriesConfig(
        size=200, factor=10, n_dates=4, pair_indices=(0, 3), flood_indices=(), seed=3, realism="realistic"))
    first = [sample.coarse[0], sample.fine[0]]
    assert _estimate(_on_fine_grid(*first, str(tmp_path / "c10.tif"), algorithm)) == 10


def test_no_factor_is_claimed_where_no_period_shows(tmp_path):
    fine = sorted(glob.glob(os.path.join(SAMPLE, "fine", "*.tif")))
    for path in fine[:3]:  # fields with straight edges, but no resampling grid
        assert _estimate(path) is None
    coarse = sorted(glob.glob(os.path.join(SAMPLE, "coarse", "*.tif")))[0]
    smooth = _on_fine_grid(coarse, fine[0], str(tmp_path / "lanczos.tif"), "lanczos")
    assert _estimate(smooth) is None  # a smooth kernel hides the grid: refused, not guessed


def test_the_recorded_native_pixel_size_comes_first(sample_on_fine_grid):
    assert recorded_factor(sample_on_fine_grid) == 16  # 480 m over 30 m, recorded by resample_coarse
    feedback = RecordingFeedback()
    assert resolve_factor(sample_on_fine_grid, 0, "FSDAF", feedback) == 16
    assert any("native pixel size" in m for m in feedback.lines)
    # a user's FACTOR wins, with a note where the data say otherwise
    assert resolve_factor(sample_on_fine_grid, 8, "FSDAF", feedback) == 8
    assert any("FACTOR 8 was given" in m for m in feedback.lines)


@pytest.mark.parametrize("fuse, params", [(fuse_fsdaf, FsdafParams), (fuse_fitfc, FitfcParams)])
def test_fsdaf_and_fitfc_default_to_the_data_not_to_16(fuse, params, tmp_path):
    series = _unrecorded_series(tmp_path, "cubic")
    feedback = RecordingFeedback()
    date = series.predict_dates[0]
    files = fuse(series, [date], str(tmp_path / "out"), 1e-4, params(), "cpu", feedback)
    assert len(files) == 1
    assert any("coarse factor 16 (estimated" in m for m in feedback.lines)
    smooth = _unrecorded_series(tmp_path, "lanczos")
    with pytest.raises(InputError, match="Set FACTOR") as error:
        fuse(smooth, [date], str(tmp_path / "out2"), 1e-4, params(), "cpu")
    assert os.path.basename(smooth.coarse[0].path) in str(error.value)
    assert not os.path.exists(tmp_path / "out2") or not os.listdir(tmp_path / "out2")
