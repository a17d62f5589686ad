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


def test_passes_of_two_dates_equal_each_date_alone(sample_on_fine_grid, tmp_path, monkeypatch):
    """Issue 28: when memory splits the dates that share their pairs into several passes, each pass still writes
    what each date alone writes."""
    from stf_fusion.core.classic import common
    from stf_fusion.core.classic.estarfm import fuse_estarfm

    monkeypatch.setattr(common, "MAX_DATES_PER_PASS", 2)
    assert_one_pass_equals_each_date(fuse_estarfm, sample_on_fine_grid, str(tmp_path), 48,
                                     (slice(20, 30), slice(30, 45)),
                                     ("2021-04-17", "2021-05-03", "2021-05-19", "2021-07-06", "2021-07-22"),
                                     EstarfmParams(tile_size=32))


def test_dates_per_pass_fill_a_256_pixel_tile():
    """The dates a pass takes: as many as fit a 256-pixel tile (plus halo) in the budget, hand-computed."""
    from stf_fusion.core.classic.common import MAX_DATES_PER_PASS, dates_per_pass

    # outer (256 + 2 x 25)^2 x 6 bands = 561 816 values; 200 MiB / 561 816 = 373.3 bytes each; (373.3 - 120) / 12
    # = 21.1 further dates -> 22 dates
    assert dates_per_pass(46, 120, 12, 6, 25, 2040, 200 * 2**20) == 22
    assert dates_per_pass(5, 120, 12, 6, 25, 2040, 200 * 2**20) == 5  # fewer dates than fit
    assert dates_per_pass(46, 120, 12, 6, 25, 2040, 10 * 2**20) == 1  # nothing more fits: one date at a time
    # a user's tile of 1024 pixels: (1024 + 50)^2 x 6 values take 30.3 bytes each of 200 MiB: one date a pass
    assert dates_per_pass(46, 120, 12, 6, 25, 2040, 200 * 2**20, side=1024) == 1
    # a 100-pixel scene: its own side counts, (100 + 50)^2 x 6 = 135 000 values, 200 MiB -> far more than the cap
    assert dates_per_pass(400, 120, 12, 6, 25, 100, 200 * 2**20) == MAX_DATES_PER_PASS


def test_channels_last_places_unpadded_parts_in_the_middle():
    """kernels.channels_last: parts already padded are copied as they are, smaller ones centred with zeros around,
    channels in the order given."""
    from stf_fusion.core.classic.kernels import channels_last

    full = np.arange(2 * 6 * 7, dtype=np.float32).reshape(2, 6, 7)
    inner = np.arange(100, 100 + 3 * 2 * 3, dtype=np.float32).reshape(3, 2, 3)
    out = channels_last([torch.from_numpy(full), inner], pad=2)
    assert out.shape == (6, 7, 5) and out.flags["C_CONTIGUOUS"] and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., :2], np.moveaxis(full, 0, -1))
    expected = np.zeros((3, 6, 7), np.float32)
    expected[:, 2:4, 2:5] = inner
    np.testing.assert_array_equal(out[..., 2:], np.moveaxis(expected, 0, -1))
    with pytest.raises(ValueError):
        channels_last([full, inner], pad=1)


def test_dense_and_sparse_kernels_sum_identically():
    """kernels.py: the dense kernel (every neighbour, channels first) and the sparse one (similar neighbours only,
    channels last) add the same terms in the same order: bit-identical sums, also with invalid neighbours."""
    from stf_fusion.core.classic import kernels

    if not kernels.enabled("cpu"):
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(3)
    r, h, w = 4, 20, 23
    fine = np.repeat(rng.random((6, 8, 8), dtype=np.float32), 4, axis=1).repeat(4, axis=2)[:, :h + 2 * r,
                                                                                          :w + 2 * r].copy()
    fine += 0.01 * rng.standard_normal(fine.shape).astype(np.float32)
    valid = rng.random(fine.shape[1:]) > 0.1
    one_minus_r = rng.random(fine.shape[1:]).astype(np.float32)
    inv_threshold = np.full(6, 4.0, np.float32)
    by_weight = rng.random((9,) + fine.shape[1:], dtype=np.float32)
    by_similar = rng.random((5,) + fine.shape[1:], dtype=np.float32)
    args = [torch.from_numpy(a) for a in (fine, inv_threshold, valid, one_minus_r)]
    dense_w, dense_s = kernels.estarfm_dense_sums(*args, torch.from_numpy(by_weight), torch.from_numpy(by_similar),
                                                  r, r, h, w, r)
    sparse_w, sparse_s = kernels.estarfm_sums(*args, kernels.channels_last([by_weight]),
                                              kernels.channels_last([by_similar]), r, r, h, w, r)
    assert 0.05 < (dense_s[0] / (2 * r + 1) ** 2).mean() < 0.9  # some neighbours similar, not all
    np.testing.assert_array_equal(np.moveaxis(sparse_w, -1, 0), dense_w)
    np.testing.assert_array_equal(np.moveaxis(sparse_s, -1, 0), dense_s)
