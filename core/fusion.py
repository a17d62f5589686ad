"""What every fusion method shares: output naming, and writing the predictions of every date tile by tile."""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
import datetime as _dt
import os
from typing import Callable, Iterator

import numpy as np

from .errors import InputError
from .executor import map_ordered
from .feedback import Feedback, check_cancel
from .raster import (
    COARSE_PIXEL_KEY, PAIRS_KEY, RATIO_KEY, Encoding, OutputTransaction, RasterWriter, default_nodata, read_raw,
    valid_mask, valid_share,
)
from .series import SceneSeries, Scales, as_scales, check_encodings
from .style import series_qml, side_qml, style_path
from .tiles import Tile, plan_tiles, tile_size_for_budget

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes per tile (all arrays of the method together)

# The largest share of nodata a prediction may have where its reference fine image is valid (stf algorithms set
# it from their MAX_NODATA parameter); above it the run fails instead of writing a silent hole.
_MAX_NODATA: contextvars.ContextVar = contextvars.ContextVar("stf_max_nodata", default=0.5)


@contextlib.contextmanager
def nodata_limit(share: float) -> Iterator[None]:
    """Set the largest nodata share :func:`write_predictions` accepts while the context is active."""
    token = _MAX_NODATA.set(share)
    try:
        yield
    finally:
        _MAX_NODATA.reset(token)


PredictTile = Callable[[_dt.date, Tile], "tuple[np.ndarray, np.ndarray]"]


@dataclass(frozen=True)
class SideLayer:
    """A one-band raster written beside each prediction, ``<folder>/<subfolder>/<method>_<date>_<suffix>.tif``: the
    quality of gap-aware fusion (:mod:`.gaps`), the error estimates of fuse_auto and the refinement
    (:mod:`.uncertainty`)."""

    subfolder: str
    suffix: str
    dtype: str
    nodata: float
    description: str
    # its map style (core/style.py, a .qml beside each raster): ``classes`` (value, label, colour) for a
    # paletted layer; ``ramp`` for a continuous one, coloured from 0 to the 98th percentile of the series' values
    classes: tuple[tuple[int, str, str], ...] = ()
    ramp: bool = False

    def path(self, folder: str, method: str, date: _dt.date) -> str:
        return os.path.join(folder, self.subfolder, f"{method}_{date.isoformat()}_{self.suffix}.tif")

    def beside(self, prediction: str) -> str:
        """The side layer of the prediction file ``prediction`` (``<folder>/<method>_<date>.tif``)."""
        folder, name = os.path.split(prediction)
        return os.path.join(folder, self.subfolder, f"{os.path.splitext(name)[0]}_{self.suffix}.tif")


def prediction_path(folder: str, method: str, date: _dt.date) -> str:
    """``<folder>/<method>_<YYYY-MM-DD>.tif`` (SPEC.md naming)."""
    return os.path.join(folder, f"{method}_{date.isoformat()}.tif")


def series_value_range(series: SceneSeries, scale: "float | Encoding | Scales") -> tuple[float, float]:
    """The reflectance range predictions are clamped into: [min(0, lowest), max(1, highest)] over the valid
    values of the fine images of the pairs. Reflectance gives [0, 1] (or a little more where the inputs exceed 1);
    an index such as NDVI (negative values) gives about [-1, 1]. Bands share one range."""
    enc = as_scales(scale).fine
    low, high = 0.0, 1.0
    for item in series.fine:
        stored = _stored_range(item.path, tuple(item.info.nodata), item.info.width, item.info.height)
        if stored is not None:
            ends = [v * enc.scale + enc.offset for v in stored]
            low, high = min(low, *ends), max(high, *ends)
    return float(low), float(high)


_RANGES: dict = {}  # (file identity, nodata) -> (min, max) stored values: a series is read once per process


def _stored_range(path: str, nodata: tuple, width: int, height: int) -> tuple[float, float] | None:
    """(min, max) of the valid stored values of a raster, read in tiles (GDAL's own min/max writes statistics into
    a VRT input); remembered for a regular file by its identity (device, inode, size, modification time), so the
    several steps of one run (gap filling, validation, prediction) read it once, and a changed file is read again.
    A VRT is read every time (its sources can change under it)."""
    key = None
    if os.path.isfile(path) and not path.lower().endswith(".vrt"):
        st = os.stat(path)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, nodata)
        if key in _RANGES:
            return _RANGES[key]
    low = high = None
    for tile in plan_tiles(width, height, 512):
        raw = read_raw(path, tile.inner)
        ok = valid_mask(raw, nodata)
        if ok.any():
            values = raw[:, ok]
            low = float(values.min()) if low is None else min(low, float(values.min()))
            high = float(values.max()) if high is None else max(high, float(values.max()))
    result = None if low is None else (low, high)
    if key is not None:
        if len(_RANGES) > 256:
            _RANGES.clear()
        _RANGES[key] = result
    return result


def pixel_ratio(series: SceneSeries) -> float | None:
    """h/l, the fine pixel size over the coarse one, where the coarse images say their original pixel size
    (stf:resample_coarse records it); None otherwise."""
    try:
        coarse = float(series.coarse[0].info.metadata[COARSE_PIXEL_KEY])
    except (KeyError, ValueError):
        if series.coarse_on_fine_grid:
            return None
        coarse = abs(series.coarse[0].info.geotransform[1])
    fine = abs(series.grid.geotransform[1])
    return fine / coarse if coarse > 0 and fine < coarse else None


def write_predictions(
    series: SceneSeries, dates: list[_dt.date], method: str, folder: str, predict: PredictTile,
    scale: "float | Encoding | Scales",
    halo: int = 0, bytes_per_pixel: float = 64.0, memory_budget: float = DEFAULT_MEMORY_BUDGET,
    tile_size: int | None = None, feedback: Feedback | None = None,
    value_range: tuple[float, float] | None = None, side: tuple[SideLayer, ...] = (),
) -> list[str]:
    """Write one GeoTIFF per date on the fine grid, in the fine images' data type and encoding.

    ``predict(date, tile)`` returns reflectance ``[bands, rows, cols]`` and validity ``[rows, cols]`` (or per value,
    ``[bands, rows, cols]``) covering
    ``tile.inner``; it may read ``tile.outer`` (the inner window plus ``halo``) for its moving windows. Tiles are
    ``tile_size`` pixels a side if given, else as large as ``memory_budget`` allows for ``bytes_per_pixel`` per
    band. With ``value_range`` (low, high) the values are clamped into it before they are written (no method may
    write reflectance outside the data range). With ``side`` layers, ``predict`` returns one more array
    ``[rows, cols]`` per side layer (e.g. the quality of :mod:`.gaps`), written beside the prediction. All files are committed together at the end: a failure or a cancel
    leaves none of them.
    """
    check_encodings(series, scale)  # before any work: a wrong scale is an error, never a silent result
    grid = series.grid
    nodata = grid.nodata[0] if grid.nodata and grid.nodata[0] is not None else default_nodata(grid.dtype)
    size = tile_size or tile_size_for_budget(bytes_per_pixel * grid.bands, memory_budget, halo)
    tiles = plan_tiles(grid.width, grid.height, size, halo)
    if feedback is not None:
        feedback.info(f"{method}: {len(dates)} date(s), {len(tiles)} tile(s) of up to {size} x {size} pixels "
                      f"(halo {halo}).")
    limit = _MAX_NODATA.get()
    holes = np.zeros(len(dates))  # nodata values written where the date's nearest fine image is valid
    usable = np.zeros(len(dates))  # values where it is valid
    with OutputTransaction() as tx:
        ratio = pixel_ratio(series)
        writers = [RasterWriter(tx.add(prediction_path(folder, method, date)), grid, dtype=grid.dtype,
                                scale=as_scales(scale).fine,
                                metadata={"STF_METHOD": method, "STF_DATE": date.isoformat(),
                                          PAIRS_KEY: ",".join(d.isoformat() for d in series.pair_dates),
                                          **({RATIO_KEY: f"{ratio:.10g}"} if ratio else {})},
                                nodata=nodata, descriptions=grid.descriptions) for date in dates]
        ramp_samples: list[list[np.ndarray]] = [[] for _ in side]
        side_writers = [[RasterWriter(tx.add(layer.path(folder, method, date)), grid, bands=1, dtype=layer.dtype,
                                      nodata=layer.nodata, descriptions=[layer.description],
                                      metadata={"STF_METHOD": method, "STF_DATE": date.isoformat(),
                                                "STF_LAYER": layer.description})
                         for layer in side] for date in dates]
        writers += [w for ws in side_writers for w in ws]
        try:
            # one job per tile (all its dates), on the executor of SCHEDULER (core/executor.py); the results are
            # written here, in tile order, whichever process computed them
            def store(index: int, results: list) -> None:
                tile = tiles[index]
                for i, (values, valid, tile_holes, tile_usable, extra) in enumerate(results):
                    writers[i].write(values, tile.inner, valid)
                    for j, (writer, layer, array) in enumerate(zip(side_writers[i], side, extra)):
                        finite = np.isfinite(array)
                        writer.write(np.where(finite, array, 0)[None].astype(np.float32), tile.inner, finite)
                        if layer.ramp:  # every 8th row and column: the style's range, in bounded memory
                            ramp_samples[j].append(np.asarray(array[::8, ::8][finite[::8, ::8]], np.float32))
                    holes[i] += tile_holes
                    usable[i] += tile_usable
                if feedback is not None:
                    feedback.set_progress(100.0 * (index + 1) / len(tiles))

            map_ordered(TileJob(predict, series, dates, value_range, feedback), tiles, feedback, store)
            for i, date in enumerate(dates):
                share = holes[i] / usable[i] if usable[i] else 1.0
                if feedback is not None:
                    feedback.info(f"{method} {date.isoformat()}: {share:.1%} of the values are nodata where the "
                                  "fine image is valid.")
                if share > limit:
                    raise InputError(_nodata_message(series, method, date, share, limit))
        except BaseException:
            for writer in writers:  # the first error is the one to report (a full disk fails the closes too)
                with contextlib.suppress(Exception):
                    writer.close()
            raise
        for writer in writers:
            writer.close()
        # the styles last: they are committed after their rasters, so a run killed while committing never leaves a
        # style without its raster (the next run cleans what is still a temporary)
        style, shows = series_qml(series)  # one style for the series: same bands, one stretch (core/style.py)
        for date in dates:
            with open(tx.add(style_path(prediction_path(folder, method, date))), "w", encoding="utf-8") as fh:
                fh.write(style)
        if feedback is not None:
            feedback.info(f"Style: {shows}, one stretch for the series (a .qml beside each output).")
        for layer, samples in zip(side, ramp_samples):  # the side layers' styles, one per layer for the series
            layer_style = side_qml(layer, np.concatenate(samples) if samples else np.zeros(0, np.float32))
            if layer_style:
                for date in dates:
                    with open(tx.add(style_path(layer.path(folder, method, date))), "w", encoding="utf-8") as fh:
                        fh.write(layer_style)
    sides = {os.path.abspath(layer.path(folder, method, d)) for layer in side for d in dates}
    return [path for path in tx.committed if not path.endswith(".qml") and path not in sides]


def fuse_method(method: str, series: SceneSeries, dates: list[_dt.date], folder: str,
                scale: "float | Encoding | Scales", params: object = None, device: str = "auto",
                feedback: Feedback | None = None, rules: str = "fill") -> list[str]:
    """Predict ``dates`` with a benchmark (``naive``, ``additive``) or a classic method (``starfm``, ``estarfm``,
    ``fsdaf``, ``fitfc``; ``params`` its settings, None: the defaults); returns the written files. ``rules``:
    ``fill`` (default) fills what the method leaves empty where an input exists and writes quality rasters
    (:mod:`.gaps`); ``strict`` keeps the reference program's holes."""
    from .gaps import fuse_with_gaps

    def run(s: SceneSeries, d: list[_dt.date], out: str, fb: Feedback | None) -> list[str]:
        return _fuse_once(method, s, d, out, scale, params, device, fb)

    def starfm(s: SceneSeries, d: list[_dt.date], out: str, fb: Feedback | None) -> list[str]:
        return _fuse_once("starfm", s, d, out, scale, None, device, fb)

    # ESTARFM needs two pairs; from one pair it is STARFM, the method it extends
    return fuse_with_gaps(method, run, series, dates, folder, scale, feedback, rules,
                          starfm if method == "estarfm" else None)


FUSION_MODEL = "stfdcnn_fusion"  # STFDCNN's fusion model without its CNNs: no training, needs torch


FACTOR_METHODS = ("fsdaf", "fitfc", "dcstfn")  # members whose settings take the coarse factor (FACTOR)


def fuse_member(method: str, series: SceneSeries, dates: list[_dt.date], folder: str,
                scale: "float | Encoding | Scales", device: str = "auto",
                feedback: Feedback | None = None, factor: int = 0) -> list[str]:
    """Predict ``dates`` with any method by name and its default settings, as stf:fuse_auto's members and the
    cross-validation run them: a benchmark or classic method (:func:`fuse_method`); :data:`FUSION_MODEL`,
    STFDCNN's fusion model (its untrained networks are identities, so none runs: the LSR- and fine-level
    high-pass modulation of the paper, no training); or a learned method, trained on the pairs of ``series``
    first (the held-out pair of a fold is not among them). ``factor`` > 0: the coarse factor of the members that
    take one (:data:`FACTOR_METHODS`; 0: from the data, as each method's own FACTOR default)."""
    from .crossval import LEARNED
    from .feedback import SubFeedback

    params = None
    if factor > 0 and method in FACTOR_METHODS:
        if method == "dcstfn":
            from .deep.api import settings_class

            params = settings_class(method)(factor=factor)
        else:
            import importlib

            module = importlib.import_module(f".classic.{method}", __package__)
            params = getattr(module, {"fsdaf": "FsdafParams", "fitfc": "FitfcParams"}[method])(factor=factor)

    if method == FUSION_MODEL or method in LEARNED:
        from .deep.api import predict_trained, train_method

        if method == FUSION_MODEL:
            from .deep.stfdcnn import fusion_model

            networks, meta = fusion_model(series.grid.bands)
            return predict_trained("stfdcnn", networks, meta, series, dates, folder, scale, device, feedback)
        networks, meta = train_method(method, series, scale, params, device,
                                      SubFeedback(feedback, 0.0, 90.0) if feedback else None)
        return predict_trained(method, networks, meta, series, dates, folder, scale, device,
                               SubFeedback(feedback, 90.0, 100.0) if feedback else None)
    return fuse_method(method, series, dates, folder, scale, params=params, device=device, feedback=feedback)


def _fuse_once(method: str, series: SceneSeries, dates: list[_dt.date], folder: str,
               scale: "float | Encoding | Scales", params: object = None, device: str = "auto",
               feedback: Feedback | None = None) -> list[str]:
    """One run of a benchmark or classic method with its own rules (holes included)."""
    import importlib

    if method in ("naive", "additive"):
        from . import naive

        return getattr(naive, f"fuse_{method}")(series, dates, folder, scale, feedback)
    module = importlib.import_module(f".classic.{method}", __package__)
    return getattr(module, f"fuse_{method}")(series, dates, folder, scale, params=params, device=device,
                                             feedback=feedback)


class TileJob:
    """All dates of one tile: what an executor runs (picklable with cloudpickle, closures included).

    Calls ``predict(date, tile)`` for every date in turn (methods that predict a whole series at once, STF3DCNN,
    compute a tile once and serve its dates from a cache), clamps into ``value_range`` and returns per date
    (float32 values, validity, nodata values where the nearest fine image is valid, values where it is valid, the
    side arrays)."""

    def __init__(self, predict: PredictTile, series: SceneSeries, dates: list[_dt.date],
                 value_range: tuple[float, float] | None, feedback: Feedback | None = None) -> None:
        self.predict, self.series, self.dates, self.value_range = predict, series, dates, value_range
        self.feedback = feedback  # in-process only: cancel between the dates of a tile (not sent to workers)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "feedback": None}

    def __call__(self, tile: Tile) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
        bands = self.series.grid.bands
        reference_valid: dict[str, np.ndarray] = {}  # per pair image: the dates of a tile share them
        out = []
        for date in self.dates:
            check_cancel(self.feedback)
            values, valid, *rest = self.predict(date, tile)
            if self.feedback is not None:
                self.feedback.set_progress(100.0 * (tile.index * len(self.dates) + len(out) + 1)
                                           / (tile.count * len(self.dates)))
            if self.value_range is not None:
                values = np.clip(values, *self.value_range)
            values = np.asarray(values, dtype=np.float32)  # what the writer stores from (half the transfer)
            reference = self.series.nearest_pair(date)
            if reference.path not in reference_valid:
                reference_valid[reference.path] = valid_mask(read_raw(reference.path, tile.inner),
                                                             reference.info.nodata)
            ok = reference_valid[reference.path]
            per_value = np.broadcast_to(valid, (bands,) + valid.shape[-2:]) if valid.ndim == 2 else valid
            out.append((values, np.asarray(valid, dtype=bool), float((~per_value[:, ok]).sum()),
                        float(ok.sum()) * bands, [np.asarray(a, dtype=np.float32) for a in rest]))
        return out


def _nodata_message(series: SceneSeries, method: str, date: _dt.date, share: float, limit: float) -> str:
    coarse = series.coarse_at(date)
    reference = series.nearest_pair(date)
    inputs = ", ".join(f"'{os.path.basename(item.path)}' {valid_share(item.path, item.info):.0%}"
                       for item in (coarse, reference, series.coarse_at(reference.date)))
    return (f"{method} {date.isoformat()}: {share:.0%} of the values would be nodata where the fine image is valid, "
            f"more than MAX_NODATA ({limit:.0%}); nothing was written. Valid pixels in the inputs of that date: "
            f"{inputs}. An input that is (almost) all nodata cannot give a prediction; if the method rejected the "
            "pixels, check its settings (e.g. STARFM's uncertainties); raise MAX_NODATA to accept such a result.")
