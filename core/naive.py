"""The naive prediction: the fine image of the nearest pair date, unchanged.

It is the benchmark every fusion method must beat (the error a user makes by ignoring the coarse images); the
papers call it the "nearest fine image" or "no change" prediction.
"""
from __future__ import annotations

import datetime as _dt

from .feedback import Feedback
from .fusion import write_predictions
from .raster import read_block
from .series import SceneSeries


def fuse_naive(series: SceneSeries, dates: list[_dt.date], folder: str, scale: float = 1e-4,
               feedback: Feedback | None = None) -> list[str]:
    """Write ``naive_<date>.tif`` for every date: F^(t) = F(t_k), t_k the nearest pair date."""
    def predict(date, tile):
        source = series.nearest_pair(date)
        return read_block(source.path, tile.inner, scale=scale, info=source.info)

    if feedback is not None:
        for date in dates:
            feedback.info(f"naive {date.isoformat()}: fine image of {series.nearest_pair(date).date.isoformat()}")
    return write_predictions(series, dates, "naive", folder, predict, scale, feedback=feedback)
