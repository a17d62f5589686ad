"""Accuracy metrics of spatiotemporal fusion, each defined once (SPEC.md "Evaluation").

Arrays are reflectance ``[bands, rows, cols]`` (``pred`` the prediction, ``ref`` the reference, i.e. the observed
fine image) and a validity mask ``[rows, cols]``; pixels where ``valid`` is False are excluded everywhere, also
from the moving windows of SSIM, Q, Edge and LBP. Band-wise metrics return one value per band. ``L`` is the data
range (1.0 for reflectance in 0-1); ``h/l`` the ratio of fine to coarse pixel size.

The literature computes the same names differently; the conventions chosen here are listed in
:data:`CONVENTIONS` and printed with every result.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

CONVENTIONS = {
    "cc": "Pearson correlation per band",
    "rmse": "sqrt(mean((P-R)^2))",
    "mae": "mean(|P-R|)",
    "ad": "average difference (bias) mean(P-R)",
    "rmae": "relative MAE = MAE / mean(R)",
    "r2": "1 - SSres/SStot = 1 - sum((P-R)^2) / sum((R-mean(R))^2)",
    "psnr": "10 log10(L^2 / MSE) in dB, L = data range",
    "ssim": "Wang et al. 2004, Gaussian 11x11 window sigma 1.5, K1 0.01, K2 0.03, data range L, population "
            "statistics, averaged over pixels whose whole window is valid",
    "q": "UIQI (Wang & Bovik 2002), 8x8 sliding windows (step 1) with no invalid pixel, averaged",
    "sam": "spectral angle in degrees, arccos(P.R / (|P| |R|)) with L2 norms, mean over pixels (all bands)",
    "ergas": "100 h/l sqrt(mean_k (RMSE_k / mean(R_k))^2) over bands k",
    "kge": "Kling-Gupta efficiency (Gupta et al. 2009): 1 - sqrt((r-1)^2 + (sd(P)/sd(R)-1)^2 + "
           "(mean(P)/mean(R)-1)^2)",
    "maec": "|MAE - MAE_baseline| / MAE_baseline (eq. 9 of the patch DCNN paper), baseline = the naive "
            "nearest-fine-image "
            "prediction when given",
    "edge": "(mean E(P) - mean E(R)) / mean E(R), E = Roberts cross |X[i,j]-X[i+1,j+1]| + |X[i,j+1]-X[i+1,j]| "
            "(eq. 10 of the patch DCNN paper; APA Edge): < 0 smoother than the reference, > 0 sharper or noisier",
    "lbp": "(mean LBP(P) - mean LBP(R)) / mean LBP(R), LBP = 8-neighbour local binary pattern code (APA)",
}

BAND_METRICS = ("cc", "rmse", "mae", "ad", "rmae", "r2", "psnr", "ssim", "q", "kge", "maec", "edge", "lbp")
METRICS = ("cc", "rmse", "mae", "ad", "rmae", "r2", "psnr", "ssim", "q", "sam", "ergas", "kge", "maec",
           "edge", "lbp")


def _check(pred: np.ndarray, ref: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.ndim == 2:
        pred, ref = pred[None], ref[None]
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    valid = np.ones(pred.shape[-2:], bool) if valid is None else np.asarray(valid, bool)
    valid = valid & np.isfinite(pred).all(axis=0) & np.isfinite(ref).all(axis=0)
    return pred, ref, valid


def _values(pred, ref, valid):
    pred, ref, valid = _check(pred, ref, valid)
    return pred[:, valid], ref[:, valid]


def rmse(pred, ref, valid=None) -> np.ndarray:
    """Root mean square error per band: sqrt(mean((P - R)^2))."""
    p, r = _values(pred, ref, valid)
    return np.sqrt(np.mean((p - r) ** 2, axis=1))


def mae(pred, ref, valid=None) -> np.ndarray:
    """Mean absolute error per band: mean(|P - R|)."""
    p, r = _values(pred, ref, valid)
    return np.mean(np.abs(p - r), axis=1)


def ad(pred, ref, valid=None) -> np.ndarray:
    """Average difference (bias) per band: mean(P - R); positive = overestimation."""
    p, r = _values(pred, ref, valid)
    return np.mean(p - r, axis=1)


def rmae(pred, ref, valid=None) -> np.ndarray:
    """Relative MAE per band: MAE / mean(R).

    Seed 002 eq. 8 divides each pixel's error by its own reference value, which explodes over water and shadows
    (R near 0); SPEC.md fixes the ratio of means instead.
    """
    p, r = _values(pred, ref, valid)
    return np.mean(np.abs(p - r), axis=1) / np.mean(r, axis=1)


def r2(pred, ref, valid=None) -> np.ndarray:
    """Coefficient of determination per band: 1 - sum((P - R)^2) / sum((R - mean(R))^2).

    (Seed 002 eq. 7 prints P in the denominator; the usual SStot of the reference is meant and used here.)
    """
    p, r = _values(pred, ref, valid)
    return 1.0 - np.sum((p - r) ** 2, axis=1) / np.sum((r - r.mean(axis=1, keepdims=True)) ** 2, axis=1)


def cc(pred, ref, valid=None) -> np.ndarray:
    """Pearson correlation coefficient per band."""
    p, r = _values(pred, ref, valid)
    pc = p - p.mean(axis=1, keepdims=True)
    rc = r - r.mean(axis=1, keepdims=True)
    return np.sum(pc * rc, axis=1) / np.sqrt(np.sum(pc ** 2, axis=1) * np.sum(rc ** 2, axis=1))


def psnr(pred, ref, valid=None, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio per band in dB: 10 log10(L^2 / MSE)."""
    p, r = _values(pred, ref, valid)
    mse = np.mean((p - r) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


def kge(pred, ref, valid=None) -> np.ndarray:
    """Kling-Gupta efficiency per band (Gupta et al. 2009, J. Hydrol. 377):

    KGE = 1 - sqrt((r - 1)^2 + (alpha - 1)^2 + (beta - 1)^2), r Pearson correlation,
    alpha = sd(P) / sd(R), beta = mean(P) / mean(R). Ideal 1.
    """
    p, r = _values(pred, ref, valid)
    corr = cc(pred, ref, valid)
    alpha = p.std(axis=1) / r.std(axis=1)
    beta = p.mean(axis=1) / r.mean(axis=1)
    return 1.0 - np.sqrt((corr - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2)


def maec(pred, ref, baseline, valid=None) -> np.ndarray:
    """Change of MAE against a baseline prediction (seed 002 eq. 9): |MAE2 - MAE1| / MAE1.

    MAE1 is the baseline's MAE (here: the naive nearest-fine-image prediction of the same date), MAE2 the
    prediction's. The paper leaves MAE1/MAE2 open; 0 means no change from the baseline. As the paper takes the
    absolute value, read it together with the MAEs themselves.
    """
    base = mae(baseline, ref, valid)
    return np.abs(mae(pred, ref, valid) - base) / base


def sam(pred, ref, valid=None) -> float:
    """Spectral angle mapper in degrees: mean over pixels of arccos(P.R / (|P| |R|)), L2 norms over bands.

    Pixels where either spectrum is all zero have no angle and are excluded.
    """
    p, r = _values(pred, ref, valid)
    norms = np.linalg.norm(p, axis=0) * np.linalg.norm(r, axis=0)
    ok = norms > 0
    cosine = np.clip(np.sum(p * r, axis=0)[ok] / norms[ok], -1.0, 1.0)
    return float(np.degrees(np.arccos(cosine)).mean())


def ergas(pred, ref, valid=None, ratio: float = 1.0) -> float:
    """ERGAS (Wald 2002): 100 h/l sqrt(mean_k (RMSE_k / mu_k)^2), mu_k the reference mean of band k.

    ``ratio`` = h/l, fine pixel size over coarse pixel size (e.g. 30 / 480); it must not be inverted.
    """
    p, r = _values(pred, ref, valid)
    return float(100.0 * ratio * np.sqrt(np.mean((rmse(pred, ref, valid) / r.mean(axis=1)) ** 2)))


# --- windowed metrics -----------------------------------------------------------------------------------------

def _gaussian_kernel(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax ** 2) / (2 * sigma ** 2))
    kernel = np.outer(g, g)
    return kernel / kernel.sum()


def _full_window(valid: np.ndarray, size: int) -> np.ndarray:
    """Pixels whose centred ``size`` x ``size`` window lies inside the image and is entirely valid."""
    radius = size // 2
    inside = np.zeros_like(valid)
    inside[radius:valid.shape[0] - radius, radius:valid.shape[1] - radius] = True
    return inside & ndimage.minimum_filter(valid.astype(np.uint8), size, mode="constant", cval=0).astype(bool)


def ssim(pred, ref, valid=None, data_range: float = 1.0) -> np.ndarray:
    """Structural similarity per band (Wang et al. 2004, IEEE TIP 13(4)):

    SSIM = ((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
    C1 = (0.01 L)^2, C2 = (0.03 L)^2, local statistics with an 11 x 11 Gaussian window (sigma 1.5), population
    (biased) moments. The mean is taken over valid pixels whose whole window is valid and inside the image, which
    equals scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=L)`` on unmasked images.
    """
    pred, ref, valid = _check(pred, ref, valid)
    g = _gaussian_kernel()[5]
    g = g / g.sum()  # separable: the 11 x 11 kernel is the outer product of this 1-D kernel with itself
    keep = _full_window(valid, 11)
    if not keep.any():
        return np.full(pred.shape[0], np.nan)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = []
    for x, y in zip(np.where(valid, pred, 0), np.where(valid, ref, 0)):
        def f(a):
            return ndimage.correlate1d(ndimage.correlate1d(a, g, axis=0, mode="constant"), g, axis=1, mode="constant")

        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
        s_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
        out.append(s_map[keep].mean())
    return np.array(out)


def _box_sums(a: np.ndarray, k: int) -> np.ndarray:
    """Sum of every k x k window, anchored at its top-left pixel: shape (rows - k + 1, cols - k + 1)."""
    c = np.pad(np.cumsum(np.cumsum(a, axis=-2), axis=-1), ((1, 0), (1, 0)))
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def q_index(pred, ref, valid=None, block: int = 8) -> np.ndarray:
    """Universal image quality index per band (Wang & Bovik 2002, IEEE SPL 9(3)):

    Q = 4 s_xy mu_x mu_y / ((s_x^2 + s_y^2)(mu_x^2 + mu_y^2)), over every ``block`` x ``block`` window (step 1)
    with no invalid pixel, averaged. Windows with a zero denominator follow Wang & Bovik's reference code: 1 when
    both factors vanish, else the factor that is defined.
    """
    pred, ref, valid = _check(pred, ref, valid)
    if min(valid.shape) < block:
        return np.full(pred.shape[0], np.nan)
    n = block * block
    keep = _box_sums(valid.astype(np.float64), block) > n - 0.5
    if not keep.any():
        return np.full(pred.shape[0], np.nan)
    out = []
    for x, y in zip(np.where(valid, pred, 0), np.where(valid, ref, 0)):
        sx, sy = _box_sums(x, block)[keep], _box_sums(y, block)[keep]
        sxx, syy, sxy = (_box_sums(a, block)[keep] for a in (x * x, y * y, x * y))
        mx, my = sx / n, sy / n
        # sample (co)variances; the n / (n - 1) factor cancels in Q but keeps the terms as Wang & Bovik define them
        vx, vy = (sxx - n * mx ** 2) / (n - 1), (syy - n * my ** 2) / (n - 1)
        cov = (sxy - n * mx * my) / (n - 1)
        variance_term, mean_term = vx + vy, mx ** 2 + my ** 2
        eps = 1e-12
        q = np.ones_like(mx)
        both = (variance_term > eps) & (mean_term > eps)
        q[both] = 4 * cov[both] * mx[both] * my[both] / (variance_term[both] * mean_term[both])
        only_mean = (variance_term <= eps) & (mean_term > eps)
        q[only_mean] = 2 * mx[only_mean] * my[only_mean] / mean_term[only_mean]
        only_var = (variance_term > eps) & (mean_term <= eps)
        q[only_var] = 2 * cov[only_var] / variance_term[only_var]
        out.append(q.mean())
    return np.array(out)


def roberts(image: np.ndarray) -> np.ndarray:
    """Roberts cross edge magnitude (seed 002 eq. 10, sign typo fixed): |X[i,j] - X[i+1,j+1]| + |X[i,j+1] - X[i+1,j]|.

    ``image`` is ``[..., rows, cols]``; the result has one row and one column fewer.
    """
    return np.abs(image[..., :-1, :-1] - image[..., 1:, 1:]) + np.abs(image[..., :-1, 1:] - image[..., 1:, :-1])


def edge(pred, ref, valid=None) -> np.ndarray:
    """Relative difference of mean Roberts edge magnitude per band: (mean E(P) - mean E(R)) / mean E(R).

    Only 2 x 2 neighbourhoods with four valid pixels count. Ideal 0; negative = the prediction lost detail.
    """
    pred, ref, valid = _check(pred, ref, valid)
    ok = valid[:-1, :-1] & valid[1:, 1:] & valid[:-1, 1:] & valid[1:, :-1]
    ep, er = roberts(pred)[:, ok].mean(axis=1), roberts(ref)[:, ok].mean(axis=1)
    return (ep - er) / er


_LBP_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def lbp_codes(image: np.ndarray) -> np.ndarray:
    """8-neighbour local binary pattern (Ojala et al. 2002, radius 1, clockwise from top-left):
    code = sum_n 2^n [X_n >= X_c]. ``image`` is ``[..., rows, cols]``; the result loses a one-pixel border."""
    centre = image[..., 1:-1, 1:-1]
    rows, cols = image.shape[-2:]
    code = np.zeros(centre.shape, np.float64)
    for bit, (dy, dx) in enumerate(_LBP_OFFSETS):
        neighbour = image[..., 1 + dy:rows - 1 + dy, 1 + dx:cols - 1 + dx]
        code += (neighbour >= centre) * float(2 ** bit)
    return code


def lbp(pred, ref, valid=None) -> np.ndarray:
    """Relative difference of mean LBP code per band: (mean LBP(P) - mean LBP(R)) / mean LBP(R) (APA texture
    index). Only pixels whose 3 x 3 neighbourhood is valid count. Ideal 0."""
    pred, ref, valid = _check(pred, ref, valid)
    ok = ndimage.minimum_filter(valid.astype(np.uint8), 3, mode="constant")[1:-1, 1:-1].astype(bool)
    lp, lr = lbp_codes(pred)[:, ok].mean(axis=1), lbp_codes(ref)[:, ok].mean(axis=1)
    return (lp - lr) / lr


def compute_all(
    pred: np.ndarray, ref: np.ndarray, valid: np.ndarray | None = None, data_range: float = 1.0,
    ratio: float = 1.0, baseline: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every metric: band-wise metrics as arrays of one value per band, SAM and ERGAS as scalars.

    ``maec`` is NaN without a ``baseline``. ``n_pixels`` is the number of valid pixels used.
    """
    pred, ref, valid = _check(pred, ref, valid)
    if baseline is not None:
        valid = valid & np.isfinite(np.asarray(baseline, dtype=np.float64)).all(axis=0)
    if not valid.any():
        raise ValueError("no valid pixel to compare")
    bands = pred.shape[0]
    result = {
        "cc": cc(pred, ref, valid), "rmse": rmse(pred, ref, valid), "mae": mae(pred, ref, valid),
        "ad": ad(pred, ref, valid), "rmae": rmae(pred, ref, valid), "r2": r2(pred, ref, valid),
        "psnr": psnr(pred, ref, valid, data_range), "ssim": ssim(pred, ref, valid, data_range),
        "q": q_index(pred, ref, valid), "kge": kge(pred, ref, valid),
        "maec": maec(pred, ref, baseline, valid) if baseline is not None else np.full(bands, np.nan),
        "edge": edge(pred, ref, valid), "lbp": lbp(pred, ref, valid),
        "sam": sam(pred, ref, valid) if bands > 1 else np.nan, "ergas": ergas(pred, ref, valid, ratio),
        "n_pixels": int(valid.sum()),
    }
    return result
