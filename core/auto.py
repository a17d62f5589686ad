"""stf:fuse_auto: the best prediction without expertise. This product's own method (not from a paper): the scene's
own leave-one-pair-out cross-validation (:mod:`.crossval`) turned into the prediction.

1. Cross-validation: each fold holds out a pair date t_k (the interior pairs; with two pairs each one in turn) and
   every member method m predicts it from the other pairs: P_m(t_k), compared with the fine image F(t_k).
2. Blend weights, per band b, fitted on the folds' valid pixels i:

       w_b = argmin_w  sum_i ( sum_m w_m P_m,b(i) - F_b(i) )^2     subject to  w_m >= 0,  sum_m w_m = 1

   (non-negative least squares with the sum as a heavily weighted extra row, then renormalised). Each method alone
   is a feasible w, so on the pixels it is fitted on the blend is never worse than its best member.
3. Choice: ``best`` predicts with the member of the lowest cross-validated RMSE (mean over folds of the mean over
   bands of the per-band RMSE); ``blend`` with the fitted weights; ``auto`` (default) with the trimmed mean of the
   members whose cross-validated RMSE is within ``POOL_RATIO`` (3) of the best one (a member that fails on the
   scene is left out): per pixel and band the lowest and the highest member value are dropped and the others
   averaged (three members: their median; two: their mean),

       P_b(i) = ( sum_m P_m,b(i) - min_m P_m,b(i) - max_m P_m,b(i) ) / (M - 2),   M >= 3.

   Why no weights fitted on the folds (the "forecast combination puzzle"): with one to three held-out pair dates
   the held-out dates, each predicted across the widest gap of the series, do not rank the members as the dates a
   user predicts do (on the control sample the cross-validation ranks STFDCNN's fusion model fifth of six, and on
   the predicted dates it is the best). Why trimmed: an equal-weight mean is pulled by the member that fails on a
   date or a pixel (STARFM on the control generator); the trimmed mean is a robust combination of forecasts
   (Stock and Watson 2004, J. Forecasting 23, 405-430, found trimmed means among the most reliable combinations).
   With at least ``MIN_FOLDS`` (3) held-out dates, CHOICE=auto lets them choose the combination: the trimmed mean,
   the fitted blend (scored out of sample) or the best member, whichever scored lowest on the held-out dates (a
   shrinkage by the evidence: a few held-out dates across the widest gaps mislead, many do not). Chosen on the
   real series of ``make bench-real`` and the simulator (``bench/results/real.md``; RMSE against the best single
   method of the product, mean over the predicted dates): HLS / VIIRS Imperial Valley, 17 pairs and 15 folds,
   trimmed mean -0.5 %, blend -3.6 % (chosen); realistic CIA-like simulator, 5 pairs and 3 folds, trimmed +1.6 %,
   blend -2.1 % (chosen); with fewer folds the held-out scores pick badly (control, 3 pairs and one fold: blend
   +2.1 %, best member +3.7 %, trimmed -3.5 %; BOREAS Landsat-7 / MODIS, 2 pairs: blend -1 %, trimmed -6.3 %), so
   the trimmed mean stays.
   Members by default: additive, STARFM, ESTARFM, FSDAF, Fit-FC, and STFDCNN's fusion model (``stfdcnn_fusion``:
   its untrained networks, no training) where torch is installed. Measured, mean RMSE over the 7 predicted dates
   against the truth, against the best single member (192 px, 3 pairs): control sample 0.01441 against STFDCNN's
   fusion model 0.01438 (-0.2 %), before (plain mean of the five classic members) 0.01537; realistic seeds 808 /
   101 / 303 / 404 / 909 +1.8 / +2.4 / +2.2 / +4.6 / +6.0 % (before: -1.8 / -0.8 / -1.4 / +2.9 / +3.3 % against
   the best of the same six); fresh seeds looked at only after the choice: realistic 1717 / 1818 +6.1 / +8.6 %,
   control 1919 +0.1 %. The blend's out-of-sample score (weights fitted without the half of a held-out image they
   are scored on) and the trimmed mean's on the folds are reported beside the members'.
4. Prediction: every member predicts each requested date on the whole series (gap-aware, :mod:`.gaps`); the
   output is the pool's trimmed mean over the members valid at a pixel (``auto``), or sum_m w_m,b P_m,b, the
   weights renormalised over the members valid at a pixel (``blend``, ``best``). Learned members are trained
   with their defaults on each fold's pairs for the cross-validation and on all pairs for the prediction.
5. Error estimate (``uncertainty/auto_<date>_error.tif``, reflectance): from the members' spread around the output,
   the coarse change since the nearest pair (the members share the error of a change none of them sees) and the
   change's novelty,

       s(i) = sqrt( mean_m mean_b ( P_m,b(i) - P_b(i) )^2 ),   c(i) = sqrt( mean_b ( C_b(t, i) - C_b(t_p, i) )^2 ),
       n(i) = sqrt( mean_b r_b(i)^2 ),   r_b = C_b(t) - ( u_b C_b(t_1) + v_b C_b(t_2) + k_b ),
       e^(i) = sqrt( (a s(i) + g c(i))^2 + max(n(i)^2 - n0^2, 0) ).

   a, g >= 0 are fitted (non-negative least squares, through the origin) to the true error
   e(i) = sqrt(mean_b (P_b(i) - F_b(i))^2) of the folds' predictions of the chosen kind (the blend's out of
   sample), then scaled so that the estimated and the cross-validated errors agree in mean. Through the origin: a
   constant fitted on the folds carries the error level of the held-out dates, predicted across the widest gap,
   to every date, while the members' spread shrinks on the dates near a pair as their error does (the constant
   e0 is kept only where neither feature varies). n is the part of the coarse image of date t that the coarse images of
   the pairs around it (t_1 < t < t_2, else the two nearest; one with two pairs held out in a fold) do not explain: u_b,
   v_b, k_b fitted per band over the scene (a thumbnail), so seasonal change that the pairs bracket has none, and a
   flood, a harvest or a burn that no pair shows has a lot. n0^2 is its mean square on the folds, whose errors the first
   term already carries. Why the extra term: no member can place a change that no pair shows inside the coarse pixel,
   and the folds (pair dates, where such events are rare) cannot teach its size; for an event covering a share p of a
   coarse pixel with a change d, the coarse pixel sees p d and the additive allocation errs by d sqrt(p (1 - p)) in RMS,
   the same size as the change it sees at p = 1/2, which is the unit coefficient of the term (a prior, not fitted).
   Measured, mean estimate / mean true error over the predicted dates, with the trimmed mean (192 px unless said):
   control sample 1.14 (with the constant e0: 1.24), realistic seed 11 (128 px) 0.79 (0.93), the 13 scenes measured
   while choosing within 20 % on 11 with the fit through the origin (7 with e0), and the three fresh seeds 0.91 / 0.96 /
   1.08; the scenes where it misses (0.79 / 1.26) are those whose one held-out pair was much easier or harder than the
   dates predicted. Earlier, with the plain mean and e0: without the novelty term the floods, which no pair shows, were
   underestimated 2x (0.74 and 0.70 / 0.53 against 1.17 and 0.91 / 0.77).

Writes ``auto_<date>.tif``, the error rasters, ``auto_members.csv`` (each member's cross-validated RMSE and its
weight per band, and the blend's) and the choice in every prediction's metadata (``STF_AUTO``).
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .feedback import Feedback, SubFeedback, check_cancel
from .fusion import FUSION_MODEL, fuse_member, series_value_range, write_predictions
from .raster import OutputTransaction, read_block, scratch_dir
from .series import SceneSeries, as_scales
from .uncertainty import ERROR, coarse_change, estimate, fit_error_model, novelty_fit, subsample
from .uncertainty import novelty as novelty_map

METHOD = "auto"
MEMBERS = ("additive", "starfm", "estarfm", "fsdaf", "fitfc")  # always; and FUSION_MODEL where torch is installed
CHOICES = ("auto", "blend", "best")
MAX_PIXELS = 200_000  # per fold and half, for the weight fit
POOL_RATIO = 3.0  # CHOICE=auto: members within this factor of the best cross-validated RMSE, trimmed mean
MIN_FOLDS = 3  # CHOICE=auto: held-out dates from which their scores choose the combination (module docstring)


def default_members() -> tuple[str, ...]:
    """The classic members, and STFDCNN's fusion model (:data:`.fusion.FUSION_MODEL`) where torch is installed."""
    from .device import torch_available

    return MEMBERS + ((FUSION_MODEL,) if torch_available() else ())


def trimmed_mean(values: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per element, the mean of the members' values [M, ...] without the lowest and the highest one where at least
    three members are valid (three: their median), else the plain mean; ``valid`` [M, ...] (broadcast against
    ``values``) leaves a member out where it is False (no valid member: 0)."""
    values = np.asarray(values, dtype=np.float64)
    ok = np.ones(values.shape, bool) if valid is None else np.broadcast_to(valid, values.shape)
    count = ok.sum(axis=0)
    trim = count >= 3
    # reductions with where=: no masked copies of the members' stack (a tile's largest array)
    low = np.where(trim, np.min(values, axis=0, where=ok, initial=np.inf), 0.0)
    high = np.where(trim, np.max(values, axis=0, where=ok, initial=-np.inf), 0.0)
    kept = np.sum(values, axis=0, where=ok) - low - high
    return kept / np.maximum(np.where(trim, count - 2, count), 1)


@dataclass
class AutoResult:
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    csv: str = ""
    choice: str = ""
    best: str = ""
    used: str = ""  # what predicts: the best member's name, "blend", or "trimmed mean of <the pool's members>"
    cv_rmse: dict[str, float] = field(default_factory=dict)
    blend_rmse: float = float("nan")  # out of sample (halves), on the pixels of every member
    pool_rmse: float = float("nan")  # the pool's trimmed mean on the folds (no fit: out of sample)
    weights: dict[str, list[float]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)  # kept member predictions (keep_members)
    error_model: tuple[float, ...] = (float("nan"),) * 4  # (e0, a, g, n0) of the error estimate
    notes: list[str] = field(default_factory=list)  # members left out and why; one-pair and two-pair notes
    fitted: dict[str, list[float]] = field(default_factory=dict)  # the blend's weights per band, whatever CHOICE
    best_rmse: float = float("nan")  # the best member on the pixels the blend and the trimmed mean are scored on
    kind: str = ""  # what predicts: "trimmed" (mean of the pool), "blend" or "best" (CHOICE=auto picks, see _kind)


def simplex_weights(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin ||a w - y|| subject to w >= 0 and sum(w) = 1 (a [N, M], y [N])."""
    from scipy.optimize import nnls

    m = a.shape[1]
    lam = 1e3 * max(float(np.sqrt(np.mean(a * a))), 1e-6) * np.sqrt(len(y))
    w, _ = nnls(np.vstack([a, np.full((1, m), lam)]), np.concatenate([y, [lam]]))
    total = w.sum()
    return w / total if total > 0 else np.full(m, 1.0 / m)


def _rmse_per_band(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over bands of the per-band RMSE, [B, N] arrays."""
    return float(np.mean(np.sqrt(np.mean((pred - truth) ** 2, axis=1))))


def fuse_auto(series: SceneSeries, dates: list[_dt.date], folder: str, scale: Any,
              methods: tuple[str, ...] | None = None, choice: str = "auto", uncertainty: bool = True,
              device: str = "auto", feedback: Feedback | None = None, keep_members: bool = False,
              factor: int = 0) -> AutoResult:
    """Predict ``dates`` with the cross-validated best member or blend (module docstring); ``methods`` None: the
    :func:`default_members`; ``keep_members`` keeps every member's predictions in ``<folder>/members/<method>/``
    (``result.members``); ``factor`` > 0: the coarse factor of the members that take one (0: from the data).

    Every series runs: a member that cannot run on it (e.g. no coarse factor known for FSDAF) is left out with a
    warning, and the run fails only when no member can run. With one pair there is nothing to hold out: the
    members that predict from one pair are combined by their trimmed mean, with no error estimate (nothing to
    calibrate it on). With two pairs, ESTARFM (which needs a pair on each side, so it has no fold) still takes
    part in the prediction: CHOICE=auto adds it to the trimmed mean's pool."""
    from .crossval import TWO_PAIRS, cross_validate

    if choice not in CHOICES:
        raise InputError(f"CHOICE must be one of {', '.join(CHOICES)} (got '{choice}').")
    methods = tuple(dict.fromkeys(default_members() if methods is None else methods))
    if not methods:
        raise InputError("METHODS: give at least one method.")
    if factor < 0 or factor == 1:
        raise InputError(f"FACTOR must be at least 2, or 0 to read it from the coarse images (got {factor}).")
    scales = as_scales(scale)
    result = AutoResult()
    if len(series.fine) < 2:
        return _one_pair(series, dates, folder, scales, [m for m in methods if m not in TWO_PAIRS], device,
                         feedback, keep_members, factor, result)
    with scratch_dir("auto", folder) as tmp:
        cv = cross_validate(series, list(methods), tmp, scales, device,
                            SubFeedback(feedback, 0.0, 40.0) if feedback else None, keep=os.path.join(tmp, "cv"),
                            factor=factor)
        result.notes += cv.notes
        members = [m for m in methods if any(r["method"] == m for r in cv.rows)]  # two pairs: no ESTARFM
        extras = [m for m in methods if m in TWO_PAIRS and m not in members and m not in cv.failed]
        folds = _fold_data(series, cv.rows, members, scales)
        result.cv_rmse = {m: float(np.mean([_rmse_per_band(f["preds"][i], f["truth"]) for f in folds]))
                          for i, m in enumerate(members)}
        result.best = min(result.cv_rmse, key=result.cv_rmse.get)
        bands = folds[0]["truth"].shape[0]
        weights = np.stack([_fit([(f["preds"], f["truth"]) for f in folds], b) for b in range(bands)])  # [B, M]
        honest, out_of_sample = _out_of_sample(folds)
        best_index = members.index(result.best)
        best_honest = float(np.mean([_rmse_per_band(f["preds"][best_index], f["truth"]) for f in folds]))
        result.blend_rmse = honest
        result.best_rmse = best_honest
        result.fitted = {m: weights[:, i].tolist() for i, m in enumerate(members)}
        pool = [i for i, m in enumerate(members) if result.cv_rmse[m] <= POOL_RATIO * result.cv_rmse[result.best]]
        fold_outputs = {"blend": out_of_sample, "best": [f["preds"][best_index] for f in folds],
                        "trimmed": [trimmed_mean(np.stack([f["preds"][i] for i in pool])) for f in folds]}
        result.pool_rmse = float(np.mean([_rmse_per_band(o, f["truth"])
                                          for o, f in zip(fold_outputs["trimmed"], folds)]))
        result.choice = choice
        result.kind = _kind(choice, len(folds), {"trimmed": result.pool_rmse, "blend": honest, "best": best_honest})
        if result.kind == "best":
            weights = np.zeros((bands, len(members)))
            weights[:, best_index] = 1.0
        elif result.kind == "trimmed":
            weights = np.zeros((bands, len(members)))
            weights[:, pool] = 1.0 / len(pool)
            if extras:  # two pairs: ESTARFM joins the pool without a fold score
                weights = np.hstack([weights, np.full((bands, len(extras)), 1.0 / (len(pool) + len(extras)))])
                pool += list(range(len(members), len(members) + len(extras)))
                members = members + extras
                result.cv_rmse.update({m: float("nan") for m in extras})
        result.weights = {m: weights[:, i].tolist() for i, m in enumerate(members)}
        result.used = {"best": result.best, "blend": "blend",
                       "trimmed": "trimmed mean of " + ", ".join(members[i] for i in pool)}[result.kind]
        if feedback is not None:
            used_text = {"blend": "the fitted blend", "trimmed": "the " + result.used}.get(result.kind, result.used)
            feedback.info("fuse_auto: held-out RMSE " + ", ".join(f"{m} {v:.5f}" for m, v in result.cv_rmse.items())
                          + f"; fitted blend (out of sample) {honest:.5f}, trimmed mean {result.pool_rmse:.5f}, "
                          f"{result.best} {best_honest:.5f} on the same pixels ({len(folds)} held-out date(s)); "
                          f"predicting with {used_text}.")
        # the error model from the folds' predictions of the chosen kind (out of sample)
        result.error_model = _error_model(folds, fold_outputs[result.kind])
        used = [m for i, m in enumerate(members) if uncertainty or weights[:, i].any()]
        outputs = _predict_members(series, dates, folder, tmp, scales, used, device, feedback, keep_members,
                                   factor, result, weights, members)
        used = [m for m in used if m in outputs]
        result.files, result.errors = _write(series, dates, folder, scales, members, used, outputs, weights,
                                             result, uncertainty, SubFeedback(feedback, 90.0, 100.0)
                                             if feedback else None)
        result.csv = _write_csv(folder, members, result)
    return result


def _predict_members(series, dates, folder, tmp, scales, used, device, feedback, keep_members, factor, result,
                     weights=None, members=None) -> dict:
    """Every member's predictions of ``dates`` ({member: {date: file}}); a member that cannot run is left out
    with a warning (its weight set to 0), an error only when none can run."""
    outputs = {}
    for k, m in enumerate(used):
        check_cancel(feedback)
        sub = SubFeedback(feedback, 40.0 + 50.0 * k / len(used), 40.0 + 50.0 * (k + 1) / len(used)) \
            if feedback else None
        try:
            files = fuse_member(m, series, dates, os.path.join(folder if keep_members else tmp, "members", m),
                                scales, device, sub, factor=factor)
        except InputError as exc:
            note = f"{m} was left out: it cannot run on this series ({exc})"
            result.notes.append(note)
            if feedback is not None:
                feedback.info("Warning: " + note)
            if weights is not None:
                weights[:, members.index(m)] = 0.0
            continue
        outputs[m] = dict(zip(dates, files))
        if keep_members:
            result.members[m] = files
    if not outputs or (weights is not None and not any(weights[:, members.index(m)].any() for m in outputs)):
        raise InputError("No member could predict on this series: " + "; ".join(result.notes))
    return outputs


def _one_pair(series, dates, folder, scales, methods, device, feedback, keep_members, factor, result) -> AutoResult:
    """One pair: nothing to hold out. The members that predict from one pair, combined by their trimmed mean (a
    robust combination that needs no scores: module docstring, item 3); no error estimate (nothing to calibrate
    it on)."""
    if not methods:
        raise InputError("With one pair, fuse_auto needs members that predict from one pair (ESTARFM needs two).")
    note = (f"One pair: nothing to hold out, so no cross-validation and no error estimate; predicting with the "
            f"trimmed mean of the members that run ({', '.join(methods)}).")
    result.notes.append(note)
    if feedback is not None:
        feedback.info(note)
    result.choice, result.kind = "auto", "trimmed"
    with scratch_dir("auto", folder) as tmp:
        outputs = _predict_members(series, dates, folder, tmp, scales, methods, device, feedback, keep_members,
                                   factor, result)
        members = [m for m in methods if m in outputs]
        bands = series.grid.bands
        weights = np.full((bands, len(members)), 1.0 / len(members))
        result.weights = {m: weights[:, i].tolist() for i, m in enumerate(members)}
        result.cv_rmse = {m: float("nan") for m in members}
        result.best = ""
        result.used = "trimmed mean of " + ", ".join(members)
        result.files, result.errors = _write(series, dates, folder, scales, members, members, outputs, weights,
                                             result, False, SubFeedback(feedback, 90.0, 100.0) if feedback else None)
        result.csv = _write_csv(folder, members, result)
    return result


def _kind(choice: str, n_folds: int, scores: dict[str, float]) -> str:
    """What predicts. CHOICE=best / blend: that. CHOICE=auto: with at least ``MIN_FOLDS`` held-out dates, whichever
    of the trimmed mean, the fitted blend (out of sample) and the best member scored lowest on them; with fewer,
    the trimmed mean (module docstring, item 3)."""
    if choice in ("best", "blend"):
        return choice
    if n_folds >= MIN_FOLDS:
        finite = {k: v for k, v in scores.items() if np.isfinite(v)}
        return min(finite, key=finite.get) if finite else "trimmed"
    return "trimmed"


def _fold_data(series: SceneSeries, rows: list[dict], members: list[str], scales) -> list[dict]:
    """Per held-out date: the truth [B, N], each member's prediction [B, N] and the coarse change since the fold's
    nearest pair [N], on the pixels valid in all."""
    out = []
    for held in sorted({r["held_out"] for r in rows}):
        by = {r["method"]: r for r in rows if r["held_out"] == held}
        truth, ok = read_block(by[members[0]]["reference"], scale=scales.fine)
        preds = []
        for m in members:
            p, pok = read_block(by[m]["prediction"], scale=scales.fine)
            preds.append(p)
            ok &= pok
        date = _dt.date.fromisoformat(held)
        others = [d for d in series.pair_dates if d != date]
        change, cok = coarse_change(series, others, date, None, scales)
        novelty, nok = novelty_map(series, novelty_fit(series, others, date, scales), None, scales)
        ok &= cok & nok
        cols = np.nonzero(ok)[1]
        half = cols >= ok.shape[1] // 2
        out.append({"held": held, "truth": truth[:, ok].astype(np.float64), "half": half, "change": change[ok],
                    "novelty": novelty[ok], "preds": [p[:, ok].astype(np.float64) for p in preds]})
    return out


def _fit(parts: list[tuple[np.ndarray, np.ndarray]], band: int) -> np.ndarray:
    """The simplex weights of one band on ``parts`` ((member predictions [M][B, N], truth [B, N]) each),
    subsampled beyond MAX_PIXELS per part."""
    a = np.concatenate([np.stack([p[band] for p in preds], axis=1) for preds, _ in parts])
    y = np.concatenate([truth[band] for _, truth in parts])
    return simplex_weights(*subsample(MAX_PIXELS * len(parts), a, y))


def _out_of_sample(folds: list[dict]) -> tuple[float, list[np.ndarray]]:
    """The blend's RMSE (mean over folds) with weights fitted without the half (of a fold) they predict; and those
    out-of-sample predictions per fold [B, N]."""
    parts = [(i, h) for i in range(len(folds)) for h in (False, True)]
    predictions = [np.zeros_like(f["truth"]) for f in folds]
    bands = folds[0]["truth"].shape[0]
    def part(j: int, g: bool) -> tuple[list[np.ndarray], np.ndarray]:
        mask = folds[j]["half"] == g
        return [p[:, mask] for p in folds[j]["preds"]], folds[j]["truth"][:, mask]

    for i, h in parts:
        train = [part(j, g) for j, g in parts if (j, g) != (i, h)]
        mask = folds[i]["half"] == h
        for b in range(bands):
            w = _fit(train, b)
            predictions[i][b][mask] = np.stack([p[b][mask] for p in folds[i]["preds"]], axis=1) @ w
    score = float(np.mean([_rmse_per_band(predictions[i], f["truth"]) for i, f in enumerate(folds)]))
    return score, predictions


def _spread(preds: list[np.ndarray], output: np.ndarray) -> np.ndarray:
    """s = sqrt(mean_m mean_b (P_m,b - P_b)^2) for [B, ...] arrays."""
    return np.sqrt(np.mean([np.mean((p - output) ** 2, axis=0) for p in preds], axis=0))


def _error_model(folds: list[dict], outputs: list[np.ndarray]) -> tuple[float, float, float, float]:
    """(e0, a, g, n0) of the error estimate, fitted on the folds (module docstring, item 5)."""
    spread = np.concatenate([_spread(f["preds"], o) for f, o in zip(folds, outputs)])
    change = np.concatenate([f["change"] for f in folds])
    error = np.concatenate([np.sqrt(np.mean((o - f["truth"]) ** 2, axis=0)) for f, o in zip(folds, outputs)])
    novelty_values = np.concatenate([f["novelty"] for f in folds])
    if max(float(spread.max(initial=0.0)), float(change.max(initial=0.0))) <= 1e-12:  # nothing varies: a constant
        return float(error.mean()) if len(error) else 0.0, 0.0, 0.0, fit_error_model(
            np.ones((len(error), 1)), error, novelty_values, MAX_PIXELS)[1]
    # through the origin (e0 = 0): see the module docstring, item 5
    coef, n0 = fit_error_model(np.stack([spread, change], axis=1), error, novelty_values, MAX_PIXELS)
    return 0.0, coef[0], coef[1], n0


def _write(series, dates, folder, scales, members, used, outputs, weights, result, uncertainty, feedback):
    fine_scale = scales.fine
    value_range = series_value_range(series, scales)
    index = {m: members.index(m) for m in used}
    fits = {d: novelty_fit(series, series.pair_dates, d, scales) for d in dates} if uncertainty else {}

    def predict(date, tile):
        window = tile.inner
        values, oks = {}, {}
        for m in used:
            values[m], oks[m] = read_block(outputs[m][date], window, fine_scale)
        bands = next(iter(values.values())).shape[0]
        if result.kind == "trimmed":  # the trimmed mean of the pool (weights > 0) valid at each pixel
            pool = [m for m in used if weights[:, index[m]].any()]
            ok = np.stack([oks[m] for m in pool])[:, None]
            out = trimmed_mean(np.stack([values[m] for m in pool]), ok)
            valid = ok.any(axis=0)[0]
        else:
            out = np.zeros_like(next(iter(values.values())), dtype=np.float64)
            total = np.zeros((bands,) + out.shape[1:])
            for m in used:
                w = weights[:, index[m]][:, None, None] * oks[m][None]
                out += w * values[m]
                total += w
            valid = (total > 0).all(axis=0)
            out = np.where(total > 0, out / np.where(total > 0, total, 1.0), 0.0)
        sides = []
        if uncertainty:
            present = [values[m] for m in used]
            all_ok = np.logical_and.reduce([oks[m] for m in used])
            change, cok = coarse_change(series, series.pair_dates, date, window, scales)
            novelty, nok = novelty_map(series, fits[date], window, scales)
            e0, a, g, n0 = result.error_model
            error = estimate([np.ones_like(change), _spread(present, out), change], [e0, a, g], novelty, n0)
            sides.append(np.where(valid & all_ok & cok & nok, error, np.nan))
        return (out.astype(np.float32), valid, *sides)

    files = write_predictions(series, dates, METHOD, folder, predict, scales, bytes_per_pixel=16.0 * (len(used) + 2),
                              feedback=feedback, value_range=value_range, side=(ERROR,) if uncertainty else ())
    from osgeo import gdal

    note = json.dumps({"choice": result.choice, "kind": result.kind, "best": result.best, "weights": result.weights,
                       "cv_rmse": result.cv_rmse, "blend_rmse_out_of_sample": result.blend_rmse,
                       "trimmed_mean_rmse": result.pool_rmse})
    for path in files:
        ds = gdal.Open(path, gdal.GA_Update)
        ds.SetMetadataItem("STF_AUTO", note)
        ds = None
    errors = [ERROR.path(folder, METHOD, d) for d in dates] if uncertainty else []
    return files, errors


def _write_csv(folder: str, members: list[str], result: AutoResult) -> str:
    path = os.path.join(folder, "auto_members.csv")
    bands = len(next(iter(result.weights.values())))
    with OutputTransaction() as tx:
        with open(tx.add(path), "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["member", "cv_rmse"] + [f"weight_band_{b + 1}" for b in range(bands)])
            for m in members:
                writer.writerow([m, f"{result.cv_rmse[m]:.6g}"] + [f"{w:.4f}" for w in result.weights[m]])
            writer.writerow(["fitted blend (out of sample)", f"{result.blend_rmse:.6g}"] + [""] * bands)
            writer.writerow(["trimmed mean of the pool (auto)", f"{result.pool_rmse:.6g}"] + [""] * bands)
            writer.writerow([f"used: {result.used} (CHOICE={result.choice})", ""] + [""] * bands)
            writer.writerow(["error model e0, a (spread), g (coarse change), n0 (folds' novelty)"]
                            + [f"{v:.6g}" for v in result.error_model] + [""] * (bands - 3))
    return path
