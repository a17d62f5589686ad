import datetime as dt
import json
import os

import numpy as np
import pytest

from stf_fusion.core.errors import InputError
from stf_fusion.core.raster import raster_info, read_block, same_crs
from stf_fusion.core.synthetic import SampleSeriesConfig, SyntheticScene, make_sample_series

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED = os.path.join(ROOT, "resources", "sample")


def test_layout_classes_and_fields():
    scene = SyntheticScene(SampleSeriesConfig())
    counts = np.bincount(scene.landcover.ravel(), minlength=6)
    assert (counts > 0).all(), counts  # every class present
    sizes = np.bincount(scene.field_id.ravel())
    assert scene.field_id.max() > 50 and sizes.max() > 8 * np.median(sizes)  # many fields, of very different sizes
    assert 0.05 < scene.flood_zone.mean() < 0.3


def test_phenology_and_flood_change_the_right_pixels():
    config = SampleSeriesConfig()
    scene = SyntheticScene(config)
    april, august = scene.truth(dt.date(2021, 4, 1)), scene.truth(dt.date(2021, 8, 1))
    summer = scene.landcover == 3
    winter = scene.landcover == 4
    nir, red = 3, 2
    assert august[nir][summer].mean() > april[nir][summer].mean() + 0.1  # summer crop greens up
    assert august[nir][winter].mean() < april[nir][winter].mean()  # winter crop harvested
    flooded = scene.truth(dt.date(2021, 7, 6), flooded=True)
    dry = scene.truth(dt.date(2021, 7, 6))
    change = np.abs(flooded - dry).max(axis=0)
    assert (change[~scene.flood_zone] == 0).all() and change[scene.flood_zone].mean() > 0.05
    assert flooded[nir][scene.flood_zone].mean() < 0.5 * dry[nir][scene.flood_zone].mean()
    assert 0 <= flooded.min() and flooded.max() <= 1
    assert april[red].std() > 0.01  # texture and fields give spatial detail


def test_series_files_are_georeferenced_and_coarse_is_the_aggregated_truth(small_series):
    fine = raster_info(small_series.fine[0])
    coarse = raster_info(small_series.coarse[0])
    assert (fine.width, fine.height, fine.bands, fine.dtype) == (64, 64, 6, "int16")
    assert (coarse.width, coarse.height) == (4, 4) and coarse.pixel_size == (480.0, 480.0)
    assert same_crs(fine.crs_wkt, coarse.crs_wkt) and "32633" in coarse.crs_wkt
    assert fine.geotransform[0] == coarse.geotransform[0] and fine.geotransform[3] == coarse.geotransform[3]
    assert len(small_series.truth) == 6 and len(small_series.fine) == 2
    truth, _ = read_block(small_series.truth[2], scale=1e-4)
    low, _ = read_block(small_series.coarse[2], scale=1e-4)
    blocks = truth.reshape(6, 4, 16, 4, 16).mean(axis=(2, 4))
    assert np.corrcoef(blocks.ravel(), low.ravel())[0, 1] > 0.97
    assert np.abs(blocks - low).mean() < 0.03  # gain/bias and noise are small but present
    assert not np.allclose(blocks, low, atol=1e-3)
    # pair images are the truth of their date
    np.testing.assert_array_equal(read_block(small_series.fine[1])[0], read_block(small_series.truth[5])[0])
    manifest = json.load(open(small_series.manifest))
    assert manifest["pair_dates"] == small_series.pair_dates and manifest["scale"] == 1e-4


def test_deterministic_given_seed(tmp_path):
    config = SampleSeriesConfig(size=32, factor=16, n_dates=3, pair_indices=(0,), flood_indices=(), seed=3)
    a = make_sample_series(str(tmp_path / "a"), config)
    b = make_sample_series(str(tmp_path / "b"), config)
    c = make_sample_series(str(tmp_path / "c"), SampleSeriesConfig(**{**config.__dict__, "seed": 4}))
    for pa, pb, pc in zip(a.coarse + a.truth, b.coarse + b.truth, c.coarse + c.truth):
        np.testing.assert_array_equal(read_block(pa)[0], read_block(pb)[0])
        assert not np.array_equal(read_block(pa)[0], read_block(pc)[0])


def test_bundled_sample_is_what_the_generator_makes(tmp_path):
    manifest = json.load(open(os.path.join(BUNDLED, "series.json")))
    config = SampleSeriesConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest["config"].items()})
    fresh = make_sample_series(str(tmp_path / "fresh"), config)
    for rel, new in zip(manifest["coarse"] + manifest["truth"], fresh.coarse + fresh.truth):
        old_values = read_block(os.path.join(BUNDLED, rel))[0]
        assert np.abs(old_values - read_block(new)[0]).max() <= 1  # at most one stored unit (float rounding)


@pytest.mark.parametrize("change, message", [
    (dict(size=100), "multiple of the coarse factor 16"),
    (dict(pair_indices=(0, 12)), r"pair date indices \[12\]"),
    (dict(pair_indices=()), "At least one date"),
    (dict(factor=1), "at least 2"),
])
def test_bad_configuration(tmp_path, change, message):
    with pytest.raises(InputError, match=message):
        make_sample_series(str(tmp_path / "x"), SampleSeriesConfig(**change))
    assert not os.path.exists(tmp_path / "x") or not os.listdir(tmp_path / "x")
