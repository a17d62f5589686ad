"""What every fusion method shares: output naming, and writing the predictions of every date tile by tile."""
from __future__ import annotations

import datetime as _dt
import os
from typing import Callable

import numpy as np

from .feedback import Feedback, check_cancel
from .raster import OutputTransaction, RasterWriter, default_nodata
from .series import SceneSeries
from .tiles import Tile, plan_tiles, tile_size_for_budget

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes per tile (all arrays of the method together)

PredictTile = Callable[[_dt.date, Tile], "tuple[np.ndarray, np.ndarray]"]


def prediction_path(folder: str, method: str, date: _dt.date) -> str:
    """``<folder>/<method>_<YYYY-MM-DD>.tif`` (SPEC.md naming)."""
    return os.path.join(folder, f"{method}_{date.isoformat()}.tif")


def series_value_range(series: SceneSeries, scale: float) -> tuple[float, float]:
    """The reflectance range predictions are clamped into: [min(0, lowest), max(1, highest)] over the valid
    values of the fine images of the pairs. Reflectance gives [0, 1] (or a little more where the inputs exceed 1);
    an index such as NDVI (negative values) gives about [-1, 1]. Bands share one range."""
    from osgeo import gdal

    low, high = 0.0, 1.0
    for item in series.fine:
        ds = gdal.Open(item.path)
        for b in range(1, ds.RasterCount + 1):
            try:
                lo, hi = ds.GetRasterBand(b).ComputeRasterMinMax(False)
            except RuntimeError:  # every value is nodata: nothing to widen the range with
                continue
            if np.isfinite(lo) and np.isfinite(hi):
                low, high = min(low, lo * scale), max(high, hi * scale)
        ds = None
    return float(low), float(high)


def write_predictions(
    series: SceneSeries, dates: list[_dt.date], method: str, folder: str, predict: PredictTile, scale: float,
    halo: int = 0, bytes_per_pixel: float = 64.0, memory_budget: float = DEFAULT_MEMORY_BUDGET,
    tile_size: int | None = None, feedback: Feedback | None = None,
    value_range: tuple[float, float] | None = None,
) -> list[str]:
    """Write one GeoTIFF per date on the fine grid, in the fine images' data type and scale.

    ``predict(date, tile)`` returns reflectance ``[bands, rows, cols]`` and validity ``[rows, cols]`` (or per value,
    ``[bands, rows, cols]``) covering
    ``tile.inner``; it may read ``tile.outer`` (the inner window plus ``halo``) for its moving windows. Tiles are
    ``tile_size`` pixels a side if given, else as large as ``memory_budget`` allows for ``bytes_per_pixel`` per
    band. With ``value_range`` (low, high) the values are clamped into it before they are written (no method may
    write reflectance outside the data range). All files are committed together at the end: a failure or a cancel
    leaves none of them.
    """
    grid = series.grid
    nodata = grid.nodata[0] if grid.nodata and grid.nodata[0] is not None else default_nodata(grid.dtype)
    size = tile_size or tile_size_for_budget(bytes_per_pixel * grid.bands, memory_budget, halo)
    tiles = plan_tiles(grid.width, grid.height, size, halo)
    if feedback is not None:
        feedback.info(f"{method}: {len(dates)} date(s), {len(tiles)} tile(s) of up to {size} x {size} pixels "
                      f"(halo {halo}).")
    with OutputTransaction() as tx:
        writers = [RasterWriter(tx.add(prediction_path(folder, method, date)), grid, dtype=grid.dtype, scale=scale,
                                nodata=nodata, descriptions=grid.descriptions) for date in dates]
        try:
            # tile by tile, every date of a tile in turn: methods that predict a whole series at once (STF3DCNN)
            # compute a tile once and serve its dates from a cache
            steps = len(tiles) * len(dates)
            for tile in tiles:
                for i, (date, writer) in enumerate(zip(dates, writers)):
                    check_cancel(feedback)
                    values, valid = predict(date, tile)
                    if value_range is not None:
                        values = np.clip(values, *value_range)
                    writer.write(values, tile.inner, valid)
                    if feedback is not None:
                        feedback.set_progress(100.0 * (tile.index * len(dates) + i + 1) / steps)
        finally:
            for writer in writers:
                writer.close()
    return tx.committed
