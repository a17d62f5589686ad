"""``make bench-real``: every method and stf:fuse_auto on the REAL series of ``../shared/realdata``, leave one date
out, beside the control and the realistic simulator (issue "fuse_auto on real series", items 2 and 4).

Real series: each held-out pair date is predicted from the other pairs and every coarse image (its fine image is
the truth and reaches nothing else). Simulated series: every date without a fine image is predicted and compared
with its truth. Per predicted date, one run of fuse_auto with its DEFAULT settings (members kept) gives every
member's prediction (each member run alone on the same series: the single methods of the product) and the
candidate rules that turn the folds into the prediction, all scored on the same date:

* ``trimmed``: the trimmed mean of the pool (fuse_auto's CHOICE=auto, the default before this bench);
* ``best_cv``: the member of the lowest held-out RMSE (CHOICE=best);
* ``blend``: the non-negative per-band blend fitted on the folds (CHOICE=blend);
* ``mean``: the plain mean of the members;
* ``select``: whichever of trimmed / blend / best_cv scored lowest on the folds (out of sample).

Also the error estimate: mean estimate / mean true error per date and the per-pixel Spearman rank correlation.
Written to ``bench/results/real.md`` and ``real.json``.

    python -m bench.real                       # every real series (a subset of the 18-pair series' dates)
    python -m bench.real --series boreas_estarfm_2001 --simulator none
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import tempfile
import time

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
REALDATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "realdata")
# held-out dates of the 18-pair series: four interior dates spread over the season (the whole series would take
# hours on two cores); every pair date of the 3-pair series
HELD = {"saltonsea_hls_viirs_2020": ("2020-10-17", "2020-11-10", "2020-12-01", "2020-12-21")}
RULES = ("trimmed", "best_cv", "blend", "mean", "select")
SIMULATED = {"control": ("control", 101, False), "realistic": ("realistic", 101, False),
             "realistic-cia": ("realistic", 101, True)}


def _rmse(pred: np.ndarray, ok: np.ndarray, truth: np.ndarray, tok: np.ndarray) -> float:
    """Mean over bands of the per-band RMSE on the pixels valid in both."""
    both = ok & tok
    return float(np.mean(np.sqrt(np.mean((pred[:, both] - truth[:, both]) ** 2, axis=1))))


def _on_fine_grid(fine: list[str], coarse: list[str], folder: str) -> list[str]:
    """The coarse images on the fine grid: as given where they are, else resampled (bicubic, recording the native
    pixel size, as stf:resample_coarse)."""
    from stf_fusion.core.raster import OutputTransaction
    from stf_fusion.core.series import build_series, resample_series

    series = build_series(fine, coarse)
    if series.coarse_on_fine_grid:
        return coarse
    with OutputTransaction() as tx:
        resample_series(series, os.path.join(folder, "coarse_fine"), "bicubic", tx)
    return sorted(glob.glob(os.path.join(folder, "coarse_fine", "*.tif")))


def score_dates(series, dates: list[dt.date], truths: list[str], folder: str) -> list[dict]:
    """One fuse_auto run (defaults, members kept) and naive on ``dates``; per date every member's, rule's and the
    error estimate's scores (the folds, so the rules' weights, are the series', whatever the date)."""
    from scipy.stats import spearmanr

    from stf_fusion.core.auto import fuse_auto, trimmed_mean
    from stf_fusion.core.crossval import folds
    from stf_fusion.core.fusion import fuse_member
    from stf_fusion.core.raster import read_block

    start = time.perf_counter()
    result = fuse_auto(series, dates, os.path.join(folder, "auto"), 1e-4, device="cpu", keep_members=True)
    seconds = time.perf_counter() - start
    naive = fuse_member("naive", series, dates, os.path.join(folder, "naive"), 1e-4, "cpu")
    rows = []
    for k, (date, truth_path) in enumerate(zip(dates, truths)):
        truth, tok = read_block(truth_path, scale=1e-4)
        preds, oks = {}, {}
        for m, files in result.members.items():
            preds[m], oks[m] = read_block(files[k], scale=1e-4)
        members = list(preds)
        row = {"date": date.isoformat(), "seconds": round(seconds / len(dates), 1), "used": result.used,
               "notes": result.notes, "cv_rmse": result.cv_rmse,
               "folds": len(folds(series)[0]) if len(series.fine) > 1 else 0,
               "fold_scores": {"trimmed": result.pool_rmse, "blend": result.blend_rmse, "best_cv": result.best_rmse}}
        methods = {m: _rmse(preds[m], oks[m], truth, tok) for m in members}
        p, ok = read_block(naive[k], scale=1e-4)
        methods["naive"] = _rmse(p, ok, truth, tok)
        auto, aok = read_block(result.files[k], scale=1e-4)
        methods["auto"] = _rmse(auto, aok, truth, tok)
        row["methods"] = methods
        stack = np.stack([preds[m] for m in members])
        all_ok = np.logical_and.reduce([oks[m] for m in members])
        rules = {"trimmed": trimmed_mean(stack), "mean": stack.mean(axis=0)}
        if result.best:
            rules["best_cv"] = preds[result.best]
        if result.fitted:
            w = np.array([result.fitted.get(m, [0.0] * stack.shape[1]) for m in members])  # [M, B]
            rules["blend"] = np.einsum("mb,mbhw->bhw", w, stack)
        scores = {name: _rmse(value, all_ok, truth, tok) for name, value in rules.items()}
        scored = {k2: v for k2, v in row["fold_scores"].items() if k2 in scores and np.isfinite(v)}
        if scored:
            scores["select"] = scores[min(scored, key=scored.get)]
        row["rules"] = scores
        if result.errors:
            estimate, eok = read_block(result.errors[k], scale=1.0)
            error = np.sqrt(np.mean((auto - truth) ** 2, axis=0))
            good = eok & aok & tok & np.isfinite(estimate[0])
            e, t = estimate[0][good], error[good]
            row["error_ratio"] = float(e.mean() / t.mean())
            pick = np.random.default_rng(0).choice(len(e), min(len(e), 50_000), replace=False)
            row["error_spearman"] = float(spearmanr(e[pick], t[pick])[0])
        rows.append(row)
    return rows


def real_series(name: str, folder: str) -> list[dict]:
    from stf_fusion.core.series import build_series

    root = os.path.join(REALDATA, name)
    fine = sorted(glob.glob(os.path.join(root, "fine", "*.tif")))
    coarse = _on_fine_grid(fine, sorted(glob.glob(os.path.join(root, "coarse", "*.tif"))), folder)
    by_date = {os.path.basename(p)[5:15]: p for p in fine}
    held = HELD.get(name, tuple(by_date))
    rows = []
    for d in held:
        kept = [p for k, p in by_date.items() if k != d]
        series = build_series(kept, coarse)
        row = score_dates(series, [dt.date.fromisoformat(d)], [by_date[d]], os.path.join(folder, d))[0]
        print(name, d, _line(row), flush=True)
        rows.append(row)
    return rows


def simulated_series(realism: str, seed: int, size: int, folder: str, cia: bool = False) -> list[dict]:
    """Every date without a fine image of a simulated series (the sample-like one: 3 pairs, one fold; CIA-like:
    5 pairs, three folds), from one fuse_auto run."""
    from bench.learning import make_series

    series, truth = make_series(folder, realism, size, seed, cia=cia)
    dates = series.predict_dates
    rows = score_dates(series, dates, [truth[d.isoformat()] for d in dates], folder)
    for row in rows:
        print(realism, seed, row["date"], _line(row), flush=True)
    return rows


def _line(row: dict) -> str:
    m = row["methods"]
    best = min((k for k in m if k not in ("auto", "naive")), key=m.get)
    return (f"auto {m['auto']:.5f} best {best} {m[best]:.5f} ({100 * (m['auto'] / m[best] - 1):+.1f} %) rules "
            + " ".join(f"{k} {v:.5f}" for k, v in row["rules"].items())
            + (f" error ratio {row['error_ratio']:.2f} rho {row['error_spearman']:.2f}" if "error_ratio" in row else ""))


def summary(rows: list[dict]) -> dict:
    """Means over the predicted dates: every method, every rule, auto against the best single method."""
    methods = sorted({k for r in rows for k in r["methods"]})
    mean = {k: float(np.mean([r["methods"][k] for r in rows if k in r["methods"]])) for k in methods}
    singles = {k: v for k, v in mean.items() if k not in ("auto",)}
    best = min((k for k in singles if k != "naive"), key=singles.get)
    rules = {k: float(np.mean([r["rules"][k] for r in rows if k in r["rules"]])) for k in RULES
             if any(k in r["rules"] for r in rows)}
    out = {"methods": mean, "rules": rules, "best_single": best,
           "auto_vs_best_pct": 100 * (mean["auto"] / mean[best] - 1),
           "rules_vs_best_pct": {k: 100 * (v / mean[best] - 1) for k, v in rules.items()}}
    ratios = [r["error_ratio"] for r in rows if "error_ratio" in r]
    if ratios:
        out["error_ratio_mean"] = float(np.mean(ratios))
        out["error_spearman_mean"] = float(np.mean([r["error_spearman"] for r in rows if "error_spearman" in r]))
    return out


def write(results: dict, name: str) -> None:
    with open(os.path.join(RESULTS, f"{name}.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1, default=float)
    lines = ["# fuse_auto and every method on real series (leave one date out) and on the simulator", "",
             f"`make bench-real`, {results['when']}, 2 CPU cores, every method with its defaults. RMSE: mean over "
             "the predicted dates of the mean per-band RMSE (reflectance). auto: stf:fuse_auto as it stands; "
             "rules: the candidate ways of turning the folds into the prediction (bench/real.py), scored on the "
             "same dates. 'Against the best single method': RMSE / its RMSE - 1 (negative: better than it). "
             "Error estimate: mean of the estimate / mean of the true per-pixel error of auto's prediction.", ""]
    for series, block in results["series"].items():
        s = block["summary"]
        lines += [f"## {series}", "", f"Predicted dates: {', '.join(r['date'] for r in block['rows'])}.", "",
                  "| method | RMSE |", "|---|---:|"]
        lines += [f"| {k} | {v:.5f} |" for k, v in sorted(s["methods"].items(), key=lambda kv: kv[1])]
        lines += ["", f"Best single method: **{s['best_single']}**; auto {s['auto_vs_best_pct']:+.1f} % against it.",
                  "", "| rule | RMSE | against the best single method |", "|---|---:|---:|"]
        lines += [f"| {k} | {v:.5f} | {s['rules_vs_best_pct'][k]:+.1f} % |" for k, v in s["rules"].items()]
        if "error_ratio_mean" in s:
            lines += ["", f"Error estimate: mean estimate / mean true error {s['error_ratio_mean']:.2f} (per date: "
                      + ", ".join(f"{r['error_ratio']:.2f}" for r in block["rows"] if "error_ratio" in r)
                      + f"); per-pixel Spearman rank correlation {s['error_spearman_mean']:.2f}."]
        lines += ["", "Per date (RMSE): " + "; ".join(
            f"{r['date']}: auto {r['methods']['auto']:.5f}, " + ", ".join(
                f"{k} {v:.5f}" for k, v in sorted(r['methods'].items(), key=lambda kv: kv[1]) if k != "auto")
            + f" (used: {r['used']}; {r['seconds']:.0f} s)" for r in block["rows"]), ""]
    with open(os.path.join(RESULTS, f"{name}.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", nargs="*", default=None, help="real series (folder names); default: all")
    parser.add_argument("--simulator", nargs="*", default=list(SIMULATED),
                        help="control, realistic, realistic-cia (5 pairs) or none")
    parser.add_argument("--size", type=int, default=128, help="simulated series size (pixels a side)")
    parser.add_argument("--output", default="real")
    args = parser.parse_args(argv)
    names = args.series if args.series is not None else sorted(
        d for d in os.listdir(REALDATA) if os.path.isdir(os.path.join(REALDATA, d)))
    results = {"when": time.strftime("%Y-%m-%d"), "series": {}}
    with tempfile.TemporaryDirectory(prefix="stf_bench_real_") as tmp:
        for name in names:
            rows = real_series(name, os.path.join(tmp, name))
            results["series"][name] = {"rows": rows, "summary": summary(rows)}
            write(results, args.output)
        for key in [s for s in args.simulator if s in SIMULATED]:
            realism, seed, cia = SIMULATED[key]
            rows = simulated_series(realism, seed, args.size, os.path.join(tmp, key), cia)
            results["series"][f"simulator {key} seed {seed} ({args.size} px)"] = {"rows": rows,
                                                                               "summary": summary(rows)}
            write(results, args.output)


if __name__ == "__main__":
    main()
