"""ESTARFM: Enhanced STARFM (Zhu, Chen, Gao, Chen & Masek 2010, Remote Sensing of Environment 114, 2610-2623),
reproducing the program the literature uses: Xiaolin Zhu's ESTARFM IDL code, 2018 revision (debugging history up
to 7/27/2018), whose rules are listed here.

Two pairs t_m < t_p < t_n (fine F, coarse C on the fine grid), values in reflectance (the program's DN_min and
DN_max are ``data_min`` and ``data_max``, 0 and 1 for 0-10000 data at SCALE 1e-4). For each central fine pixel, in
a window of 2 w + 1 pixels (w the half window, 25 by default; clipped at the scene border):

* similar pixels: |F(x_i, t_k, b) - F(x_c, t_k, b)| < 2 sigma_k(b) / m (strict) for EVERY band b and BOTH pair
  dates k, sigma_k(b) the population standard deviation of the fine band over the scene, m the number of
  classes; the pixel must be valid in every input;
* spectral similarity R_i: the Pearson correlation between the similar pixel's fine and coarse values (all bands
  of both dates); with a single band (e.g. NDVI) R_i = 1 - (|(F_m - C_m) / (F_m + C_m)| + |(F_n - C_n) / (F_n +
  C_n)|) / 2 instead (a correlation of two values is +-1); an undefined R_i is 0.5;
* weight: D_i = (1 - R_i) (1 + d_i / w) + 1e-7, d_i the distance to the centre in pixels, W_i = (1 / D_i) /
  sum(1 / D_i);
* with more than 5 similar pixels:
  - conversion coefficient V (per band): the slope of the least-squares regression of fine on coarse values of
    the similar pixels at both dates, computed only where |mean C_m - mean C_n| over the similar pixels is at
    least 0.02 data_max, and kept when significant (F test, p <= 0.05) and 0 < V <= 5; otherwise V = 1;
  - prediction from each pair: F_k(t_p) = F(x_c, t_k) + sum_i W_i V (C(x_i, t_p) - C(x_i, t_k));
  - temporal weights per band from the window's valid pixels: T_k = (1 / |mean C(t_p) - mean C(t_k)|) /
    sum_k (...); F(t_p) = T_m F_m(t_p) + T_n F_n(t_p);
  - a prediction <= data_min or >= data_max is replaced by sum_k T_k sum_i W_i F(x_i, t_k);
* with 5 similar pixels or fewer: F(t_p) = sum_k T_k (F(x_c, t_k) + mean C(t_p) - mean C(t_k)) over the window.

Deviations from the program: arithmetic in float32 reflectance instead of float64 DN (differences far below one
stored unit); the prediction of a pixel with 5 similar pixels or fewer is clamped into the data range (the
program has no rule there and can write negative reflectance after a large drop); the similarity thresholds use
the scene's valid pixels (the program: every pixel of its processing block, background included; the same on
scenes without background).
Defaults: w = 25 (a 51-pixel window), m = 4.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass

import numpy as np

from ..arrays import backend
from ..errors import InputError
from ..feedback import Feedback
from ..series import SceneSeries
from . import kernels
from .common import (TileInputs, Window, box_sum, check_window, dates_per_pass, fuse_moving_window, pad,
                     window_radius)


@dataclass
class EstarfmParams:
    """ESTARFM settings (defaults as documented in the module)."""

    tile_size: int = 0  # tile side in pixels; 0 = automatic (128 on the CPU, the memory budget on a GPU)
    window: int = 51
    classes: int = 4
    max_slope: float = 5.0
    data_min: float = 0.0
    data_max: float = 1.0
    min_similar: int = 6  # the program regresses with more than 5 similar pixels
    min_coarse_change: float = 0.02  # x data_max: |mean C_m - mean C_n| below this gives V = 1

    def validate(self) -> None:
        check_window(self.window, "ESTARFM")
        if self.classes < 1:
            raise InputError(f"The number of classes must be at least 1 (got {self.classes}).")
        if not self.data_min < self.data_max:
            raise InputError(f"The data range [{self.data_min}, {self.data_max}] is empty.")

    @property
    def radius(self) -> int:
        return window_radius(self.window)


def _t_critical(max_df: int, device):
    """Two-sided 95 % critical values of Student's t for 1..max_df degrees of freedom (index = df)."""
    from scipy import stats

    xp = backend()
    table = np.full(max_df + 1, np.inf)
    table[1:] = stats.t.ppf(0.975, np.arange(1, max_df + 1))
    return xp.tensor(table, dtype=xp.float32, device=device)


def estarfm_tile(inputs: TileInputs, sigma, params: EstarfmParams):
    """ESTARFM (module docstring) for the centre pixels of one tile; ``inputs`` hold exactly two pairs. ``sigma``
    [2, B]. Returns (prediction [B, h, w], valid [h, w])."""
    return estarfm_tile_dates(inputs, sigma, params)[0]


def estarfm_tile_dates(inputs: TileInputs, sigma, params: EstarfmParams) -> list:
    """:func:`estarfm_tile` for several prediction dates at once (issue 28): ``inputs.coarse_pred`` [D, B, H, W]
    (or [B, H, W]) and ``inputs.valid`` shared by the dates. The similar pixels, their weights and the conversion
    coefficients depend on the pairs only: one pass over the window accumulates them once and the weighted coarse
    change of every date (each date's sums in the same order as alone: identical results). Returns one
    (prediction, valid) per date. The compiled path of several dates takes the dates' images over:
    ``inputs.coarse_pred`` is None afterwards (a pass of many dates would otherwise hold them twice)."""
    xp = backend()
    if inputs.fine.shape[0] != 2:
        raise InputError("ESTARFM needs two pairs.")
    r = params.radius
    win = Window(inputs.inner, r)
    fine = pad(inputs.fine, r, 0.0)
    coarse = pad(inputs.coarse, r, 0.0)
    coarse_pred = inputs.coarse_pred if inputs.coarse_pred.dim() == 4 else inputs.coarse_pred[None]  # unpadded
    n_dates = coarse_pred.shape[0]
    valid = pad(inputs.valid, r, False)
    bands = fine.shape[1]
    # spectral similarity 1 - R per pixel (it depends on the similar pixel only)
    if bands == 1:
        ratio = ((fine - coarse) / (fine + coarse)).abs()[:, 0]  # [2, H, W]
        one_minus_r = 0.5 * ratio.sum(dim=0)
    else:
        f_vec = fine.reshape(2 * bands, *fine.shape[-2:])
        c_vec = coarse.reshape(2 * bands, *coarse.shape[-2:])
        fc, cc = f_vec - f_vec.mean(dim=0), c_vec - c_vec.mean(dim=0)
        denom = xp.sqrt((fc * fc).sum(dim=0) * (cc * cc).sum(dim=0))
        one_minus_r = 1.0 - (fc * cc).sum(dim=0) / denom
    one_minus_r = xp.where(xp.isfinite(one_minus_r), one_minus_r, 0.5)  # undefined R: 0.5
    one_minus_r = xp.where(valid, one_minus_r, 0.0)
    # sum W (C(t_p) - C(t_k)) = sum W C(t_p) - sum W C(t_k): per date only sum W C(t_p) [B], the pairs' part once
    # sums over the similar pixels, stacked so that one multiply-add per window step accumulates them all:
    # C_m, C_n (sum x = C_m + C_n), sum y, sum xx, sum xy, sum yy (x coarse, y fine, both dates)
    stats = xp.cat([coarse[0], coarse[1], fine.sum(dim=0), (coarse * coarse).sum(dim=0),
                       (coarse * fine).sum(dim=0), (fine * fine).sum(dim=0)])
    inv_threshold = (params.classes / (2.0 * sigma).clamp_min(1e-12))[:, :, None, None]
    fine_c = win.view(fine)
    h, w = fine_c.shape[-2:]
    if kernels.enabled(fine.device):  # the same sums, compiled (kernels.py)
        ones = xp.ones_like(one_minus_r)[None]
        if n_dates <= kernels.ESTARFM_DENSE_DATES:  # every neighbour, channels first
            coarse_pred = pad(coarse_pred, r, 0.0)
            by_weight = xp.cat([ones, coarse_pred.flatten(0, 1), coarse.flatten(0, 1), fine.flatten(0, 1)])
            acc_w, acc_s = (xp.from_numpy(x) for x in kernels.estarfm_dense_sums(
                fine.flatten(0, 1), inv_threshold.flatten(), valid, one_minus_r, by_weight, xp.cat([ones, stats]),
                win.y0 + r, win.x0 + r, h, w, r))
        else:  # the similar neighbours only, channels last
            by_weight = kernels.channels_last(
                [ones, coarse_pred.flatten(0, 1), coarse.flatten(0, 1), fine.flatten(0, 1)], pad=r)
            # the dates' coarse images live on in the kernel's input only (a pass holds many dates): the caller's
            # copy as read is released here, the window means read the channels-last views
            inputs.coarse_pred = None
            coarse_pred = xp.from_numpy(by_weight).permute(2, 0, 1)[1:1 + bands * n_dates].reshape(
                n_dates, bands, *by_weight.shape[:2])  # views
            acc_w, acc_s = (xp.from_numpy(x).permute(2, 0, 1) for x in kernels.estarfm_sums(
                fine.flatten(0, 1), inv_threshold.flatten(), valid, one_minus_r, by_weight,
                kernels.channels_last([ones, stats]), win.y0 + r, win.x0 + r, h, w, r))
        weight_sum, count, sums = acc_w[0], acc_s[0], acc_s[1:]
        weighted_pred = acc_w[1:1 + bands * n_dates].reshape(n_dates, 1, bands, h, w)
        weighted_coarse, weighted_fine = acc_w[1 + bands * n_dates:].reshape(2, 2, bands, h, w)
    else:
        coarse_pred = pad(coarse_pred, r, 0.0)
        weight_sum = xp.zeros((h, w), dtype=fine.dtype, device=fine.device)
        count = xp.zeros_like(weight_sum)
        weighted_pred = xp.zeros((n_dates, 1) + tuple(fine_c.shape[1:]), dtype=fine.dtype, device=fine.device)
        weighted_coarse = xp.zeros_like(fine_c)
        weighted_fine = xp.zeros_like(fine_c)
        sums = xp.zeros((6 * bands, h, w), dtype=fine.dtype, device=fine.device)
        for dy, dx in win.offsets():
            # similar in every band at both dates: max_k,b |dF| / threshold < 1
            similar = ((win.view(fine, dy, dx) - fine_c).abs() * inv_threshold).flatten(0, 1).amax(dim=0) < 1.0
            sim = (similar & win.view(valid, dy, dx)).to(fine.dtype)
            weight = sim / (win.view(one_minus_r, dy, dx) * (1.0 + math.hypot(dy, dx) / r) + 1e-7)
            weight_sum += weight
            count += sim
            weighted_pred += weight * win.view(coarse_pred, dy, dx)[:, None]
            weighted_coarse += weight * win.view(coarse, dy, dx)
            weighted_fine += weight * win.view(fine, dy, dx)
            sums += sim * win.view(stats, dy, dx)
    pairs = _PairTerms(inputs, params, fine, coarse, valid, fine_c, weight_sum, count, weighted_coarse,
                       weighted_fine, sums)
    return [pairs.predict(coarse_pred[d], weighted_pred[d]) for d in range(n_dates)]


class _PairTerms:
    """What the prediction needs from the window sums that depends on the pairs only (conversion coefficients,
    the pairs' window means, the fallback values), computed once for every date of a pass."""

    def __init__(self, inputs, params, fine, coarse, valid, fine_c, weight_sum, count, weighted_coarse,
                 weighted_fine, sums) -> None:
        xp = backend()
        bands = fine.shape[1]
        h, w = fine_c.shape[-2:]
        self.params, self.fine_c, self.weighted_coarse = params, fine_c, weighted_coarse
        self.win = Window(inputs.inner, params.radius)
        c_m, c_n, sy, sxx, sxy, syy = sums.split(bands)
        sx = c_m + c_n
        self.enough = count >= params.min_similar
        # conversion coefficient: regression of fine on coarse over n = 2 x similar pixels samples
        n = 2.0 * count
        cov = n * sxy - sx * sy
        var_x = n * sxx - sx * sx
        var_y = n * syy - sy * sy
        slope = cov / var_x.clamp_min(1e-30)
        r2 = (cov * cov / (var_x * var_y).clamp_min(1e-30)).clamp(0.0, 1.0 - 1e-7)
        df = (n - 2).clamp_min(1.0)
        t_stat = xp.sqrt(r2 * df / (1.0 - r2))  # F = t^2: the program's F test
        t_crit = _t_critical(int(n.max().item()) + 1, fine.device)[df.long()]
        coarse_moved = (c_m - c_n).abs() >= params.min_coarse_change * params.data_max * count
        stable = self.enough & coarse_moved & (var_x > 1e-12 * n * n) & (t_stat >= t_crit) & (slope > 0) \
            & (slope <= params.max_slope)
        self.v = xp.where(stable, slope, 1.0)
        self.safe_weights = weight_sum.clamp_min(1e-30)
        self.fine_mean = weighted_fine / self.safe_weights  # [2, B, h, w]: the similar pixels' fine values
        # temporal weights from the window means of the coarse images (valid pixels only)
        y0, x0 = inputs.inner[0], inputs.inner[1]
        self.crop = (slice(y0, y0 + h), slice(x0, x0 + w))
        self.valid = valid
        self.n_valid = self._window_sum(valid[None].to(fine.dtype))[0].clamp_min(1.0)
        self.means_k = self._window_sum(xp.where(valid, coarse, 0.0)) / self.n_valid  # [2, B, h, w]

    def _window_sum(self, t):
        """Sums over the window of [..., H, W] (padded), at the centre pixels."""
        return box_sum(t, self.params.window)[(...,) + self.crop]

    def predict(self, coarse_pred, weighted_pred):
        """(prediction [B, h, w], valid [h, w]) of one date from its coarse image [B, H, W] (padded) and its
        weighted sum sum_i W_i C(x_i, t_p) [1, B, h, w]."""
        xp = backend()
        params = self.params
        from_pairs = self.fine_c + self.v * (weighted_pred - self.weighted_coarse) / self.safe_weights  # [2, B]
        means_p = self._window_sum(xp.where(self.valid, coarse_pred, 0.0)) / self.n_valid
        mean_change = means_p[None] - self.means_k  # [2, B, h, w]
        inverse = 1.0 / (mean_change.abs() + 1e-14)
        t_weight = inverse / inverse.sum(dim=0)
        prediction = (t_weight * from_pairs).sum(dim=0)
        abnormal = (prediction <= params.data_min) | (prediction >= params.data_max)
        prediction = xp.where(abnormal, (t_weight * self.fine_mean).sum(dim=0), prediction)
        too_few = (t_weight * (self.fine_c + mean_change)).sum(dim=0).clamp(params.data_min, params.data_max)
        prediction = xp.where(self.enough, prediction, too_few)
        return prediction, self.win.view(self.valid)


def fuse_estarfm(
    series: SceneSeries, dates: list[_dt.date], folder: str, scale: float = 1e-4,
    params: EstarfmParams | None = None, device: str = "auto", feedback: Feedback | None = None,
) -> list[str]:
    """Predict every date with ESTARFM from the pairs before and after it; writes ``estarfm_<date>.tif``."""
    params = params or EstarfmParams()
    params.validate()
    if len(series.fine) < 2:
        raise InputError("ESTARFM needs two fine/coarse pairs; the series has one.")
    # per pixel and band: about 30 floats for the pairs' arrays and window sums; each further date of a pass adds
    # 3: its coarse image in the kernel's channels-last input, its weighted sum, its prediction until written (the
    # image as read is released before the kernel runs). Each pass repeats the similarity test, so a pass takes
    # the dates that fit a 256-pixel tile (the output block: smaller tiles rewrite blocks, and the 51-pixel
    # window's halo is recomputed more; or the tile size the user set) in 1.5 times the default tile budget: the
    # 46 dates of an 8-day year in one pass.
    from ..fusion import DEFAULT_MEMORY_BUDGET

    per_pixel, per_date, budget = 4 * 30, 4 * 3, 1.5 * DEFAULT_MEMORY_BUDGET
    grid = series.grid
    per_pass = dates_per_pass(len(dates), per_pixel, per_date, grid.bands, params.radius,
                              max(grid.width, grid.height), budget, side=params.tile_size or 256)
    return fuse_moving_window("estarfm", series, dates, folder, scale, 2, estarfm_tile, params, per_pixel, device,
                              feedback, f"window {params.window}, {params.classes} classes", compiled=True,
                              dates_function=estarfm_tile_dates, bytes_per_date=per_date, per_pass=per_pass,
                              memory_budget=budget)
