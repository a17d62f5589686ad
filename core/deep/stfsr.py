"""STFSR: spatiotemporal fusion based on sparse representation (Song & Huang 2013, "Spatiotemporal satellite image
fusion through one-pair image learning", IEEE TGRS 51(4), 1883-1896), the baseline STFDCNN (seed 001) is judged
against. Its two layers, as seed 001 summarises them: super-resolution (SR) by a learned dictionary pair, then
high-pass modulation. Seed 001 compares the two methods inside ONE framework ("for STFSR, we adopt the same
weighting strategy as the proposed method"), so STFSR here is STFDCNN's fusion model (:mod:`.stfdcnn`) with:

* layer 1 (per band): the coarse image -> the low-spatial-resolution (LSR, the transition level) fine image by a
  dictionary pair learned on the training pairs between the LSR coarse image M^l and the LSR fine image F^l (both
  the images bicubically downsampled by ``factor``), in place of STFDCNN's NLM CNN; the transitional images are
  fused with the pairs' LSR fine images by high-pass modulation and the change weights (eqs. 6-9 of seed 001);
* layer 2: high-pass modulation of the fine images of the pairs by the bicubically upsampled LSR results (no
  learned model: the 2013 paper's second layer is high-pass modulation, where STFDCNN adds its SR CNN).
  Measured on the sample's held-out pair: a second dictionary at the fine level (SR of up(F^l) -> F, as STFDCNN's
  SR CNN) made it worse (0.0270 vs 0.0210 without it; the bicubic fusion model 0.0250).

The dictionary pair is learned on ``patch`` x ``patch`` patches (Yang, Wright, Huang & Ma 2010, the sparse-
representation super-resolution the paper builds on):

    low-resolution feature  y = first- and second-order derivatives of M^l on the patch
                            ([-1, 0, 1], its transpose, [1, 0, -2, 0, 1], its transpose: 4 p^2 values)
    high-resolution feature x = F^l - M^l on the patch (the high-pass detail the layer adds)
    joint learning          min ||[x / ||y||; y / ||y||] - [D_h; D_l] a||^2 + lambda ||a||_1   (MiniBatch
                            dictionary learning of scikit-learn, ``atoms`` atoms, lambda = ``alpha``)
    reconstruction          a = OMP(D_l, y / ||y||, ``sparsity`` atoms) (:func:`omp`), detail = ||y|| D_h a,
                            a patch at every pixel, overlaps averaged; output = M^l + detail

Patches whose feature norm is below 1e-4 (flat) get no detail. Dictionary learning uses scikit-learn. Sparse
coding (Orthogonal Matching Pursuit on the normalised D_l, D_h scaled alike) was scikit-learn's
``sparse_encode``, which loops over the patches in Python (about 4 s per band of a CIA-size date's LSR image, 20 s
per date); :func:`omp` runs the same algorithm on every patch at once (issue 28) and is tested against it (equal
codes to 1e-10, scikit-learn's early stops included).

Defaults: patch 5, 256 atoms, lambda 0.15, 3 atoms per patch, at most 20000 training patches per dictionary,
LSR factor 10, weighting window 9 and at most 3 training pairs as STFDCNN. The 2013 paper's own parameter values
are not in the material available here; these follow Yang et al. (patch 5, lambda 0.1-0.2) with a smaller
dictionary (256 instead of 1024 atoms) that learns in seconds on a CPU. The model file holds the dictionaries;
``stf:predict`` runs it.
"""
from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device import describe_device, import_torch, resolve_device
from ..errors import InputError, MissingDependencyError
from ..feedback import Feedback, SubFeedback, check_cancel
from ..fusion import series_value_range, write_predictions
from ..series import SceneSeries, check_encodings
from .common import downsample, read_image, read_window, valid_lsr
from .modelfile import training_metadata
from .stfdcnn import _apply_nlm, _fine_fusion, _Validation, choose_pairs, fuse
from .validation import plan_holdout

METHOD = "stfsr"
_FLAT = 1e-4  # feature norm below which a patch is flat: no detail


@dataclass
class StfsrParams:
    """Settings (defaults in the module docstring)."""

    factor: int = 10
    patch: int = 5
    atoms: int = 256
    alpha: float = 0.15
    sparsity: int = 3
    lsr_stride: int = 1
    max_patches: int = 20000
    max_pairs: int = 3
    iterations: int = 20
    window: int = 9
    hpm_max: float = 3.0
    validation: float = 0.25
    seed: int = 0

    def validate(self) -> None:
        if self.factor < 2:
            raise InputError(f"The LSR downsampling factor must be at least 2 (got {self.factor}).")
        if self.patch < 3 or self.atoms < 2 or self.sparsity < 1 or self.sparsity > self.atoms:
            raise InputError("The patch size must be at least 3, the atoms at least 2, and the atoms per patch "
                             "between 1 and the number of atoms.")
        if self.lsr_stride < 1 or self.lsr_stride > self.patch:
            raise InputError("The patch stride must be between 1 and the patch size (patches must overlap or "
                             "touch).")
        if self.max_patches < self.atoms or self.max_pairs < 1 or self.iterations < 1:
            raise InputError("At least as many training patches as atoms, one pair and one iteration are needed.")
        if self.hpm_max <= 1:
            raise InputError(f"The high-pass modulation bound must be above 1 (got {self.hpm_max}).")

    @property
    def halo(self) -> int:
        return self.window // 2 + 2  # the fine level: bicubic upsampling and the weighting window


def _features(low: np.ndarray) -> np.ndarray:
    """[4, H, W]: first- and second-order derivatives of ``low`` [H, W] (edges replicated)."""
    p = np.pad(low, 2, mode="edge")
    c = p[2:-2, 2:-2]
    return np.stack([p[2:-2, 3:-1] - p[2:-2, 1:-3], p[3:-1, 2:-2] - p[1:-3, 2:-2],
                     p[2:-2, 4:] - 2 * c + p[2:-2, :-4], p[4:, 2:-2] - 2 * c + p[:-4, 2:-2]])


def _patch_origins(size: int, patch: int, stride: int) -> np.ndarray:
    """Patch starts along one axis every ``stride`` pixels, plus the last position, so every pixel is covered."""
    starts = list(range(0, max(size - patch, 0) + 1, stride))
    if starts[-1] != size - patch:
        starts.append(max(size - patch, 0))
    return np.array(starts)


def _patches(stack: np.ndarray, ys: np.ndarray, xs: np.ndarray, patch: int) -> np.ndarray:
    """Vectors [N, C p^2] of the patches of ``stack`` [C, H, W] starting at every (y in ys, x in xs)."""
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(stack, (patch, patch), axis=(1, 2))  # [C, H-p+1, W-p+1, p, p]
    chosen = windows[:, ys][:, :, xs]  # [C, ny, nx, p, p]
    return chosen.transpose(1, 2, 0, 3, 4).reshape(len(ys) * len(xs), -1)


def import_sklearn() -> Any:
    """Import scikit-learn, or raise :class:`MissingDependencyError` that says how to install it."""
    try:
        import sklearn.decomposition  # noqa: F401
    except ImportError:
        from ..device import pip_instructions

        raise MissingDependencyError(
            "scikit-learn is not installed in the Python that runs QGIS; STFSR needs it (dictionary learning and "
            f"sparse coding). To install it, {pip_instructions('scikit-learn')}; then restart QGIS.") from None
    import sklearn

    return sklearn


_OMP_CHUNK = 8192  # patches coded together (memory: chunk x sparsity x atoms float64 for the Gram rows)


def omp(dictionary: np.ndarray, signals: np.ndarray, sparsity: int) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal Matching Pursuit (Pati, Rezaiifar & Krishnaprasad 1993) of every row of ``signals`` [N, F] on
    the atoms (rows) of ``dictionary`` [K, F], at most ``sparsity`` atoms each, as scikit-learn's Gram form
    (``sparse_encode(algorithm="omp")``, the reference): with G = D D^T and c = D y,

        step s:  j_s = argmax_j |c_j - (G_{:, S} g)_j|,   S = {j_1 .. j_s},   g = (G_SS)^-1 c_S,

    stopping early where the chosen atom is already in S, its correlation squared is below the float epsilon, or
    it depends on S (Schur complement G_jj - G_jS G_SS^-1 G_Sj <= epsilon), as scikit-learn does (it warns). All
    signals step together (batched solves of at most ``sparsity`` x ``sparsity`` systems; scikit-learn loops over
    the signals in Python, about 20 s per CIA-size date). Returns (atoms [N, sparsity] int, coefficients
    [N, sparsity]; unused slots have coefficient 0 and atom 0). Agrees with scikit-learn to float rounding
    (tested)."""
    d = np.asarray(dictionary, np.float64)
    gram = d @ d.T
    eps = np.finfo(np.float64).eps
    n = len(signals)
    atoms = np.zeros((n, sparsity), np.int64)
    coefs = np.zeros((n, sparsity))
    for start in range(0, n, _OMP_CHUNK):
        y = np.asarray(signals[start:start + _OMP_CHUNK], np.float64)
        cov = y @ d.T  # [m, K]
        m = len(y)
        rows = np.arange(m)
        alpha = cov.copy()
        chosen = np.zeros((m, sparsity), np.int64)
        gamma = np.zeros((m, sparsity))
        count = np.zeros(m, np.int64)  # atoms taken
        live = np.ones(m, bool)
        for step in range(sparsity):
            lam = np.abs(alpha).argmax(axis=1)
            best = alpha[rows, lam]
            live &= best ** 2 >= eps
            if step:
                live &= ~(chosen[:, :step] == lam[:, None]).any(axis=1)
                g_s = gram[chosen[:, :step][:, :, None], chosen[:, None, :step]]  # [m, s, s]
                g_j = gram[lam[:, None], chosen[:, :step]]  # [m, s]
                idx = np.flatnonzero(live)
                if idx.size:
                    schur = gram[lam[idx], lam[idx]] - np.einsum(
                        "ms,ms->m", g_j[idx], np.linalg.solve(g_s[idx], g_j[idx][..., None])[..., 0])
                    live[idx[schur <= eps]] = False
            idx = np.flatnonzero(live)
            if not idx.size:
                break
            chosen[idx, step] = lam[idx]
            count[idx] = step + 1
            sel = chosen[idx, :step + 1]
            g = np.linalg.solve(gram[sel[:, :, None], sel[:, None, :]], cov[idx[:, None], sel][..., None])[..., 0]
            gamma[idx, :step + 1] = g
            alpha[idx] = cov[idx] - np.einsum("ms,msk->mk", g, gram[sel])
        gamma[np.arange(sparsity)[None, :] >= count[:, None]] = 0.0
        atoms[start:start + m], coefs[start:start + m] = chosen, gamma
    return atoms, coefs


class Dictionary:
    """A learned dictionary pair: ``low`` [K, 4 p^2] (unit rows) and ``high`` [K, p^2] (scaled alike)."""

    def __init__(self, low: np.ndarray, high: np.ndarray, params: StfsrParams) -> None:
        self.low, self.high, self.params = low.astype(np.float64), high.astype(np.float64), params

    @classmethod
    def learn(cls, pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], params: StfsrParams, stride: int,
              seed: int) -> "Dictionary":
        """Learn from (low [H, W], high [H, W], valid [H, W]) images: patches entirely valid and not flat."""
        from sklearn.decomposition import MiniBatchDictionaryLearning
        from sklearn.exceptions import ConvergenceWarning

        p = params.patch
        lows, highs = [], []
        for low, high, valid in pairs:
            h, w = low.shape
            if h < p or w < p:
                continue
            ys, xs = _patch_origins(h, p, stride), _patch_origins(w, p, stride)
            ok = _patches(valid[None].astype(np.float32), ys, xs, p).min(axis=1) > 0
            lows.append(_patches(_features(low), ys, xs, p)[ok])
            highs.append(_patches((high - low)[None], ys, xs, p)[ok])
        if not lows or sum(len(a) for a in lows) < params.atoms:
            raise InputError(f"STFSR needs at least {params.atoms} valid training patches of {p} x {p} pixels per "
                             "dictionary; the training images are too small or too much of them is nodata (lower "
                             "ATOMS or PATCH).")
        y, x = np.concatenate(lows).astype(np.float64), np.concatenate(highs).astype(np.float64)
        norm = np.linalg.norm(y, axis=1)
        keep = norm > _FLAT
        y, x, norm = y[keep] / norm[keep, None], x[keep] / norm[keep, None], norm[keep]
        rng = np.random.default_rng(seed)
        if len(y) > params.max_patches:
            pick = rng.choice(len(y), params.max_patches, replace=False)
            y, x = y[pick], x[pick]
        if len(y) < params.atoms:
            raise InputError(f"STFSR: only {len(y)} textured training patches for {params.atoms} atoms; lower ATOMS.")
        learner = MiniBatchDictionaryLearning(n_components=params.atoms, alpha=params.alpha, batch_size=256,
                                              max_iter=params.iterations, fit_algorithm="cd",
                                              transform_algorithm="omp", random_state=seed)
        with warnings.catch_warnings():  # coordinate descent's per-batch convergence notes: not for a user
            warnings.simplefilter("ignore", ConvergenceWarning)
            learner.fit(np.hstack([x, y]))
        d = learner.components_
        dh, dl = d[:, :x.shape[1]], d[:, x.shape[1]:]
        scale = np.linalg.norm(dl, axis=1)
        scale[scale == 0] = 1.0
        return cls(dl / scale[:, None], dh / scale[:, None], params)

    def state(self) -> dict[str, Any]:
        torch = import_torch()
        return {"low": torch.from_numpy(self.low), "high": torch.from_numpy(self.high)}

    def detail(self, low: np.ndarray, stride: int) -> np.ndarray:
        """The high-pass detail [H, W] the dictionary pair adds to ``low`` [H, W]."""
        p = self.params.patch
        h, w = low.shape
        if h < p or w < p:
            return np.zeros_like(low)
        ys, xs = _patch_origins(h, p, stride), _patch_origins(w, p, stride)
        y = _patches(_features(low.astype(np.float64)), ys, xs, p)
        norm = np.linalg.norm(y, axis=1)
        textured = norm > _FLAT
        patches = np.zeros((len(y), p * p))
        if textured.any():
            chosen, codes = omp(self.low, y[textured] / norm[textured, None], self.params.sparsity)
            rows = np.flatnonzero(textured)
            for start in range(0, len(rows), _OMP_CHUNK):  # D_h a, a chunk of patches at a time (bounded memory)
                part = slice(start, start + _OMP_CHUNK)
                patches[rows[part]] = (np.einsum("ns,nsq->nq", codes[part], self.high[chosen[part]])
                                       * norm[rows[part], None])
        total = np.zeros((h, w))
        count = np.zeros((h, w))
        grid = patches.reshape(len(ys), len(xs), p, p)
        for i in range(p):  # overlap-add by patch offset: p^2 vectorised steps, not one per patch
            for j in range(p):
                total[(ys + i)[:, None], (xs + j)[None, :]] += grid[:, :, i, j]
                count[(ys + i)[:, None], (xs + j)[None, :]] += 1.0
        return total / np.maximum(count, 1.0)


class _Mapping:
    """A dictionary pair as the callable STFDCNN's fusion model expects: [1, 1, H, W] tensor -> the same plus its
    detail."""

    def __init__(self, dictionary: Dictionary, stride: int) -> None:
        self.dictionary, self.stride = dictionary, stride

    def __call__(self, image: Any) -> Any:
        torch = import_torch()
        low = image[0, 0].detach().cpu().numpy()
        detail = self.dictionary.detail(low, self.stride)
        return image + torch.from_numpy(detail.astype(np.float32)).to(image.device)[None, None]


def _load(weights: dict[str, Any], params: StfsrParams, bands: int) -> list:
    def dictionary(name):
        state = weights[name]
        return Dictionary(state["low"].cpu().numpy(), state["high"].cpu().numpy(), params)

    return [_Mapping(dictionary(f"nlm_{b}"), params.lsr_stride) for b in range(bands)]


def _bicubic(image: Any) -> Any:
    """Layer 2 has no learned model: the upsampled LSR images as they are."""
    return image


def train_stfsr(
    series: SceneSeries, pair_dates: list[_dt.date] | None, scale: float, params: StfsrParams,
    device: str = "auto", feedback: Feedback | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Learn the per-band LSR dictionary pairs; returns (dictionaries, metadata)."""
    torch = import_torch()
    import_sklearn()  # before any work: a missing package is said first
    params.validate()
    check_encodings(series, scale)
    dev = resolve_device(device)
    if pair_dates:
        chosen = sorted(pair_dates)
        held = [d for d in series.pair_dates[1:-1] if d not in pair_dates]
    else:
        chosen, held = choose_pairs(series.pair_dates, params.max_pairs)
    f = params.factor
    images = []
    for date in chosen:
        check_cancel(feedback)
        fine, ok1 = read_image(series.fine_at(date), scale)
        coarse, ok2 = read_image(series.coarse_at(date), scale)
        valid = ok1 & ok2
        fine_t = torch.from_numpy(np.where(valid, fine, 0.0).astype(np.float32))[:, None]
        coarse_t = torch.from_numpy(np.where(valid, coarse, 0.0).astype(np.float32))[:, None]
        images.append((downsample(coarse_t, f)[:, 0].numpy(), downsample(fine_t, f)[:, 0].numpy(),
                       valid_lsr(valid, f)))
    bands = series.grid.bands
    if feedback is not None:
        feedback.info(f"STFSR: dictionaries of {params.atoms} atoms ({params.patch} x {params.patch} patches) from "
                      f"the pairs {', '.join(d.isoformat() for d in chosen)}.")
    networks = {}
    for b in range(bands):
        check_cancel(feedback)
        lsr = [(coarse_low[b], fine_low[b], valid) for coarse_low, fine_low, valid in images]
        networks[f"nlm_{b}"] = Dictionary.learn(lsr, params, params.lsr_stride, params.seed + b).state()
        if feedback is not None:
            feedback.set_progress(90.0 * (b + 1) / bands)
    record = _validation(series, chosen, held, params, scale, dev, networks, feedback)
    metadata = training_metadata(series.grid, scale, params, params.halo, chosen, {}, dev, validation=record)
    return networks, metadata


def _validation(series, chosen, held, params, scale, dev, networks, feedback) -> dict:
    """The held-out record (as the deep methods'): the learned dictionaries against the fusion model on bicubic
    images (STFSR's start without learning) and the naive and additive baselines, on pair dates not learned from."""
    from .validation import baseline_scores, validation_record

    grid = series.grid
    holdout = plan_holdout(grid.height, grid.width, series.pair_dates, params.validation, held_dates=held or None)
    if holdout is None:
        return validation_record(None, [], 0, {})
    check = _Validation(series, holdout, params, scale, dev, series_value_range(series, scale))
    identity = [_bicubic for _ in range(grid.bands)]
    scores = [check.full_score(identity, _bicubic), check.full_score(_load(networks, params, grid.bands), _bicubic)]
    if feedback is not None:
        feedback.info(f"STFSR {holdout.describe()}: RMSE {scores[1]:.5f} (bicubic fusion model {scores[0]:.5f}).")
    baselines = baseline_scores(check.data, holdout, series_value_range(series, scale))
    return validation_record(holdout, scores, 1, baselines)  # the dictionaries are always used


def predict(
    meta: dict[str, Any], weights: dict[str, Any], series: SceneSeries, dates: list[_dt.date], folder: str,
    scale: float, device: str = "auto", feedback: Feedback | None = None,
) -> list[str]:
    """Predict every date (``stfsr_<date>.tif``): STFDCNN's fusion model with the dictionaries at the LSR level."""
    torch = import_torch()
    import_sklearn()
    params = StfsrParams(**meta["params"])
    dev = resolve_device(device)
    grid = series.grid
    f = params.factor
    nlm = _load(weights, params, grid.bands)
    if feedback is not None:
        feedback.info(f"STFSR prediction on {describe_device(dev)} (sparse coding of the LSR level on the CPU).")
    fine_low, coarse_low = {}, {}

    def low(item, store):
        if item.date not in store:
            data, _ = read_image(item, scale)
            store[item.date] = downsample(torch.from_numpy(data)[:, None], f)
        return store[item.date]

    coded: dict = {}

    def transitional(day):  # the dictionaries' LSR image of a date's coarse image (the pairs' serve many dates)
        if day not in coded:
            coded[day] = _apply_nlm(nlm, coarse_low[day])
        return coded[day]

    plans = {}
    sub = SubFeedback(feedback, 0.0, 20.0) if feedback else None
    for i, date in enumerate(dates):
        check_cancel(feedback)
        around = series.pairs_around(date)
        ends = list(around) if around else [series.nearest_pair(date)]
        for e in ends:
            low(e, fine_low)
            low(series.coarse_at(e.date), coarse_low)
        low(series.coarse_at(date), coarse_low)
        # layer 1 (STFDCNN's LSR-level fusion, eqs. 6-9), each date's transitional image coded once for the run
        t = [transitional(d) for d in (ends[0].date, date) + ((ends[1].date,) if len(ends) == 2 else ())]
        plans[date] = (ends, fuse(fine_low[ends[0].date], fine_low[ends[1].date] if len(ends) == 2 else None,
                                  t[0], t[1], t[2] if len(ends) == 2 else None, params.window, params.hpm_max))
        if sub is not None:
            sub.set_progress(100.0 * (i + 1) / len(dates))
            feedback.info(f"STFSR {date.isoformat()}: pair(s) " + ", ".join(e.date.isoformat() for e in ends))
    shared: dict = {}
    current = {"tile": None}

    def predict_tile(date, tile):
        ends, fused_low = plans[date]
        if current["tile"] != tile.index:
            shared.clear()
            current["tile"] = tile.index
        _, valid = read_window(series.coarse_at(date), tile, scale)
        parts = []
        for e in ends:
            data, ok = read_window(e, tile, scale)
            valid = valid & ok
            parts.append((torch.from_numpy(data)[:, None], fine_low[e.date]))
        out = _fine_fusion(_bicubic, fused_low, parts, tile.outer, params, shared)
        r, c = tile.inner_in_outer
        return out[:, 0, r, c].numpy(), valid[r, c]

    second = SubFeedback(feedback, 20.0, 100.0) if feedback else None
    return write_predictions(series, dates, METHOD, folder, predict_tile, scale, halo=int(meta["halo"]),
                             bytes_per_pixel=4 * 24, feedback=second,
                             value_range=series_value_range(series, scale))
