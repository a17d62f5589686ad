"""Which method suits this scene? Leave-one-pair-out cross-validation of fusion methods, with the scene's spatial
vs temporal variance.

For each held-out pair date t_k (a fold), the fine image of t_k is removed from the series, every chosen method
predicts t_k from the remaining pairs and the coarse images, and the prediction is compared with the held-out fine
image (the metric suite of :mod:`.evaluation`). Methods are ranked by RMSE on each date and overall by their mean
RMSE over the folds. A fold holds out an *interior* pair (one with a pair before and after it), so that methods
needing two pairs (ESTARFM) can run and no method extrapolates; with only two pairs each one is held out in turn
and the two-pair methods are left out, as the report says.

Beside the ranking: the partition of the variance of the pairs' fine images (reflectance x(p, t), pixel p, pair
date t, per band, then averaged over bands) by the law of total variance into

    spatial  V_s = Var_p( mean_t x(p, t) )        (how different the pixels are)
    temporal V_t = mean_p( Var_t x(p, t) )        (how much each pixel changes)

with V_s + V_t = Var_{p,t} x. Emelyanova et al. (2013, Remote Sensing of Environment 133, 193-209) partitioned the
variance of Landsat and MODIS series into spatial and temporal components and found ESTARFM superior where the
spatial variance dominated and STARFM superior where the temporal variance dominated. The ratio V_s / V_t is shown
as that context; the ranking itself comes from the held-out pairs of this scene.

The learned methods (STFSR and the deep networks, on request) are trained with their default settings on each
fold's pairs only, then predict the held-out date: the held-out image never reaches their training.
"""
from __future__ import annotations

import datetime as _dt
import html
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .feedback import Feedback, SubFeedback, check_cancel
from .fusion import FUSION_MODEL  # STFDCNN's fusion model without its CNNs (no training; needs torch)
from .series import SceneSeries, build_series, read_item

DEFAULT_METHODS = ("naive", "additive", "starfm", "estarfm", "fsdaf", "fitfc")  # run unless METHODS says otherwise
LEARNED = ("stfsr", "stfdcnn", "dcnn", "stf3dcnn", "dcstfn")  # trained on each fold's pairs first (slower)
NEEDS_TORCH = LEARNED + (FUSION_MODEL,)
METHODS = DEFAULT_METHODS + (FUSION_MODEL,) + LEARNED  # what cross_validate can run, each with its defaults
TWO_PAIRS = {"estarfm"}


@dataclass
class CrossValidation:
    """Per fold and method the metrics of the 'all bands' row; the variance partition; notes for the report."""

    rows: list[dict] = field(default_factory=list)
    spatial_variance: float = float("nan")
    temporal_variance: float = float("nan")
    notes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # a method that could not run on the series -> why

    @property
    def variance_ratio(self) -> float:
        """V_s / V_t (infinite when nothing changes)."""
        return self.spatial_variance / self.temporal_variance if self.temporal_variance > 0 else float("inf")

    def mean_rmse(self) -> dict[str, float]:
        """Mean held-out RMSE per method over the folds it ran on, best first."""
        by: dict[str, list[float]] = {}
        for row in self.rows:
            by.setdefault(row["method"], []).append(row["rmse"])
        return dict(sorted(((m, float(np.mean(v))) for m, v in by.items()), key=lambda kv: kv[1]))


def variance_partition(images: list[np.ndarray], valid: np.ndarray) -> tuple[float, float]:
    """(V_s, V_t) of co-registered images ``[bands, rows, cols]`` over the pixels valid on every date (module
    docstring), averaged over bands."""
    if len(images) < 2:
        raise InputError("The variance partition needs at least two dated images.")
    if not valid.any():
        raise InputError("The fine images have no pixel valid on every pair date.")
    cube = np.stack([image[:, valid] for image in images]).astype(np.float64)  # [dates, bands, pixels]
    temporal_mean = cube.mean(axis=0)  # [bands, pixels]
    spatial = temporal_mean.var(axis=1)  # Var_p(mean_t x)
    temporal = cube.var(axis=0).mean(axis=1)  # mean_p(Var_t x)
    return float(spatial.mean()), float(temporal.mean())


def folds(series: SceneSeries) -> tuple[list[_dt.date], bool]:
    """The pair dates to hold out and whether two-pair methods can run (True: interior pairs exist)."""
    dates = [item.date for item in series.fine]
    interior = dates[1:-1]
    if interior:
        return interior, True
    if len(dates) < 2:
        raise InputError("Cross-validation needs at least two fine/coarse pairs: one to hold out and one to predict "
                         "it from.")
    return dates, False


def cross_validate(series: SceneSeries, methods: list[str], folder: str, scale: Any, device: str = "auto",
                   feedback: Feedback | None = None, keep: str | None = None, factor: int = 0) -> CrossValidation:
    """Leave each (interior) pair out in turn, predict it with every method, evaluate against it.

    Predictions are written to a scratch folder under ``folder`` and removed at the end; with ``keep`` (a folder
    the caller owns and removes) they are written there and kept, their paths in each row's ``prediction`` and
    the held-out fine image's in ``reference``. ``factor`` > 0: the coarse factor of the methods that take one.
    A method that cannot run on the series (an input error of its own, e.g. no coarse factor known) is left out
    with a note saying why (``result.notes``, and the feedback's warning) and the others go on; only when no
    method can run is it an error."""
    from .evaluation import evaluate_files
    from .fusion import fuse_member
    from .raster import scratch_dir
    from .series import as_scales, require_fine_grid

    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(f"METHODS: unknown method(s) {', '.join(unknown) or '(none given)'}; choose among "
                         f"{', '.join(METHODS)}.")
    require_fine_grid(series)
    held_dates, two_pairs = folds(series)
    result = CrossValidation()
    if not two_pairs:
        skipped = [m for m in methods if m in TWO_PAIRS]
        methods = [m for m in methods if m not in TWO_PAIRS]
        if skipped:
            result.notes.append(f"The series has two pairs only: each is held out in turn and predicted from the "
                                f"other, so {', '.join(skipped)} (which needs a pair before and after the date) "
                                "was left out.")
    scales = as_scales(scale)
    images, valid = [], None
    for item in series.fine:
        data, ok = read_item(item, None, scales.fine)
        images.append(data)
        valid = ok if valid is None else valid & ok
    result.spatial_variance, result.temporal_variance = variance_partition(images, valid)
    steps = len(held_dates) * len(methods)
    failed = result.failed
    with scratch_dir("crossval", folder) as scratch:
        tmp = keep or scratch
        for k, held in enumerate(held_dates):
            kept = [item for item in series.fine if item.date != held]
            fold = build_series([i.path for i in kept], [c.path for c in series.coarse],
                                [i.date for i in kept] + [c.date for c in series.coarse])
            reference = next(item.path for item in series.fine if item.date == held)
            for j, method in enumerate(methods):
                check_cancel(feedback)
                if method in failed:
                    continue
                step = k * len(methods) + j
                sub = SubFeedback(feedback, 100.0 * step / steps, 100.0 * (step + 1) / steps) if feedback else None
                out = os.path.join(tmp, f"{held.isoformat()}_{method}")
                # a learned method is trained on this fold's pairs (the held-out one is not in the fold)
                try:
                    prediction = fuse_member(method, fold, [held], out, scales, device, sub, factor=factor)[0]
                except InputError as exc:
                    failed[method] = str(exc)
                    note = f"{method} was left out: it cannot run on this series ({exc})"
                    result.notes.append(note)
                    if feedback is not None:
                        feedback.info("Warning: " + note)
                    continue
                evaluation = evaluate_files([prediction], [reference], scale=scales.fine, keep_details=False)
                row = next(r for r in evaluation.rows if r["band"] == "all")
                result.rows.append({"held_out": held.isoformat(), "method": method,
                                    "pairs_used": ",".join(i.date.isoformat() for i in kept),
                                    **({"prediction": prediction, "reference": reference} if keep else {}),
                                    **{key: row[key] for key in ("rmse", "mae", "ssim", "cc", "sam", "ergas")}})
                if feedback is not None:
                    feedback.info(f"{held.isoformat()} held out, {method}: RMSE {row['rmse']:.5f}")
    result.rows = [r for r in result.rows if r["method"] not in failed]  # a method runs on every fold or none
    if not result.rows:
        raise InputError("No method could run on this series: " + "; ".join(f"{m}: {why}" for m, why in
                                                                          failed.items()))
    for held in {r["held_out"] for r in result.rows}:  # rank per date
        ordered = sorted((r for r in result.rows if r["held_out"] == held), key=lambda r: r["rmse"])
        for rank, row in enumerate(ordered, 1):
            row["rank"] = rank
    return result


def explanation(result: CrossValidation) -> list[str]:
    """Sentences for the report: the ranking, how it compares with the baselines, the variance context."""
    means = result.mean_rmse()
    if not means:
        return []
    best, best_rmse = next(iter(means.items()))
    lines = [f"Best on this scene: {best}, mean held-out RMSE {best_rmse:.4g} over "
             f"{len({r['held_out'] for r in result.rows})} held-out pair date(s)."]
    for baseline in ("naive", "additive"):
        if baseline in means and best != baseline and means[baseline] > 0:
            lines.append(f"That is {100 * (best_rmse - means[baseline]) / means[baseline]:+.0f} % against the "
                         f"{baseline} prediction ({means[baseline]:.4g}).")
    fusion = [m for m in means if m not in ("naive", "additive")]
    if "naive" in means:
        losers = [m for m in fusion if means[m] >= means["naive"]]
        if losers:
            lines.append(f"{', '.join(losers)} did not beat the naive prediction here: the coarse images add "
                         "little for them on this scene.")
    ratio = result.variance_ratio
    dominant = "spatial" if ratio > 1 else "temporal"
    lines.append(f"Spatial / temporal variance of the pairs' fine images: {ratio:.3g} ({dominant} variance "
                 "dominates). Emelyanova et al. (2013) found ESTARFM better where spatial variance dominates and "
                 "STARFM better where temporal variance dominates.")
    if "starfm" in means and "estarfm" in means:
        expected = "estarfm" if dominant == "spatial" else "starfm"
        other = "starfm" if expected == "estarfm" else "estarfm"
        agrees = means[expected] <= means[other]
        lines.append(f"Here {expected if agrees else other} beat {other if agrees else expected} "
                     f"({means['starfm']:.4g} STARFM, {means['estarfm']:.4g} ESTARFM), which "
                     f"{'agrees with' if agrees else 'goes against'} that finding.")
    return lines + result.notes


COLUMNS = ["held_out", "method", "rank", "rmse", "mae", "ssim", "cc", "sam", "ergas", "pairs_used"]


def write_csv(result: CrossValidation, path: str, transaction: Any) -> str:
    """One row per held-out date and method, then one 'mean' row per method (its mean RMSE and mean rank)."""
    import csv

    with open(transaction.add(path), "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for row in sorted(result.rows, key=lambda r: (r["held_out"], r["rank"])):
            writer.writerow([f"{row[c]:.6g}" if isinstance(row[c], float) else row[c] for c in COLUMNS])
        for method, rmse in result.mean_rmse().items():
            ranks = [r["rank"] for r in result.rows if r["method"] == method]
            writer.writerow(["mean", method, f"{np.mean(ranks):.3g}", f"{rmse:.6g}"] + [""] * 6)
    return path


def write_html(result: CrossValidation, path: str, transaction: Any) -> str:
    """The ranking, the reason, the per-date table."""
    means = result.mean_rmse()
    dates = sorted({r["held_out"] for r in result.rows})
    table = ["<table><tr><th>method</th><th>mean RMSE</th><th>mean rank</th>"
             + "".join(f"<th>RMSE {d}</th>" for d in dates) + "</tr>"]
    for method, rmse in means.items():
        cells = {r["held_out"]: r for r in result.rows if r["method"] == method}
        ranks = np.mean([r["rank"] for r in cells.values()])
        table.append(f"<tr><td>{html.escape(method)}</td><td>{rmse:.5f}</td><td>{ranks:.2g}</td>"
                     + "".join(f"<td>{cells[d]['rmse']:.5f} (#{cells[d]['rank']})</td>" if d in cells else "<td>-</td>"
                               for d in dates) + "</tr>")
    table.append("</table>")
    body = "".join(f"<p>{html.escape(line)}</p>" for line in explanation(result))
    text = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Which method suits this scene?</title>"
            "<style>body{font-family:sans-serif;margin:1.5em;max-width:1100px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
            "</style></head><body><h1>Which method suits this scene?</h1>"
            f"<p>Leave-one-pair-out cross-validation (stf:cross_validate): each of {len(dates)} pair date(s) was "
            "held out, predicted from the other pairs and the coarse images by every method with its default "
            "settings, and compared with its fine image. Lower RMSE (reflectance) is better.</p>"
            f"{body}<h2>Held-out RMSE per method</h2>{''.join(table)}"
            f"<p>Variance of the pairs' fine images: spatial {result.spatial_variance:.4g}, temporal "
            f"{result.temporal_variance:.4g} (reflectance squared, mean over bands).</p></body></html>")
    with open(transaction.add(path), "w", encoding="utf-8") as fh:
        fh.write(text)
    return path
