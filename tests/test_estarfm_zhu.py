"""ESTARFM reproduces Zhu's ESTARFM (IDL, 2018 revision) (issue 12): on the shared 128 x 128 crop (tests/data/
estarfm_zhu: a window of the stf:make_sample_series SIZE=400 FACTOR=16 SEED=7 series; outputs of a line-by-line
port of the IDL with w = 25, 4 classes, DN 0-10000, pairs around each date), at least 99 % of the values are
within one stored unit of the program's on both dates (07-06 is the flood date), none negative; and a one-band
(NDVI-like) series gives values in the data range."""
import datetime as dt
import os

import numpy as np
import pytest
from helpers import KERNEL_PATHS, kernel_path, make_raster, series_in

from stf_fusion.core.classic.estarfm import EstarfmParams, fuse_estarfm
from stf_fusion.core.raster import read_raw
from stf_fusion.core.series import build_series

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "estarfm_zhu")
DATES = ("2021-05-03", "2021-07-06")


@pytest.fixture(scope="module", params=KERNEL_PATHS)
def ours(tmp_path_factory, request):
    """Both CPU paths (the compiled kernel, the torch tensors; kernels.py) against the program."""
    series = series_in(DATA)
    folder = tmp_path_factory.mktemp("estarfm_zhu")
    with kernel_path(request.param):
        files = fuse_estarfm(series, [dt.date.fromisoformat(d) for d in DATES], str(folder), 1e-4,
                             EstarfmParams(window=51, classes=4), "cpu")
    return dict(zip(DATES, files))


@pytest.mark.parametrize("date", DATES)
def test_within_one_stored_unit_of_zhus_estarfm(ours, date):
    mine = read_raw(ours[date]).astype(np.int32)
    reference = read_raw(os.path.join(DATA, f"estarfm_zhu_crop128_{date}.tif")).astype(np.int32)
    diff = np.abs(mine - reference)
    share = (diff <= 1).mean()
    print(f"ESTARFM vs Zhu {date}: {100 * share:.2f} % within 1 unit, {100 * (diff > 10).mean():.3f} % beyond 10, "
          f"max {diff.max()}")
    assert share >= 0.99
    assert mine.min() >= 0


def test_one_band_ndvi_gives_values_in_the_data_range(tmp_path):
    """A correlation over two values is +-1: the program's one-band similarity keeps the weights finite."""
    rng = np.random.default_rng(3)
    base = rng.uniform(0.1, 0.8, (40, 40))
    base[10:25, 5:30] = 0.3
    files = {}
    for name, factor, offset in (("fine_2021-04-01", 1.0, 0.0), ("fine_2021-06-04", 1.1, 0.02),
                                 ("coarse_2021-04-01", 0.97, 0.01), ("coarse_2021-05-03", 1.03, 0.02),
                                 ("coarse_2021-06-04", 1.08, 0.03)):
        noisy = np.clip(base * factor + offset + rng.normal(0, 0.01, base.shape), -1, 1)
        files[name] = make_raster(tmp_path / f"{name}.tif", np.rint(noisy * 10000).astype(np.int16))
    series = build_series([files["fine_2021-04-01"], files["fine_2021-06-04"]],
                          [files[k] for k in ("coarse_2021-04-01", "coarse_2021-05-03", "coarse_2021-06-04")])
    out = fuse_estarfm(series, [dt.date(2021, 5, 3)], str(tmp_path / "out"), 1e-4,
                       EstarfmParams(window=11, data_min=-1.0, data_max=1.0), "cpu")
    values = read_raw(out[0]) * 1e-4
    truth = np.clip(base * 1.05 + 0.01, -1, 1)
    assert np.abs(values).max() <= 1.0
    assert np.sqrt(np.mean((values[0] - truth) ** 2)) < 0.05
