"""The two benchmarks every fusion method must beat.

* naive: the fine image of the nearest pair date, unchanged, F^(t) = F(t_k) (the papers' "nearest fine image" or
  "no change" prediction: the error a user makes by ignoring the coarse images);
* additive: the nearest fine image plus the coarse change since its date, F^(t) = F(t_k) + C(t) - C(t_k) (the
  simplest use of the coarse images: STARFM's assumption for one homogeneous pixel, and the untrained start of the
  residual deep methods). Clamped into the series' value range (:func:`..fusion.series_value_range`).
"""
from __future__ import annotations

import datetime as _dt

import numpy as np

from .feedback import Feedback
from .fusion import series_value_range, write_predictions
from .series import SceneSeries, read_item


def fuse_naive(series: SceneSeries, dates: list[_dt.date], folder: str, scale: float = 1e-4,
               feedback: Feedback | None = None) -> list[str]:
    """Write ``naive_<date>.tif`` for every date: F^(t) = F(t_k), t_k the nearest pair date."""
    def predict(date, tile):
        source = series.nearest_pair(date)
        return read_item(source, tile.inner, scale)

    if feedback is not None:
        for date in dates:
            feedback.info(f"naive {date.isoformat()}: fine image of {series.nearest_pair(date).date.isoformat()}")
    return write_predictions(series, dates, "naive", folder, predict, scale, feedback=feedback)


def additive(fine_ref: np.ndarray, coarse_ref: np.ndarray, coarse_t: np.ndarray,
             value_range: tuple[float, float] | None = None) -> np.ndarray:
    """F(t_k) + C(t) - C(t_k), clamped into ``value_range`` when given."""
    out = fine_ref + (coarse_t - coarse_ref)
    return np.clip(out, *value_range) if value_range is not None else out


def fuse_additive(series: SceneSeries, dates: list[_dt.date], folder: str, scale: float = 1e-4,
                  feedback: Feedback | None = None) -> list[str]:
    """Write ``additive_<date>.tif`` for every date: F(t_k) + C(t) - C(t_k), t_k the nearest pair date."""
    value_range = series_value_range(series, scale)

    def predict(date, tile):
        source = series.nearest_pair(date)
        (fine, ok), (c_ref, ok1), (c_t, ok2) = (
            read_item(item, tile.inner, scale)
            for item in (source, series.coarse_at(source.date), series.coarse_at(date)))
        return additive(fine, c_ref, c_t, value_range), ok & ok1 & ok2

    if feedback is not None:
        for date in dates:
            feedback.info(f"additive {date.isoformat()}: fine image of {series.nearest_pair(date).date.isoformat()} "
                          "plus the coarse change since then")
    return write_predictions(series, dates, "additive", folder, predict, scale, feedback=feedback)
