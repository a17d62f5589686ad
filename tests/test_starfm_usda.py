"""STARFM reproduces USDA STARFM v1.2.1 (issue 12): on the shared 400 x 400 x 6 series (tests/data/starfm_usda:
inputs made by stf:make_sample_series SIZE=400 FACTOR=16 SEED=7, coarse resampled bicubic; outputs of Feng Gao's
C program with NUM_IN_PAIRS = 2, LANDSAT_UNCERTAINTY = 20, MODIS_UNCERTAINTY = 50, MAX_SEARCH_DISTANCE = 465,
NUM_SLICE_PURE_TEST = 4, fill -9999), at least 99 % of the values are within one stored unit of the program's,
on every date, the flood date included, and nodata falls where the program writes its fill value."""
import os

import numpy as np
import pytest
from helpers import KERNEL_PATHS, kernel_path, series_in

from stf_fusion.core.classic.starfm import StarfmParams, fuse_starfm
from stf_fusion.core.raster import read_raw

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "starfm_usda")
DATES = ("2021-05-03", "2021-06-20", "2021-07-06")


@pytest.fixture(scope="module", params=KERNEL_PATHS)
def ours(tmp_path_factory, request):
    """Both CPU paths (the compiled kernel, the torch tensors; kernels.py) against the program."""
    import datetime as dt

    series = series_in(os.path.join(DATA, "series"))
    folder = tmp_path_factory.mktemp("starfm_usda")
    with kernel_path(request.param):
        files = fuse_starfm(series, [dt.date.fromisoformat(d) for d in DATES], str(folder), 1e-4,
                            StarfmParams(window=31, classes=4, pairs=2), "cpu")
    return dict(zip(DATES, files))


@pytest.mark.parametrize("date", DATES)
def test_within_one_stored_unit_of_usda_starfm(ours, date):
    mine = read_raw(ours[date]).astype(np.int32)
    reference = read_raw(os.path.join(DATA, f"starfm_usda_{date}.tif")).astype(np.int32)
    both = (mine != -9999) & (reference != -9999)
    fill_agrees = ((mine == -9999) == (reference == -9999)).mean()
    diff = np.abs(mine - reference)[both]
    share = (diff <= 1).mean()
    print(f"STARFM vs USDA {date}: {100 * share:.2f} % within 1 unit, {100 * (diff > 10).mean():.3f} % beyond 10, "
          f"max {diff.max()}, nodata in the same places for {100 * fill_agrees:.3f} % of values")
    assert share >= 0.99
    assert fill_agrees >= 0.999


def test_no_negative_reflectance_on_the_flood_date(ours):
    """The program writes its fill value where a prediction is <= 0 (0 itself only from rounding 0 < v < 0.5)."""
    values = read_raw(ours["2021-07-06"])
    assert values[values != -9999].min() >= 0 and (values == -9999).any()
