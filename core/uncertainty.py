"""Per-pixel error estimates shared by stf:fuse_auto (:mod:`.auto`) and the refinement (:mod:`.deep.refine`):
the coarse change since the nearest pair, the change's novelty (what the pairs' coarse images do not explain), and
the calibrated model

    e^(i) = sqrt( (f(i) . c)^2 + max(n(i)^2 - n0^2, 0) ),   c >= 0,

f(i) the method's features at pixel i (1, its spread or correction, the coarse change), fitted by non-negative least
squares to the true error of held-out predictions and scaled so that the estimated and the held-out errors agree in
mean; n0^2 the novelty's mean square on those held-out dates (:mod:`.auto`'s docstring, item 5, has the why).
"""
from __future__ import annotations

import datetime as _dt

import numpy as np

from .fusion import SideLayer
from .series import SceneSeries, as_scales

ERROR = SideLayer("uncertainty", "error", "float32", -9999.0, "estimated RMS error over the bands (reflectance)",
                  ramp=True)


def subsample(limit: int, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The same ``limit`` rows of every array (a fixed draw), or the arrays as they are when shorter."""
    if len(arrays[0]) <= limit:
        return arrays
    pick = np.random.default_rng(0).choice(len(arrays[0]), limit, replace=False)
    return tuple(a[pick] for a in arrays)


def band_rms(values: np.ndarray) -> np.ndarray:
    """sqrt(mean_b v_b^2) per pixel of [B, ...] values (float64): the size of a change, a correction or a
    residual over the bands."""
    v = np.asarray(values, dtype=np.float64)
    return np.sqrt(np.mean(v ** 2, axis=0))


def coarse_change(series: SceneSeries, pairs: list, date: _dt.date, window, scale) -> tuple[np.ndarray, np.ndarray]:
    """c = sqrt(mean_b (C(t) - C(t_p))^2), t_p the pair of ``pairs`` nearest to ``date``; and its validity."""
    from .series import read_item

    nearest = min(pairs, key=lambda d: (abs((d - date).days), d))
    c_t, ok_t = read_item(series.coarse_at(date), window, scale)
    c_p, ok_p = read_item(series.coarse_at(nearest), window, scale)
    return band_rms(c_t.astype(np.float64) - c_p), ok_t & ok_p


def novelty_fit(series: SceneSeries, pairs: list, date: _dt.date, scale) -> tuple:
    """(date, the pairs used, coefficients [B, len(pairs) + 1]) of C_b(t) ~ sum_j u_bj C_b(t_j) + k_b, t_j the pairs
    of ``pairs`` around ``date`` (else the two nearest), fitted by least squares on thumbnails of the coarse images
    (the same pixels of every image; one fit for the whole scene, so the tiling does not change it)."""
    from .raster import read_thumbnail, valid_mask

    before, after = [d for d in pairs if d < date], [d for d in pairs if d > date]
    used = [before[-1], after[0]] if before and after else \
        sorted(sorted(pairs, key=lambda d: (abs((d - date).days), d))[:2])
    scales = as_scales(scale)
    values, ok = [], None
    for d in [date] + used:
        item = series.coarse_at(d)
        raw = read_thumbnail(item.path)
        values.append(scales.of(item).decode(raw).astype(np.float64))
        valid = valid_mask(raw, item.info.nodata)
        ok = valid if ok is None else ok & valid
    coef = np.zeros((values[0].shape[0], len(used) + 1))
    if ok.sum() > len(used) + 1:
        for b in range(coef.shape[0]):
            design = np.stack([v[b][ok] for v in values[1:]] + [np.ones(int(ok.sum()))], axis=1)
            coef[b] = np.linalg.lstsq(design, values[0][b][ok], rcond=None)[0]
    return date, used, coef


def novelty(series: SceneSeries, fit: tuple, window, scale) -> tuple[np.ndarray, np.ndarray]:
    """n = sqrt(mean_b r_b^2), r the part of the coarse image of the fit's date that its pairs do not explain
    (:func:`novelty_fit`); and its validity."""
    from .series import read_item

    date, used, coef = fit
    c_t, ok = read_item(series.coarse_at(date), window, scale)
    residual = c_t.astype(np.float64) - coef[:, -1][:, None, None]
    for j, d in enumerate(used):
        c, cok = read_item(series.coarse_at(d), window, scale)
        residual -= coef[:, j][:, None, None] * c
        ok &= cok
    return band_rms(residual), ok


def fit_error_model(features: np.ndarray, error: np.ndarray, novelty_values: np.ndarray, limit: int
                    ) -> tuple[list[float], float]:
    """(coefficients c >= 0 of ``features`` [N, k], n0) of the error model: non-negative least squares on at most
    ``limit`` pixels, scaled so that the mean estimate is the mean ``error``; n0 = the RMS of ``novelty_values``
    (the held-out dates' novelty, whose errors the first term already carries). Nothing to scale (every feature
    zero): the mean error as the constant."""
    from scipy.optimize import nnls

    n0 = float(np.sqrt(np.mean(novelty_values ** 2))) if len(novelty_values) else 0.0
    features, error = subsample(limit, features, error)
    coef, _ = nnls(features, error)
    fitted = features @ coef
    if fitted.mean() <= 1e-12:
        return [float(error.mean())] + [0.0] * (features.shape[1] - 1), n0
    coef *= error.mean() / fitted.mean()
    return [float(v) for v in coef], n0


def estimate(features: list[np.ndarray], coef: list[float], novelty_map: np.ndarray, n0: float) -> np.ndarray:
    """e^ = sqrt((sum_j c_j f_j)^2 + max(n^2 - n0^2, 0)) for feature maps ``features`` (the constant 1 first)."""
    base = sum(c * f for c, f in zip(coef, features))
    return np.sqrt(base ** 2 + np.maximum(novelty_map ** 2 - n0 ** 2, 0.0))
