"""ESTARFM: Enhanced STARFM (Zhu, Chen, Gao, Chen & Masek 2010, Remote Sensing of Environment 114, 2610-2623).

Two pairs t_m < t_p < t_n (fine F, coarse C on the fine grid). For each central fine pixel, in a w x w window:

* similar pixels: |F(x_i, t_k, b) - F(x_c, t_k, b)| <= 2 sigma(b) / m for EVERY band b and BOTH pair dates k
  (sigma the scene-wide standard deviation of the fine band, m the number of classes);
* weight of similar pixel i: R_i = Pearson correlation between its fine and coarse spectra (all bands, both
  dates), d_i = 1 + sqrt((x_c - x_i)^2 + (y_c - y_i)^2) / (w / 2), D_i = (1 - R_i) d_i + 1e-7 (the reference
  code's guard), W_i = (1 / D_i) / sum(1 / D_i);
* conversion coefficient V: slope of the linear regression of fine on coarse reflectance over the similar pixels
  at both pair dates (per band). Fallback to V = 1 (the STARFM assumption) when the regression is unstable: fewer
  than 3 similar pixels, no coarse variance, a slope not significant at the 95 % level (t test), or a slope
  outside (0, 5];
* prediction from each pair: F_k(t_p) = F(x_c, t_k) + V sum_i W_i (C(x_i, t_p) - C(x_i, t_k));
* temporal weights from the coarse change in the window: T_k = (1 / |sum C(t_k) - sum C(t_p)|) / sum_k (...),
  sums over the window's valid pixels, per band; F(t_p) = T_m F_m(t_p) + T_n F_n(t_p).

Defaults: w = 51 fine pixels (half window 25), m = 4.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass

import numpy as np

from ..device import import_torch
from ..errors import InputError
from ..feedback import Feedback
from ..series import SceneSeries
from .common import TileInputs, Window, fuse_moving_window, pad, window_radius


@dataclass
class EstarfmParams:
    """ESTARFM settings (defaults as documented in the module)."""

    tile_size: int = 0  # tile side in pixels; 0 = automatic (128 on the CPU, the memory budget on a GPU)
    window: int = 51
    classes: int = 4
    max_slope: float = 5.0

    def validate(self) -> None:
        if self.window < 3:
            raise InputError(f"The ESTARFM window must be at least 3 pixels (got {self.window}).")
        if self.classes < 1:
            raise InputError(f"The number of classes must be at least 1 (got {self.classes}).")

    @property
    def radius(self) -> int:
        return window_radius(self.window)


def _t_critical(max_df: int, device):
    """Two-sided 95 % critical values of Student's t for 1..max_df degrees of freedom (index = df)."""
    from scipy import stats

    torch = import_torch()
    table = np.full(max_df + 1, np.inf)
    table[1:] = stats.t.ppf(0.975, np.arange(1, max_df + 1))
    return torch.tensor(table, dtype=torch.float32, device=device)


def estarfm_tile(inputs: TileInputs, sigma, params: EstarfmParams):
    """ESTARFM for the centre pixels of one tile; ``inputs`` hold exactly two pairs. ``sigma`` [2, B]. Returns
    (prediction [B, h, w], valid [h, w])."""
    torch = import_torch()
    if inputs.fine.shape[0] != 2:
        raise InputError("ESTARFM needs two pairs.")
    r = params.radius
    win = Window(inputs.inner, r)
    fine = pad(inputs.fine, r, 0.0)
    coarse = pad(inputs.coarse, r, 0.0)
    coarse_pred = pad(inputs.coarse_pred, r, 0.0)
    valid = pad(inputs.valid, r, False)
    bands = fine.shape[1]
    # per-pixel terms
    f_vec = fine.reshape(2 * bands, *fine.shape[-2:])
    c_vec = coarse.reshape(2 * bands, *coarse.shape[-2:])
    fc, cc = f_vec - f_vec.mean(dim=0), c_vec - c_vec.mean(dim=0)
    denom = torch.sqrt((fc * fc).sum(dim=0) * (cc * cc).sum(dim=0))
    corr = torch.where(denom > 0, (fc * cc).sum(dim=0) / denom.clamp_min(1e-30), 0.0)
    one_minus_r = torch.where(valid, 1.0 - corr, 0.0)
    change = coarse_pred[None] - coarse  # [2, B, H, W]: C(t_p) - C(t_k)
    # regression sums over both dates, stacked so that one multiply-add per window step accumulates them all:
    # sum x, sum y, sum xx, sum xy, sum yy (x coarse, y fine)
    stats = torch.cat([coarse.sum(dim=0), fine.sum(dim=0), (coarse * coarse).sum(dim=0),
                       (coarse * fine).sum(dim=0), (fine * fine).sum(dim=0)])
    inv_threshold = (params.classes / (2.0 * sigma).clamp_min(1e-12))[:, :, None, None]
    fine_c = win.view(fine)
    h, w = fine_c.shape[-2:]
    weight_sum = torch.zeros((h, w), dtype=fine.dtype, device=fine.device)
    count = torch.zeros_like(weight_sum)
    weighted_change = torch.zeros_like(fine_c)
    sums = torch.zeros((5 * bands, h, w), dtype=fine.dtype, device=fine.device)
    half = params.window / 2.0
    for dy, dx in win.offsets():
        # similar in every band at both dates: max_k,b |dF| / threshold <= 1
        similar = ((win.view(fine, dy, dx) - fine_c).abs() * inv_threshold).flatten(0, 1).amax(dim=0) <= 1.0
        sim = (similar & win.view(valid, dy, dx)).to(fine.dtype)
        weight = sim / (win.view(one_minus_r, dy, dx) * (1.0 + math.hypot(dy, dx) / half) + 1e-7)
        weight_sum += weight
        count += sim
        weighted_change += weight * win.view(change, dy, dx)
        sums += sim * win.view(stats, dy, dx)
    sx, sy, sxx, sxy, syy = sums.split(bands)
    # conversion coefficient: regression of fine on coarse over n = 2 x similar pixels samples
    n = 2.0 * count
    cov = n * sxy - sx * sy
    var_x = n * sxx - sx * sx
    var_y = n * syy - sy * sy
    slope = cov / var_x.clamp_min(1e-30)
    r2 = (cov * cov / (var_x * var_y).clamp_min(1e-30)).clamp(0.0, 1.0 - 1e-7)
    df = (n - 2).clamp_min(1.0)
    t_stat = torch.sqrt(r2 * df / (1.0 - r2))
    t_crit = _t_critical(int(n.max().item()) + 1, fine.device)[df.long()]
    stable = (count >= 3) & (var_x > 1e-12 * n * n) & (t_stat > t_crit) & (slope > 0) & (slope <= params.max_slope)
    v = torch.where(stable, slope, 1.0)
    from_pairs = fine_c + v * weighted_change / weight_sum.clamp_min(1e-30)  # [2, B, h, w]
    # temporal weights from the window sums of the coarse images (valid pixels only)
    size = params.window

    def window_sum(t):
        return torch.nn.functional.avg_pool2d(t[None] if t.dim() == 3 else t, size, stride=1) * (size * size)

    masked_c = torch.where(valid, coarse, 0.0)
    masked_p = torch.where(valid, coarse_pred, 0.0)
    y0, x0 = inputs.inner[0], inputs.inner[1]
    sums_k = window_sum(masked_c)[..., y0:y0 + h, x0:x0 + w]
    sums_p = window_sum(masked_p[None])[0][..., y0:y0 + h, x0:x0 + w]
    inverse = 1.0 / (sums_k - sums_p[None]).abs().clamp_min(1e-12)
    t_weight = inverse / inverse.sum(dim=0)
    prediction = (t_weight * from_pairs).sum(dim=0)
    out_valid = win.view(valid) & (count > 0)
    return prediction, out_valid


def fuse_estarfm(
    series: SceneSeries, dates: list[_dt.date], folder: str, scale: float = 1e-4,
    params: EstarfmParams | None = None, device: str = "auto", feedback: Feedback | None = None,
) -> list[str]:
    """Predict every date with ESTARFM from the pairs before and after it; writes ``estarfm_<date>.tif``."""
    params = params or EstarfmParams()
    params.validate()
    if len(series.fine) < 2:
        raise InputError("ESTARFM needs two fine/coarse pairs; the series has one.")
    return fuse_moving_window("estarfm", series, dates, folder, scale, 2, estarfm_tile, params, 4 * 30, device,
                              feedback, f"window {params.window}, {params.classes} classes")
