"""Every metric against values computed by hand on tiny arrays, against scikit-image where it has the same
metric, ideal values for identical images, and masked pixels that cannot change a result."""
import math

import numpy as np
import pytest

from stf_fusion.core import metrics as m

P = np.array([[[1.0, 2.0], [3.0, 4.0]]])
R = np.array([[[1.0, 1.0], [2.0, 5.0]]])
# by hand: differences 0, 1, 1, -1; mean(R) = 2.25; R - mean(R) = -1.25, -1.25, -0.25, 2.75 (sum of squares 10.75)
# P - mean(P) = -1.5, -0.5, 0.5, 1.5 (sum of squares 5); cross products sum to 6.5


def test_pointwise_metrics_by_hand():
    assert m.mae(P, R)[0] == pytest.approx(0.75)
    assert m.rmse(P, R)[0] == pytest.approx(math.sqrt(0.75))
    assert m.ad(P, R)[0] == pytest.approx(0.25)
    assert m.rmae(P, R)[0] == pytest.approx(0.75 / 2.25)
    assert m.r2(P, R)[0] == pytest.approx(1 - 3 / 10.75)
    assert m.cc(P, R)[0] == pytest.approx(6.5 / math.sqrt(5 * 10.75))
    assert m.psnr(P, R, data_range=5.0)[0] == pytest.approx(10 * math.log10(25 / 0.75))
    r = 6.5 / math.sqrt(5 * 10.75)
    alpha, beta = math.sqrt(5 / 10.75), 2.5 / 2.25
    assert m.kge(P, R)[0] == pytest.approx(1 - math.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2))
    assert m.kge(P, R)[0] == pytest.approx(0.644564, abs=1e-6)
    baseline = R + np.array([[[1.0, -1.0], [1.0, -1.0]]])  # MAE 1
    assert m.maec(P, R, baseline)[0] == pytest.approx(0.25)


def test_spectral_metrics_by_hand():
    # pixel 1: P (1, 0) vs R (1, 1) -> 45 degrees; pixel 2: (0, 2) vs (0, 3) -> 0 degrees
    pred = np.array([[[1.0, 0.0]], [[0.0, 2.0]]])
    ref = np.array([[[1.0, 0.0]], [[1.0, 3.0]]])
    assert m.sam(pred, ref) == pytest.approx(22.5)
    # ERGAS: band 1 RMSE 1 / mean 1, band 2 exact: 100 * (30/480) * sqrt((1 + 0) / 2)
    pred = np.array([[[2.0, 2.0]], [[2.0, 2.0]]])
    ref = np.array([[[1.0, 1.0]], [[2.0, 2.0]]])
    assert m.ergas(pred, ref, ratio=30 / 480) == pytest.approx(100 / 16 * math.sqrt(0.5))


def test_edge_and_lbp_by_hand():
    # Roberts: |1 - 4| + |2 - 3| = 4 for P, |1 - 5| + |1 - 2| = 5 for R
    assert m.edge(P, R)[0] == pytest.approx((4 - 5) / 5)
    ref = np.arange(9.0).reshape(1, 3, 3)  # neighbours >= 4 clockwise from top-left: 5, 8, 7, 6 -> bits 3..6
    pred = ref.copy()
    pred[0, 1, 1] = 0.0  # every neighbour >= 0 -> 255
    assert m.lbp_codes(ref)[0, 0, 0] == 8 + 16 + 32 + 64
    assert m.lbp(pred, ref)[0] == pytest.approx((255 - 120) / 120)


def test_q_by_hand():
    x = (np.indices((8, 8)).sum(axis=0) % 2).astype(float)[None]  # checkerboard: mean 0.5
    assert m.q_index(1 - x, x)[0] == pytest.approx(-1.0)  # cov = -var, equal means: 4(-v)(.25) / (2v .5)
    assert m.q_index(x, x)[0] == pytest.approx(1.0)
    y = x * 0.5 + 0.25  # one 8x8 window: compare with the formula written out
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(ddof=1), y.var(ddof=1)
    cov = ((x - mx) * (y - my)).sum() / 63
    assert m.q_index(y, x)[0] == pytest.approx(4 * cov * mx * my / ((vx + vy) * (mx ** 2 + my ** 2)))


def _scene(seed=0, shape=(3, 48, 40)):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    ref = ndimage.gaussian_filter(rng.random(shape), (0, 2, 2)) * 0.5 + 0.1
    pred = np.clip(ref + rng.normal(0, 0.02, shape) + 0.01, 0, 1)
    return pred, ref


def test_ssim_and_psnr_agree_with_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    pred, ref = _scene()
    ours = m.ssim(pred, ref, data_range=1.0)
    for b in range(3):
        theirs = structural_similarity(ref[b], pred[b], gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=1.0)
        assert ours[b] == pytest.approx(theirs, abs=1e-10)
        assert m.psnr(pred, ref)[b] == pytest.approx(peak_signal_noise_ratio(ref[b], pred[b], data_range=1.0))


def test_identical_images_give_ideal_values():
    _, ref = _scene(1)
    result = m.compute_all(ref, ref, baseline=ref + 0.01)
    ideal = dict(cc=1, rmse=0, mae=0, ad=0, rmae=0, r2=1, ssim=1, q=1, kge=1, edge=0, lbp=0, maec=1)
    for name, value in ideal.items():
        np.testing.assert_allclose(result[name], value, atol=1e-9, err_msg=name)
    assert np.all(np.isinf(result["psnr"])) and result["sam"] == pytest.approx(0, abs=1e-5)
    assert result["ergas"] == 0


def test_masked_pixels_do_not_change_any_result():
    pred, ref = _scene(2)
    valid = np.ones(ref.shape[1:], bool)
    valid[10:14, 5:30] = False
    valid[0, :] = False
    first = m.compute_all(pred, ref, valid, ratio=1 / 16, baseline=ref * 1.1)
    pred2, ref2 = pred.copy(), ref.copy()
    pred2[:, ~valid] = np.nan
    ref2[:, ~valid] = 99.0
    second = m.compute_all(pred2, ref2, valid, ratio=1 / 16, baseline=ref * 1.1)
    for name in m.METRICS:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert first["n_pixels"] == valid.sum()
    # and the mask matters: without it the garbage changes everything
    assert m.rmse(pred, ref2)[0] > 1.0 > first["rmse"][0]


def test_conventions_cover_every_metric():
    assert set(m.CONVENTIONS) == set(m.METRICS)
