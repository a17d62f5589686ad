"""Deliberately simple per-pixel loop versions of the classic methods, written from the papers line by line
(float64 numpy). They are slow and only meant for tiny scenes in the equivalence tests."""
from __future__ import annotations

import math

import numpy as np


def starfm_reference(fine, coarse, coarse_pred, valid, window, classes, sigma_l, sigma_m, a, log_weights=False,
                     log_scale=10000.0):
    """fine, coarse: [P, B, H, W]; coarse_pred: [B, H, W]; valid: [H, W]. Returns (prediction, valid)."""
    P, B, H, W = fine.shape
    r = window // 2
    sigma = np.array([[fine[k, b][valid].std() for b in range(B)] for k in range(P)])
    out = np.zeros((B, H, W))
    out_valid = np.zeros((H, W), bool)
    for y in range(H):
        for x in range(W):
            if not valid[y, x]:
                continue
            out_valid[y, x] = True
            for b in range(B):
                # centre: S = |L - M| and T = |M_k - M_0| of the central pixel, max over the pairs
                s_centre = [abs(fine[k, b, y, x] - coarse[k, b, y, x]) for k in range(P)]
                t_centre = [abs(coarse[k, b, y, x] - coarse_pred[b, y, x]) for k in range(P)]
                exact = [k for k in range(P) if s_centre[k] == 0 or t_centre[k] == 0]
                if exact:
                    k = exact[0]
                    out[b, y, x] = coarse_pred[b, y, x] + fine[k, b, y, x] - coarse[k, b, y, x]
                    continue
                s_limit = max(s_centre) + math.sqrt(sigma_l ** 2 + sigma_m ** 2)
                t_limit = max(t_centre) + math.sqrt(2) * sigma_m
                num = den = 0.0
                for j in range(y - r, y + r + 1):
                    for i in range(x - r, x + r + 1):
                        if not (0 <= j < H and 0 <= i < W) or not valid[j, i]:
                            continue
                        for k in range(P):
                            similar = abs(fine[k, b, j, i] - fine[k, b, y, x]) <= sigma[k, b] * 2 / classes
                            s = abs(fine[k, b, j, i] - coarse[k, b, j, i])
                            t = abs(coarse[k, b, j, i] - coarse_pred[b, j, i])
                            if not (similar and s < s_limit and t < t_limit):
                                continue
                            d = 1.0 + math.sqrt((y - j) ** 2 + (x - i) ** 2) / a
                            if log_weights:
                                c = math.log(s * log_scale + 1) * math.log(t * log_scale + 1) * d
                            else:
                                c = s * t * d
                            w = 1.0 / max(c, 1e-12 * d)
                            num += w * (coarse_pred[b, j, i] + fine[k, b, j, i] - coarse[k, b, j, i])
                            den += w
                out[b, y, x] = num / den
    return out, out_valid


def estarfm_reference(fine, coarse, coarse_pred, valid, window, classes, max_slope=5.0, data_min=0.0, data_max=1.0):
    """ESTARFM per central pixel with the rules of Zhu's 2018 code (core/classic/estarfm.py docstring); fine,
    coarse [2, B, H, W]."""
    from scipy import stats

    _, B, H, W = fine.shape
    r = window // 2
    sigma = np.array([[fine[k, b][valid].std() for b in range(B)] for k in range(2)])
    out = np.zeros((B, H, W))
    out_valid = np.zeros((H, W), bool)
    for y in range(H):
        for x in range(W):
            if not valid[y, x]:
                continue
            box = [(j, i) for j in range(max(0, y - r), min(H, y + r + 1))
                   for i in range(max(0, x - r), min(W, x + r + 1)) if valid[j, i]]
            similar, weights = [], []
            for j, i in box:
                if all(abs(fine[k, b, j, i] - fine[k, b, y, x]) < 2 * sigma[k, b] / classes
                       for k in range(2) for b in range(B)):
                    f = fine[:, :, j, i].ravel()
                    c = coarse[:, :, j, i].ravel()
                    fc, cc = f - f.mean(), c - c.mean()
                    den = math.sqrt((fc ** 2).sum() * (cc ** 2).sum())
                    corr = (fc * cc).sum() / den if den > 0 else 0.5
                    d = 1 + math.sqrt((y - j) ** 2 + (x - i) ** 2) / r
                    similar.append((j, i))
                    weights.append(1 / ((1 - corr) * d + 1e-7))
            weights = np.array(weights) / np.sum(weights)
            out_valid[y, x] = True
            for b in range(B):
                means = [np.mean([coarse[k, b, j, i] for j, i in box]) for k in range(2)]
                mean_p = np.mean([coarse_pred[b, j, i] for j, i in box])
                inverse = [1 / (abs(mean_p - m) + 1e-14) for m in means]
                t_weight = [v / sum(inverse) for v in inverse]
                if len(similar) <= 5:
                    out[b, y, x] = sum(t_weight[k] * (fine[k, b, y, x] + mean_p - means[k]) for k in range(2))
                    continue
                xs = np.array([coarse[k, b, j, i] for k in range(2) for j, i in similar])
                ys = np.array([fine[k, b, j, i] for k in range(2) for j, i in similar])
                v = 1.0
                moved = abs(np.mean(xs[:len(similar)]) - np.mean(xs[len(similar):])) >= 0.02 * data_max
                if moved and xs.var() > 1e-12:
                    fit = stats.linregress(xs, ys)
                    if fit.pvalue <= 0.05 and 0 < fit.slope <= max_slope:
                        v = fit.slope
                preds = [fine[k, b, y, x] + v * sum(w * (coarse_pred[b, j, i] - coarse[k, b, j, i])
                                                    for w, (j, i) in zip(weights, similar)) for k in range(2)]
                value = sum(t_weight[k] * preds[k] for k in range(2))
                if value <= data_min or value >= data_max:
                    value = sum(t_weight[k] * sum(w * fine[k, b, j, i] for w, (j, i) in zip(weights, similar))
                                for k in range(2))
                out[b, y, x] = value
    return out, out_valid
