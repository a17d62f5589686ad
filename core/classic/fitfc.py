"""Fit-FC: regression model Fitting, spatial Filtering and residual Compensation (Wang & Atkinson 2018, "Spatio-
temporal fusion for daily Sentinel-2 images", Remote Sensing of Environment 204, 31-42), following the order of the
authors' MATLAB program (qunmingwang/Fit-FC): regression, then residual compensation, then the filter.

One pair (the nearest fine image F1 and the coarse image C1 of its date) and the coarse image C2 of the date. The
coarse pixels x_i are rebuilt as block means (``factor`` x ``factor`` fine pixels) of the coarse images on the fine
grid, as FSDAF does.

1. RM fitting, per band, in a window of (2 W + 1)^2 coarse pixels around every coarse pixel (clipped at the scene
   border; W = ``regression_radius``), least squares of C2 on C1:
       a(x_i) = cov(C1, C2) / var(C1),   b(x_i) = mean(C2) - a(x_i) mean(C1)                          (paper eq. 2)
   and the fine prediction F_RM(x_ij) = a(x_i) F1(x_ij) + b(x_i), a and b taken from the pixel's coarse pixel
   (nearest-neighbour upsampling)                                                                     (eq. 3)
2. Residual compensation: R(x_i) = C2(x_i) - (a(x_i) C1(x_i) + b(x_i)), upsampled bicubically to the fine grid
   and added: F_RC = F_RM + r                                                                         (eqs. 4, 7)
3. Spatial filtering (the program's similar-pixel filter, STARFM-like): in a ``window`` x ``window`` window of
   fine pixels, the ``similar`` pixels most similar to the centre in F1 (D = mean over the bands of |F1(x_k) -
   F1(x_ij)|, the centre itself included, ties to the earlier offset row by row), weights
       w_k = (1 / (1 + d_k / A)) / sum_k (1 / (1 + d_k / A)),   A = window / 2,  d_k the distance in pixels
   and F2(x_ij) = sum_k w_k F_RC(x_k)                                                                 (eqs. 5-6)

Defaults: W = 5 (an 11 x 11 window of coarse pixels), the setting of the paper's experiments (the program asks
for W; its example, W = 1, fits 9 coarse pixels and measured worse than the nearest fine image on the sample's
flood date); a 41-pixel filter window (w0 = 20) and 20 similar pixels, fixed in the authors' MODIS-Landsat program;
the coarse factor from the data (the program asks for its zoom ratio, 16 for MODIS 480 m / Landsat 30 m):
recorded by stf:resample_coarse, else estimated from the coarse images, else refused (:mod:`..coarse_grid`).

Deviations, each for a reason:
- Similarity uses every band of F1; the program uses the red and NIR bands, which a plain GeoTIFF does not name.
- Where var(C1) over the window is 0 (a uniform window) or the window has fewer than 2 valid coarse pixels the
  regression is undefined (the program divides by zero): there a = 1, b = mean(C2) - mean(C1) (the coarse change).
- Bicubic interpolation is torch's (Keys' cubic with a = -0.75, edges replicated); MATLAB's imresize uses a = -0.5.
- Invalid pixels (nodata in F1, or a coarse pixel with no valid value at either date) are no candidates of the
  filter, and are left out of the block means; a coarse pixel without any valid value has no residual (0).
- Predictions are clamped into the series' value range (0-1 reflectance, wider where the pairs are), as the R
  port clamps into its data range: a steep local slope can carry F1's contrast below 0 (the sample's flood).
Scene-wide steps 1-2 run once per date on coarse arrays (small); step 3 runs tile by tile with a halo of the
filter radius (tiles give exactly the whole-scene result), on the compiled kernel on a CPU (kernels.py) or on
torch elsewhere.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..coarse_grid import resolve_factor
from ..arrays import backend
from ..errors import InputError
from ..feedback import Feedback, SubFeedback, check_cancel
from ..fusion import series_value_range, write_predictions
from ..deep.common import upsample_window
from ..series import DatedRaster, SceneSeries, read_item
from ..tiles import Tile, plan_tiles
from . import kernels
from .common import (DATES_PER_PASS, TileDates, Window, block_sum, box_sum, check_window, cpu_tile_size,
                     method_device, pad, pair_sets, window_radius)


@dataclass
class FitfcParams:
    """Fit-FC settings (defaults as documented in the module)."""

    tile_size: int = 0  # tile side in pixels; 0 = automatic (128 on the CPU torch path, else the memory budget)
    factor: int = 0  # 0: from the coarse images (recorded native pixel size, else estimated; core/coarse_grid.py)
    regression_radius: int = 5
    window: int = 41
    similar: int = 20

    def validate(self) -> None:
        if self.factor < 0 or self.factor == 1:
            raise InputError(f"The coarse factor must be at least 2, or 0 to read it from the coarse images (got "
                             f"{self.factor}).")
        if self.regression_radius < 1:
            raise InputError(f"The regression window radius must be at least 1 coarse pixel (got "
                             f"{self.regression_radius}).")
        check_window(self.window, "Fit-FC filter")
        if self.similar < 1 or self.similar > self.window ** 2:
            raise InputError(f"The number of similar pixels must be between 1 and window^2 (got {self.similar}).")


def coarse_means(fine: DatedRaster, c1: DatedRaster, c2: DatedRaster, scale: Any, factor: int, height: int,
                 width: int, feedback: Feedback | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block means of C1 and C2 over the coarse pixels ([B, hc, wc] float64 each) from the pixels valid in both,
    and the number of those pixels per coarse pixel [hc, wc]. The fine image is read only for its grid."""
    f = factor
    hc, wc = -(-height // f), -(-width // f)
    bands = fine.info.bands
    sums = np.zeros((2, bands, hc, wc))
    count = np.zeros((hc, wc))
    for tile in plan_tiles(width, height, max(f, (512 // f) * f)):  # block-aligned tiles
        check_cancel(feedback)
        w = tile.inner
        a, va = read_item(c1, w, scale)
        b, vb = read_item(c2, w, scale)
        valid = va & vb
        by, bx = w.y // f, w.x // f
        nby, nbx = -(-w.height // f), -(-w.width // f)
        for i, image in enumerate((a, b)):
            sums[i, :, by:by + nby, bx:bx + nbx] += block_sum(np.where(valid, image, 0.0), f)
        count[by:by + nby, bx:bx + nbx] += block_sum(valid[None].astype(float), f)[0]
    means = sums / np.maximum(count, 1)
    return means[0], means[1], count


def regression(c1: np.ndarray, c2: np.ndarray, count: np.ndarray, radius: int) -> tuple[np.ndarray, ...]:
    """Step 1-2 on the coarse grid: slope a, intercept b and residual R = C2 - (a C1 + b) [B, hc, wc] of the least
    squares fit of C2 on C1 over the (2 radius + 1)^2 window of valid coarse pixels around each coarse pixel
    (clipped at the border); a = 1, b = mean(C2) - mean(C1) where the fit is undefined. R is 0 where the coarse
    pixel has no valid value."""
    xp = backend()
    ok = xp.from_numpy((count > 0).astype(np.float64))
    x, y = xp.from_numpy(c1) * ok, xp.from_numpy(c2) * ok
    size = 2 * radius + 1

    def window_sum(t):  # zero outside the scene: the window is clipped at the border
        return box_sum(xp.nn.functional.pad(t, (radius,) * 4), size)

    n = window_sum(ok[None])
    sx, sy, sxx, sxy = (window_sum(t) for t in (x, y, x * x, x * y))
    n_safe = n.clamp_min(1.0)
    mx, my = sx / n_safe, sy / n_safe
    var = sxx / n_safe - mx * mx
    cov = sxy / n_safe - mx * my
    # relative test: float64 window sums of reflectance leave ~1e-16 of their square as noise
    defined = (n >= 2) & (var > 1e-12 * (sxx / n_safe).clamp_min(1e-30))
    a = xp.where(defined, cov / xp.where(defined, var, xp.ones_like(var)), xp.ones_like(var))
    b = my - a * mx
    residual = xp.where(ok.bool(), y - (a * x + b), xp.zeros_like(y))
    return a.numpy(), b.numpy(), residual.numpy()


def similar_filter(fine: Any, value: Any, valid: Any, inner: tuple[int, int, int, int], params: FitfcParams
                   ) -> tuple[Any, Any]:
    """Step 3 for the centre pixels ``inner`` (row, col, height, width) of the outer arrays ``fine``, ``value``
    [B, H, W] and ``valid`` [H, W]: the weighted mean of ``value`` over the ``similar`` neighbours with the
    smallest D = mean_b |F1(x_k) - F1(x_ij)|; returns it [B, h, w] and whether the centre had any valid neighbour.
    ``value`` [C, H, W] may hold several dates' bands (C = dates x B, issue 28): the neighbours and their weights
    depend on F1 and the validity only, so they are chosen once for all ([C, h, w] out, each as alone)."""
    xp = backend()
    r = window_radius(params.window)
    win = Window(inner, r)
    fine_p, value_p, valid_p = pad(fine, r, 0.0), pad(value, r, 0.0), pad(valid, r, False)
    k = min(params.similar, (2 * r + 1) ** 2)
    if kernels.enabled(fine.device):  # the same selection and weights, compiled (kernels.py)
        result, found = kernels.fitfc_similar(fine_p, value_p, ~valid_p, win.y0 + r, win.x0 + r, win.h, win.w,
                                                       r, k)
        return xp.from_numpy(result), xp.from_numpy(found) & win.view(valid_p)
    offsets = win.offsets()
    centre = win.view(fine_p)
    h, w = centre.shape[-2:]
    keys = xp.empty((len(offsets), h, w), dtype=fine.dtype, device=fine.device)
    for i, (dy, dx) in enumerate(offsets):
        xp.mean((win.view(fine_p, dy, dx) - centre).abs(), dim=0, out=keys[i])
        keys[i].masked_fill_(~win.view(valid_p, dy, dx), math.inf)
    _, chosen, usable, d = win.smallest(keys, k)
    del keys
    weight = xp.where(usable, 1.0 / (1.0 + d / (params.window / 2.0)), 0.0)
    weight = weight / weight.sum(dim=0).clamp_min(1e-30)
    neighbours = win.gather(value_p, chosen)
    return (weight[None] * neighbours).sum(dim=1), usable.any(dim=0) & win.view(valid_p)


def fuse_fitfc(
    series: SceneSeries, dates: list[_dt.date], folder: str, scale: float = 1e-4,
    params: FitfcParams | None = None, device: str = "auto", feedback: Feedback | None = None,
) -> list[str]:
    """Predict every date with Fit-FC from its nearest pair; writes ``fitfc_<date>.tif``."""
    from ..device import describe_device

    xp = backend()
    params = params or FitfcParams()
    params.validate()
    dev = method_device(device, "fitfc", feedback)
    grid = series.grid
    params = replace(params, factor=resolve_factor(series, params.factor, "Fit-FC", feedback))
    f = params.factor
    if feedback is not None:
        feedback.info(f"Fit-FC on {describe_device(dev)}: coarse factor {f}, regression window "
                      f"{2 * params.regression_radius + 1} x {2 * params.regression_radius + 1} coarse pixels, filter "
                      f"window {params.window}, {params.similar} similar pixels.")
    kernels.announce_compilation(dev, feedback)
    fits = {}
    for i, date in enumerate(dates):  # steps 1-2 on the coarse grid (small), once per date
        sub = SubFeedback(feedback, 20.0 * i / len(dates), 20.0 * (i + 1) / len(dates)) if feedback else None
        pair = pair_sets(series, date, 1)[0]
        c1, c2, count = coarse_means(pair, series.coarse_at(pair.date), series.coarse_at(date), scale, f,
                                     grid.height, grid.width, sub)
        a, b, residual = regression(c1, c2, count, params.regression_radius)
        fits[date] = (pair, a.astype(np.float32), b.astype(np.float32), residual, count > 0)
        if feedback is not None:
            inside = count > 0
            feedback.info(f"Fit-FC {date.isoformat()} from the pair {pair.date.isoformat()}: median slope (band 1) "
                          f"{float(np.median(a[0][inside])) if inside.any() else float('nan'):.3f}, residual RMS "
                          f"{float(np.sqrt(np.mean(residual[:, inside] ** 2))) if inside.any() else 0.0:.4f}.")

    passes = TileDates(dates, lambda d: fits[d][0].path)

    def predict(date: _dt.date, tile: Tile):
        """The dates of a tile that share the pair and the validity in one filter pass (issue 28)."""
        done = passes.cached(tile, date)
        if done is not None:
            return done
        pair = fits[date][0]
        chunk = passes.chunk(date)
        o = tile.outer
        f1, f1_valid = read_item(pair, o, scale)
        ys, xs = np.arange(o.y, o.y + o.height) // f, np.arange(o.x, o.x + o.width) // f
        rows, cols = tile.inner_in_outer
        inner = (rows.start, cols.start, rows.stop - rows.start, cols.stop - cols.start)
        t = lambda x: xp.from_numpy(np.ascontiguousarray(x)).to(dev)  # noqa: E731
        groups: dict = {}  # validity -> [date]
        for d in chunk:
            valid = f1_valid & fits[d][4][ys][:, xs]
            groups.setdefault(valid.tobytes(), (valid, []))[1].append(d)
        with xp.no_grad():
            f1_t = t(f1)
            for valid, group in groups.values():
                values = []
                for d in group:
                    _, a, b, residual, _ = fits[d]
                    up = upsample_window(t(residual.astype(np.float32))[None], f, o)[0]  # bicubic, centres aligned
                    values.append(t(a[:, ys][:, :, xs]) * f1_t + t(b[:, ys][:, :, xs]) + up)  # steps 1-2, fine grid
                prediction, ok = similar_filter(f1_t, xp.cat(values), t(valid), inner, params)
                prediction, ok = prediction.cpu().numpy(), ok.cpu().numpy()
                bands = f1.shape[0]
                for i, d in enumerate(group):
                    passes.put(tile, d, (prediction[i * bands:(i + 1) * bands], ok))
        return passes.cached(tile, date)

    second = SubFeedback(feedback, 20.0, 100.0) if feedback else None
    compiled = kernels.enabled(dev)
    return write_predictions(series, dates, "fitfc", folder, predict, scale, halo=window_radius(params.window),
                             # the torch path holds a key, a sorted key and an index per window offset and pixel
                             bytes_per_pixel=4 * (12 if compiled else 4 * params.window ** 2 + 8)
                             + 4 * 3 * (min(DATES_PER_PASS, len(dates)) - 1),  # per band: dates of a pass
                             tile_size=params.tile_size or cpu_tile_size(dev, compiled), feedback=second,
                             value_range=series_value_range(series, scale))
