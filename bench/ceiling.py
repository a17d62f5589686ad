"""``python -m bench.ceiling``: how much of a learned method's untrained start can learning remove at all?
(issue "Learning that pays"; results in ``bench/results/ceiling.md``)

A learned method gains over its untrained start only by a correction that it learns on some dates (the pairs) and
applies on others. On a simulated series, whose truth is known on every date, two measures bound that:

1. **Linear corrections fitted on the truth.** The start P of a method (``additive``: F(t_k) + C(t) - C(t_k) from
   the nearest pair, the DCNN's and DCSTFN's start; or a learned method run with EPOCHS=0, its own start) gets, per
   band b, the correction r_b = sum_j w_j x_j, fitted by least squares to the residual T_b - P_b (T the truth), with
   features x of growing families (dC = C(t) - C(t_k), on the fine grid):

   0. dC_b (a gain on the coarse change); 1. + a constant; 2. + the other bands' dC (cross-band gains);
   3. + dC_b smoothed (Gaussian, sigma = factor / 2 and factor fine pixels); 4. + dC_b and a constant per TRUE
   land-cover class (an oracle of the classes); 5. + the reference's high-pass (F - its factor x factor mean) and
   that high-pass times the relative coarse change (high-pass modulation).

   *in-sample*: fitted on the predicted dates themselves, an upper bound that no method can reach (it knows the
   answer); *leave-one-date-out*: fitted on the OTHER predicted dates' truth and applied to the one left out, what a
   learner given every other date as an extra pair, each close in time, could carry over. RMSE as everywhere in
   the bench: the mean over dates of the mean per-band RMSE.
2. **More pairs** (``--more-pairs``): half of the predicted dates (every other one) get their truth as extra fine
   images, so the series has 6-7 pairs instead of 3; the method, trained with its DEFAULT settings, predicts the
   other half, and is compared with its untrained start (EPOCHS=0) on those dates; then the halves swap.

    make bench-ceiling        # the README's figures (bench/results/ceiling.md; about 10 minutes on 2 cores)
    python -m bench.ceiling --starts fsdaf estarfm blend --more-pairs --output ceiling_refine   # refine's bases
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from .learning import LEARNED, RESULTS, make_series, mean_rmse

FAMILIES = ("gain on dC_b", "+ constant", "+ other bands' dC", "+ smoothed dC_b", "+ per true class",
            "+ high-pass modulation")


def _features(fine: np.ndarray, coarse_ref: np.ndarray, coarse: np.ndarray, band: int, family: int,
              classes: np.ndarray, factor: int) -> np.ndarray:
    """[pixels, k] features of ``family`` (0-5, cumulative) for ``band``; images [bands, h, w]."""
    from scipy import ndimage

    change = coarse - coarse_ref
    cols = [change[band]]
    if family >= 1:
        cols.append(np.ones_like(change[band]))
    if family >= 2:
        cols += [change[j] for j in range(change.shape[0]) if j != band]
    if family >= 3:
        cols += [ndimage.gaussian_filter(change[band], sigma) for sigma in (factor / 2, factor)]
    if family >= 4:
        for k in np.unique(classes):
            inside = (classes == k).astype(change.dtype)
            cols += [inside * change[band], inside]
    if family >= 5:
        high = fine[band] - ndimage.uniform_filter(fine[band], factor)
        relative = ndimage.uniform_filter(change[band], factor) / np.maximum(
            ndimage.uniform_filter(coarse_ref[band], factor), 1e-3)
        cols += [high * relative, high]
    return np.stack([c.ravel() for c in cols], 1)


def _mean_rmse(residuals: list[list[np.ndarray]]) -> float:
    """Mean over dates of the mean per-band RMSE; ``residuals[date][band]`` flat arrays."""
    return float(np.mean([np.mean([np.sqrt(np.mean(r ** 2)) for r in per_date]) for per_date in residuals]))


def linear_ceiling(series, truth: dict, start_files: list[str], landcover: str, factor: int) -> dict:
    """{"start": RMSE, "families": [(in-sample RMSE, leave-one-date-out RMSE), ...]} for the start's predictions
    ``start_files`` (one per predicted date, in ``series.predict_dates`` order)."""
    from stf_fusion.core.raster import read_block

    classes = read_block(landcover)[0][0].astype(int)
    rows = []
    for date, path in zip(series.predict_dates, start_files):
        ref = series.nearest_pair(date)
        fine = read_block(ref.path, scale=1e-4)[0].astype(np.float64)
        coarse_ref = read_block(series.coarse_at(ref.date).path, scale=1e-4)[0].astype(np.float64)
        coarse = read_block(series.coarse_at(date).path, scale=1e-4)[0].astype(np.float64)
        target, ok = read_block(truth[date.isoformat()], scale=1e-4)
        start, ok2 = read_block(path, scale=1e-4)
        if not (ok & ok2).all():
            raise ValueError("the ceiling needs gap-free simulated series (REALISM without clouds)")
        rows.append((fine, coarse_ref, coarse, target.astype(np.float64), start.astype(np.float64)))
    return fit_ceiling(rows, classes, factor)


def fit_ceiling(rows: list[tuple[np.ndarray, ...]], classes: np.ndarray, factor: int) -> dict:
    """The fits of :func:`linear_ceiling` on arrays: ``rows`` one (fine reference, its coarse image, the date's
    coarse image, truth, start) per predicted date, each [bands, h, w]; ``classes`` [h, w]."""
    bands = rows[0][0].shape[0]
    result = {"start": _mean_rmse([[(s[b] - t[b]).ravel() for b in range(bands)] for *_, t, s in rows]),
              "families": []}
    for family in range(len(FAMILIES)):
        inside = [[None] * bands for _ in rows]
        left_out = [[None] * bands for _ in rows]
        for b in range(bands):
            x = [_features(f, cr, c, b, family, classes, factor) for f, cr, c, _, _ in rows]
            y = [(t[b] - s[b]).ravel() for *_, t, s in rows]
            w = np.linalg.lstsq(np.concatenate(x), np.concatenate(y), rcond=None)[0]
            for i in range(len(rows)):
                inside[i][b] = y[i] - x[i] @ w
                others = [j for j in range(len(rows)) if j != i]
                wi = np.linalg.lstsq(np.concatenate([x[j] for j in others]), np.concatenate([y[j] for j in others]),
                                     rcond=None)[0]
                left_out[i][b] = y[i] - x[i] @ wi
        result["families"].append((_mean_rmse(inside), _mean_rmse(left_out)))
    return result


def start_predictions(series, start: str, folder: str) -> list[str]:
    """The predictions of ``start``: a learned method with EPOCHS=0 (its untrained start), or a base of the
    refinement (``additive``, a classic method, ``blend``: stf:fuse_auto's default), with default settings."""
    from stf_fusion.core.deep.api import predict_trained, settings_class, train_method
    from stf_fusion.core.deep.refine import fuse_base

    if start not in LEARNED:
        return sorted(fuse_base(start, series, series.predict_dates, folder, 1e-4, "cpu", None))
    nets, meta = train_method(start, series, 1e-4, settings_class(start)(epochs=0), "cpu")
    return sorted(predict_trained(start, nets, meta, series, series.predict_dates, folder, 1e-4, "cpu"))


def more_pairs(series, truth: dict, method: str, folder: str) -> dict:
    """Train ``method`` (defaults) with every other predicted date's truth as an extra pair; the other dates
    predicted, trained and untrained; both halves. {"trained", "untrained", "seconds", "pairs"}."""
    from stf_fusion.core.deep.api import predict_trained, settings_class, train_method
    from stf_fusion.core.series import build_series

    trained, untrained, seconds, pairs = [], [], 0.0, []
    predicted = series.predict_dates
    coarse = [c.path for c in series.coarse]
    for half in (0, 1):
        extra = predicted[half::2]
        fine = sorted([(p.date, p.path) for p in series.fine] + [(d, truth[d.isoformat()]) for d in extra])
        fold = build_series([path for _, path in fine], coarse,
                            dates=[d for d, _ in fine] + [c.date for c in series.coarse])
        test = fold.predict_dates
        pairs.append(len(fold.fine))
        start = time.perf_counter()
        nets, meta = train_method(method, fold, 1e-4, None, "cpu")
        seconds += time.perf_counter() - start
        out = os.path.join(folder, f"{method}_half{half}")
        trained += mean_rmse(predict_trained(method, nets, meta, fold, test, out, 1e-4, "cpu"), truth)[1]
        nets0, meta0 = train_method(method, fold, 1e-4, settings_class(method)(epochs=0), "cpu")
        untrained += mean_rmse(predict_trained(method, nets0, meta0, fold, test, out + "_0", 1e-4, "cpu"), truth)[1]
    return {"trained": float(np.mean(trained)), "untrained": float(np.mean(untrained)), "seconds": seconds,
            "pairs": pairs}


def _gain(value: float, start: float) -> str:
    return f"{100 * (1 - value / start):+.1f} %"


def main(argv: list[str] | None = None) -> None:
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realism", default="realistic")
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 303, 404])
    ap.add_argument("--starts", nargs="*", default=["additive", "stfdcnn", "stf3dcnn"],
                    help="a learned method (its EPOCHS=0 start), or a base of the refinement: additive, a classic "
                         "method, blend")
    ap.add_argument("--more-pairs", nargs="*", default=["dcnn", "stfdcnn", "stf3dcnn"], help="learned methods")
    ap.add_argument("--output", default="ceiling", help="results file stem in bench/results (empty: print only)")
    args = ap.parse_args(argv)
    lines, paired, records = [], [], []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            head = f"{args.realism} {args.size} px, seed {seed}"
            print(head, flush=True)
            series, truth = make_series(tmp, args.realism, args.size, seed)
            with open(os.path.join(tmp, "series", "series.json"), encoding="utf-8") as fh:
                factor = int(json.load(fh)["config"]["factor"])
            landcover = os.path.join(tmp, "series", "landcover.tif")
            for start in args.starts:
                files = start_predictions(series, start, os.path.join(tmp, f"start_{start}"))
                found = linear_ceiling(series, truth, files, landcover, factor)
                records.append({"series": head, "start": start, **found})
                cells = [f"{i:.5f} / {o:.5f} ({_gain(i, found['start'])} / {_gain(o, found['start'])})"
                         for i, o in found["families"]]
                lines.append(f"| {head} | {start} | {found['start']:.5f} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
            for method in args.more_pairs:
                found = more_pairs(series, truth, method, tmp)
                records.append({"series": head, "more_pairs": method, **found})
                paired.append(f"| {head} | {method} | {found['pairs'][0]} / {found['pairs'][1]} | "
                              f"{found['untrained']:.5f} | {found['trained']:.5f} | "
                              f"{_gain(found['trained'], found['untrained'])} | {found['seconds']:.0f} |")
                print(paired[-1], flush=True)
    table = ["| series | start | start RMSE | " + " | ".join(f"{k}. {name}" for k, name in enumerate(FAMILIES))
             + " |", "|---|---|---:|" + "---:|" * len(FAMILIES)] + lines
    table_pairs = ["| series | method | pairs (each half) | untrained | trained | gain | training (s) |",
                   "|---|---|---:|---:|---:|---:|---:|"] + paired
    text = ("# How much can learning remove? (python -m bench.ceiling)\n\nLinear corrections of each start fitted "
            "on the truth: in-sample / leave-one-date-out RMSE (gain over the start).\n\n" + "\n".join(table)
            + "\n\nMore pairs: the method trained (defaults) with every other predicted date as an extra pair, "
            "scored on the other dates; both halves.\n\n" + "\n".join(table_pairs) + "\n")
    print(text)
    if args.output:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, args.output + ".json"), "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=1)
        with open(os.path.join(RESULTS, args.output + ".md"), "w", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
