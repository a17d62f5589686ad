"""STARFM: Spatial and Temporal Adaptive Reflectance Fusion Model (Gao, Masek, Schwaller & Hall 2006, IEEE TGRS
44(8), 2207-2218), reproducing by default the program the literature used: USDA STARFM v1.2.1 (Feng Gao's C code,
revision 10/2014).

Variant ``usda`` (default): the rules of USDA STARFM v1.2.1, for each fine pixel (the window centre), each band and
each prediction date t0, with pairs k (one or two), fine L, coarse M (on the fine grid). Values are taken in units
of 1e-4 reflectance rounded to integers (the program reads 0-10000 short integers; ``SCALE_FACTOR = 10000``):

* data range 0-10000: a neighbour whose L or M_k is nodata or outside [0, 10000] is no candidate; outside the
  scene there is nothing;
* similar pixels, per pair: |L_k(neighbour) - L_k(centre)| < s_k (strict), s_k = int(2 sd_k / m + 0.5), sd_k the
  population standard deviation (an integer division is NOT applied) of the pair's fine band over the whole scene,
  valid values with 0 < v < 10000; m = ``classes`` (the program's NUM_SLICE_PURE_TEST);
* per candidate: r_lsr = M_k - L_k, r_msr = M_k - M_0 (neighbour values);
* centre limits: min_r_lsr = min over the pairs of |M_k - L_k| at the centre, min_r_msr = min over the pairs of
  |M_k - M_0| at the centre;
* integer uncertainties: u_lsr = int(sqrt(u_m^2 + u_l^2)), u_msr = int(sqrt(2) u_m), u = int(sqrt(u_msr^2 +
  u_lsr^2)) (20 and 50 units for the fine and coarse uncertainties give 53, 70 and 87);
* a candidate is rejected only when BOTH |r_lsr| > min_r_lsr + u_lsr AND |r_msr| > min_r_msr + u_msr;
* distance weight: t = (|r_msr| + 1)(|r_lsr| + 1), or |r_lsr| + 1 with a single pair (since v1.1.2); the weight is
  1 when t < u, else 1 / (t D) with D = 1 + d resolution / max search distance = 1 + d / A (A = half the window,
  d the Euclidean distance in pixels);
* prediction: sum_i w_i (L_i - r_msr_i) / sum_i w_i over the candidates of every pair; nothing for a centre
  without candidates;
* a prediction <= 0 or >= 10000 is written as nodata (the program's fill value), otherwise rounded half up.
Deviation: the program takes a neighbour whose M_0 is its fill value as a candidate with r_msr = fill; here such a
neighbour is no candidate (a prediction never uses a fill value as a change). The program's default m in its
example parameter file is 4 (the reference outputs in tests/data were made with it); some wrappers use 40.

Variant ``paper``: our reading of the paper, kept as an option (results differ from the program in 92-95 % of the
values by more than one unit): in reflectance,

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
* if the centre has S = 0 or T = 0 for a pair, it is predicted from its own candidate value;
* predictions are clamped into [0, 1].

Both: the window is 31 fine pixels, m = 4, the uncertainties 0.002 (fine) and 0.005 (coarse) reflectance, and
A = half the window (USDA: max search distance / resolution, 465 m / 30 m = 15.5 for a 31-pixel window).
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
from .common import TileInputs, Window, check_window, fuse_moving_window, pad, window_radius

_EPS = 1e-12
VARIANTS = ("usda", "paper")
UNIT = 1e-4  # USDA STARFM works in 0-10000 integers: reflectance x 10000
DATA_MAX = 10000


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
    variant: str = "usda"

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise InputError(f"Unknown STARFM variant '{self.variant}'; use one of {', '.join(VARIANTS)}.")
        check_window(self.window, "STARFM")
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
    xp = backend()
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
        st = xp.log(s * params.log_scale + 1) * xp.log(t * params.log_scale + 1)
    else:
        st = s * t
    # 1 / (S T); zero for invalid neighbours (and the padding), so they never get weight
    inverse = xp.where(valid, 1.0 / st.clamp_min(_EPS), 0.0)
    # centre terms
    fine_c = win.view(fine)
    s_c, t_c = win.view(s), win.view(t)
    s_max = s_c.amax(dim=0) + math.hypot(params.fine_uncertainty, params.coarse_uncertainty)
    t_max = t_c.amax(dim=0) + math.sqrt(2.0) * params.coarse_uncertainty
    threshold = (2.0 * sigma / params.classes)[:, :, None, None]
    # 1 / (S T) x candidate, per pixel: one multiply-add per window step accumulates the numerator
    weighted_candidate = inverse * candidate
    if kernels.enabled(fine.device):  # the same sums, compiled (kernels.py)
        num, den = (xp.from_numpy(x) for x in kernels.starfm_paper_sums(
            fine, threshold[:, :, 0, 0], s, t, s_max, t_max, inverse, weighted_candidate, win.y0 + r, win.x0 + r,
            r, params.a))
        return _paper_result(num, den, win, candidate, s_c, t_c, valid)
    num = xp.zeros_like(fine_c)
    den = xp.zeros_like(fine_c)
    # preallocated step buffers (in-place operations avoid allocating tile-sized tensors 2 x 961 times)
    diff = xp.empty_like(fine_c)
    ok = xp.empty(fine_c.shape, dtype=xp.bool, device=fine_c.device)
    test = xp.empty_like(ok)
    okf = xp.empty_like(fine_c)
    for dy, dx in win.offsets():
        xp.sub(win.view(fine, dy, dx), fine_c, out=diff)
        xp.le(diff.abs_(), threshold, out=ok)
        ok.logical_and_(xp.lt(win.view(s, dy, dx), s_max, out=test))
        ok.logical_and_(xp.lt(win.view(t, dy, dx), t_max, out=test))
        okf.copy_(ok)
        d_inverse = 1.0 / (1.0 + math.hypot(dy, dx) / params.a)
        num.addcmul_(okf, win.view(weighted_candidate, dy, dx), value=d_inverse)
        den.addcmul_(okf, win.view(inverse, dy, dx), value=d_inverse)
    return _paper_result(num.sum(dim=0), den.sum(dim=0), win, candidate, s_c, t_c, valid)  # sums over the pairs


def _paper_result(num, den, win, candidate, s_c, t_c, valid):
    xp = backend()
    prediction = (num / den.clamp_min(_EPS)).clamp(0.0, 1.0)
    # a centre with S = 0 or T = 0 keeps its own candidate value (the last pair checked wins ties: the first pair)
    candidate_c = win.view(candidate)
    for k in reversed(range(candidate_c.shape[0])):
        exact = (s_c[k] == 0) | (t_c[k] == 0)
        prediction = xp.where(exact, candidate_c[k], prediction)
    out_valid = win.view(valid) & (den > 0).all(dim=0)
    return prediction, out_valid


def usda_uncertainties(params: StarfmParams) -> tuple[int, int, int]:
    """(u_lsr, u_msr, u) as the program computes them: integers truncated from sqrt of the stored-unit values."""
    m = round(params.coarse_uncertainty / UNIT)
    l_ = round(params.fine_uncertainty / UNIT)
    u_msr = int(math.sqrt(m * m + m * m))
    u_lsr = int(math.sqrt(m * m + l_ * l_))
    return u_lsr, u_msr, int(math.sqrt(u_msr * u_msr + u_lsr * u_lsr))


def usda_tile(inputs: TileInputs, slices, params: StarfmParams):
    """USDA STARFM v1.2.1 (module docstring) for the centre pixels of one tile. ``slices`` [P, B]: the similarity
    thresholds s_k in units. Returns (prediction [B, h, w] reflectance, valid [B, h, w])."""
    xp = backend()
    r = params.radius
    win = Window(inputs.inner, r)
    units = lambda x: xp.round(x / UNIT)  # noqa: E731  the program's short integers
    fine = pad(units(inputs.fine), r, 0.0)  # [P, B, H, W]
    coarse = pad(units(inputs.coarse), r, 0.0)
    coarse_pred = pad(units(inputs.coarse_pred), r, 0.0)  # [B, H, W]
    ok = pad(inputs.valid, r, False)
    in_range = ((fine >= 0) & (fine <= DATA_MAX) & (coarse >= 0) & (coarse <= DATA_MAX)) & ok
    pred_ok = (coarse_pred >= 0) & (coarse_pred <= DATA_MAX) & ok
    r_lsr = coarse - fine  # M_k - L_k
    r_msr = coarse - coarse_pred  # M_k - M_0
    value = fine - r_msr  # L_k - r_msr = L_k - M_k + M_0
    u_lsr, u_msr, u = usda_uncertainties(params)
    lsr_limit = win.view(r_lsr).abs().amin(dim=0) + u_lsr  # [B, h, w]: min over the pairs at the centre
    msr_limit = win.view(r_msr).abs().amin(dim=0) + u_msr
    if params.pairs == 1 or fine.shape[0] == 1:
        t = r_lsr.abs() + 1
    else:
        t = (r_msr.abs() + 1) * (r_lsr.abs() + 1)
    # per-neighbour terms, computed once: the weight is far_part / D + near_part (near: t < u gives weight 1),
    # both zero where the neighbour is no candidate
    candidate = (in_range & pred_ok[None]).to(fine.dtype)
    near = (t < u).to(fine.dtype)
    far_part = candidate * (1.0 - near) / t
    near_part = candidate * near
    abs_lsr, abs_msr = r_lsr.abs(), r_msr.abs()
    fine_c = win.view(fine)
    if kernels.enabled(fine.device):  # the same sums, compiled (kernels.py)
        num, den = (xp.from_numpy(x) for x in kernels.starfm_usda_sums(
            fine, slices, abs_lsr, abs_msr, lsr_limit, msr_limit, near_part, far_part, value, win.y0 + r,
            win.x0 + r, r, params.a))
        return _usda_result(num, den, win, ok)
    threshold = slices[:, :, None, None].expand_as(fine_c)
    num = xp.zeros_like(fine_c)
    den = xp.zeros_like(fine_c)
    # preallocated step buffers (in-place operations: no tile-sized allocation per window step)
    diff = xp.empty_like(fine_c)
    keep = xp.empty(fine_c.shape, dtype=xp.bool, device=fine_c.device)
    test = xp.empty_like(keep)
    test2 = xp.empty_like(keep)
    weight = xp.empty_like(fine_c)
    for dy, dx in win.offsets():
        xp.sub(win.view(fine, dy, dx), fine_c, out=diff)
        xp.lt(diff.abs_(), threshold, out=keep)  # similar (strict)
        xp.gt(win.view(abs_lsr, dy, dx), lsr_limit, out=test)
        test.logical_and_(xp.gt(win.view(abs_msr, dy, dx), msr_limit, out=test2))
        keep.logical_and_(test.logical_not_())  # rejected only when both differences are too large
        xp.add(win.view(near_part, dy, dx), win.view(far_part, dy, dx), alpha=1.0 / (1.0 + math.hypot(dy, dx)
                                                                                       / params.a), out=weight)
        weight.mul_(keep)
        num.addcmul_(weight, win.view(value, dy, dx))
        den.add_(weight)
    return _usda_result(num.sum(dim=0), den.sum(dim=0), win, ok)  # every candidate of every pair


def _usda_result(num, den, win, ok):
    xp = backend()
    fsr = num / den.clamp_min(_EPS)
    inside = (den > 0) & (fsr > 0) & (fsr < DATA_MAX)  # else the program writes its fill value
    prediction = xp.floor(fsr + 0.5) * UNIT
    out_valid = win.view(ok)[None] & inside  # per band, as the program writes its fill value band by band
    return prediction, out_valid


def usda_statistics(items, scale: float) -> np.ndarray:
    """[len(items), B] similarity slices' standard deviations as the program computes them: population standard
    deviation of the integer values 0 < v < 10000 of each fine band over the whole scene (streamed)."""
    from .common import band_std

    return band_std(items, scale, unit=UNIT, open_range=(0, DATA_MAX))


def fuse_starfm(
    series: SceneSeries, dates: list[_dt.date], folder: str, scale: float = 1e-4,
    params: StarfmParams | None = None, device: str = "auto", feedback: Feedback | None = None,
) -> list[str]:
    """Predict every date with STARFM; writes ``starfm_<date>.tif`` files (see :func:`..fusion.write_predictions`)."""
    params = params or StarfmParams()
    params.validate()
    if params.variant == "usda":
        u_lsr, u_msr, u = usda_uncertainties(params)
        settings = (f"USDA STARFM v1.2.1 rules, window {params.window}, {params.classes} slices, uncertainties "
                    f"{u_lsr} / {u_msr} / {u} (1e-4 units), D = 1 + d / {params.a:g}")

        def slices(items, scale_):  # s_k = int(2 sd_k / m + 0.5), in float64 as the program
            return np.floor(usda_statistics(items, scale_) * 2.0 / params.classes + 0.5)

        return fuse_moving_window("starfm", series, dates, folder, scale, params.pairs, usda_tile, params,
                                  4 * (10 * params.pairs + 6), device, feedback, settings, statistics=slices,
                                  compiled=True)
    settings = (f"paper reading, window {params.window}, {params.classes} classes, A = {params.a:g} px, "
                f"{'log' if params.log_weights else 'product'} weights")
    return fuse_moving_window("starfm", series, dates, folder, scale, params.pairs, starfm_tile, params,
                              4 * (9 * params.pairs + 4), device, feedback, settings, compiled=True)
