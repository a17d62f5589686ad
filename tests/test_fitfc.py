"""Fit-FC (Wang & Atkinson 2018): the regression against hand-computed coefficients, the compiled filter against
the torch one and the weights by hand, and the default settings on every predicted date of the sample."""
import os

import numpy as np
import pytest
from conftest import ROOT

from stf_fusion.core.arrays import backend
from stf_fusion.core.classic.fitfc import FitfcParams, regression, similar_filter
from stf_fusion.core.evaluation import evaluate_files
from stf_fusion.core.fusion import fuse_method

torch = backend()  # PyTorch, or its NumPy stand-in where torch is not installed (core/arrays.py)


def test_regression_recovers_a_linear_change_and_falls_back_on_a_flat_window():
    rng = np.random.default_rng(0)
    c1 = rng.uniform(0.05, 0.4, (2, 6, 7))
    c2 = np.stack([2.0 * c1[0] + 0.1, c1[1]])
    c1[1] = 0.2  # band 2: a flat coarse image at t1, the regression is undefined
    c2[1] = 0.25 + 0.01 * rng.standard_normal((6, 7))
    count = np.full((6, 7), 256.0)
    a, b, residual = regression(c1, c2, count, 1)
    np.testing.assert_allclose(a[0], 2.0, atol=1e-9)
    np.testing.assert_allclose(b[0], 0.1, atol=1e-9)
    np.testing.assert_allclose(residual[0], 0.0, atol=1e-9)
    np.testing.assert_array_equal(a[1], 1.0)
    # corner pixel (0, 0): its clipped 2 x 2 window; b = mean(C2) - mean(C1) there
    np.testing.assert_allclose(b[1, 0, 0], c2[1, :2, :2].mean() - 0.2, atol=1e-12)


def test_regression_by_hand_on_one_window():
    c1 = np.array([[[0.1, 0.2, 0.3], [0.2, 0.4, 0.1], [0.3, 0.1, 0.2]]])
    c2 = np.array([[[0.2, 0.3, 0.5], [0.3, 0.5, 0.2], [0.4, 0.3, 0.2]]])
    count = np.ones((3, 3))
    count[2, 2] = 0  # no valid value: left out of the windows, no residual
    a, b, residual = regression(c1, c2, count, 1)
    x, y = c1[0].flatten()[:8], c2[0].flatten()[:8]
    slope = np.cov(x, y, bias=True)[0, 1] / np.var(x)
    assert a[0, 1, 1] == pytest.approx(slope, abs=1e-12)
    assert b[0, 1, 1] == pytest.approx(y.mean() - slope * x.mean(), abs=1e-12)
    assert residual[0, 1, 1] == pytest.approx(0.5 - (slope * 0.4 + y.mean() - slope * x.mean()), abs=1e-12)
    assert residual[0, 2, 2] == 0.0


def test_compiled_filter_matches_the_torch_filter(monkeypatch):
    rng = np.random.default_rng(2)
    fine = torch.from_numpy(rng.uniform(0, 0.5, (3, 40, 44)).astype(np.float32))
    fine[:, :10, :10] = 0.2  # a uniform patch: ties, kept in offset order by both
    value = torch.from_numpy(rng.uniform(0, 0.5, (3, 40, 44)).astype(np.float32))
    valid = torch.from_numpy(rng.uniform(size=(40, 44)) > 0.1)
    params = FitfcParams(window=9, similar=6)
    inner = (4, 4, 32, 36)
    monkeypatch.setenv("STF_COMPILED_KERNELS", "0")
    reference, found_ref = similar_filter(fine, value, valid, inner, params)
    monkeypatch.setenv("STF_COMPILED_KERNELS", "1")
    compiled, found = similar_filter(fine, value, valid, inner, params)
    np.testing.assert_array_equal(found.numpy(), found_ref.numpy())
    np.testing.assert_allclose(compiled.numpy(), reference.numpy(), atol=2e-6)


@pytest.mark.parametrize("compiled", ["0", "1"])
def test_filter_weights_by_hand(monkeypatch, compiled):
    """A uniform fine image: every pixel of a 3 x 3 window is equally similar, so all 9 are averaged with weights
    1 / (1 + d / 1.5); with one similar pixel in a varied image, the centre itself (D = 0) is the prediction."""
    monkeypatch.setenv("STF_COMPILED_KERNELS", compiled)
    fine = torch.full((2, 5, 5), 0.3)
    value = torch.arange(50, dtype=torch.float32).reshape(2, 5, 5) / 100
    valid = torch.ones((5, 5), dtype=torch.bool)
    result, _ = similar_filter(fine, value, valid, (1, 1, 3, 3), FitfcParams(window=3, similar=9))
    w = np.array([[1 / (1 + np.hypot(dy, dx) / 1.5) for dx in (-1, 0, 1)] for dy in (-1, 0, 1)])
    expected = (w * value[0, 1:4, 1:4].numpy()).sum() / w.sum()
    assert result[0, 1, 1].item() == pytest.approx(expected, abs=1e-6)
    varied = torch.from_numpy(np.random.default_rng(0).uniform(size=(2, 5, 5)).astype(np.float32))
    one, _ = similar_filter(varied, value, valid, (1, 1, 3, 3), FitfcParams(window=3, similar=1))
    np.testing.assert_allclose(one.numpy(), value[:, 1:4, 1:4].numpy(), atol=1e-7)


def test_default_settings_beat_the_naive_prediction_on_every_date(sample_on_fine_grid, tmp_path):
    series = sample_on_fine_grid
    dates = series.predict_dates
    truth = [os.path.join(ROOT, "resources", "sample", "truth", f"truth_{d.isoformat()}.tif") for d in dates]

    def rmse(method):
        files = fuse_method(method, series, dates, str(tmp_path / method), 1e-4, device="cpu")
        return [r["rmse"] for r in evaluate_files(files, truth, keep_details=False).rows if r["band"] == "all"]

    ours, naive, additive = rmse("fitfc"), rmse("naive"), rmse("additive")
    print("Fit-FC", np.round(ours, 4), "naive", np.round(naive, 4), "additive", np.round(additive, 4))
    for date, a, b in zip(dates, ours, naive):
        assert a < 0.8 * b, f"{date}: Fit-FC {a:.4f} vs naive {b:.4f}"
    assert np.mean(ours) < 1.1 * np.mean(additive)


def test_the_dates_of_a_pair_in_one_pass_equal_each_date_alone(sample_on_fine_grid, tmp_path):
    """Issue 28: the filter chooses the similar pixels once per tile for the dates that share a pair and sums each
    date's values in the same order: every output equals the date predicted alone, also where one date's coarse
    image has a hole (another validity: its own group), on both CPU paths."""
    from helpers import assert_one_pass_equals_each_date

    from stf_fusion.core.classic.fitfc import FitfcParams, fuse_fitfc

    assert_one_pass_equals_each_date(fuse_fitfc, sample_on_fine_grid, str(tmp_path), 64,
                                     (slice(16, 48), slice(16, 32)),
                                     ("2021-04-17", "2021-05-03", "2021-05-19", "2021-07-06", "2021-07-22"),
                                     FitfcParams(tile_size=32, factor=16, window=15, regression_radius=1))
