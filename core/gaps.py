"""Gap-aware fusion: every method (classic and learned) predicts every pixel where a valid pair and a valid coarse
value exist, and says per pixel how (SPEC "Gaps").

Real images have clouds, shadows and fill (nodata). A method that takes two pairs leaves a hole wherever ONE of
them is clouded, although the other sees the ground; a one-pair method leaves one wherever its nearest pair is
clouded; STARFM's rules leave its fill value where a prediction would be <= 0, and the moving-window methods leave
pixels without similar neighbours empty. Here, per date ``t``:

1. the method runs as it is (its own rules, every pair it takes): the prediction P(t) where it gives one;
2. where it gives none but an input exists, the same method from ONE pair p, for the pairs in order of their
   distance in time to t: P_p(t) (a method that cannot run from one pair, ESTARFM, uses STARFM from that pair, the
   method ESTARFM extends; one that fails on that pair is skipped);
3. where none of them gives a value, the additive prediction from the nearest pair valid there:
   F(t_p) + C(t) - C(t_p), clamped into the series' value range;
4. nodata only where no pair p has F(t_p), C(t_p) and C(t) valid.

Beside each prediction ``<method>_<date>.tif`` a quality raster ``quality/<method>_<date>_quality.tif`` (uint8)
records 0 = the full method, 1 = a fallback (2 or 3), 2 = no input. ``REFERENCE_RULES=strict`` skips all this and
keeps each reference program's own holes (side-by-side checks with the reference programs).

Cost: the method's own run, plus one run per pair only for dates where step 1 left a hole where an input exists.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
from typing import Callable, Iterator

import numpy as np

from .errors import InputError, StfError
from .feedback import Feedback, SubFeedback
from .fusion import SideLayer, nodata_limit, series_value_range, write_predictions
from .naive import additive
from .raster import read_block, scratch_dir
from .series import DatedRaster, SceneSeries, as_scales, read_item
from .tiles import plan_tiles

RULES = ("fill", "strict")
QUALITY_FOLDER = "quality"
FULL, FALLBACK, NO_INPUT = 0, 1, 2

# run(series, dates, folder, feedback) -> the written files, in date order
Run = Callable[[SceneSeries, "list[_dt.date]", str, "Feedback | None"], "list[str]"]


QUALITY = SideLayer(QUALITY_FOLDER, "quality", "uint8", 255, "quality: 0 full method, 1 fallback, 2 no input",
                    classes=((0, "full method", "#1a9641"), (1, "fallback", "#fdae61"), (2, "no input", "#d7191c")))


def quality_path(folder: str, method: str, date: _dt.date) -> str:
    """``<folder>/quality/<method>_<YYYY-MM-DD>_quality.tif``."""
    return QUALITY.path(folder, method, date)


def pairs_by_distance(series: SceneSeries, date: _dt.date) -> list[DatedRaster]:
    """The pairs in order of their distance in time to ``date`` (on a tie the earlier first, as nearest_pair)."""
    return sorted(series.fine, key=lambda f: (abs((f.date - date).days), f.date))


def with_pairs(series: SceneSeries, pairs: list[DatedRaster]) -> SceneSeries:
    """The series with only ``pairs`` as its fine images (every coarse image kept)."""
    return SceneSeries(coarse=series.coarse, fine=tuple(sorted(pairs, key=lambda f: f.date)))


def _holes(series: SceneSeries, primary: dict, scale) -> dict:
    """Per date, the pixels where its prediction ``primary[date]`` is nodata although an input exists (a pair p with
    F(t_p), C(t_p) and C(t) valid); the pairs' validity is read once per tile for every date."""
    holes = dict.fromkeys(primary, 0)
    grid = series.grid
    fine_scale = as_scales(scale).fine
    for tile in plan_tiles(grid.width, grid.height, 512):
        pairs_ok = None
        for pair in series.fine:
            ok = read_item(pair, tile.inner, scale)[1] & read_item(series.coarse_at(pair.date), tile.inner, scale)[1]
            pairs_ok = ok if pairs_ok is None else pairs_ok | ok
        for date, path in primary.items():
            _, ok_t = read_item(series.coarse_at(date), tile.inner, scale)
            _, predicted = read_block(path, tile.inner, fine_scale)
            holes[date] += int((pairs_ok & ok_t & ~predicted).sum())
    return holes


@contextlib.contextmanager
def _messages_name(scratch: str, folder: str) -> Iterator[None]:
    """An error message that names a file of the scratch folder names it in the output folder instead (where the
    user looks; a full disk there is what the message is about)."""
    try:
        yield
    except StfError as exc:
        raise type(exc)(str(exc).replace(os.path.abspath(scratch), os.path.abspath(folder))
                        .replace(scratch, folder)) from None


def fuse_with_gaps(method: str, run: Run, series: SceneSeries, dates: list[_dt.date], folder: str, scale,
                   feedback: Feedback | None = None, rules: str = "fill", one_pair: Run | None = None,
                   carry: tuple = ()) -> list[str]:
    """Predict ``dates`` with ``run`` and fill what it leaves empty (module docstring); ``one_pair`` runs the
    method's one-pair form (default: ``run`` itself on the series restricted to one pair). Writes the predictions
    and their quality rasters in ``folder``; returns the predictions. ``carry``: side layers
    (:class:`..fusion.SideLayer`) that ``run`` writes beside its predictions, kept where the method's own values
    are (empty where a fallback filled)."""
    if rules not in RULES:
        raise InputError(f"REFERENCE_RULES must be one of {', '.join(RULES)} (got '{rules}').")
    if rules == "strict":
        return run(series, dates, folder, feedback)
    with scratch_dir("gaps", folder) as tmp:
        first = SubFeedback(feedback, 0.0, 70.0) if feedback else None
        with nodata_limit(1.0), _messages_name(os.path.join(tmp, "primary"), folder):
            # the holes are filled below; the limit applies to the final result
            primary = dict(zip(dates, run(series, dates, os.path.join(tmp, "primary"), first)))
        holes = _holes(series, primary, scale)
        singles: dict[tuple[_dt.date, _dt.date], str] = {}
        wanted: dict[_dt.date, list[_dt.date]] = {}  # pair date -> the dates it fills
        for d in dates:
            if holes[d]:
                for pair in pairs_by_distance(series, d):
                    wanted.setdefault(pair.date, []).append(d)
        if feedback is not None and wanted:
            feedback.info(f"{method}: holes where an input exists on "
                          + ", ".join(f"{d.isoformat()} ({holes[d]} px)" for d in dates if holes[d])
                          + "; filling them from one pair at a time, then with the additive prediction.")
        one = one_pair or run
        for k, (pair_date, needed) in enumerate(sorted(wanted.items())):
            sub = SubFeedback(feedback, 70.0 + 20.0 * k / len(wanted), 70.0 + 20.0 * (k + 1) / len(wanted)) \
                if feedback else None
            scratch = os.path.join(tmp, f"pair_{pair_date.isoformat()}")
            try:
                with nodata_limit(1.0), _messages_name(scratch, folder):
                    files = one(with_pairs(series, [series.fine_at(pair_date)]), needed, scratch, sub)
            except InputError as exc:
                if feedback is not None:
                    feedback.info(f"{method}: no one-pair prediction from {pair_date.isoformat()} ({exc}); the "
                                  "additive prediction fills there.")
                continue
            singles.update({(d, pair_date): path for d, path in zip(needed, files)})
        return _merge(method, series, dates, folder, scale, primary, singles,
                      SubFeedback(feedback, 90.0, 100.0) if feedback else None, carry)


def _merge(method: str, series: SceneSeries, dates: list[_dt.date], folder: str, scale,
           primary: dict, singles: dict, feedback: Feedback | None, carry: tuple = ()) -> list[str]:
    """Write the final predictions: the method's own values, then the one-pair ones, then the additive ones."""
    fine_scale = as_scales(scale).fine
    value_range = series_value_range(series, scale)

    def predict(date: _dt.date, tile):
        window = tile.inner
        values, filled = read_block(primary[date], window, fine_scale)
        quality = np.where(filled, FULL, NO_INPUT).astype(np.uint8)
        carried = []
        for layer in carry:  # the method's own side values, where its own prediction is
            side, side_ok = read_block(layer.beside(primary[date]), window, 1.0)
            carried.append(np.where(side_ok & filled, side[0], np.nan))
        order = pairs_by_distance(series, date)
        for pair in order:
            if filled.all():
                break
            path = singles.get((date, pair.date))
            if path is None:
                continue
            more, ok = read_block(path, window, fine_scale)
            take = ok & ~filled
            values[:, take] = more[:, take]
            quality[take] = FALLBACK
            filled |= take
        if not filled.all():
            c_t, ok_t = read_item(series.coarse_at(date), window, scale)
            for pair in order:
                f_p, ok_f = read_item(pair, window, scale)
                c_p, ok_c = read_item(series.coarse_at(pair.date), window, scale)
                take = ok_f & ok_c & ok_t & ~filled
                if take.any():
                    values[:, take] = additive(f_p, c_p, c_t, value_range)[:, take]
                    quality[take] = FALLBACK
                    filled |= take
        return (values, filled, quality, *carried)

    return write_predictions(series, dates, method, folder, predict, scale, bytes_per_pixel=48.0,
                             feedback=feedback, value_range=value_range, side=(QUALITY,) + tuple(carry))
