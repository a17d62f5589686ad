"""The coarse series' own date-to-date error (core/deep/coarse_noise.py) and the short-gap validation targets built
from it (issue "Learning that pays"): a known noise level is recovered under a large change that is cubic in time,
an abrupt change on one date is clipped, and the short-gap targets follow their equations."""
import datetime as dt

import numpy as np
import pytest

from stf_fusion.core.deep.coarse_noise import CoarseErrors, residual_plan
from stf_fusion.core.deep.validation import BlockData, ShortGap, add_short_gaps, plan_validation, validation_record
from stf_fusion.core.series import build_series
from stf_fusion.core.tiles import Window

from helpers import make_raster

SIZE, BANDS, SIGMA = 64, 2, 0.01
DAYS = [dt.date(2021, 4, 1) + dt.timedelta(days=8 * i) for i in range(12)]


def _series(folder, flood: bool = False, noise: float = SIGMA):
    """Coarse images on 12 dates: a change cubic in time (amplitude up to 0.3, different in each pixel) plus
    i.i.d. noise of ``noise``; with ``flood`` a quarter of the scene drops by 0.15 on the 7th date only."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    t = np.arange(len(DAYS)) / (len(DAYS) - 1)
    coarse = []
    for i, day in enumerate(DAYS):
        signal = np.stack([0.2 + 0.3 * (t[i] ** 3) * xx - 0.2 * t[i] ** 2 * yy + 0.1 * t[i],
                           0.3 + 0.2 * (1 - t[i]) ** 3 * yy + 0.05 * t[i] * xx])
        image = signal + rng.normal(0, noise, signal.shape)
        if flood and i == 6:
            image[:, : SIZE // 2, : SIZE // 2] -= 0.15
        path = make_raster(folder / f"coarse_{day.isoformat()}.tif", np.round(image * 1e4).astype(np.int16))
        coarse.append(path)
    fine = [make_raster(folder / f"fine_{d.isoformat()}.tif", np.full((BANDS, SIZE, SIZE), 2000, np.int16))
            for d in (DAYS[0], DAYS[-1])]
    return build_series(fine, coarse)


def test_residual_plan_is_the_cubic_lagrange_interpolation_with_a_linear_fallback(tmp_path):
    plan = residual_plan(_series(tmp_path))
    assert [r.date for r in plan] == DAYS[2:-2]
    np.testing.assert_allclose(plan[0].weights, [-1 / 6, 2 / 3, 2 / 3, -1 / 6], atol=1e-12)
    assert plan[0].amplification == pytest.approx(np.sqrt(1 + 2 / 36 + 8 / 9))
    few = build_series([str(tmp_path / f"fine_{DAYS[0].isoformat()}.tif")],
                       [str(tmp_path / f"coarse_{d.isoformat()}.tif") for d in DAYS[:4]])
    linear = residual_plan(few)  # four dates: no date has two on either side, two have one
    assert [r.date for r in linear] == DAYS[1:3] and linear[0].weights == (0.5, 0.5)
    assert not CoarseErrors(build_series([str(tmp_path / f"fine_{DAYS[0].isoformat()}.tif")],
                                         [str(tmp_path / f"coarse_{d.isoformat()}.tif") for d in DAYS[:3]]),
                            1e-4).usable


def test_error_fields_recover_the_noise_level_under_a_large_cubic_change(tmp_path):
    errors = CoarseErrors(_series(tmp_path), 1e-4)
    fields = np.stack([errors.field(k) for k in range(len(errors.plan))])
    assert fields.shape == (8, BANDS, SIZE, SIZE)
    assert fields.std(axis=(0, 2, 3)) == pytest.approx([SIGMA] * BANDS, rel=0.1)
    # the clip at 3 robust sigmas barely touches Gaussian noise
    low, high = errors.bounds()
    assert (high - low) / 2 == pytest.approx([3 * SIGMA] * BANDS, rel=0.1)
    window = Window(8, 4, 20, 16)  # a window reads the same values as the whole image there
    np.testing.assert_allclose(errors.field(3, window), fields[3][:, 4:20, 8:28], atol=1e-6)


def test_an_abrupt_change_on_one_date_is_clipped_not_taken_for_noise(tmp_path):
    errors = CoarseErrors(_series(tmp_path, flood=True), 1e-4)
    fields = np.stack([errors.field(k) for k in range(len(errors.plan))])
    # the flood leaks into the residuals of the dates around it (up to 0.15 / amplification = 11 sigma), but the
    # clip keeps every value within about 3 robust sigmas of the noise (the flood inflates the MAD a little)
    raw = max(float(np.abs(errors._raw(k)[0]).max()) for k in range(len(errors.plan)))
    assert raw > 8 * SIGMA
    assert np.abs(fields).max() <= 4 * SIGMA
    raw_std = np.stack([errors._raw(k)[0] for k in range(len(errors.plan))]).std(axis=(0, 2, 3))
    assert np.all(raw_std > 2 * SIGMA) and np.all(fields.std(axis=(0, 2, 3)) < 1.6 * SIGMA)


def test_patches_are_differences_of_two_dates_fields(tmp_path):
    errors = CoarseErrors(_series(tmp_path), 1e-4)
    fields = [errors.field(k) for k in range(len(errors.plan))]
    rng = np.random.default_rng(0)
    band = np.array([0, 1, 1])
    origins = np.array([[0, 0], [10, 20], [61, 61]])
    patches = errors.patches(band, origins, 3, np.random.default_rng(0))
    i = rng.integers(0, 8, 3)
    j = (i + rng.integers(1, 8, 3)) % 8  # the same draws as patches
    for n in range(3):
        y, x = origins[n]
        expected = fields[i[n]][band[n], y:y + 3, x:x + 3] - fields[j[n]][band[n], y:y + 3, x:x + 3]
        np.testing.assert_allclose(patches[n], expected, atol=1e-6)
    padded = errors.patches(band[:1], np.array([[0, 0]]), 3, np.random.default_rng(0), pad=1)
    rng = np.random.default_rng(0)
    i = rng.integers(0, 8, 1)
    j = (i + rng.integers(1, 8, 1)) % 8
    edge = np.pad(fields[i[0]][0] - fields[j[0]][0], 1, mode="edge")[:3, :3]
    np.testing.assert_allclose(padded[0], edge, atol=1e-6)


def test_short_gap_targets_follow_their_equations(tmp_path):
    errors = CoarseErrors(_series(tmp_path), 1e-4)
    window = Window(0, 0, SIZE, SIZE)
    ref, target = DAYS[0], DAYS[-1]
    rng = np.random.default_rng(5)
    data = BlockData(window, {d: rng.random((BANDS, SIZE, SIZE)) for d in (ref, target)},
                     {d: rng.random((BANDS, SIZE, SIZE)) for d in (ref, target)}, np.ones((SIZE, SIZE), bool),
                     (slice(0, SIZE), slice(0, SIZE)))
    plan = add_short_gaps(errors, data, [(target, ref)], fractions=(0.25, 0.5), seed=1)
    assert plan == [(ShortGap(target, ref, 0.25), ref), (ShortGap(target, ref, 0.5), ref)]
    draws = np.random.default_rng(1)
    fields = [errors.field(k, window) for k in range(len(errors.plan))]
    for key, _ in plan:
        a = key.fraction
        i, j = draws.choice(len(errors.plan), 2, replace=False)
        np.testing.assert_allclose(data.fine[key], data.fine[ref] + a * (data.fine[target] - data.fine[ref]))
        np.testing.assert_allclose(data.coarse[key], data.coarse[ref] + a * (data.coarse[target] - data.coarse[ref])
                                   + np.sqrt(1 - a * a) * (fields[i] - fields[j]), atol=1e-6)
    _, holdout = plan_validation(DAYS[:3], None, SIZE, SIZE, 0.25)
    assert validation_record(holdout, [0.02, 0.01], 1, {}, plan)["short_gaps"] == [0.25, 0.5]
    assert "short_gaps" not in validation_record(holdout, [0.02, 0.01], 1, {}, [(target, ref)])
