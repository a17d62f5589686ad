"""4D arrangement of a scene series (the multidimensional data set, MDD, of Zhang et al. 2017, used by STF3DCNN,
seed 000 section 2.1) and its SPATial-Temporal-Spectral (SPATS) storage orders.

The series is held as TSB, [band, time, row, col]. The other orders are permutations of the same four axes:

======  ===============================  =========================
 order   name                             axes
======  ===============================  =========================
 TSB     time sequence in band            [band, time, row, col]
 TSP     time sequence in pixel           [row, col, time, band]
 TIB     time interleaved by band         [time, band, row, col]
 TIS     time interleaved by spectrum     [time, row, col, band]
======  ===============================  =========================

(The paper describes the orders in words only; these axis orders are this plugin's reading of them: "sequence" =
the time axis runs inside a band or a pixel, "interleaved" = whole dates follow one another.)
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

ORDERS = {"TSB": "btyx", "TSP": "yxtb", "TIB": "tbyx", "TIS": "tyxb"}


def convert(array: np.ndarray, source: str, target: str) -> np.ndarray:
    """Reorder a 4D array from one SPATS order to another (a view when possible)."""
    for order in (source, target):
        if order not in ORDERS:
            raise InputError(f"Unknown storage order '{order}'; use one of {', '.join(ORDERS)}.")
    if array.ndim != 4:
        raise InputError(f"A 4D array is needed, got {array.ndim} dimensions.")
    src, dst = ORDERS[source], ORDERS[target]
    return np.transpose(array, [src.index(axis) for axis in dst])


def band_descriptions(dates: list[str], band_names: list[str], order: str = "TSB") -> list[str]:
    """Descriptions of the bands of a multi-band GeoTIFF holding the series (TSB or TIB layer order)."""
    if order == "TSB":
        return [f"{b} {d}" for b in band_names for d in dates]
    if order == "TIB":
        return [f"{d} {b}" for d in dates for b in band_names]
    raise InputError(f"A GeoTIFF stores the series as bands in TSB or TIB order, not {order}.")


def write_series_geotiff(items: list, path: str, scale: float, order: str = "TSB") -> str:
    """Write dated images (``DatedRaster`` list, one grid) as ONE multi-band GeoTIFF in TSB (band-major: every date
    of band 1, then band 2...) or TIB (date-major) layer order, each layer described as date + band name."""
    from ..raster import RasterWriter
    from ..series import as_scales, read_item

    if order not in ("TSB", "TIB"):
        raise InputError(f"A GeoTIFF stores the series as bands in TSB or TIB order, not {order}.")
    grid = items[0].info
    bands, count = grid.bands, len(items)
    names = [d or f"band {i + 1}" for i, d in enumerate(grid.descriptions or [""] * bands)]
    dates = [item.date.isoformat() for item in items]
    with RasterWriter(path, grid, bands=bands * count, dtype=grid.dtype, scale=as_scales(scale).of(items[0]),
                      descriptions=band_descriptions(dates, names, order)) as writer:
        for t, item in enumerate(items):
            data, valid = read_item(item, None, scale)
            for b in range(bands):
                writer.write_band(b * count + t if order == "TSB" else t * bands + b, data[b], valid)
    return path
