"""The coarse factor (fine pixels per coarse pixel along each axis), which FSDAF, Fit-FC, DCSTFN and STF3DCNN's
guided branch need to rebuild the coarse pixels from coarse images on the fine grid.

Where it comes from, in this order (never a silent default):

1. the coarse images' native pixel size that ``stf:resample_coarse`` records (``STF_COARSE_PIXEL_SIZE``), or the
   coarse images' own grid when they are not on the fine grid: factor = coarse pixel size / fine pixel size;
2. else estimated from a coarse image on the fine grid: resampling a grid of pixel spacing ``f`` onto a finer grid
   leaves a discontinuity of the interpolant (nearest: of its values; bilinear: of its first derivative; cubic
   convolution: of its second derivative) at the same position inside every coarse pixel, so the energy of the
   first, second and third differences along rows and along columns is periodic with period ``f``. For a candidate
   period k the energy (every band's normalised by its mean, summed) is averaged per phase, E_j = mean of |D^n C|
   over the positions x = j mod k, and its contrast is

       s(k) = std_j(E_j) / mean_j(E_j).

   A divisor of ``f`` and a sparse set of straight edges (fields) have a contrast too, so k counts as a period only
   if the (m k)-profiles, m = 2, 3 (and 5, 7 while they fit), repeat their k-long segments (relative mismatch
   below ``MAX_MISMATCH``); a period needs 9 periods in the image. The factor is the smallest k whose contrast,
   along the rows and along the columns, reaches 3/4 of the best one and ``MIN_CONTRAST``. Measured: nearest,
   bilinear and cubic resampling at factors 8, 10, 16 and 20 found exactly; smoother kernels (cubic spline,
   Lanczos), and fine images, give no period (refused, never guessed);
3. else the algorithm refuses with a message asking for FACTOR.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError
from .raster import read_raw, valid_mask

MAX_FACTOR = 64
MIN_CONTRAST = 0.3  # phase-profile contrast below which no resampling period is claimed (measured on the
#                     sample: at most 0.4 on fine images for k <= 20, 0.67-3.9 on coarse images resampled by nearest,
#                     bilinear or cubic convolution)
MAX_MISMATCH = 0.5  # largest relative difference between the k-long segments of the (m k)-profile of a period k


def recorded_factor(series: Any) -> int | None:
    """The factor from the coarse images' recorded native pixel size, or their own grid (the ratio ERGAS uses,
    :func:`..fusion.pixel_ratio`); None if unknown."""
    from .fusion import pixel_ratio

    ratio = pixel_ratio(series)
    return max(2, int(round(1.0 / ratio))) if ratio else None


def _profile(energy: np.ndarray, weight: np.ndarray, k: int) -> np.ndarray | None:
    """E_j, j = 0..k-1: the mean energy of the positions x with x mod k = j (None if too few periods)."""
    n = len(energy) // k * k
    if n < 3 * k:
        return None
    w = weight[:n].reshape(-1, k).sum(axis=0)
    if np.any(w == 0):
        return None
    return energy[:n].reshape(-1, k).sum(axis=0) / w


def _energies(image: np.ndarray, valid: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(energy, count) profiles along the rows and along the columns, for the difference orders 1-3."""
    x = np.where(valid, image, 0.0).astype(np.float64)
    out = []
    for a, ok in ((x, valid), (x.T, valid.T)):
        for order in (1, 2, 3):
            d = np.abs(np.diff(a, n=order, axis=1))
            good = ok[:, order:].copy()
            for i in range(order):
                good &= ok[:, i:i + d.shape[1]]
            out.append((np.where(good, d, 0.0).sum(axis=0), good.sum(axis=0).astype(np.float64)))
    return out


def period_score(energy: np.ndarray, weight: np.ndarray, k: int) -> float:
    """s(k) if k is a period of the profile, else 0: the profile of m k (m = 2, 3, 5, 7 while m k fits) must
    repeat its k-long segments (relative mismatch below ``MAX_MISMATCH``); a divisor of the true period has a
    contrast too but fails this, as its m k-profile has hot phases in one segment and none in the others."""
    p = _profile(energy, weight, k)
    if p is None or p.mean() <= 0:
        return 0.0
    contrast = float(p.std() / p.mean())
    spread = float(np.linalg.norm(p - p.mean()))
    for m in (2, 3, 5, 7):
        q = _profile(energy, weight, m * k)
        if q is None:
            if m <= 3:  # a period needs at least its 2- and 3-fold checks (9 periods in the image)
                return 0.0
            break
        segments = q.reshape(m, k)
        mismatch = np.sqrt(((segments - segments.mean(axis=0)) ** 2).sum(axis=1).mean())
        if spread <= 0 or mismatch / spread > MAX_MISMATCH:
            return 0.0
    return contrast


def estimate_factor(path: str, nodata: Any, max_factor: int = MAX_FACTOR) -> int | None:
    """The resampling period of a coarse image on the fine grid (module docstring): the smallest k that is a
    period (:func:`period_score`) with a contrast of at least ``MIN_CONTRAST`` along the rows and along the
    columns, in every band with enough valid pixels; None if there is no such k."""
    raw = read_raw(path)
    valid = valid_mask(raw, nodata)
    if valid.sum() < 64:
        return None
    # every band's energy normalised by its mean and summed: one profile per axis and difference order
    profiles = None
    for band in raw:
        energies = _energies(band.astype(np.float64), valid)
        energies = [(e / max(e.sum() / max(w.sum(), 1.0), 1e-30), w) for e, w in energies]
        profiles = energies if profiles is None else [(e0 + e, w) for (e0, w), (e, _) in zip(profiles, energies)]
    scores = np.zeros(max_factor + 1)
    for k in range(2, max_factor + 1):
        scores[k] = min(max(period_score(e, w, k) for e, w in profiles[:3]),  # along the rows
                        max(period_score(e, w, k) for e, w in profiles[3:]))  # along the columns
    best = float(scores.max())
    if best >= MIN_CONTRAST:
        # the smallest period with 3/4 of the best contrast (its multiples have as much): a weaker short period from
        # the rounding of the stored values (bilinear ramps give one at k = 2, contrast 0.75 vs 1.5) is not the grid's
        return int(np.nonzero(scores >= max(MIN_CONTRAST, 0.75 * best))[0][0])
    return None


def resolve_factor(series: Any, requested: int, method: str, feedback: Any = None) -> int:
    """The coarse factor a method uses: ``requested`` when the user gave one (> 0; a note when the data say
    otherwise), else the recorded one, else the estimated one; an :class:`InputError` if none can be known."""
    recorded = recorded_factor(series)
    if requested > 0:
        if recorded is not None and recorded != requested and feedback is not None:
            feedback.info(f"{method}: FACTOR {requested} was given, but the coarse images record a native pixel of "
                          f"{recorded} fine pixels; using {requested} as asked.")
        return requested
    if recorded is not None:
        if feedback is not None:
            feedback.info(f"{method}: coarse factor {recorded} (from the coarse images' native pixel size).")
        return recorded
    item = series.coarse[0]
    estimated = estimate_factor(item.path, item.info.nodata)
    if estimated is None:
        raise InputError(f"{method}: the coarse factor (coarse pixel size / fine pixel size) is not recorded in "
                         f"'{item.path}' and could not be estimated from it (no resampling period shows). Set FACTOR "
                         "(e.g. 16 for MODIS 480 m over Landsat 30 m, 10 for 500 m over 50 m), or resample the "
                         "coarse images with stf:resample_coarse, which records it.")
    if feedback is not None:
        feedback.info(f"{method}: coarse factor {estimated} (estimated from the resampling period of "
                      f"'{item.path}'; not recorded there). Set FACTOR to override.")
    return estimated
