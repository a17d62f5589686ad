"""ESTARFM: equals a per-pixel loop written from the rules of Zhu's 2018 code (the module docstring)."""
import numpy as np
import pytest
from helpers import KERNEL_PATHS, assert_one_pass_equals_each_date, kernel_path
from reference_classic import estarfm_reference
from test_starfm import _tiny_scene

from stf_fusion.core.arrays import backend
from stf_fusion.core.classic.common import TileInputs
from stf_fusion.core.classic.estarfm import EstarfmParams, estarfm_tile

torch = backend()  # PyTorch, or its NumPy stand-in where torch is not installed (core/arrays.py)


@pytest.mark.parametrize("path", KERNEL_PATHS)
def test_vectorised_equals_the_per_pixel_loop(path):
    """Both CPU paths (compiled kernel, torch tensors) equal the loop."""
    with kernel_path(path):
        _compare_with_the_loop()


def _compare_with_the_loop():
    fine, coarse, coarse_pred, valid = _tiny_scene(seed=1, size=24)
    params = EstarfmParams(window=7, classes=4)
    expected, expected_valid = estarfm_reference(fine, coarse, coarse_pred, valid, 7, 4)
    t = lambda a: torch.from_numpy(np.asarray(a, np.float32))  # noqa: E731
    inputs = TileInputs(t(fine), t(coarse), t(coarse_pred), torch.from_numpy(valid), (0, 0, 24, 24))
    sigma = torch.tensor([[fine[k, b][valid].std() for b in range(3)] for k in range(2)], dtype=torch.float32)
    prediction, out_valid = estarfm_tile(inputs, sigma, params)
    np.testing.assert_array_equal(out_valid.numpy(), expected_valid)
    np.testing.assert_allclose(prediction.numpy()[:, expected_valid], expected[:, expected_valid], atol=1e-4)


def test_a_series_in_one_pass_equals_each_date_alone(sample_on_fine_grid, tmp_path):
    """Issue 28: the dates that share their pairs are computed in one pass per tile (the similar pixels, weights
    and conversion coefficients once); every output equals the date predicted alone, also where one date's coarse
    image has a hole (its own group) and on both CPU paths."""
    from stf_fusion.core.classic.estarfm import fuse_estarfm

    assert_one_pass_equals_each_date(fuse_estarfm, sample_on_fine_grid, str(tmp_path), 60,
                                     (slice(20, 30), slice(30, 45)),
                                     ("2021-04-17", "2021-05-03", "2021-05-19", "2021-07-06"),
                                     EstarfmParams(tile_size=32))
