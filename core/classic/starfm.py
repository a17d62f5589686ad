"""STARFM: Spatial and Temporal Adaptive Reflectance Fusion Model (Gao, Masek, Schwaller & Hall 2006, IEEE TGRS
44(8), 2207-2218).

For each fine pixel (the window centre) and each band, with pairs k (one or two), fine L, coarse M (on the fine
grid), prediction date t0:

* candidate value of a neighbour:  M(x_i, y_j, t0) + L(x_i, y_j, t_k) - M(x_i, y_j, t_k)          (paper eq. 5)
* spectral difference           S_ijk = |L(x_i, y_j, t_k) - M(x_i, y_j, t_k)|                      (eq. 6)
* temporal difference           T_ijk = |M(x_i, y_j, t_k) - M(x_i, y_j, t0)|                       (eq. 7)
* relative distance             D_ijk = 1 + d_ijk / A, d the distance to the centre in pixels      (eqs. 8-9)
* combined                      C_ijk = S_ijk T_ijk D_ijk, or ln(S B + 1) ln(T B + 1) D (log option) (eqs. 10-11)
* weight                        W_ijk = (1 / C_ijk) / sum(1 / C_ijk)                              (eq. 12)
* similar pixels                |L(x_i, y_j, t_k) - L(x_c, y_c, t_k)| <= 2 sigma(B) / m, sigma the standard deviation
  of the fine band over the scene, m the number of classes;
* candidate filtering           S_ijk < max_k |L - M|(centre) + sigma_lm and T_ijk < max_k |M_k - M_0|(centre) +
  sigma_mm, sigma_lm = sqrt(sigma_l^2 + sigma_m^2), sigma_mm = sqrt(2) sigma_m (sensor uncertainties);
* if the centre has S = 0 or T = 0 for a pair, it is predicted from its own candidate value.

Choices where the paper leaves a value open (all parameters): the window is 31 fine pixels, m = 4, the
uncertainties 0.002 (fine) and 0.005 (coarse) reflectance, and A = half the window, so that D grows from 1 at the
centre to about 2 at the window's edge (ESTARFM's normalisation of the same term). A neighbour with C = 0 (a perfect
predictor) is given weight 1 / 1e-12, i.e. the weight is shared among such neighbours.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass

from ..device import import_torch
from ..errors import InputError
from ..feedback import Feedback
from ..series import SceneSeries
from .common import TileInputs, Window, fuse_moving_window, pad, window_radius

_EPS = 1e-12


@dataclass
class StarfmParams:
    """STARFM settings (defaults as documented in the module)."""

    tile_size: int = 0  # tile side in pixels; 0 = automatic (128 on the CPU, the memory budget on a GPU)
    window: int = 31
    classes: int = 4
    fine_uncertainty: float = 0.002
    coarse_uncertainty: float = 0.005
    spatial_importance: float = 0.0  # A in pixels; 0 = half the window
    log_weights: bool = False
    log_scale: float = 10000.0  # B of the log weights: reflectance to stored integers
    pairs: int = 2

    def validate(self) -> None:
        if self.window < 3:
            raise InputError(f"The STARFM window must be at least 3 pixels (got {self.window}).")
        if self.classes < 1:
            raise InputError(f"The number of classes must be at least 1 (got {self.classes}).")
        if self.pairs not in (1, 2):
            raise InputError(f"STARFM uses one or two pairs (got {self.pairs}).")

    @property
    def radius(self) -> int:
        return window_radius(self.window)

    @property
    def a(self) -> float:
        return self.spatial_importance if self.spatial_importance > 0 else self.window / 2.0


def starfm_tile(inputs: TileInputs, sigma, params: StarfmParams):
    """STARFM for the centre pixels of one tile. ``sigma`` [P, B]: scene-wide standard deviation of each fine image
    band. Returns (prediction [B, h, w], valid [h, w]) as tensors."""
    torch = import_torch()
    r = params.radius
    win = Window(inputs.inner, r)
    fine = pad(inputs.fine, r, 0.0)
    coarse = pad(inputs.coarse, r, 0.0)
    coarse_pred = pad(inputs.coarse_pred, r, 0.0)
    valid = pad(inputs.valid, r, False)
    # per-pixel terms (they depend on the neighbour only)
    s = (fine - coarse).abs()
    t = (coarse - coarse_pred).abs()
    candidate = coarse_pred + fine - coarse
    if params.log_weights:
        st = torch.log(s * params.log_scale + 1) * torch.log(t * params.log_scale + 1)
    else:
        st = s * t
    # 1 / (S T); zero for invalid neighbours (and the padding), so they never get weight
    inverse = torch.where(valid, 1.0 / st.clamp_min(_EPS), 0.0)
    # centre terms
    fine_c = win.view(fine)
    s_c, t_c = win.view(s), win.view(t)
    s_max = s_c.amax(dim=0) + math.hypot(params.fine_uncertainty, params.coarse_uncertainty)
    t_max = t_c.amax(dim=0) + math.sqrt(2.0) * params.coarse_uncertainty
    threshold = (2.0 * sigma / params.classes)[:, :, None, None]
    # 1 / (S T) x candidate, per pixel: one multiply-add per window step accumulates the numerator
    weighted_candidate = inverse * candidate
    num = torch.zeros_like(fine_c)
    den = torch.zeros_like(fine_c)
    # preallocated step buffers (in-place operations avoid allocating tile-sized tensors 2 x 961 times)
    diff = torch.empty_like(fine_c)
    ok = torch.empty(fine_c.shape, dtype=torch.bool, device=fine_c.device)
    test = torch.empty_like(ok)
    okf = torch.empty_like(fine_c)
    for dy, dx in win.offsets():
        torch.sub(win.view(fine, dy, dx), fine_c, out=diff)
        torch.le(diff.abs_(), threshold, out=ok)
        ok.logical_and_(torch.lt(win.view(s, dy, dx), s_max, out=test))
        ok.logical_and_(torch.lt(win.view(t, dy, dx), t_max, out=test))
        okf.copy_(ok)
        d_inverse = 1.0 / (1.0 + math.hypot(dy, dx) / params.a)
        num.addcmul_(okf, win.view(weighted_candidate, dy, dx), value=d_inverse)
        den.addcmul_(okf, win.view(inverse, dy, dx), value=d_inverse)
    num, den = num.sum(dim=0), den.sum(dim=0)  # over the pairs
    prediction = num / den.clamp_min(_EPS)
    # a centre with S = 0 or T = 0 keeps its own candidate value (the last pair checked wins ties: the first pair)
    candidate_c = win.view(candidate)
    for k in reversed(range(candidate_c.shape[0])):
        exact = (s_c[k] == 0) | (t_c[k] == 0)
        prediction = torch.where(exact, candidate_c[k], prediction)
    out_valid = win.view(valid) & (den > 0).all(dim=0)
    return prediction, out_valid


def fuse_starfm(
    series: SceneSeries, dates: list[_dt.date], folder: str, scale: float = 1e-4,
    params: StarfmParams | None = None, device: str = "auto", feedback: Feedback | None = None,
) -> list[str]:
    """Predict every date with STARFM; writes ``starfm_<date>.tif`` files (see :func:`..fusion.write_predictions`)."""
    params = params or StarfmParams()
    params.validate()
    settings = (f"window {params.window}, {params.classes} classes, A = {params.a:g} px, "
                f"{'log' if params.log_weights else 'product'} weights")
    return fuse_moving_window("starfm", series, dates, folder, scale, params.pairs, starfm_tile, params,
                              4 * (9 * params.pairs + 4), device, feedback, settings)
