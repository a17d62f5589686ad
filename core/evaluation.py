"""Evaluation of predictions against reference images: matching by date, scale and grid checks, the metric table.

Rows: one per prediction x band plus an ``all`` row per prediction (band-wise metrics averaged over bands; SAM and
ERGAS are defined over all bands and appear on the ``all`` row only). Conventions: :data:`.metrics.CONVENTIONS`.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from . import metrics
from .dates import date_from_name
from .errors import InputError
from .feedback import Feedback, check_cancel
from .raster import (
    PAIRS_KEY, RATIO_KEY, Encoding, OutputTransaction, RasterInfo, as_encoding, check_band_order, check_same_grid,
    raster_info,
    read_block,
)

COLUMNS = ("date", "method", "band", "n_pixels") + metrics.METRICS + ("prediction",)
_DATE_TOKEN = re.compile(r"(\d{4}[-_]\d{2}[-_]\d{2}|A?\d{7,8})")


def method_from_name(path: str) -> str:
    """The method name in a prediction file name: ``starfm_2021-05-03.tif`` -> ``starfm``."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name = _DATE_TOKEN.sub("", stem).strip("_-. ")
    return re.sub(r"[_\-.]{2,}", "_", name) or "prediction"


@dataclass
class Match:
    """One prediction with its reference (and optional baseline) image."""

    prediction: str
    reference: str
    baseline: str | None
    date: _dt.date | None
    method: str


def match_files(predictions: list[str], references: list[str], baselines: list[str] | None = None) -> list[Match]:
    """Pair predictions with references by the date in their names, or else by order.

    By date when every file name holds a date (several methods may then share one reference); by order otherwise,
    which needs one reference (and baseline) per prediction.
    """
    if not predictions:
        raise InputError("No prediction given to evaluate.")
    if not references:
        raise InputError("No reference image given to evaluate against.")
    baselines = baselines or []
    pred_dates = [date_from_name(p) for p in predictions]
    ref_dates = [date_from_name(r) for r in references]
    base_dates = [date_from_name(b) for b in baselines]
    if all(pred_dates) and all(ref_dates) and all(base_dates):
        refs = _by_date(references, ref_dates, "reference")
        bases = _by_date(baselines, base_dates, "baseline")
        matches = []
        for path, date in zip(predictions, pred_dates):
            if date not in refs:
                raise InputError(
                    f"No reference image for the prediction '{path}' ({date.isoformat()}); reference dates: "
                    + ", ".join(sorted(d.isoformat() for d in refs)) + ".")
            if baselines and date not in bases:
                raise InputError(f"No baseline image for the prediction '{path}' ({date.isoformat()}).")
            matches.append(Match(path, refs[date], bases.get(date), date, method_from_name(path)))
        return _distinct_methods(matches)
    if len(references) != len(predictions) or (baselines and len(baselines) != len(predictions)):
        raise InputError(
            f"Cannot match {len(predictions)} predictions with {len(references)} references"
            + (f" and {len(baselines)} baselines" if baselines else "")
            + " by order (some file names hold no date): give one reference per prediction, in the same order, or "
              "put dates in the file names.")
    return _distinct_methods([Match(p, r, baselines[i] if baselines else None, d, method_from_name(p))
                              for i, (p, r, d) in enumerate(zip(predictions, references, pred_dates))])


def _distinct_methods(matches: list[Match]) -> list[Match]:
    """Predictions of one method name and date from different folders (two runs of STARFM) are different rows:
    their method is named with the folder (``starfm (run_a)``), for every date of that method; the same file
    given twice is an error."""
    import dataclasses

    seen: dict[tuple, str] = {}
    clashing = set()
    for m in matches:
        key = (m.method, m.date)
        if key in seen:
            if os.path.realpath(seen[key]) == os.path.realpath(m.prediction):
                raise InputError(f"The prediction '{m.prediction}' is given twice.")
            clashing.add(m.method)
        seen.setdefault(key, m.prediction)
    if not clashing:
        return matches

    def label(m: Match, depth: int) -> str:
        parts = os.path.normpath(os.path.abspath(m.prediction)).split(os.sep)[:-1]
        return f"{m.method} ({'/'.join(parts[-depth:]) or '/'})"

    for depth in range(1, 64):  # the shortest folder suffix that tells them apart
        labels = [label(m, depth) if m.method in clashing else m.method for m in matches]
        if len(set(zip(labels, [m.date for m in matches]))) == len(matches):
            return [dataclasses.replace(m, method=name) for m, name in zip(matches, labels)]
    return matches


def _by_date(paths: list[str], dates: list[_dt.date], what: str) -> dict[_dt.date, str]:
    result: dict[_dt.date, str] = {}
    for path, date in zip(paths, dates):
        if date in result:
            raise InputError(f"Two {what} images share the date {date.isoformat()}: '{result[date]}' and '{path}'.")
        result[date] = path
    return result


def _check_scale(values: np.ndarray, valid: np.ndarray, path: str, scale: "float | Encoding",
                 data_range: float) -> None:
    if not valid.any():
        raise InputError(f"'{path}' has no valid pixel (all nodata or masked).")
    high = float(np.percentile(values[:, valid], 99))
    if high > 1.5 * data_range:
        raise InputError(
            f"After SCALE ({as_encoding(scale).describe()}), '{path}' has values up to {high:.4g}, not reflectance "
            "within the data range "
            f"{data_range:g}: the scale does not match the file (0.0001 for 0-10000 integers, 1 for 0-1 floats).")


@dataclass
class Evaluation:
    """The table and what the report needs beside it."""

    rows: list[dict]
    conventions: dict[str, str]
    details: list[dict] = field(default_factory=list)
    pair_dates: list[str] = field(default_factory=list)  # from the predictions' metadata (stf fusion outputs)
    # predictions with an error estimate beside them (stf:fuse_auto): its mean against the true error's
    error_estimates: list[dict] = field(default_factory=list)


def evaluate_files(
    predictions: list[str], references: list[str], baselines: list[str] | None = None, mask: str | None = None,
    scale: "float | Encoding" = 1e-4, data_range: float = 1.0, ratio: float = 0.0,
    feedback: Feedback | None = None,
    keep_details: bool = True,
) -> Evaluation:
    """Compute every metric for every prediction; see the module docstring for the rows.

    ``ratio`` is h/l for ERGAS (fine / coarse pixel size); 0 takes it from each prediction's metadata (the stf
    fusion algorithms record it when the coarse images were resampled by stf:resample_coarse, or are still on
    their own grid); where it is not known, ERGAS is not computed (never a silent h/l = 1, 16-20 times too high
    for Landsat-MODIS) and the conventions say so.
    """
    matches = match_files(predictions, references, baselines)
    conventions = dict(metrics.CONVENTIONS)
    conventions["data range"] = f"L = {data_range:g} (reflectance = stored value {as_encoding(scale).describe()})"
    used: dict[str, list[str]] = {}  # h/l -> predictions (names)
    pairs: set[str] = set()
    conventions["masked pixels"] = "nodata in any band, non-finite, or 0 in the mask raster: excluded everywhere"
    rows, details, estimates = [], [], []
    for i, match in enumerate(matches):
        check_cancel(feedback)
        ref_info = raster_info(match.reference, "reference")
        pred_info = raster_info(match.prediction, "prediction")
        check_same_grid(ref_info, pred_info)
        check_band_order(ref_info, pred_info)
        pred, pred_valid = read_block(match.prediction, scale=scale, info=pred_info)
        ref, ref_valid = read_block(match.reference, scale=scale, mask_path=mask, info=ref_info)
        valid = pred_valid & ref_valid
        _check_scale(ref, ref_valid, match.reference, scale, data_range)
        _check_scale(pred, pred_valid, match.prediction, scale, data_range)
        base = None
        if match.baseline:
            base_info = raster_info(match.baseline, "baseline")
            check_same_grid(ref_info, base_info)
            base, base_valid = read_block(match.baseline, scale=scale, info=base_info)
            valid &= base_valid
        if not valid.any():
            raise InputError(f"'{match.prediction}' and '{match.reference}' have no valid pixel in common.")
        factor = float(np.mean(pred[:, valid])) / max(float(np.mean(ref[:, valid])), 1e-12)
        if not 0.2 < factor < 5.0:
            raise InputError(
                f"The prediction '{match.prediction}' is on average {factor:.3g} times the reference "
                f"'{match.reference}': they are not stored in the same scale (one SCALE applies to both).")
        pairs.update(d for d in pred_info.metadata.get(PAIRS_KEY, "").split(",") if d)
        h_l = _ratio(ratio, pred_info)
        used.setdefault("not known" if math.isnan(h_l) else f"{h_l:.4g}", []).append(os.path.basename(match.prediction))
        result = metrics.compute_all(pred, ref, valid, data_range, h_l, base)
        rows += _rows(match, result, ref_info)
        estimate = _error_estimate(match, pred, ref, valid, ref_info)
        if estimate:
            estimates.append(estimate)
        if keep_details:
            details.append(_details(match, pred, ref, valid, ref_info.descriptions))
        if feedback is not None:
            feedback.set_progress(100.0 * (i + 1) / len(matches))
    conventions["h/l"] = _describe_ratios(ratio, used)
    if estimates:
        conventions["error estimates"] = (
            "where a prediction has an error estimate beside it (uncertainty/<name>_error.tif, written by "
            "stf:fuse_auto and by stf:predict for a refinement), its mean over the valid pixels is compared with "
            "the mean true error, the per-pixel RMS over the bands sqrt(mean_b (P_b - R_b)^2); the correlation is "
            "over those pixels")
    return Evaluation(rows, conventions, details, sorted(pairs), estimates)


def _error_estimate(match: Match, pred: np.ndarray, ref: np.ndarray, valid: np.ndarray,
                    ref_info: RasterInfo) -> dict | None:
    """The prediction's error estimate against its true error (mean estimate, mean true per-pixel RMS over bands,
    their ratio and correlation), or None when it has none beside it."""
    from .uncertainty import ERROR

    path = ERROR.beside(match.prediction)
    if not os.path.isfile(path):
        return None
    info = raster_info(path, "error estimate")
    check_same_grid(ref_info, info, check_bands=False)
    estimate, ok = read_block(path, scale=1.0, info=info)
    ok &= valid
    if not ok.any():
        return None
    true = np.sqrt(np.mean((pred - ref) ** 2, axis=0))[ok]
    est = estimate[0][ok].astype(np.float64)
    corr = float(np.corrcoef(est, true)[0, 1]) if est.std() > 0 and true.std() > 0 else float("nan")
    return dict(date=match.date.isoformat() if match.date else "", method=match.method,
                prediction=os.path.basename(match.prediction), estimated=float(est.mean()), true=float(true.mean()),
                ratio=float(est.mean()) / max(float(true.mean()), 1e-12), correlation=corr)


def _ratio(ratio: float, info) -> float:
    """h/l: the given one, else the prediction's recorded one, else NaN (ERGAS not computed)."""
    if ratio > 0:
        return ratio
    try:
        value = float(info.metadata[RATIO_KEY])
    except (KeyError, ValueError):
        return math.nan
    return value if 0 < value < 1 else math.nan


def _describe_ratios(ratio: float, used: dict[str, list[str]]) -> str:
    if ratio > 0:
        return f"{ratio:g} (given)"
    parts = []
    for value, names in sorted(used.items()):
        if value == "not known":
            parts.append(f"not known for {len(names)} prediction(s) ({', '.join(names[:3])}"
                         f"{'...' if len(names) > 3 else ''}): ERGAS not computed; give RATIO (fine / coarse pixel "
                         "size)")
        else:
            parts.append(f"{value} from the predictions' metadata ({len(names)} prediction(s))")
    return "; ".join(parts)


def _rows(match: Match, result: dict, info: RasterInfo) -> list[dict]:
    date = match.date.isoformat() if match.date else ""
    bands = len(result["rmse"])
    names = [d if d else f"b{i + 1}" for i, d in enumerate(info.descriptions or [""] * bands)]
    base = dict(date=date, method=match.method, n_pixels=result["n_pixels"],
                prediction=os.path.basename(match.prediction))
    rows = []
    for b in range(bands):
        row = dict(base, band=names[b])
        row.update({k: float(result[k][b]) for k in metrics.BAND_METRICS})
        row.update(sam=float("nan"), ergas=float("nan"))
        rows.append(row)
    overall = dict(base, band="all")
    overall.update({k: float(np.mean(result[k])) for k in metrics.BAND_METRICS})
    overall.update(sam=float(result["sam"]), ergas=float(result["ergas"]))
    rows.append(overall)
    return rows


def _details(match: Match, pred: np.ndarray, ref: np.ndarray, valid: np.ndarray, names=(), max_side: int = 400,
             max_points: int = 4000, thumbnail: int = 200) -> dict:
    """A small error map (per-pixel RMSE over bands), a sample of (reference, prediction) pairs, and thumbnails of
    the displayed bands (core/style.py: true colour from the band names) of the reference and the prediction."""
    from .style import display_bands

    error = np.sqrt(np.mean((pred - ref) ** 2, axis=0))
    error[~valid] = np.nan
    shown, _ = display_bands(names, ref.shape[0])
    small = max(1, int(np.ceil(max(error.shape) / thumbnail)))
    view = (np.array(shown) - 1, slice(None, None, small), slice(None, None, small))
    step = max(1, int(np.ceil(max(error.shape) / max_side)))
    rng = np.random.default_rng(0)
    idx = np.flatnonzero(valid)
    idx = rng.choice(idx, size=min(max_points, idx.size), replace=False)
    return dict(prediction=match.prediction, method=match.method,
                date=match.date.isoformat() if match.date else os.path.basename(match.prediction),
                error_map=error[::step, ::step], ref_sample=ref.reshape(ref.shape[0], -1)[:, idx],
                pred_sample=pred.reshape(pred.shape[0], -1)[:, idx], ref_thumb=ref[view], pred_thumb=pred[view],
                error_thumb=error[::small, ::small], thumb_valid=valid[::small, ::small])


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else ("inf" if np.isinf(value) else f"{value:.6g}")
    text = str(value)
    # a text cell starting like a formula (a file named "=HYPERLINK(...).tif") would run in a spreadsheet
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(evaluation: Evaluation, path: str, transaction: OutputTransaction) -> str:
    """Write the table (columns :data:`COLUMNS`) and ``<path>.conventions.json`` beside it."""
    temp = transaction.add(path)
    with open(temp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for row in evaluation.rows:
            writer.writerow({k: _fmt(row[k]) for k in COLUMNS})
    with open(transaction.add(os.path.splitext(path)[0] + ".conventions.json"), "w", encoding="utf-8") as fh:
        json.dump(evaluation.conventions, fh, indent=2)
    return path


def method_means(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Mean of the ``all`` rows per method (over dates), NaN-aware."""
    by_method: dict[str, list[dict]] = {}
    for row in rows:
        if row["band"] == "all":
            by_method.setdefault(row["method"], []).append(row)
    means = {}
    for method, items in by_method.items():
        values = {}
        for k in metrics.METRICS:
            column = np.array([r[k] for r in items], dtype=float)
            finite = column[np.isfinite(column)]
            values[k] = float(finite.mean()) if finite.size else float("nan")
        values["n_predictions"] = len(items)
        means[method] = values
    return means
