"""FSDAF: Flexible Spatiotemporal DAta Fusion (Zhu, Helmer, Gao, Liu, Chen & Lefsky 2016, Remote Sensing of
Environment 172, 165-177), following the rules of Xiaolin Zhu's reference code (the Python port of the IDL,
"python_fsdaf_updated_20210331"). One pair (fine F1, coarse C1 at t1) and the coarse image C2 at t2, values in
reflectance (the code's DN_min / DN_max are ``data_min`` / ``data_max``).

1. Classify F1 without supervision into ``classes`` classes.
2. Class fractions f_c(x_i) of every coarse pixel x_i (a block of ``factor`` x ``factor`` fine pixels); a coarse
   pixel with invalid fine pixels has no fractions.
3. Class changes dF(c) (paper eqs. 4-6, the code's rules): per band, for each class the ``num_pure`` coarse pixels
   with the largest fraction of it (fraction > 0.01), of those only the ones whose coarse change dC = C2 - C1 lies
   between the 10th and 90th percentile (no land-cover change); dC(x_i) = sum_c f_c(x_i) dF(c) solved by ordinary
   least squares over all of them (no intercept, no bounds).
4. Temporal prediction F2_TP(x_ij) = F1(x_ij) + dF(c(x_ij))                                          (eq. 7)
5. Residual of each coarse pixel R(x_i) = dC(x_i) - sum_c f_c(x_i) dF(c)                              (eq. 8)
6. Spatial prediction F2_SP: a multiquadric radial-basis interpolation (the code's "TPS") of the coarse block
   means of C2 at the coarse pixel centres, per block of ``block`` x ``block`` coarse pixels with a margin of one
   coarse pixel, evaluated at every fine pixel.
7. Homogeneity index HI(x_ij): share of the pixels of the (2 w + 1)^2 window (w the half window, clipped at the
   scene border) that have the class of x_ij.
8. Residual distribution: E = F2_SP - F2_TP, set to 0 where its sign disagrees with R(x_i); weight W = |E| HI +
   |R| (1 - HI) + 1e-10, divided by its mean over the coarse pixel, values above 10 set to 1, divided by the mean
   again; r(x_ij) = W R(x_i)                                                                     (eqs. 20-23)
9. F2 = F2_TP + r clamped to [max(min(C2, F2_TP), data_min), min(max(C2, F2_TP), data_max)] (per band, scene);
   total change dF(x_ij) = F2 - F1                                                               (eq. 24)
10. Final prediction from similar pixels in the window: |F1(x_k) - F1(x_ij)| < 2 sd(b) / classes in every band
    (sd over the scene), ranked by (S + 1e-5)(10 + d / w) with S = sum_b |F1(x_k) - F1(x_ij)| / F1(x_ij), the
    ``similar`` best; weights (1 / ((1 + d / w)(S + 1))) normalised; F2(x_ij) = F1(x_ij) + sum_k w_k dF(x_k)
    (eq. 25); a prediction outside the data range becomes F1 + C2 - C1 clamped into it.

Deviations from the reference code: k-means (k-means++ start, ``classes`` = 5, the middle of the code's ISODATA
range 4-6) instead of ISODATA; steps 1-5 and 9's range run over the whole scene (the code repeats them per block of
``block`` coarse pixels; the same on scenes of up to ``block`` x ``factor`` pixels); F1 is not clipped to its
0.01-99.99 percentiles before unmixing; float32 reflectance instead of float64 DN.

Defaults as the reference code: half window 20 (``window`` 41), 20 similar pixels, 100 purest coarse pixels, blocks
of 30 coarse pixels. The coarse pixels are rebuilt as block means of the coarse images on the fine grid, so
``factor`` must be the coarse/fine pixel-size ratio (default: from the data, recorded by stf:resample_coarse, else
estimated, else refused; :mod:`..coarse_grid`) and the fine grid must start on a coarse pixel corner (as
stf:resample_coarse outputs do). Scene-wide steps run once per date on coarse arrays and a class map (the
classification and the pair's coarse-pixel sums once per pair, shared by its dates); the per-pixel steps run tile
by tile in two passes (total change to a temporary raster, then the final filter), so memory is bounded by the
tile size.
"""
from __future__ import annotations

import copy
import datetime as _dt
import math
import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..coarse_grid import resolve_factor
from ..arrays import backend, namespace_of
from ..errors import InputError
from ..feedback import Feedback, SubFeedback, check_cancel
from ..executor import map_ordered
from ..fusion import write_predictions
from ..raster import RasterWriter, read_block
from ..series import SceneSeries, read_item
from ..tiles import Tile, plan_tiles
from . import kernels
from .common import (TileDates, Window, block_sum, check_window, cpu_tile_size, method_device, pad,
                     pair_sets, window_radius)


@dataclass
class FsdafParams:
    """FSDAF settings (defaults as documented in the module)."""

    tile_size: int = 0  # tile side in pixels; 0 = automatic (128 on the CPU, the memory budget on a GPU)
    factor: int = 0  # 0: from the coarse images (recorded native pixel size, else estimated; core/coarse_grid.py)
    classes: int = 5
    window: int = 41
    similar: int = 20
    num_pure: int = 100
    block: int = 30
    data_min: float = 0.0
    data_max: float = 1.0
    sample: int = 200_000
    kmeans_iterations: int = 30
    seed: int = 0

    def validate(self) -> None:
        if self.factor < 0 or self.factor == 1:
            raise InputError(f"The coarse factor must be at least 2, or 0 to read it from the coarse images (got "
                             f"{self.factor}).")
        if self.classes < 2:
            raise InputError(f"FSDAF needs at least 2 classes (got {self.classes}).")
        check_window(self.window, "FSDAF")
        if self.similar < 1 or self.similar > self.window ** 2:
            raise InputError(f"The number of similar pixels must be between 1 and window^2 (got {self.similar}).")


# Dates of a tile in one pass of the final filter: its selection of similar pixels (the pair's, shared) costs
# about 25 s a pass at CIA size and each further date about 0.1 s, so passes are longer than the common 16; 24
# takes the dates of an 8-day year between two pairs, 23 per pair, in one pass each (issue 28), about 200 MB more
# than 16 on a 256-pixel tile
DATES_PER_PASS_FINAL = 24
HI_CACHE_BYTES = 128 * 2**20  # homogeneity indices kept for the pair's later dates (CIA size: 17 MB)


def kmeans(x, k: int, iterations: int, seed: int):
    """Lloyd's k-means with k-means++ initialisation on the rows of ``x`` [N, B]; returns centroids [k, B]. The
    initial draws come from NumPy's generator seeded with ``seed``, so torch and the NumPy backend (core/arrays.py)
    start from the same centroids."""
    xp = namespace_of(x)
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    if n < k:
        raise InputError(f"Only {n} valid fine pixels for {k} classes.")
    centroids = [x[int(rng.integers(n))]]
    for _ in range(1, k):
        d2 = (xp.cdist(x, xp.stack(centroids)).amin(dim=1) ** 2).cpu().numpy().astype(np.float64)
        total = d2.sum()
        centroids.append(x[int(rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n))])
    centroids = xp.stack(centroids)
    for _ in range(iterations):
        labels = xp.cdist(x, centroids).argmin(dim=1)
        sums = xp.zeros_like(centroids).index_add_(0, labels, x)
        counts = xp.bincount(labels, minlength=k).to(x.dtype)[:, None]
        updated = xp.where(counts > 0, sums / counts.clamp_min(1), centroids)
        if xp.allclose(updated, centroids):
            break
        centroids = updated
    return centroids


class _PairScan:
    """Steps 1-2 over the scene for one pair, and the per coarse pixel sums a date needs, in one pass over
    block-aligned tiles: the class map (uint8, 255 = invalid), per coarse pixel the sums of C1 (and C2) and the
    class counts over the valid pixels, F1's range per class and its moments. ``c2`` None: valid = F1 and C1 valid,
    the part that every date of the pair shares (issue 28); else F1, C1 and C2 valid."""

    def __init__(self, scene: "_Scene", pair, c1, c2, feedback) -> None:
        params, f = scene.params, scene.params.factor
        bands, classes = pair.info.bands, params.classes
        self.labels = np.full((scene.height, scene.width), 255, np.uint8)
        self.sums = np.zeros((2, bands, scene.hc, scene.wc))  # C1, C2 sums over valid pixels
        self.counts = np.zeros((classes + 1, scene.hc, scene.wc))  # per class, then all valid
        self.class_min = np.full((classes, bands), np.inf)  # F1 per class (for the range of F2_TP)
        self.class_max = np.full((classes, bands), -np.inf)
        self.c2_min, self.c2_max = np.full(bands, np.inf), np.full(bands, -np.inf)
        self.f1_sum, self.f1_squares, self.f1_n = np.zeros(bands), np.zeros(bands), 0
        for tile in scene.block_tiles:
            check_cancel(feedback)
            w = tile.inner
            f1, v1 = read_item(pair, w, scene.scale)
            a, valid = read_item(c1, w, scene.scale)
            valid &= v1
            if c2 is not None:
                b, vb = read_item(c2, w, scene.scale)
                valid &= vb
            labels = scene.classify(f1)
            labels[~valid] = 255
            self.labels[w.slices] = labels
            by, bx = w.y // f, w.x // f
            nby, nbx = -(-w.height // f), -(-w.width // f)
            self.sums[0, :, by:by + nby, bx:bx + nbx] += block_sum(np.where(valid, a, 0.0), f)
            for c in range(classes):
                self.counts[c, by:by + nby, bx:bx + nbx] += block_sum((labels == c)[None].astype(float), f)[0]
                members = f1[:, labels == c]
                if members.size:
                    self.class_min[c] = np.minimum(self.class_min[c], members.min(axis=1))
                    self.class_max[c] = np.maximum(self.class_max[c], members.max(axis=1))
            self.counts[-1, by:by + nby, bx:bx + nbx] += block_sum(valid[None].astype(float), f)[0]
            if valid.any():
                values = f1[:, valid].astype(np.float64)
                self.f1_sum += values.sum(axis=1)
                self.f1_squares += (values * values).sum(axis=1)
                self.f1_n += values.shape[1]
                if c2 is not None:
                    self.add_c2(w, b, valid, f)

    def add_c2(self, w, b: np.ndarray, valid: np.ndarray, f: int) -> None:
        """C2's sums per coarse pixel and range over the valid pixels of the window ``w``."""
        by, bx = w.y // f, w.x // f
        nby, nbx = -(-w.height // f), -(-w.width // f)
        self.sums[1, :, by:by + nby, bx:bx + nbx] += block_sum(np.where(valid, b, 0.0), f)
        if valid.any():
            self.c2_min = np.minimum(self.c2_min, b[:, valid].min(axis=1))
            self.c2_max = np.maximum(self.c2_max, b[:, valid].max(axis=1))

    def with_c2(self, scene: "_Scene", c2, feedback) -> "_PairScan | None":
        """This pair's scan completed with the date's coarse image C2, or None where C2 lacks a pixel that F1 and C1
        have (the date then needs its own scan: its class counts and ranges change)."""
        f = scene.params.factor
        done = copy.copy(self)
        done.sums = self.sums.copy()
        done.c2_min, done.c2_max = self.c2_min.copy(), self.c2_max.copy()
        for tile in scene.block_tiles:
            check_cancel(feedback)
            w = tile.inner
            b, vb = read_item(c2, w, scene.scale)
            valid = self.labels[w.slices] != 255
            if (valid & ~vb).any():
                return None
            done.add_c2(w, b, valid, f)
        return done


class _Scene:
    """Scene-wide FSDAF state for one prediction: class map, coarse arrays, class changes, residuals. ``shared``: the
    pair's k-means centroids and scan, computed once for the dates of a pair (issue 28; filled on first use)."""

    def __init__(self, series, pair, date, scale, params, device, feedback, shared: dict | None = None):
        xp = backend()
        self.xp, self.dev, self.params, self.scale = xp, device, params, scale
        self.pair, self.c1, self.c2 = pair, series.coarse_at(pair.date), series.coarse_at(date)
        grid = series.grid
        f = params.factor
        self.height, self.width = grid.height, grid.width
        self.hc, self.wc = -(-grid.height // f), -(-grid.width // f)
        self.block_tiles = plan_tiles(grid.width, grid.height, max(f, (512 // f) * f))
        shared = {} if shared is None else shared
        if "centroids" not in shared:
            rng = np.random.default_rng(params.seed)
            share = params.sample / max(grid.width * grid.height, 1)
            samples = []
            for tile in self.block_tiles:
                data, valid = read_item(pair, tile.inner, scale)
                pixels = data[:, valid].T
                take = min(len(pixels), int(math.ceil(share * pixels.shape[0])))
                samples.append(pixels[rng.choice(len(pixels), take, replace=False)] if take else pixels[:0])
            sample = xp.from_numpy(np.concatenate(samples)).to(device)
            shared["centroids"] = kmeans(sample, params.classes, params.kmeans_iterations, params.seed)
        self.centroids = shared["centroids"]
        # class map and coarse-pixel sums: the pair's scan completed with C2, or the date's own scan where C2 has
        # holes that the pair has not (the same values either way)
        if "scan" not in shared:
            shared["scan"] = _PairScan(self, pair, self.c1, None, feedback)
        scan = shared["scan"].with_c2(self, self.c2, feedback)
        # the homogeneity index per tile, shared with the pair's other dates where the class map is the pair's
        self.hi_cache = {} if scan is None else shared.setdefault("hi", {})
        scan = scan or _PairScan(self, pair, self.c1, self.c2, feedback)
        self.classes = scan.labels
        n_valid = scan.counts[-1]
        ok = n_valid > 0
        self.block_pixels = n_valid
        sums = scan.sums
        delta_c = np.where(ok, (sums[1] - sums[0]) / np.maximum(n_valid, 1), 0.0)  # [B, hc, wc]
        self.coarse2 = np.where(ok, sums[1] / np.maximum(n_valid, 1), 0.0)  # block means of C2, for the TPS
        fractions = scan.counts[:-1] / np.maximum(n_valid, 1)  # [classes, hc, wc]
        complete = n_valid >= _block_sizes(grid.height, grid.width, f)  # every fine pixel valid
        self.class_change = _class_changes(delta_c, np.where(complete[None], fractions, 0.0), params.num_pure)
        self.residual = np.where(ok, delta_c - np.einsum("bc,chw->bhw", self.class_change, fractions), 0.0)
        # the range F2 is clamped into: C2 and F2_TP over the scene, within the data range
        present = np.isfinite(scan.class_min[:, 0])
        tp_min = (scan.class_min[present] + self.class_change.T[present]).min(axis=0)
        tp_max = (scan.class_max[present] + self.class_change.T[present]).max(axis=0)
        self.allowed = (np.maximum(np.minimum(scan.c2_min, tp_min), params.data_min),
                        np.minimum(np.maximum(scan.c2_max, tp_max), params.data_max))
        mean = scan.f1_sum / max(scan.f1_n, 1)
        self.similar_threshold = 2.0 * np.sqrt(np.maximum(scan.f1_squares / max(scan.f1_n, 1) - mean * mean, 0.0)) \
            / params.classes
        if feedback is not None:
            feedback.info(f"FSDAF {date.isoformat()} from the pair {pair.date.isoformat()}: class changes (band 1) "
                          + ", ".join(f"{v:+.4f}" for v in self.class_change[0]))

    def classify(self, data: np.ndarray) -> np.ndarray:
        xp = self.xp
        pixels = xp.from_numpy(data.reshape(data.shape[0], -1).T.copy()).to(self.dev)
        labels = xp.cdist(pixels, self.centroids).argmin(dim=1)
        return labels.cpu().numpy().astype(np.uint8).reshape(data.shape[1:])

    def total_change(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """dF(x_ij) (steps 4-9 of the module docstring) on the tile's inner window, which holds whole coarse pixels;
        the outer window adds the homogeneity window's radius."""
        xp, params, f = self.xp, self.params, self.params.factor
        outer, inner = tile.outer, tile.inner
        f1, v1 = read_item(self.pair, outer, self.scale)
        labels = self.classes[outer.slices]
        valid = v1 & (labels != 255)
        t = lambda a: xp.from_numpy(np.ascontiguousarray(a)).to(self.dev)  # noqa: E731
        labels_t = t(np.where(valid, labels, params.classes).astype(np.int64))  # invalid: a class of its own
        change = t(self.class_change.astype(np.float32))  # [B, classes]
        change = xp.cat([change, xp.zeros_like(change[:, :1])], dim=1)
        f1_t = t(f1)
        temporal = f1_t + change[:, labels_t]  # F2_TP [B, H, W]
        rows, cols = tile.inner_in_outer
        # homogeneity index: share of the (2 r + 1)^2 window (clipped at the scene border) in the pixel's class;
        # it depends on the class map only, so the dates sharing the pair's map share it (issue 28)
        key = (outer.x, outer.y, outer.width, outer.height)
        hi = self.hi_cache.get(key)
        if hi is None:
            r = window_radius(params.window)
            onehot = xp.nn.functional.one_hot(labels_t, params.classes + 1).permute(2, 0, 1).to(xp.float64)
            counts = _box_count(onehot, r)  # same-class pixels in the window (integral images: exact counts)
            area = _box_count(xp.ones_like(onehot[:1]), r)[0]
            hi = (counts.gather(0, labels_t[None])[0] / area).to(xp.float32)[rows, cols]
            held = sum(4 * math.prod(v.shape) for v in self.hi_cache.values())
            if held + 4 * math.prod(hi.shape) <= HI_CACHE_BYTES:  # bounded: a large scene recomputes the rest
                self.hi_cache[key] = hi
        temporal, f1_in = temporal[:, rows, cols], f1_t[:, rows, cols]
        valid_in = t(valid[rows, cols])
        h, w = inner.height, inner.width
        # spatial prediction: multiquadric interpolation of the coarse means (the block plus one coarse pixel)
        hc, wc = self.block_pixels.shape
        cy0, cx0 = max(0, inner.y // f - 1), max(0, inner.x // f - 1)
        cy1, cx1 = min(hc, -(-(inner.y + h) // f) + 1), min(wc, -(-(inner.x + w) // f) + 1)
        cy, cx = np.meshgrid(np.arange(cy0, cy1), np.arange(cx0, cx1), indexing="ij")
        present = self.block_pixels[cy, cx] > 0
        nodes = np.stack([cy[present] * f + (f - 1) / 2.0, cx[present] * f + (f - 1) / 2.0], axis=1)
        values = self.coarse2[:, cy[present], cx[present]].T  # [N, B]
        if present.any():
            node_weights, eps = multiquadric_weights(nodes, values)
            weights = np.zeros((values.shape[1],) + present.shape)  # per coarse pixel, 0 where it is no node
            weights[:, present] = node_weights.T
            interpolated = multiquadric_lattice(weights, eps, f)
        else:  # no valid coarse pixel in the block and its margin: nothing to interpolate
            interpolated = np.zeros((values.shape[1], present.shape[0] * f, present.shape[1] * f))
        oy, ox = inner.y - cy0 * f, inner.x - cx0 * f
        spatial = t(interpolated[:, oy:oy + h, ox:ox + w].astype(np.float32))  # F2_SP [B, h, w]
        # residual of each pixel's coarse pixel, distributed with the code's weights
        ys = (xp.arange(h, device=self.dev) + inner.y) // f
        xs = (xp.arange(w, device=self.dev) + inner.x) // f
        residual = t(self.residual.astype(np.float32))[:, ys][:, :, xs]  # [B, h, w]
        block = ((ys - ys[0])[:, None] * (xs[-1] - xs[0] + 1) + (xs - xs[0])[None, :]).flatten()
        n_blocks = int(block.max().item()) + 1
        weight_valid = valid_in.to(xp.float32)
        members = xp.zeros(n_blocks, device=self.dev).index_add_(0, block, weight_valid.flatten())

        def block_mean(x):
            sums = xp.zeros((x.shape[0], n_blocks), device=self.dev).index_add_(1, block, (x * weight_valid)
                                                                                   .flatten(1))
            return (sums / members.clamp_min(1.0))[:, block].reshape(x.shape)

        e = spatial - temporal
        e = xp.where(((residual <= 0) & (e > 0)) | ((residual > 0) & (e < 0)), 0.0, e).abs()
        weight = e * hi + residual.abs() * (1.0 - hi) + 1e-10
        weight = weight / block_mean(weight)
        weight = xp.where(weight > 10.0, 1.0, weight)  # extreme weights: the (normalised) mean
        weight = weight / block_mean(weight)
        low, high = (t(np.asarray(v, np.float32))[:, None, None] for v in self.allowed)
        predicted = xp.maximum(xp.minimum(temporal + weight * residual, high), low)
        result = xp.where(valid_in, predicted - f1_in, 0.0)
        return result.cpu().numpy(), valid_in.cpu().numpy()


def _box_count(x: Any, r: int) -> Any:
    """Sums of [C, H, W] over the (2 r + 1)^2 window centred on each pixel, clipped at the array border, with
    integral images (O(pixels), whatever the window)."""
    xp = backend()
    c, h, w = x.shape
    integral = xp.nn.functional.pad(x.cumsum(1).cumsum(2), (1, 0, 1, 0))
    y0 = (xp.arange(h, device=x.device) - r).clamp(0, h)
    y1 = (xp.arange(h, device=x.device) + r + 1).clamp(0, h)
    x0 = (xp.arange(w, device=x.device) - r).clamp(0, w)
    x1 = (xp.arange(w, device=x.device) + r + 1).clamp(0, w)
    rows = lambda t, y: t[:, y, :]  # noqa: E731
    return (rows(integral, y1)[:, :, x1] - rows(integral, y0)[:, :, x1]
            - rows(integral, y1)[:, :, x0] + rows(integral, y0)[:, :, x0])


def _block_sizes(height: int, width: int, f: int) -> np.ndarray:
    """Number of fine pixels of each coarse pixel (partial coarse pixels at the scene edge hold fewer)."""
    rows = np.minimum(f, height - np.arange(0, height, f))
    cols = np.minimum(f, width - np.arange(0, width, f))
    return rows[:, None] * cols[None, :]


def _percentile_position(n: int, q: float) -> int:
    """The reference code's percentile: the sorted position floor(q n) (its value_locate on findgen(n + 1) / n)."""
    return min(n - 1, int(math.floor(q * n + 1e-9)))


def _class_changes(delta_c: np.ndarray, fractions: np.ndarray, num_pure: int) -> np.ndarray:
    """dF [B, classes] (module docstring, step 3): least squares on the purest coarse pixels of every class,
    without the changes outside the 10-90 % range of each class's selection."""
    classes = fractions.shape[0]
    flat_f = fractions.reshape(classes, -1)
    result = np.zeros((delta_c.shape[0], classes))
    for b in range(delta_c.shape[0]):
        change = delta_c[b].ravel()
        rows, targets = [], []
        for c in range(classes):
            order = np.argsort(-flat_f[c], kind="mergesort")
            n = min(int((flat_f[c] > 0.01).sum()), num_pure)
            if n == 0:
                continue
            chosen = order[:n]
            values = change[chosen]
            ranked = np.sort(values, kind="mergesort")
            low, high = ranked[_percentile_position(n, 0.1)], ranked[_percentile_position(n, 0.9)]
            keep = chosen[(values >= low) & (values <= high)]
            rows.append(flat_f[:, keep].T)
            targets.append(change[keep])
        if not rows:
            raise InputError("FSDAF found no complete coarse pixel to estimate the class changes from.")
        a, y = np.concatenate(rows), np.concatenate(targets)
        result[b] = np.linalg.lstsq(a, y, rcond=None)[0]
    return result


def multiquadric_weights(nodes_yx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
    """The weights [N, B] (float64) and the shape ``eps`` of the multiquadric interpolant of ``values`` [N, B] at
    the nodes [N, 2] (the reference code's scipy Rbf(function='multiquadric'), phi(r) = sqrt((r / eps)^2 + 1),
    eps = (product of the node extents / n)^(1 / dims), no smoothing): s(p) = sum_n w_n phi(|p - x_n|) with
    s(x_m) = values_m."""
    n = nodes_yx.shape[0]
    extents = nodes_yx.max(axis=0) - nodes_yx.min(axis=0)
    extents = extents[extents > 0]
    eps = float(np.prod(extents) / n) ** (1.0 / extents.size) if extents.size else 1.0
    d = np.sqrt(((nodes_yx[:, None, :] - nodes_yx[None, :, :]) ** 2).sum(axis=-1))
    # float64: the weights of a multiquadric system alternate in sign and are large
    return np.linalg.solve(np.sqrt((d / eps) ** 2 + 1.0), values.astype(np.float64)), eps


def multiquadric(nodes_yx: np.ndarray, values: np.ndarray, points_yx: Any) -> Any:
    """Multiquadric radial-basis interpolation (:func:`multiquadric_weights`) of ``values`` [N, B] at the nodes
    [N, 2] evaluated at ``points_yx`` [P, 2] (a tensor); returns [P, B]. Any nodes and points; FSDAF's coarse pixel
    centres and fine pixels use :func:`multiquadric_lattice` (the same sums, by FFT)."""
    xp = backend()
    weights, eps = multiquadric_weights(nodes_yx, values)
    n = nodes_yx.shape[0]
    nodes = xp.as_tensor(nodes_yx / eps, dtype=xp.float64, device=points_yx.device)
    w = xp.as_tensor(weights, dtype=xp.float64, device=points_yx.device)
    node_norm = (nodes * nodes).sum(dim=1)[None, :]
    chunk = 2048  # points x N nodes at a time: stays in cache
    # one output and one kernel buffer, reused: allocating a [chunk, N] matrix per chunk between the small
    # results fragmented the heap (3 GB resident for a 600 x 600 block)
    result = xp.empty((points_yx.shape[0], w.shape[1]), dtype=xp.float64, device=points_yx.device)
    kernel = xp.empty((chunk, n), dtype=xp.float64, device=points_yx.device)
    for start in range(0, points_yx.shape[0], chunk):
        p = points_yx[start:start + chunk].to(xp.float64) / eps
        r2 = kernel[:p.shape[0]]
        xp.addmm(node_norm + (p * p).sum(dim=1, keepdim=True), p, nodes.T, alpha=-2.0, out=r2)
        xp.mm(r2.clamp_min_(0.0).add_(1.0).sqrt_(), w, out=result[start:start + p.shape[0]])
    return result.to(xp.float32)


def multiquadric_lattice(lattice: np.ndarray, eps: float, factor: int) -> np.ndarray:
    """A multiquadric interpolant whose nodes lie on the coarse pixel centres, evaluated at every fine pixel of
    those coarse pixels: ``lattice`` [C, m, n] holds the weights w_ij of the node of coarse pixel (i, j) (0 where a
    coarse pixel is no node), at the fine position (i f + (f - 1) / 2, j f + (f - 1) / 2); returns s [C, m f, n f]
    (float64),

        s(a f + u, b f + v) = sum_ij w_ij phi((a - i) f + u - (f - 1) / 2, (b - j) f + v - (f - 1) / 2),

    phi(dy, dx) = sqrt((dy^2 + dx^2) / eps^2 + 1). For each of the f^2 sub-pixel phases (u, v) this is a 2D
    convolution of the weights with phi sampled one coarse pixel apart, done by FFT: the same sums as
    :func:`multiquadric` for every fine pixel (to that form's float32 rounding), but O(f^2 m n log(m n)) instead of
    (m f)(n f) x (m n) kernel evaluations (issue 28: the interpolation was 40 % of an FSDAF date at CIA size), and
    one transform of the kernel for every channel."""
    from scipy.fft import next_fast_len

    channels, m, n = lattice.shape
    f = factor
    c = (f - 1) / 2.0
    # circular convolution of m weights with 2 m - 1 kernel taps: the full linear result has 3 m - 2 terms, of which
    # the m wanted (m - 1 .. 2 m - 2) wrap onto none when the length is at least 2 m - 1
    fm, fn = next_fast_len(2 * m - 1, real=True), next_fast_len(2 * n - 1, real=True)
    di = np.arange(-(m - 1), m)[:, None] * f + np.arange(f)[None, :] - c  # [2m - 1, f]: (a - i) f + u - c
    dj = np.arange(-(n - 1), n)[:, None] * f + np.arange(f)[None, :] - c
    # kernel[u, v, a - i + m - 1, b - j + n - 1]
    kernel = np.sqrt((di.T[:, None, :, None] ** 2 + dj.T[None, :, None, :] ** 2) / (eps * eps) + 1.0)
    xp = backend()
    # torch's FFT where torch is installed (measured 2.6x NumPy's here), else NumPy's; the same transforms
    fft, wrap = (xp.fft, xp.from_numpy) if hasattr(xp, "fft") else (np.fft, np.asarray)
    kernel_f = fft.rfft2(wrap(kernel), s=(fm, fn))  # [f, f, fm, fn // 2 + 1]
    out = np.empty((channels, m, f, n, f))
    for ch in range(channels):
        full = np.asarray(fft.irfft2(kernel_f * fft.rfft2(wrap(np.ascontiguousarray(lattice[ch])), s=(fm, fn)),
                                     s=(fm, fn)))
        out[ch] = full[:, :, m - 1:2 * m - 1, n - 1:2 * n - 1].transpose(2, 0, 3, 1)  # [a, u, b, v]
    return out.reshape(channels, m * f, n * f)


def final_prediction(fine, change, valid, inner, params: FsdafParams, threshold, coarse_change=None):
    """Step 10 (eq. 25) for the centre pixels: F1 + weighted mean of dF over the most similar pixels of the window.
    ``fine`` and ``change`` [B, H, W], ``valid`` [H, W] tensors covering the outer window; ``threshold`` [B] the
    similarity thresholds; ``coarse_change`` [B, h, w] (C2 - C1 at the centres) for out-of-range predictions.

    Several dates of one pair at once (issue 28): ``change`` [D, B, H, W] and ``coarse_change`` [D, B, h, w] give a
    prediction [D, B, h, w]. The similar pixels and their weights depend on F1 (and the validity) only: they are
    chosen once, and each date's weighted mean is summed in the same order as alone (identical results)."""
    if change.dim() == 4:
        prediction, found = _final_prediction(fine, change.flatten(0, 1), valid, inner, params, threshold, None,
                                              dates=change.shape[0])
        if coarse_change is not None:
            y, x, h, w = inner
            prediction = _out_of_range(prediction, fine[:, y:y + h, x:x + w], params, coarse_change)
        return prediction, found
    return _final_prediction(fine, change, valid, inner, params, threshold, coarse_change)


def _out_of_range(prediction, fine_c, params, coarse_change):
    """Out-of-range predictions replaced by F1 + the coarse change, clamped (the reference code's rule)."""
    xp = backend()
    outside = (prediction < params.data_min) | (prediction > params.data_max)
    fallback = (fine_c + coarse_change).clamp(params.data_min, params.data_max)
    return xp.where(outside, fallback, prediction)


def _final_prediction(fine, change, valid, inner, params: FsdafParams, threshold, coarse_change=None, dates=0):
    """:func:`final_prediction` of one date, or of ``dates`` dates whose bands ``change`` stacks ([dates x B, H, W],
    no ``coarse_change``)."""
    xp = backend()
    r = window_radius(params.window)
    win = Window(inner, r)
    fine_p, change_p = pad(fine, r, 0.0), pad(change, r, 0.0)
    valid_p = pad(valid, r, False)
    fine_c = win.view(fine_p)
    # the fine image in units of each band's threshold: one difference gives both the similarity test (< 1 in
    # every band) and S = sum_b |dF_b| / F_b(centre) = sum_b |dF_b / thr_b| (thr_b / F_b(centre))
    inverse_thr = (1.0 / threshold.clamp_min(1e-12))[:, None, None]
    scaled_p = fine_p * inverse_thr
    scaled_c = win.view(scaled_p)
    coefficient = threshold[:, None, None] / (fine_c + 1e-12)
    invalid_p = ~valid_p
    k = min(params.similar, (2 * r + 1) ** 2)
    if kernels.enabled(fine.device):  # the same selection and weights, compiled (kernels.py)
        delta, found = (xp.from_numpy(x) for x in kernels.fsdaf_similar(
            scaled_p, coefficient, invalid_p, change_p, win.y0 + r, win.x0 + r, r, k))
        return _final(_add_dates(fine_c, delta, dates), found, fine_c, win, valid_p, params, coarse_change)
    offsets = win.offsets()
    h, w = fine_c.shape[-2:]
    keys = xp.empty((len(offsets), h, w), dtype=fine.dtype, device=fine.device)
    spectral = xp.empty_like(keys)
    diff = xp.empty_like(fine_c)
    product = xp.empty_like(fine_c)
    for i, (dy, dx) in enumerate(offsets):
        xp.sub(win.view(scaled_p, dy, dx), scaled_c, out=diff).abs_()
        xp.sum(xp.mul(diff, coefficient, out=product), dim=0, out=spectral[i])  # S
        outside = diff.amax(dim=0) >= 1.0  # not similar in some band
        outside |= win.view(invalid_p, dy, dx)
        factor = 10.0 + math.hypot(dy, dx) / r
        xp.add(spectral[i], 1e-5, out=keys[i]).mul_(factor).masked_fill_(outside, math.inf)  # (S+1e-5)(10+d/r)
    best_indices, chosen, usable, d = win.smallest(keys, k)  # the k smallest keys
    weight = xp.where(usable, 1.0 / ((1.0 + d / r) * (spectral.gather(0, best_indices) + 1.0)), 0.0)
    weight = weight / weight.sum(dim=0).clamp_min(1e-30)
    neighbours = win.gather(change_p, chosen)
    return _final(_add_dates(fine_c, (weight[None] * neighbours).sum(dim=1), dates), usable.any(dim=0), fine_c, win,
                  valid_p, params, coarse_change)


def _add_dates(fine_c, delta, dates: int):
    """F1 + the weighted change: ``delta`` [B, h, w], or [D B, h, w] for ``dates`` dates ([D, B, h, w] out)."""
    if not dates:
        return fine_c + delta
    return fine_c[None] + delta.reshape((dates,) + tuple(fine_c.shape))


def _final(prediction, found, fine_c, win, valid_p, params, coarse_change):
    if coarse_change is not None:
        prediction = _out_of_range(prediction, fine_c, params, coarse_change)
    return prediction, win.view(valid_p) & found


def fuse_fsdaf(
    series: SceneSeries, dates: list[_dt.date], folder: str, scale: float = 1e-4,
    params: FsdafParams | None = None, device: str = "auto", feedback: Feedback | None = None,
) -> list[str]:
    """Predict every date with FSDAF from its nearest pair; writes ``fsdaf_<date>.tif``."""
    from ..device import describe_device

    xp = backend()
    params = params or FsdafParams()
    params.validate()
    dev = method_device(device, "fsdaf", feedback)
    grid = series.grid
    params = replace(params, factor=resolve_factor(series, params.factor, "FSDAF", feedback))
    f = params.factor
    if feedback is not None:
        feedback.info(f"FSDAF on {describe_device(dev)}: coarse factor {f}, {params.classes} classes, window "
                      f"{params.window}, {params.similar} similar pixels.")
    kernels.announce_compilation(dev, feedback)
    tile_a = params.block * f  # the reference code's blocks (the TPS is fitted per block)
    from ..raster import scratch_dir

    # scratch beside the outputs (not an unbounded /tmp), named so that a later run removes it if this one is killed
    with scratch_dir("fsdaf", folder) as tmp:
        changes = {}
        shared: dict = {}  # per pair: its k-means centroids and scan, for every date it predicts
        for i, date in enumerate(dates):
            sub = SubFeedback(feedback, 50.0 * i / len(dates), 50.0 * (i + 1) / len(dates)) if feedback else None
            pair = pair_sets(series, date, 1)[0]
            scene = _Scene(series, pair, date, scale, params, dev, sub, shared.setdefault(pair.path, {}))
            path = os.path.join(tmp, f"change_{date.isoformat()}.tif")
            with RasterWriter(path, grid, dtype="float32", nodata=np.nan, compress=False) as writer:
                tiles = plan_tiles(grid.width, grid.height, tile_a, window_radius(params.window))

                def store(index: int, result: tuple, writer=writer, tiles=tiles, sub=sub) -> None:
                    writer.write(result[0], tiles[index].inner, result[1])
                    if sub is not None:
                        sub.set_progress(100.0 * (index + 1) / len(tiles))

                # the blocks' changes are tile jobs too (on the executor of SCHEDULER, the scene sent once)
                map_ordered(scene.total_change, tiles, sub, store)
            changes[date] = (pair, path, scene.similar_threshold)

        passes = TileDates(dates, lambda d: changes[d][0].path, DATES_PER_PASS_FINAL)

        def predict(date, tile):
            """The dates of a tile that share the pair (and the validity and thresholds) in one pass of the final
            step (issue 28)."""
            done = passes.cached(tile, date)
            if done is not None:
                return done
            pair = changes[date][0]
            chunk = passes.chunk(date)
            f1, v1 = read_item(pair, tile.outer, scale)
            c1, _ = read_item(series.coarse_at(pair.date), tile.inner, scale)
            rows, cols = tile.inner_in_outer
            inner = (rows.start, cols.start, rows.stop - rows.start, cols.stop - cols.start)
            t = lambda a: xp.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731
            groups: dict = {}  # (validity, thresholds) -> [(date, change, coarse change)]
            for d in chunk:
                change, vc = read_block(changes[d][1], tile.outer)
                c2, _ = read_item(series.coarse_at(d), tile.inner, scale)
                ok = v1 & vc
                threshold = changes[d][2].astype(np.float32)
                groups.setdefault((ok.tobytes(), threshold.tobytes()), (ok, threshold, []))[2].append(
                    (d, change, c2 - c1))
            for ok, threshold, items in groups.values():
                with xp.no_grad():
                    prediction, valid = final_prediction(t(f1), t(np.stack([i[1] for i in items])), t(ok), inner,
                                                         params, t(threshold), t(np.stack([i[2] for i in items])))
                valid = valid.cpu().numpy()
                for i, (d, _, _) in enumerate(items):
                    passes.put(tile, d, (prediction[i].cpu().numpy(), valid))
            return passes.cached(tile, date)

        second = SubFeedback(feedback, 50.0, 100.0) if feedback else None
        return write_predictions(series, dates, "fsdaf", folder, predict, scale, halo=window_radius(params.window),
                                 # the torch path holds a key per window offset and pixel; the kernel a few arrays
                                 bytes_per_pixel=4 * (16 if kernels.enabled(dev) else params.window ** 2 // 4 + 8)
                                 + 4 * 3 * (min(DATES_PER_PASS_FINAL, len(dates)) - 1),  # per band and date
                                 tile_size=params.tile_size or cpu_tile_size(dev, kernels.enabled(dev)),
                                 feedback=second)
