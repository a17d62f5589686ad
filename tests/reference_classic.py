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


def estarfm_reference(fine, coarse, coarse_pred, valid, window, classes, max_slope=5.0):
    """ESTARFM (Zhu et al. 2010) per central pixel; fine, coarse [2, B, H, W]."""
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
            similar, weights = [], []
            for j in range(max(0, y - r), min(H, y + r + 1)):
                for i in range(max(0, x - r), min(W, x + r + 1)):
                    if not valid[j, i]:
                        continue
                    if all(abs(fine[k, b, j, i] - fine[k, b, y, x]) <= 2 * sigma[k, b] / classes
                           for k in range(2) for b in range(B)):
                        f = fine[:, :, j, i].ravel()
                        c = coarse[:, :, j, i].ravel()
                        fc, cc = f - f.mean(), c - c.mean()
                        den = math.sqrt((fc ** 2).sum() * (cc ** 2).sum())
                        corr = (fc * cc).sum() / den if den > 0 else 0.0
                        d = 1 + math.sqrt((y - j) ** 2 + (x - i) ** 2) / (window / 2)
                        similar.append((j, i))
                        weights.append(1 / ((1 - corr) * d + 1e-7))
            weights = np.array(weights) / np.sum(weights)
            out_valid[y, x] = True
            for b in range(B):
                xs = np.array([coarse[k, b, j, i] for k in range(2) for j, i in similar])
                ys = np.array([fine[k, b, j, i] for k in range(2) for j, i in similar])
                v = 1.0
                if len(similar) >= 3 and xs.var() > 1e-12:
                    fit = stats.linregress(xs, ys)
                    n = len(xs)
                    t = abs(fit.rvalue) * math.sqrt((n - 2) / max(1 - fit.rvalue ** 2, 1e-7))
                    if t > stats.t.ppf(0.975, n - 2) and 0 < fit.slope <= max_slope:
                        v = fit.slope
                preds, inverse = [], []
                for k in range(2):
                    change = sum(w * (coarse_pred[b, j, i] - coarse[k, b, j, i]) for w, (j, i) in zip(weights, similar))
                    preds.append(fine[k, b, y, x] + v * change)
                    box = [(j, i) for j in range(max(0, y - r), min(H, y + r + 1))
                           for i in range(max(0, x - r), min(W, x + r + 1)) if valid[j, i]]
                    total = sum(coarse[k, b, j, i] - coarse_pred[b, j, i] for j, i in box)
                    inverse.append(1 / max(abs(total), 1e-12))
                out[b, y, x] = sum(p * w / sum(inverse) for p, w in zip(preds, inverse))
    return out, out_valid


def fsdaf_reference(f1, c2, valid, classes, class_change, residual, block_pixels, factor, window, similar):
    """FSDAF per-pixel steps (Zhu et al. 2016 eqs. 7, 20-25) given the scene-wide class map, class changes and
    coarse residuals. f1, c2 [B, H, W]; classes [H, W]; class_change [B, n]; residual [B, Hc, Wc]."""
    B, H, W = f1.shape
    r = (2 * (factor // 2) + 1) // 2
    change = np.zeros((B, H, W))
    cw = np.zeros((B, H, W))
    for y in range(H):
        for x in range(W):
            if not valid[y, x]:
                continue
            same = total = 0
            for j in range(max(0, y - r), min(H, y + r + 1)):
                for i in range(max(0, x - r), min(W, x + r + 1)):
                    if valid[j, i]:
                        total += 1
                        same += classes[j, i] == classes[y, x]
            hi = same / total
            for b in range(B):
                tp = f1[b, y, x] + class_change[b, classes[y, x]]
                e_ho = c2[b, y, x] - tp
                e_he = residual[b, y // factor, x // factor]
                cw[b, y, x] = abs(e_ho * hi + e_he * (1 - hi))
    for by in range(0, H, factor):
        for bx in range(0, W, factor):
            for b in range(B):
                block = [(j, i) for j in range(by, min(H, by + factor)) for i in range(bx, min(W, bx + factor))
                         if valid[j, i]]
                total = sum(cw[b, j, i] for j, i in block)
                m = block_pixels[by // factor, bx // factor]
                for j, i in block:
                    share = cw[b, j, i] / total if total >= 1e-10 else 1 / m
                    r_ij = m * residual[b, by // factor, bx // factor] * share
                    change[b, j, i] = r_ij + class_change[b, classes[j, i]]
    rw = window // 2
    out = np.zeros((B, H, W))
    for y in range(H):
        for x in range(W):
            if not valid[y, x]:
                continue
            candidates = []
            for j in range(y - rw, y + rw + 1):
                for i in range(x - rw, x + rw + 1):
                    if 0 <= j < H and 0 <= i < W and valid[j, i]:
                        diff = np.mean((f1[:, j, i] - f1[:, y, x]) ** 2)
                        candidates.append((diff, j, i))
            candidates.sort(key=lambda c: c[0])
            chosen = candidates[:similar]
            weights = np.array([1 / (1 + math.sqrt((j - y) ** 2 + (i - x) ** 2) / (window / 2)) for _, j, i in chosen])
            weights /= weights.sum()
            for b in range(B):
                out[b, y, x] = f1[b, y, x] + sum(w * change[b, j, i] for w, (_, j, i) in zip(weights, chosen))
    return out
