"""Compiled CPU kernels of the moving-window sums of the classic methods (numba, ahead of use, cached on disk).

The torch path evaluates a window offset by offset as whole-tile tensor operations: about ten passes over the
tile's memory per offset, so it is memory bound (issue 14: STARFM at CIA size 52-66 s on two cores). These kernels
fuse the work of every offset: for one row of centre pixels of one band, the neighbour rows stay in the cache while
all (2r+1)^2 offsets are accumulated, and the inner loop over the row's pixels is branch-free float32 arithmetic
that the compiler turns into SIMD instructions. Rows are shared among the cores (``prange``).

Only the O(window^2) sums are compiled; everything computed once per pixel (differences, limits, per-neighbour
weights) stays in the method's module, on torch, so both paths use ONE set of rules and agree to float rounding
(tested: to 1 stored unit). CUDA devices, or a machine without numba, use the torch path. Set
``STF_COMPILED_KERNELS=0`` to force the torch path on the CPU (the equality tests do).
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

try:  # numba is a pinned requirement; without it (a user's own QGIS Python) the torch path runs
    import llvmlite.binding
    import numba
    from numba import prange

    # The inner loops read ~8 arrays and write 2: LLVM vectorises them only after checking at run time that the
    # arrays do not overlap, and by default it gives up beyond 8 such checks (the loops then run scalar, about
    # 6 times slower, measured). A global LLVM setting of this process; it changes speed, never results.
    llvmlite.binding.set_option("stf", "-runtime-memory-check-threshold=64")
except ImportError:  # pragma: no cover - exercised where numba is missing
    numba = None


def enabled(device: Any) -> bool:
    """True when the compiled kernels run for ``device`` (the CPU, numba importable, not switched off)."""
    return (numba is not None and getattr(device, "type", str(device)) == "cpu"
            and os.environ.get("STF_COMPILED_KERNELS", "1") != "0")


def announce_compilation(device: Any, feedback: Any) -> None:
    """Say so when this run will compile the kernels (the first run after installing or updating the plugin:
    numba caches them in ``__pycache__`` beside this file), since that takes about 20 s before any progress."""
    if feedback is None or not enabled(device):
        return
    cache = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
    try:
        cached = any(name.startswith("kernels.") and name.endswith(".nbi") for name in os.listdir(cache))
    except OSError:
        cached = False
    if not cached:
        feedback.info("Compiling the CPU kernels for this computer (first run only, about 20 s)...")


def distance_weights(radius: int, a: float) -> np.ndarray:
    """1 / D for every offset of the window, D = 1 + d / A (d: distance in pixels), float32 as the torch path."""
    offsets = range(-radius, radius + 1)
    return np.array([[1.0 / (1.0 + math.hypot(dy, dx) / a) for dx in offsets] for dy in offsets], np.float32)


if numba is not None:
    @numba.njit(parallel=True, cache=True, nogil=True)
    def _starfm_usda_sums(fine, slices, abs_lsr, abs_msr, lsr_limit, msr_limit, near, far, value, y0, x0, dinv,
                          num, den):  # pragma: no cover - compiled
        pairs, bands = fine.shape[0], fine.shape[1]
        h, w = num.shape[1], num.shape[2]
        r = (dinv.shape[0] - 1) // 2
        for row in prange(bands * h):
            b = row // h
            i = row - b * h
            ci = y0 + i
            acc_n = np.zeros(w, np.float32)
            acc_d = np.zeros(w, np.float32)
            lsr_c = lsr_limit[b, i]
            msr_c = msr_limit[b, i]
            for k in range(pairs):
                thr = slices[k, b]
                centre = fine[k, b, ci, x0:x0 + w]
                for dy in range(-r, r + 1):
                    n_f = fine[k, b, ci + dy]
                    n_l = abs_lsr[k, b, ci + dy]
                    n_m = abs_msr[k, b, ci + dy]
                    n_near = near[k, b, ci + dy]
                    n_far = far[k, b, ci + dy]
                    n_v = value[k, b, ci + dy]
                    for dx in range(-r, r + 1):
                        d = dinv[dy + r, dx + r]
                        s = x0 + dx  # views starting at the neighbour: non-negative indices, no wraparound test
                        a_f, a_l, a_m = n_f[s:s + w], n_l[s:s + w], n_m[s:s + w]
                        a_near, a_far, a_v = n_near[s:s + w], n_far[s:s + w], n_v[s:s + w]
                        for j in range(w):
                            similar = np.float32(abs(a_f[j] - centre[j]) < thr)
                            rejected = np.float32(a_l[j] > lsr_c[j]) * np.float32(a_m[j] > msr_c[j])
                            weight = (similar - similar * rejected) * (a_near[j] + a_far[j] * d)
                            acc_n[j] += weight * a_v[j]
                            acc_d[j] += weight
            num[b, i] = acc_n
            den[b, i] = acc_d

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _starfm_paper_sums(fine, threshold, s, t, s_max, t_max, inverse, weighted, y0, x0, dinv,
                           num, den):  # pragma: no cover - compiled
        pairs, bands = fine.shape[0], fine.shape[1]
        h, w = num.shape[1], num.shape[2]
        r = (dinv.shape[0] - 1) // 2
        for row in prange(bands * h):
            b = row // h
            i = row - b * h
            ci = y0 + i
            acc_n = np.zeros(w, np.float32)
            acc_d = np.zeros(w, np.float32)
            for k in range(pairs):
                thr = threshold[k, b]
                centre = fine[k, b, ci, x0:x0 + w]
                s_c = s_max[b, i]
                t_c = t_max[b, i]
                for dy in range(-r, r + 1):
                    n_f = fine[k, b, ci + dy]
                    n_s = s[k, b, ci + dy]
                    n_t = t[k, b, ci + dy]
                    n_inv = inverse[k, b, ci + dy]
                    n_wc = weighted[k, b, ci + dy]
                    for dx in range(-r, r + 1):
                        d = dinv[dy + r, dx + r]
                        o = x0 + dx  # views starting at the neighbour: non-negative indices, no wraparound test
                        a_f, a_s, a_t, a_inv, a_wc = n_f[o:o + w], n_s[o:o + w], n_t[o:o + w], n_inv[o:o + w], \
                            n_wc[o:o + w]
                        for j in range(w):
                            keep = (np.float32(abs(a_f[j] - centre[j]) <= thr) * np.float32(a_s[j] < s_c[j])
                                    * np.float32(a_t[j] < t_c[j]) * d)
                            acc_n[j] += keep * a_wc[j]
                            acc_d[j] += keep * a_inv[j]
            num[b, i] = acc_n
            den[b, i] = acc_d


    @numba.njit(parallel=True, cache=True, nogil=True)
    def _estarfm_sums(fine, inv_threshold, valid, one_minus_r, by_weight, by_similar, y0, x0, dfac, acc_w,
                      acc_s):  # pragma: no cover - compiled
        q_f = fine.shape[0]
        q_w, q_s = by_weight.shape[2], by_similar.shape[2]
        h, w = acc_w.shape[0], acc_w.shape[1]
        r = (dfac.shape[0] - 1) // 2
        n = 2 * r + 1
        # one task per row of centre pixels; window rows outermost, so that one row of the channels-last inputs
        # (every quantity of the neighbours of the whole row) and the row's accumulators stay in the cache
        for i in prange(h):
            ci = y0 + i
            worst = np.empty(n, np.float32)
            where = np.empty(n, np.int64)
            weights = np.empty(n, np.float32)
            aw_row, as_row = acc_w[i], acc_s[i]
            aw_row[:] = 0.0
            as_row[:] = 0.0
            for dy in range(-r, r + 1):
                yy = ci + dy
                row_w, row_s = by_weight[yy], by_similar[yy]
                ok, omr, dist = valid[yy], one_minus_r[yy], dfac[dy + r]
                for j in range(w):
                    cj = x0 + j
                    worst[:] = 0.0
                    for q in range(q_f):  # similar in every band at both dates: max |dF| / threshold < 1
                        a, c, t = fine[q, yy, cj - r:cj + r + 1], fine[q, ci, cj], inv_threshold[q]
                        for k in range(n):
                            worst[k] = max(worst[k], abs(a[k] - c) * t)
                    m = 0  # the similar neighbours of this window row, left to right
                    for k in range(n):
                        x = cj - r + k
                        if worst[k] < 1.0 and ok[x] != 0:
                            where[m] = x
                            weights[m] = np.float32(1.0) / (omr[x] * dist[k] + np.float32(1e-7))
                            m += 1
                    aw, a_s = aw_row[j], as_row[j]
                    g = 0
                    while g + 4 <= m:  # four neighbours per pass over the accumulators, added in their order
                        b0, b1, b2, b3 = row_w[where[g]], row_w[where[g + 1]], row_w[where[g + 2]], row_w[where[g + 3]]
                        w0, w1, w2, w3 = weights[g], weights[g + 1], weights[g + 2], weights[g + 3]
                        for q in range(q_w):
                            aw[q] = (((aw[q] + w0 * b0[q]) + w1 * b1[q]) + w2 * b2[q]) + w3 * b3[q]
                        s0, s1, s2, s3 = row_s[where[g]], row_s[where[g + 1]], row_s[where[g + 2]], row_s[where[g + 3]]
                        for q in range(q_s):
                            a_s[q] = (((a_s[q] + s0[q]) + s1[q]) + s2[q]) + s3[q]
                        g += 4
                    while g < m:
                        b0, w0, s0 = row_w[where[g]], weights[g], row_s[where[g]]
                        for q in range(q_w):
                            aw[q] += w0 * b0[q]
                        for q in range(q_s):
                            a_s[q] += s0[q]
                        g += 1


    @numba.njit(parallel=True, cache=True, nogil=True)
    def _estarfm_sums_dense(fine, inv_threshold, valid, one_minus_r, by_weight, by_similar, y0, x0, dfac, acc_w,
                            acc_s):  # pragma: no cover - compiled
        q_f, q_w, q_s = fine.shape[0], by_weight.shape[0], by_similar.shape[0]
        h, w = acc_w.shape[1], acc_w.shape[2]
        r = (dfac.shape[0] - 1) // 2
        # one task per row of centre pixels (rows split in chunks that fit the L1 cache measured 1.5-8x slower:
        # every short inner loop pays its own alias checks)
        for i in prange(h):
            ci = y0 + i
            aw = np.zeros((q_w, w), np.float32)
            a_s = np.zeros((q_s, w), np.float32)
            worst = np.empty(w, np.float32)
            sim = np.empty((2, w + 1), np.float32)  # two neighbours' factors: offsets dx and dx + 1
            weight = np.empty((2, w + 1), np.float32)
            for dy in range(-r, r + 1):
                yy = ci + dy
                # offsets in pairs (dx, dx + 1): each accumulator is loaded and stored once per two products
                # (measured ~10 % faster); the odd last offset pairs with a zero factor
                for dx in range(-r, r + 1, 2):
                    for k in range(2):
                        if dx + k > r:
                            sim[k, :w] = 0.0
                            weight[k, :w] = 0.0
                            continue
                        s = x0 + dx + k  # views starting at the neighbour: non-negative indices, no wraparound
                        worst[:] = 0.0
                        for q in range(q_f):  # similar in every band at both dates: max |dF| / threshold < 1
                            a, c, t = fine[q, yy, s:s + w], fine[q, ci, x0:x0 + w], inv_threshold[q]
                            for j in range(w):
                                worst[j] = max(worst[j], abs(a[j] - c[j]) * t)
                        ok, omr, d = valid[yy, s:s + w], one_minus_r[yy, s:s + w], dfac[dy + r, dx + k + r]
                        sk, wk = sim[k], weight[k]
                        for j in range(w):
                            sk[j] = np.float32(worst[j] < 1.0) * ok[j]
                            wk[j] = sk[j] / (omr[j] * d + np.float32(1e-7))
                    s = x0 + dx
                    last = 1 if dx + 1 <= r else 0  # the second view must stay inside the padded row
                    w0, w1, s0, s1 = weight[0], weight[1], sim[0], sim[1]
                    for q in range(q_w):
                        a0, a1, acc = by_weight[q, yy, s:s + w], by_weight[q, yy, s + last:s + last + w], aw[q]
                        for j in range(w):
                            acc[j] = (acc[j] + w0[j] * a0[j]) + w1[j] * a1[j]  # the torch path's order
                    for q in range(q_s):
                        a0, a1, acc = by_similar[q, yy, s:s + w], by_similar[q, yy, s + last:s + last + w], a_s[q]
                        for j in range(w):
                            acc[j] = (acc[j] + s0[j] * a0[j]) + s1[j] * a1[j]
            acc_w[:, i] = aw
            acc_s[:, i] = a_s


    @numba.njit(parallel=True, cache=True, nogil=True)
    def _fsdaf_similar(scaled, coefficient, invalid, change, y0, x0, radius, k, delta,
                       found):  # pragma: no cover - compiled
        bands, h, w = coefficient.shape[0], coefficient.shape[1], coefficient.shape[2]
        channels = change.shape[2]  # channels last, as Fit-FC's
        r = radius
        inf = np.float32(np.inf)
        for i in prange(h):
            ci = y0 + i
            keys = np.full((w, k), inf, np.float32)  # the k smallest keys of each centre, ascending
            spectral = np.zeros((w, k), np.float32)
            where = np.zeros((w, k, 2), np.int32)
            spec = np.empty(w, np.float32)
            worst = np.empty(w, np.float32)
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    factor = np.float32(10.0 + math.sqrt(dy * dy + dx * dx) / r)
                    s = x0 + dx  # views starting at the neighbour: non-negative indices, no wraparound test
                    spec[:] = 0.0
                    worst[:] = 0.0
                    for b in range(bands):
                        a, c, co = scaled[b, ci + dy, s:s + w], scaled[b, ci, x0:x0 + w], coefficient[b, i]
                        for j in range(w):
                            d = abs(a[j] - c[j])
                            spec[j] += d * co[j]
                            worst[j] = max(worst[j], d)
                    bad = invalid[ci + dy, s:s + w]
                    for j in range(w):  # keep the k smallest keys; a tie keeps the earlier offset
                        key = (spec[j] + np.float32(1e-5)) * factor
                        if worst[j] < 1.0 and bad[j] == 0 and key < keys[j, k - 1]:
                            p = k - 1
                            while p > 0 and keys[j, p - 1] > key:
                                keys[j, p] = keys[j, p - 1]
                                spectral[j, p] = spectral[j, p - 1]
                                where[j, p, 0] = where[j, p - 1, 0]
                                where[j, p, 1] = where[j, p - 1, 1]
                                p -= 1
                            keys[j, p] = key
                            spectral[j, p] = spec[j]
                            where[j, p, 0] = dy
                            where[j, p, 1] = dx
            for j in range(w):
                total = np.float32(0.0)
                for m in range(k):
                    if keys[j, m] < inf:
                        dy, dx = where[j, m, 0], where[j, m, 1]
                        d = np.float32(math.sqrt(np.float32(dy * dy + dx * dx)))
                        total += np.float32(1.0) / ((np.float32(1.0) + d / np.float32(r)) * (spectral[j, m] + 1))
                found[i, j] = keys[j, 0] < inf
                for b in range(channels):
                    delta[i, j, b] = 0.0
                if total <= 0:
                    continue
                for m in range(k):
                    if keys[j, m] < inf:
                        dy, dx = where[j, m, 0], where[j, m, 1]
                        d = np.float32(math.sqrt(np.float32(dy * dy + dx * dx)))
                        weight = np.float32(1.0) / ((np.float32(1.0) + d / np.float32(r)) * (spectral[j, m] + 1))
                        weight /= total
                        for b in range(channels):  # every band of every date: one selection for all
                            delta[i, j, b] += weight * change[ci + dy, x0 + j + dx, b]


    @numba.njit(parallel=True, cache=True, nogil=True)
    def _fitfc_similar(fine, value, invalid, y0, x0, k, dinv, result, found):  # pragma: no cover - compiled
        bands, h, w = fine.shape[0], result.shape[0], result.shape[1]
        channels = result.shape[2]  # the value's bands, of one or several dates (channels last: one neighbour's
        # channels are contiguous, so the weighted sums of many dates do not miss the cache per channel)
        r = (dinv.shape[0] - 1) // 2
        inf = np.float32(np.inf)
        inverse_bands = np.float32(1.0 / bands)
        for i in prange(h):
            ci = y0 + i
            keys = np.full((w, k), inf, np.float32)  # the k smallest D of each centre, ascending
            where = np.zeros((w, k, 2), np.int32)
            spec = np.empty(w, np.float32)
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    s = x0 + dx  # views starting at the neighbour: non-negative indices, no wraparound test
                    spec[:] = 0.0
                    for b in range(bands):
                        a, c = fine[b, ci + dy, s:s + w], fine[b, ci, x0:x0 + w]
                        for j in range(w):
                            spec[j] += abs(a[j] - c[j])
                    bad = invalid[ci + dy, s:s + w]
                    for j in range(w):  # keep the k smallest; a tie keeps the earlier offset
                        key = spec[j] * inverse_bands
                        if bad[j] == 0 and key < keys[j, k - 1]:
                            p = k - 1
                            while p > 0 and keys[j, p - 1] > key:
                                keys[j, p] = keys[j, p - 1]
                                where[j, p, 0] = where[j, p - 1, 0]
                                where[j, p, 1] = where[j, p - 1, 1]
                                p -= 1
                            keys[j, p] = key
                            where[j, p, 0] = dy
                            where[j, p, 1] = dx
            for j in range(w):
                total = np.float32(0.0)
                for m in range(k):
                    if keys[j, m] < inf:
                        total += dinv[where[j, m, 0] + r, where[j, m, 1] + r]
                found[i, j] = keys[j, 0] < inf
                for b in range(channels):
                    result[i, j, b] = 0.0
                if total <= 0:
                    continue
                for m in range(k):
                    if keys[j, m] < inf:
                        dy, dx = where[j, m, 0], where[j, m, 1]
                        weight = dinv[dy + r, dx + r] / total
                        for b in range(channels):
                            result[i, j, b] += weight * value[ci + dy, x0 + j + dx, b]

def fitfc_similar(fine, value, invalid, y0: int, x0: int, h: int, w: int, radius: int,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit-FC's spatial filter (see :func:`..fitfc.similar_filter`): for the h x w centre pixels starting at (y0,
    x0) of the padded ``fine``, ``value`` [B, H, W] and ``invalid`` [H, W], the k valid neighbours of the window
    with the smallest D = mean_b |F1(x_k) - F1(x_ij)| (a tie keeps the earlier offset, row by row); returns the
    mean of ``value`` over them weighted by 1 / (1 + d / A), A = (2 r + 1) / 2, normalised [B, h, w], and whether
    any neighbour was found [h, w]. ``value`` may hold several dates' bands ([dates x B, H, W]): the selection
    depends on ``fine`` only, and each channel is summed in the same order as alone."""
    result = np.empty((h, w, value.shape[0]), np.float32)
    found = np.empty((h, w), np.bool_)
    _fitfc_similar(_np(fine), channels_last([value]), _np(invalid).astype(np.uint8), y0, x0, k,
                   distance_weights(radius, (2 * radius + 1) / 2.0), result, found)
    return np.ascontiguousarray(np.moveaxis(result, -1, 0)), found


def fsdaf_similar(scaled, coefficient, invalid, change, y0: int, x0: int, radius: int,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """FSDAF's final step (see :func:`..fsdaf.final_prediction`): for every centre pixel, the k neighbours of the
    window with the smallest key (S + 1e-5)(10 + d / r) among those similar in every band (|dF| / threshold < 1)
    and valid, S = sum_b |dF_b| / F_b(centre); returns the weighted mean of their ``change`` [B, h, w] with
    weights 1 / ((1 + d / r)(S + 1)) normalised, and whether any neighbour was found [h, w]. ``scaled`` is the
    padded fine image in units of each band's threshold, ``coefficient`` threshold / F(centre) [B, h, w];
    ``change`` [C, H, W] may hold several dates' bands (C = dates x B): the selection depends on the fine image
    only, so it is made once and every channel's weighted mean is accumulated in the same order as alone."""
    _, h, w = coefficient.shape
    delta = np.empty((h, w, change.shape[0]), np.float32)
    found = np.empty((h, w), np.bool_)
    _fsdaf_similar(_np(scaled), _np(coefficient), _np(invalid).astype(np.uint8), channels_last([change]), y0, x0,
                   radius, k, delta, found)
    return np.ascontiguousarray(np.moveaxis(delta, -1, 0)), found


def _estarfm_distance_factors(radius: int) -> np.ndarray:
    """(1 + d / w) for every offset of the window (d: distance in pixels, w the half window), float32."""
    offsets = range(-radius, radius + 1)
    return np.array([[1.0 + math.hypot(dy, dx) / radius for dx in offsets] for dy in offsets], np.float32)


def estarfm_sums(fine, inv_threshold, valid, one_minus_r, by_weight: np.ndarray, by_similar: np.ndarray, y0: int,
                 x0: int, h: int, w: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """ESTARFM's window sums (see :func:`..estarfm.estarfm_tile_dates`): with S = [similar in every band at both
    dates and valid] and W = S / ((1 - R) (1 + d / w) + 1e-7) per neighbour, returns sum W x ``by_weight`` and
    sum S x ``by_similar`` over the window for the h x w centre pixels starting at (y0, x0), channels last
    ``[h, w, quantities]`` each. ``fine`` is [2 B, H, W]; ``by_weight`` and ``by_similar`` are channels last
    ``[H, W, quantities]`` float32 (:func:`channels_last`).

    Only the similar neighbours are visited (issue 28): the similarity test runs once per neighbour, then each
    similar neighbour adds its vector of quantities (every date of a pass, every band) to the centre's
    accumulators; a dissimilar one costs nothing more. Sums are taken in the window's row-by-row order, as the
    torch path's, and skipping a zero weight changes no bit: the results are those of the dense sums. Measured
    on a CIA-like 256-pixel tile (23 % similar neighbours), 46 dates: 2.0 s against 3.8 s for the dense kernel."""
    acc_w = np.empty((h, w, by_weight.shape[2]), np.float32)
    acc_s = np.empty((h, w, by_similar.shape[2]), np.float32)
    dfac = _estarfm_distance_factors(radius)
    _estarfm_sums(_np(fine), _np(inv_threshold).astype(np.float32), _np(valid).astype(np.float32),
                  _np(one_minus_r), by_weight, by_similar, y0, x0, dfac, acc_w, acc_s)
    return acc_w, acc_s


# up to this many prediction dates a pass runs the dense kernel: with few quantities per neighbour its similarity
# test over a row of centres at once is cheaper than the sparse kernel's list (one date: 0.84 s against 0.97 s on
# a CIA-like 256-pixel tile; two dates equal; four: 1.0-1.5 s against 0.7-0.9 s)
ESTARFM_DENSE_DATES = 1


def estarfm_dense_sums(fine, inv_threshold, valid, one_minus_r, by_weight, by_similar, y0: int, x0: int, h: int,
                       w: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`estarfm_sums` summing every neighbour (zero weights included) with ``by_weight`` and ``by_similar``
    channels first, ``[quantities, H, W]`` tensors, and results ``[quantities, h, w]``: for each row of centres
    and each window offset, one SIMD pass over the row per quantity; same sums in the same order (identical
    results)."""
    acc_w = np.empty((by_weight.shape[0], h, w), np.float32)
    acc_s = np.empty((by_similar.shape[0], h, w), np.float32)
    dfac = _estarfm_distance_factors(radius)
    _estarfm_sums_dense(_np(fine), _np(inv_threshold).astype(np.float32), _np(valid).astype(np.float32),
                        _np(one_minus_r), _np(by_weight), _np(by_similar), y0, x0, dfac, acc_w, acc_s)
    return acc_w, acc_s


def channels_last(parts: list, pad: int = 0) -> np.ndarray:
    """Tensors or arrays ``[c_i, H, W]`` stacked along their first axis as one contiguous float32 ``[H, W, sum
    c_i]`` array, one copy of each part; with ``pad``, parts of ``H - 2 pad`` x ``W - 2 pad`` pixels are placed in
    the middle (zero around), so an image need not be padded (copied) first."""
    arrays = [part if isinstance(part, np.ndarray) else _np(part) for part in parts]
    height, width = (max(a.shape[d] for a in arrays) for d in (1, 2))
    out = np.empty((height, width, sum(a.shape[0] for a in arrays)), np.float32)
    c = 0
    for a in arrays:
        k = a.shape[0]
        if a.shape[1:] == (height, width):
            out[..., c:c + k] = np.moveaxis(a, 0, -1)
        else:
            if a.shape[1:] != (height - 2 * pad, width - 2 * pad):
                raise ValueError(f"a part of {a.shape[1:]} pixels in a {height} x {width} stack padded by {pad}")
            out[:pad, :, c:c + k] = 0.0
            out[height - pad:, :, c:c + k] = 0.0
            out[:, :pad, c:c + k] = 0.0
            out[:, width - pad:, c:c + k] = 0.0
            out[pad:height - pad, pad:width - pad, c:c + k] = np.moveaxis(a, 0, -1)
        c += k
    return out


def _np(tensor: Any) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy())


def starfm_usda_sums(fine, slices, abs_lsr, abs_msr, lsr_limit, msr_limit, near, far, value, y0: int, x0: int,
                     radius: int, a: float) -> tuple[np.ndarray, np.ndarray]:
    """USDA STARFM's window sums: num = sum over pairs and neighbours of W x value, den = sum of W, where
    W = (near + far / D) x [|L_n - L_c| < s_k] x not(|M-L|_n > limit_c and |M-M0|_n > limit_c). Inputs are the
    padded per-neighbour tensors of :func:`..starfm.usda_tile`; the centre pixels start at (y0, x0)."""
    num = np.empty(lsr_limit.shape, np.float32)
    den = np.empty(lsr_limit.shape, np.float32)
    _starfm_usda_sums(_np(fine), _np(slices).astype(np.float32), _np(abs_lsr), _np(abs_msr), _np(lsr_limit),
                      _np(msr_limit), _np(near), _np(far), _np(value), y0, x0, distance_weights(radius, a), num, den)
    return num, den


def starfm_paper_sums(fine, threshold, s, t, s_max, t_max, inverse, weighted, y0: int, x0: int, radius: int,
                      a: float) -> tuple[np.ndarray, np.ndarray]:
    """STARFM (paper reading) window sums: num = sum over pairs and neighbours of [candidate] / D x value / (S T),
    den = the same without the value (see :func:`..starfm.starfm_tile`)."""
    shape = s_max.shape  # [B, h, w]
    num = np.empty(shape, np.float32)
    den = np.empty(shape, np.float32)
    _starfm_paper_sums(_np(fine), _np(threshold).astype(np.float32), _np(s), _np(t), _np(s_max), _np(t_max),
                       _np(inverse), _np(weighted), y0, x0, distance_weights(radius, a), num, den)
    return num, den
