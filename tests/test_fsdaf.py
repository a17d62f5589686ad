"""FSDAF: the per-pixel steps equal a loop written from the paper, given the scene-wide classification and
unmixing (which use k-means and bounded least squares)."""
import numpy as np
import torch
from helpers import make_raster
from reference_classic import fsdaf_reference

from stf_fusion.core.classic.common import pair_sets
from stf_fusion.core.classic.fsdaf import FsdafParams, _Scene, final_prediction
from stf_fusion.core.series import build_series
from stf_fusion.core.tiles import plan_tiles


def test_vectorised_equals_the_per_pixel_loop(tmp_path):
    rng = np.random.default_rng(5)
    size, factor = 32, 8
    f1 = rng.uniform(500, 4000, (3, size, size))
    f1[:, :, 12:20] += 1500  # a brighter field across block borders
    c1 = f1 + rng.normal(0, 100, f1.shape)
    c2 = f1 * 1.1 + rng.normal(0, 150, f1.shape)
    f1[:, 5, 7] = -9999  # a nodata pixel
    fine = [make_raster(tmp_path / "fine_2021-01-01.tif", f1, nodata=-9999)]
    coarse = [make_raster(tmp_path / "coarse_2021-01-01.tif", c1, nodata=-9999),
              make_raster(tmp_path / "coarse_2021-01-17.tif", c2, nodata=-9999)]
    series = build_series(fine, coarse)
    date = series.predict_dates[0]
    params = FsdafParams(factor=factor, classes=3, window=7, similar=5)
    scene = _Scene(series, pair_sets(series, date, 1)[0], date, 1e-4, params, torch.device("cpu"), None)
    tile = plan_tiles(size, size, size, factor // 2)[0]
    change, valid = scene.total_change(tile)
    prediction, out_valid = final_prediction(torch.from_numpy(f1 * 1e-4).float(), torch.from_numpy(change),
                                             torch.from_numpy(valid), (0, 0, size, size), params)
    f1_r, c2_r = (np.float32(a * 1e-4).astype(np.float64) for a in (f1, c2))
    expected = fsdaf_reference(f1_r, c2_r, valid, scene.classes.astype(int), scene.class_change, scene.residual,
                               scene.block_pixels, factor, 7, 5)
    assert not valid[5, 7] and not out_valid.numpy()[5, 7] and valid.sum() == size * size - 1
    # float32 against float64: the residual share is multiplied by m = 64 pixels per coarse pixel
    np.testing.assert_allclose(prediction.numpy()[:, valid], expected[:, valid], atol=5e-5)
    assert len(set(scene.classes[valid].tolist())) == 3
