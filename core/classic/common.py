"""Helpers shared by the classic methods: reading a tile's inputs as tensors, moving-window views, scene statistics.

Moving windows are evaluated offset by offset: for every offset (dy, dx) of the window, the neighbours of ALL
centre pixels of a tile are one shifted view of the padded tile, so each step is a whole-tile tensor operation
(no per-pixel Python loop). Pixels outside the scene are padded as invalid, which is what a whole-scene run sees
at the scene border; a tile read with a halo equal to the window radius therefore gives exactly the whole-scene
result.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..arrays import backend, namespace_of
from ..errors import InputError
from ..series import DatedRaster, SceneSeries, read_item
from ..tiles import Tile
from . import kernels


# Measured on an NVIDIA H200 (CUDA 13, torch 2.11; 16 CPU cores beside it) on 2026-12-04 (README "GPU"): the torch
# paths of FSDAF and Fit-FC, whose k-smallest selection sorts or scans every offset of the window as whole-tile
# passes, ran SLOWER on that GPU than their compiled kernels on a CPU: Fit-FC 17.8 s for the bundled sample's seven
# dates against 3.4 s on the CPU (numba compilation included); FSDAF's CIA-size case (one date, then three) was not
# done in the 200-270 s the run had left for it, against 65 s on the 2-core CPU machine. STARFM and ESTARFM gained
# on it (CIA size, one date then three: 13 / 20 s and 25 / 21 s against 25 / 47 s and 53 / 81 s on 2 CPU cores).
GPU_SLOWER = frozenset({"fsdaf", "fitfc"})
NAMES = {"fsdaf": "FSDAF", "fitfc": "Fit-FC"}


def method_device(name: str, method: str, feedback: Any = None) -> Any:
    """The device a classic ``method`` runs on for DEVICE ``name``: :func:`..device.array_device`, except that
    ``auto`` keeps the methods of :data:`GPU_SLOWER` on the CPU where their compiled kernels run (a GPU is used
    when asked for by name, ``cuda``); says so in ``feedback``."""
    from ..device import array_device

    dev = array_device(name)
    if ((name or "auto").strip().lower() == "auto" and dev.type == "cuda" and method in GPU_SLOWER
            and kernels.enabled("cpu")):
        if feedback is not None:
            feedback.info(f"DEVICE auto: {NAMES.get(method, method.upper())} runs its compiled CPU kernels, "
                          "measured faster than its GPU path (DEVICE cuda uses the GPU).")
        return array_device("cpu")
    return dev


@dataclass
class TileInputs:
    """A tile's inputs on the device: ``fine`` [P, B, H, W] (pairs), ``coarse`` [P, B, H, W] (pair dates),
    ``coarse_pred`` [B, H, W] (prediction date), ``valid`` [H, W] (every input valid), all covering ``tile.outer``;
    ``inner`` is the (row, col, height, width) of the tile's centre pixels inside the outer arrays."""

    fine: Any
    coarse: Any
    coarse_pred: Any
    valid: Any
    inner: tuple[int, int, int, int]


def read_tile(
    fine: list[DatedRaster], coarse: list[DatedRaster], coarse_pred: DatedRaster, tile: Tile, scale: float,
    device: Any,
) -> TileInputs:
    """Read the tile's outer window of every input as float32 tensors on ``device`` (one prediction date:
    ``coarse_pred`` [B, H, W])."""
    (_, inputs), = read_tile_dates(fine, coarse, [coarse_pred], [None], tile, scale, device)
    inputs.coarse_pred = inputs.coarse_pred[0]
    return inputs


DATES_PER_PASS = 16  # dates of a tile computed in one pass of a dates function (memory grows with them)
MAX_DATES_PER_PASS = 64  # with :func:`dates_per_pass`: the most a pass takes whatever the memory budget


def dates_per_pass(n_dates: int, bytes_per_pixel: float, bytes_per_date: float, bands: int, halo: int,
                   scene_side: int, memory_budget: float, side: int = 256) -> int:
    """How many dates one pass of a dates function takes so that a tile of ``side`` pixels (the output block, so
    that every tile writes whole blocks; the scene's ``scene_side`` when smaller) still fits ``memory_budget``:
    the pair-only work (per pixel and band ``bytes_per_pixel``) is then shared by as many dates as memory allows,
    at most :data:`MAX_DATES_PER_PASS` (issue 28: each pass repeats the similar-pixel search)."""
    outer = (min(side, scene_side) + 2 * halo) ** 2 * bands
    fit = int((memory_budget / outer - bytes_per_pixel) // max(bytes_per_date, 1e-9)) + 1
    return max(1, min(n_dates, MAX_DATES_PER_PASS, fit))


class TileDates:
    """The dates of a tile computed together (issue 28): a tile job asks for one date at a time; the first date of
    a pass computes the up to ``per_pass`` (default :data:`DATES_PER_PASS`) dates that share its pairs
    (``key(date)``), the others are served from here. Only the current tile's results are kept (a cancelled tile's
    leftovers are dropped)."""

    def __init__(self, dates: list, key, per_pass: int = DATES_PER_PASS) -> None:
        self.dates, self.key, self.per_pass = dates, key, per_pass
        self.results: dict = {}  # (tile index, date) -> result computed with an earlier date of the tile

    def cached(self, tile, date):
        """The result of ``date`` on ``tile`` if a pass computed it (removed from here), else None."""
        result = self.results.pop((tile.index, date), None)
        if result is None:
            for k in [k for k in self.results if k[0] != tile.index]:
                del self.results[k]
        return result

    def chunk(self, date) -> list:
        """``date`` and the dates after it that share its pairs, at most ``per_pass``."""
        same = [d for d in self.dates if self.key(d) == self.key(date)]
        return same[same.index(date):same.index(date) + self.per_pass]

    def put(self, tile, date, result) -> None:
        self.results[(tile.index, date)] = result


def read_tile_dates(fine: list[DatedRaster], coarse: list[DatedRaster], coarse_pred: list[DatedRaster],
                    dates: list[_dt.date], tile: Tile, scale: float, device: Any) -> list[tuple[list, TileInputs]]:
    """The tile's inputs for several prediction dates: (dates, inputs) per group of dates whose inputs are valid on
    the same pixels (``inputs.coarse_pred`` [D, B, H, W], ``inputs.valid`` the pixels where the pairs and those
    dates are all valid: exactly what :func:`read_tile` gives each date alone). The pairs are read once."""
    xp = backend()
    valid = np.ones((tile.outer.height, tile.outer.width), bool)
    arrays = []
    for item in list(fine) + list(coarse):
        data, ok = read_item(item, tile.outer, scale)
        arrays.append(data)
        valid &= ok
    groups: dict[bytes, tuple[np.ndarray, list, list]] = {}
    for item, date in zip(coarse_pred, dates):
        data, ok = read_item(item, tile.outer, scale)
        both = valid & ok
        entry = groups.setdefault(np.packbits(both).tobytes(), (both, [], []))  # one shape per tile
        entry[1].append(date)
        entry[2].append(data)

    def t(a):
        return xp.from_numpy(np.ascontiguousarray(a)).to(device)

    p = len(fine)
    rows, cols = tile.inner_in_outer
    inner = (rows.start, cols.start, rows.stop - rows.start, cols.stop - cols.start)
    fine_t, coarse_t = t(np.stack(arrays[:p])), t(np.stack(arrays[p:]))
    return [(group, TileInputs(fine=fine_t, coarse=coarse_t, coarse_pred=t(_stack_releasing(preds)), valid=t(ok),
                               inner=inner)) for ok, group, preds in groups.values()]


def _stack_releasing(arrays: list) -> np.ndarray:
    """np.stack(arrays), dropping each array from the list once copied: a pass of many dates never holds its
    images twice."""
    out = np.empty((len(arrays),) + arrays[0].shape, arrays[0].dtype)
    for i in range(len(arrays)):
        out[i] = arrays[i]
        arrays[i] = None
    return out


def box_sum(tensor: Any, size: int) -> Any:
    """Sums over every ``size`` x ``size`` window of the last two axes (no padding: the result is ``size - 1``
    smaller a side), from an integral image in float64: O(1) per pixel whatever the window (average pooling with a
    51-pixel kernel costs 2601 additions per pixel), and exact to float32 rounding."""
    F = namespace_of(tensor).nn.functional
    integral = F.pad(tensor.double().cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    total = (integral[..., size:, size:] - integral[..., :-size, size:] - integral[..., size:, :-size]
             + integral[..., :-size, :-size])
    return total.to(tensor.dtype)


def pad(tensor: Any, radius: int, value: float | bool) -> Any:
    """Pad the last two axes by ``radius`` with ``value`` (invalid outside the scene)."""
    if radius == 0:
        return tensor
    xp = namespace_of(tensor)
    if tensor.dtype == xp.bool:
        return xp.nn.functional.pad(tensor.to(xp.uint8), (radius,) * 4, value=int(value)).bool()
    return xp.nn.functional.pad(tensor, (radius,) * 4, value=value)


class Window:
    """Shifted views of padded tensors: ``view(t, dy, dx)`` holds, at each centre pixel, its neighbour at
    offset (dy, dx). ``t`` must have been padded by ``radius``."""

    def __init__(self, inner: tuple[int, int, int, int], radius: int) -> None:
        self.y0, self.x0, self.h, self.w = inner
        self.r = radius

    def view(self, tensor: Any, dy: int = 0, dx: int = 0) -> Any:
        y = self.y0 + self.r + dy
        x = self.x0 + self.r + dx
        return tensor[..., y:y + self.h, x:x + self.w]

    def offsets(self) -> list[tuple[int, int]]:
        """Every offset of the square (2r+1) x (2r+1) window, row by row."""
        return [(dy, dx) for dy in range(-self.r, self.r + 1) for dx in range(-self.r, self.r + 1)]

    def smallest(self, keys: Any, k: int) -> tuple[Any, Any, Any, Any]:
        """The ``k`` smallest of ``keys`` [offsets, h, w] (one per offset of :meth:`offsets`; inf = no candidate),
        a tie keeping the earlier offset (row by row, as the compiled kernels do): (their indices into the offsets
        [k, h, w], the chosen offsets (dy, dx) [k, h, w, 2], whether each is a candidate [k, h, w], its distance
        to the centre in pixels [k, h, w])."""
        xp = namespace_of(keys)
        best_values, best_indices = (x[:k] for x in keys.sort(dim=0, stable=True))
        chosen = xp.tensor(self.offsets(), device=keys.device)[best_indices]
        distance = xp.sqrt((chosen.to(keys.dtype) ** 2).sum(dim=-1))
        return best_indices, chosen, xp.isfinite(best_values), distance

    def gather(self, tensor: Any, chosen: Any) -> Any:
        """The values of the padded ``tensor`` [B, H, W] at the chosen neighbours ``chosen`` [k, h, w, 2] of each
        centre pixel: [B, k, h, w]."""
        xp = namespace_of(tensor)
        hp, wp = tensor.shape[-2:]
        ys = xp.arange(self.h, device=tensor.device)[:, None] + self.y0 + self.r + chosen[..., 0]
        xs = xp.arange(self.w, device=tensor.device)[None, :] + self.x0 + self.r + chosen[..., 1]
        flat = (ys * wp + xs).clamp(0, hp * wp - 1).flatten()
        return tensor.flatten(1)[:, flat].reshape(tensor.shape[0], chosen.shape[0], self.h, self.w)


def band_std(items: list[DatedRaster], scale: float, block: int = 512, unit: float | None = None,
             open_range: tuple[float, float] | None = None) -> np.ndarray:
    """Standard deviation of each band of each image over its valid pixels: [len(items), B] (scene-wide, so that
    tiles agree with the whole scene). Read in tiles of ``block`` x ``block`` pixels, so memory does not grow with
    the scene's size or width.
    With ``unit`` the values are first expressed in that unit and rounded (a program's stored integers), and the
    result is in that unit; with ``open_range`` (lo, hi) only values lo < v < hi count (per band)."""
    from ..tiles import plan_tiles

    result = []
    for item in items:
        info = item.info
        n = 0
        total = np.zeros(info.bands)
        squares = np.zeros(info.bands)
        for tile in plan_tiles(info.width, info.height, block):
            data, valid = read_item(item, tile.inner, scale)
            values = data[:, valid].astype(np.float64)
            if unit is not None:
                values = np.round(values / unit)
            if open_range is not None:
                keep = (values > open_range[0]) & (values < open_range[1])
                n = n + keep.sum(axis=1)
                values = np.where(keep, values, 0.0)
            else:
                n += values.shape[1]
            total += values.sum(axis=1)
            squares += (values * values).sum(axis=1)
        if np.any(n == 0):
            raise InputError(f"'{item.path}' has no valid pixel.")
        mean = total / n
        result.append(np.sqrt(np.maximum(squares / n - mean * mean, 0.0)))
    return np.array(result)


def block_sum(array: np.ndarray, f: int) -> np.ndarray:
    """Sums over f x f blocks of [B, H, W] (a partial block at the edge sums what it has), in float64: the coarse
    pixels rebuilt from an image on the fine grid (FSDAF, Fit-FC)."""
    b, h, w = array.shape
    ph, pw = -(-h // f) * f, -(-w // f) * f
    padded = np.zeros((b, ph, pw))
    padded[:, :h, :w] = array
    return padded.reshape(b, ph // f, f, pw // f, f).sum(axis=(2, 4))


def pair_sets(series: SceneSeries, date: _dt.date, pairs: int) -> list[DatedRaster]:
    """The ``pairs`` fine images nearest in time to ``date`` (1: the nearest; 2: the nearest before and after
    when both exist, else the two nearest), in date order."""
    if pairs == 1 or len(series.fine) == 1:
        return [series.nearest_pair(date)]
    around = series.pairs_around(date)
    if around:
        return list(around)
    fine = sorted(series.fine, key=lambda f: (abs((f.date - date).days), f.date > date))
    return sorted(fine[:2], key=lambda f: f.date)


def window_radius(window: int) -> int:
    """Radius of an odd window size."""
    check_window(window, "moving", 1)
    return window // 2


def check_window(window: int, method: str, minimum: int = 3) -> None:
    """A moving window is centred on its pixel: its side is odd, and at least ``minimum``."""
    if window < minimum:
        raise InputError(f"The {method} window must be at least {minimum} pixels (got {window}).")
    if window % 2 == 0:
        raise InputError(f"The {method} window must have an odd side, centred on its pixel (got {window}; use "
                         f"{window - 1} or {window + 1}).")


def cpu_tile_size(device: Any, compiled: bool = False) -> int | None:
    """Tile side for moving-window methods: on the CPU small tiles (128 pixels) keep each window step's tensors in
    cache, which measured about 1.7 times faster than 256 pixels; on a GPU, or with a compiled kernel (which keeps
    its working rows in cache itself, and wastes less on halos in large tiles), the memory budget decides (None)."""
    return 128 if device.type == "cpu" and not compiled else None


def fuse_moving_window(
    method: str, series: SceneSeries, dates: list[_dt.date], folder: str, scale: float, pairs: int,
    tile_function: Any, params: Any, bytes_per_pixel: float, device: str, feedback: Any, settings: str,
    statistics: Any = band_std, compiled: bool = False, dates_function: Any = None, bytes_per_date: float = 0.0,
    per_pass: int = DATES_PER_PASS, memory_budget: float | None = None,
) -> list[str]:
    """What STARFM and ESTARFM share: choose the pairs of each date, compute the scene-wide standard deviation of
    every pair image once (``statistics(items, scale)``), and run ``tile_function(inputs, sigma, params)`` tile by
    tile with a halo of the window radius (``compiled``: the tile function runs a compiled kernel on the CPU, see
    kernels.py). Writes ``<method>_<date>.tif`` files.

    ``dates_function(inputs, sigma, params)`` (issue 28): the same for up to ``per_pass`` dates at once
    (``inputs.coarse_pred`` [D, B, H, W]), returning one result per date; a tile then computes the dates that share
    their pairs, and the same validity of the inputs on the tile, in one pass (the pair-only work done once) and
    serves them from a cache as the tile job asks for them. ``bytes_per_date``: its extra memory per pixel and
    date. ``memory_budget``: bytes per tile (None: :data:`..fusion.DEFAULT_MEMORY_BUDGET`)."""
    from ..device import array_device, describe_device
    from ..fusion import DEFAULT_MEMORY_BUDGET, write_predictions

    xp = backend()

    dev = array_device(device)
    if feedback is not None:
        feedback.info(f"{method.upper()} on {describe_device(dev)}: {settings}.")
    kernels.announce_compilation(dev, feedback)
    sigmas: dict[str, np.ndarray] = {}
    plans = {}
    for date in dates:
        plans[date] = pair_sets(series, date, pairs)
        for p in plans[date]:
            if p.path not in sigmas:
                sigmas[p.path] = statistics([p], scale)[0]
        if feedback is not None:
            used = plans[date]
            outside = len(used) == 2 and not used[0].date <= date <= used[1].date
            feedback.info(f"{method.upper()} {date.isoformat()}: pair(s) " + ", ".join(p.date.isoformat() for p in used)
                          + (" (the date is outside them: the method extrapolates)" if outside else ""))

    passes = TileDates(dates, lambda d: [p.path for p in plans[d]], per_pass)

    def predict(date, tile):
        done = passes.cached(tile, date)
        if done is not None:
            return done
        used = plans[date]
        sigma = xp.tensor(np.stack([sigmas[p.path] for p in used]), dtype=xp.float64, device=dev).float()
        if dates_function is None:
            inputs = read_tile(used, [series.coarse_at(p.date) for p in used], series.coarse_at(date), tile, scale,
                               dev)
            with xp.no_grad():
                prediction, valid = tile_function(inputs, sigma, params)
            return prediction.cpu().numpy(), valid.cpu().numpy()
        chunk = passes.chunk(date)
        for group, inputs in read_tile_dates(used, [series.coarse_at(p.date) for p in used],
                                             [series.coarse_at(d) for d in chunk], chunk, tile, scale, dev):
            with xp.no_grad():
                results = dates_function(inputs, sigma, params)
            for d, (prediction, valid) in zip(group, results):
                passes.put(tile, d, (prediction.cpu().numpy(), valid.cpu().numpy()))
        return passes.cached(tile, date)

    per_pixel = bytes_per_pixel + (bytes_per_date * (min(per_pass, len(dates)) - 1) if dates_function else 0)
    return write_predictions(series, dates, method, folder, predict, scale, halo=window_radius(params.window),
                             bytes_per_pixel=per_pixel, memory_budget=memory_budget or DEFAULT_MEMORY_BUDGET,
                             tile_size=params.tile_size or cpu_tile_size(dev, compiled and kernels.enabled(dev)),
                             feedback=feedback)
