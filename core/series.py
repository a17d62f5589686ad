"""Scene series: dated coarse rasters on every date, dated fine rasters on some (the pairs).

A series is validated once, when it is built: dates known and unique, a coarse image on every pair date, all
fine images on one grid with one band count, all coarse images on one grid (the fine grid, or else a coarser
grid that :func:`resample_series` puts onto the fine grid), coarse and fine with the same band count.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field, replace

import numpy as np

from .dates import dates_for_files
from .errors import InputError
from .feedback import Feedback
from .raster import (
    Encoding, OutputTransaction, RasterInfo, as_encoding, check_band_order, check_same_grid, grid_differences,
    raster_info, read_block, same_crs,
    read_thumbnail, valid_mask,
)
from .tiles import Window
from .resample import resample_many


@dataclass(frozen=True)
class DatedRaster:
    """One image of the series."""

    date: _dt.date
    path: str
    info: RasterInfo = field(repr=False, compare=False)
    kind: str = "fine"  # "fine" or "coarse": which encoding of the series applies (see Scales)


@dataclass(frozen=True)
class Scales:
    """The encodings of a series' fine and of its coarse images (``FINE_SCALE``/``FINE_OFFSET``,
    ``COARSE_SCALE``/``COARSE_OFFSET``; ``SCALE`` is the default of both). Predictions are written in the fine
    encoding: they are fine images."""

    fine: Encoding
    coarse: Encoding

    def of(self, item: DatedRaster) -> Encoding:
        """The encoding of one image of the series."""
        return self.coarse if item.kind == "coarse" else self.fine


def as_scales(scale: "float | Encoding | Scales") -> Scales:
    """:class:`Scales` from one scale factor or encoding for both kinds, or from scales."""
    if isinstance(scale, Scales):
        return scale
    enc = as_encoding(scale)
    return Scales(enc, enc)


def read_item(
    item: DatedRaster, window: Window | None, scale: "float | Encoding | Scales", mask_path: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_block` of one image of the series in its own (fine or coarse) encoding."""
    return read_block(item.path, window, scale=as_scales(scale).of(item), mask_path=mask_path, info=item.info)


@dataclass(frozen=True)
class SceneSeries:
    """Coarse images on every date, fine images on the pair dates, all sorted by date."""

    coarse: tuple[DatedRaster, ...]
    fine: tuple[DatedRaster, ...]

    @property
    def dates(self) -> list[_dt.date]:
        """Every date of the series (the coarse dates)."""
        return [c.date for c in self.coarse]

    @property
    def pair_dates(self) -> list[_dt.date]:
        """Dates with both a fine and a coarse image."""
        return [f.date for f in self.fine]

    @property
    def predict_dates(self) -> list[_dt.date]:
        """Coarse dates without a fine image: what fusion predicts by default."""
        pairs = set(self.pair_dates)
        return [d for d in self.dates if d not in pairs]

    @property
    def grid(self) -> RasterInfo:
        """The fine grid every output is written on."""
        return self.fine[0].info

    @property
    def coarse_on_fine_grid(self) -> bool:
        """True when the coarse images already share the fine grid."""
        return not grid_differences(self.grid, self.coarse[0].info, check_bands=False)

    def coarse_at(self, date: _dt.date) -> DatedRaster:
        """The coarse image of ``date``."""
        for c in self.coarse:
            if c.date == date:
                return c
        raise InputError(f"No coarse image on {date.isoformat()}; coarse dates: {_fmt(self.dates)}.")

    def fine_at(self, date: _dt.date) -> DatedRaster:
        """The fine image of ``date``."""
        for f in self.fine:
            if f.date == date:
                return f
        raise InputError(f"No fine image on {date.isoformat()}; pair dates: {_fmt(self.pair_dates)}.")

    def nearest_pair(self, date: _dt.date) -> DatedRaster:
        """The fine image closest in time to ``date``; on a tie the earlier one (it was observed first)."""
        return self.fine_at(nearest_date(date, self.pair_dates))

    def pairs_around(self, date: _dt.date) -> tuple[DatedRaster, DatedRaster] | None:
        """The last pair before ``date`` and the first after it, or None when one side has no pair."""
        before = [f for f in self.fine if f.date < date]
        after = [f for f in self.fine if f.date > date]
        return (before[-1], after[0]) if before and after else None

    def check_predict_dates(self, dates: list[_dt.date] | None) -> list[_dt.date]:
        """The dates to predict: ``dates`` (each must have a coarse image) or, if empty, every non-pair date."""
        if not dates:
            result = self.predict_dates
            if not result:
                raise InputError("Every coarse date has a fine image: there is no date left to predict.")
            return result
        known = set(self.dates)
        missing = [d for d in dates if d not in known]
        if missing:
            raise InputError(
                f"No coarse image on the prediction date(s) {_fmt(missing)}; coarse dates: {_fmt(self.dates)}."
            )
        return sorted(set(dates))


def nearest_date(date: _dt.date, candidates) -> _dt.date:
    """The candidate closest in time to ``date``; on a tie the earlier one (it was observed first)."""
    return min(candidates, key=lambda d: (abs((d - date).days), d > date))


def _fmt(dates: list[_dt.date]) -> str:
    return ", ".join(d.isoformat() for d in dates) or "none"


def _dated(paths: list[str], dates: list[_dt.date] | None, what: str) -> list[DatedRaster]:
    items = [DatedRaster(d, p, raster_info(p, what), what)
             for p, d in zip(paths, dates_for_files(paths, dates, what))]
    items.sort(key=lambda r: r.date)
    for a, b in zip(items, items[1:]):
        if a.date == b.date:
            raise InputError(
                f"Two {what} images share the date {a.date.isoformat()}: '{a.path}' and '{b.path}'. "
                "Give one image per date."
            )
    return items


def build_series(
    fine_paths: list[str], coarse_paths: list[str], dates: list[_dt.date] | None = None,
) -> SceneSeries:
    """Build and validate a series.

    ``dates``, when given, has one date per file: the fine files' dates first, then the coarse files'. Without
    it the dates are parsed from the file names (:mod:`.dates`).
    """
    if not fine_paths:
        raise InputError("No fine image given: fusion needs at least one fine/coarse pair.")
    if not coarse_paths:
        raise InputError("No coarse image given.")
    fine_dates = coarse_dates = None
    if dates:
        if len(dates) != len(fine_paths) + len(coarse_paths):
            raise InputError(
                f"{len(dates)} dates given for {len(fine_paths)} fine and {len(coarse_paths)} coarse files: give one "
                "date per file, the fine files' dates first, then the coarse files'."
            )
        fine_dates, coarse_dates = dates[: len(fine_paths)], dates[len(fine_paths):]
    fine = _dated(fine_paths, fine_dates, "fine")
    coarse = _dated(coarse_paths, coarse_dates, "coarse")
    for f in fine[1:]:
        check_same_grid(fine[0].info, f.info)
    for c in coarse[1:]:
        check_same_grid(coarse[0].info, c.info)
    for item in fine[1:] + coarse:  # same names in another order: fused band by band, silently wrong
        check_band_order(fine[0].info, item.info)
    ref, first = fine[0].info, coarse[0].info
    if same_crs(ref.crs_wkt, first.crs_wkt) and abs(first.geotransform[1]) < abs(ref.geotransform[1]) * 0.99:
        fine_px, coarse_px = abs(ref.geotransform[1]), abs(first.geotransform[1])
        raise InputError(
            f"FINE and COARSE look swapped: the fine image '{ref.path}' has {fine_px:g} pixels and the coarse image "
            f"'{first.path}' finer ones ({coarse_px:g}). Give the fine (Landsat-like) images as FINE and the coarse "
            "(MODIS-like) ones as COARSE.")
    if first.bands != ref.bands:
        raise InputError(
            f"The coarse image '{first.path}' has {first.bands} bands but the fine image '{ref.path}' has "
            f"{ref.bands}; fusion needs the same bands in the same order."
        )
    coarse_dates_set = {c.date for c in coarse}
    for f in fine:
        if f.date not in coarse_dates_set:
            raise InputError(
                f"The fine image '{f.path}' ({f.date.isoformat()}) has no coarse image on its date; every pair "
                "needs both."
            )
    return SceneSeries(tuple(coarse), tuple(fine))


# |reflectance| above which an encoding is surely wrong (reflectance is 0-1, indices -1-1); and the largest factor
# between the mean fine and coarse reflectance of a pair date (the two sensors see the same surface: their means
# differ by a few per cent, a wrong scale by 10^4 or, for Landsat Collection 2 read as x 0.0001, by about 10).
PLAUSIBLE_REFLECTANCE = 10.0
PAIR_AGREEMENT = 5.0


def _sample(item: DatedRaster, enc: Encoding) -> np.ndarray:
    raw = read_thumbnail(item.path)
    return enc.decode(raw)[:, valid_mask(raw, item.info.nodata)]


def check_encodings(series: SceneSeries, scale: "float | Encoding | Scales") -> None:
    """Refuse encodings that cannot be right, before any work: values far outside reflectance after the scale, or
    fine and coarse images of a pair date whose mean reflectance differs by more than :data:`PAIR_AGREEMENT`
    (read on a 256-pixel thumbnail of every pair image)."""
    scales = as_scales(scale)
    for fine in series.fine:
        coarse = series.coarse_at(fine.date)
        samples = [(item, scales.of(item), _sample(item, scales.of(item))) for item in (fine, coarse)]
        for item, enc, values in samples:
            high = float(np.percentile(np.abs(values), 99)) if values.size else 0.0
            if high > PLAUSIBLE_REFLECTANCE:
                raise InputError(
                    f"With {enc.name} ({enc.describe()}) the {item.kind} image '{item.path}' has values up to "
                    f"{high:.4g}, not reflectance (0-1): the scale does not match the file (0.0001 for 0-10000 "
                    "integers, 1 for 0-1 floats, 2.75e-5 with offset -0.2 for Landsat Collection 2).")
        (_, fine_enc, f), (_, coarse_enc, c) = samples
        if not f.size or not c.size:
            continue
        mean_f, mean_c = float(np.abs(f).mean()), float(np.abs(c).mean())
        if mean_f <= 0 or mean_c <= 0:
            continue
        factor = mean_f / mean_c
        if not 1 / PAIR_AGREEMENT < factor < PAIR_AGREEMENT:
            raise InputError(
                f"On the pair date {fine.date.isoformat()} the fine image '{fine.path}' is on average {factor:.3g} "
                f"times the coarse image '{coarse.path}' (mean reflectance {mean_f:.4g} with {fine_enc.name} "
                f"{fine_enc.describe()}, {mean_c:.4g} with {coarse_enc.name} {coarse_enc.describe()}): they are "
                "stored in different scales. Give FINE_SCALE/FINE_OFFSET and COARSE_SCALE/COARSE_OFFSET for the "
                "two encodings.")


def require_fine_grid(series: SceneSeries) -> None:
    """Raise unless the coarse images are on the fine grid, saying how to get them there."""
    diffs = grid_differences(series.grid, series.coarse[0].info, check_bands=False)
    if diffs:
        raise InputError(
            f"The coarse image '{series.coarse[0].path}' is not on the grid of the fine image '{series.grid.path}' "
            f"({'; '.join(diffs)}). Resample the coarse images first (stf:resample_coarse) or choose a "
            "resampling method."
        )


def resample_series(
    series: SceneSeries, folder: str, method: str, transaction: OutputTransaction,
    feedback: Feedback | None = None,
) -> SceneSeries:
    """Resample every coarse image onto the fine grid into ``folder`` (files ``coarse_<date>.tif``).

    The files are registered with ``transaction`` (so a failure leaves none); the returned series points at the
    temporary paths, valid until the transaction commits.
    """
    jobs = [(c.path, os.path.join(folder, f"coarse_{c.date.isoformat()}.tif")) for c in series.coarse]
    temps = resample_many(jobs, series.grid, method, transaction, feedback)
    coarse = [replace(c, path=t, info=raster_info(t)) for c, t in zip(series.coarse, temps)]
    return SceneSeries(tuple(coarse), series.fine)
