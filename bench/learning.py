"""``make bench-learning``: does learning pay? Every method on the realistic simulator and on the control generator
(issue "Learning that pays", item 4).

For each series (a generator, a size, a seed): the coarse images are resampled onto the fine grid (bicubic), the
benchmarks (naive, additive), the classic methods and the learned methods predict every date without a fine
image with their DEFAULT settings; each learned method is also run untrained (EPOCHS=0, its start). Printed and
written to ``bench/results/learning.md`` / ``.json``: the mean over those dates of the mean per-band RMSE against
the truth, the learned methods' untrained start, their gain over it, and their training time.

    python -m bench.learning --output learning        # the README's table (sample size, both generators, 3 seeds)
    python -m bench.learning --size 192 --seeds 101 202 --methods stfdcnn dcnn
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time

import numpy as np

CLASSIC = ("naive", "additive", "starfm", "estarfm", "fsdaf", "fitfc")
LEARNED = ("stfdcnn", "stf3dcnn", "dcstfn", "dcnn")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def make_series(folder: str, realism: str, size: int, seed: int, cia: bool = False):
    """A sample-like series (10 dates, pairs 0, 4, 9) or a 17-date CIA-like one (pairs 1, 5, 9, 13, 17) on the
    fine grid; returns (SceneSeries, {date: truth path})."""
    from stf_fusion.core.raster import OutputTransaction
    from stf_fusion.core.series import build_series, resample_series
    from stf_fusion.core.synthetic import SampleSeriesConfig, make_sample_series

    if cia:
        config = SampleSeriesConfig(size=size, width=size * 432 // 512 // 16 * 16, factor=16, n_dates=17,
                                    pair_indices=(0, 4, 8, 12, 16), flood_indices=(10, 11), interval_days=9,
                                    seed=seed, realism=realism)
    else:
        config = SampleSeriesConfig(size=size, seed=seed, realism=realism)
    sample = make_sample_series(os.path.join(folder, "series"), config)
    series = build_series(sample.fine, sample.coarse)
    with OutputTransaction() as tx:
        resample_series(series, os.path.join(folder, "coarse_fine"), "bicubic", tx)
    series = build_series(sample.fine, sorted(glob.glob(os.path.join(folder, "coarse_fine", "*.tif"))))
    truth = {os.path.basename(p)[6:16]: p for p in sample.truth}
    return series, truth


def mean_rmse(files: list[str], truth: dict[str, str]) -> tuple[float, list[float]]:
    """Mean over the files (one per date) of the mean per-band RMSE against the truth (valid pixels)."""
    from stf_fusion.core.metrics import rmse
    from stf_fusion.core.raster import read_block

    values = []
    for path in files:
        date = os.path.basename(path).rsplit("_", 1)[1][:10]
        ref, ok = read_block(truth[date], scale=1e-4)
        pred, ok2 = read_block(path, scale=1e-4)
        values.append(float(np.mean(rmse(pred, ref, ok & ok2))))
    return float(np.mean(values)), values


def run_series(series, truth: dict, methods: list[str], folder: str) -> dict:
    """{method: {"rmse", "per_date", "seconds", and for learned methods "untrained", "train_seconds",
    "validation"}}."""
    from stf_fusion.core.deep.api import predict_trained, settings_class, train_method
    from stf_fusion.core.fusion import fuse_method

    dates = series.predict_dates
    out: dict = {}
    for method in methods:
        target = os.path.join(folder, method)
        start = time.perf_counter()
        if method in CLASSIC:
            files = fuse_method(method, series, dates, target, 1e-4, device="cpu")
            out[method] = {"seconds": time.perf_counter() - start}
        else:
            nets, meta = train_method(method, series, 1e-4, None, "cpu")
            trained = time.perf_counter() - start
            files = predict_trained(method, nets, meta, series, dates, target, 1e-4, "cpu")
            cls = settings_class(method)
            nets0, meta0 = train_method(method, series, 1e-4, cls(epochs=0), "cpu")
            untrained, _ = mean_rmse(predict_trained(method, nets0, meta0, series, dates, target + "_0", 1e-4,
                                                     "cpu"), truth)
            out[method] = {"train_seconds": trained, "untrained": untrained,
                           "validation": {k: meta.get("validation", {}).get(k)
                                          for k in ("protocol", "rmse", "untrained_rmse", "best_epoch")}}
        out[method]["rmse"], out[method]["per_date"] = mean_rmse(files, truth)
        line = f"  {method:9s} {out[method]['rmse']:.5f}"
        if "untrained" in out[method]:
            gain = 100 * (1 - out[method]["rmse"] / out[method]["untrained"])
            line += f"  untrained {out[method]['untrained']:.5f}  gain {gain:+.1f} %  ({trained:.0f} s)"
        print(line, flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realism", nargs="+", default=["realistic", "control"])
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--cia", action="store_true", help="the 17-date CIA-like series (use --size 512)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 202, 42],
                    help="101 and 202 were never used while developing; 42 is the bundled sample (control) and the "
                         "seed the realistic methods were developed on")
    ap.add_argument("--methods", nargs="+", default=list(CLASSIC + LEARNED))
    ap.add_argument("--output", default="", help="results file stem in bench/results (empty: print only)")
    args = ap.parse_args(argv)
    results = []
    for realism in args.realism:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                print(f"{realism} size {args.size}{' CIA-like' if args.cia else ''} seed {seed}", flush=True)
                series, truth = make_series(tmp, realism, args.size, seed, args.cia)
                results.append({"realism": realism, "size": args.size, "cia": args.cia, "seed": seed,
                                "methods": run_series(series, truth, args.methods, tmp)})
    if args.output:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, args.output + ".json"), "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
        with open(os.path.join(RESULTS, args.output + ".md"), "w", encoding="utf-8") as fh:
            fh.write(table(results))


def table(results: list[dict]) -> str:
    """Markdown: one row per method, one column per series (RMSE; learned: trained / untrained, gain)."""
    heads = [f"{r['realism']} {r['size']}{' CIA' if r['cia'] else ''} s{r['seed']}" for r in results]
    methods = list(dict.fromkeys(m for r in results for m in r["methods"]))
    lines = ["| method | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for m in methods:
        cells = []
        for r in results:
            v = r["methods"].get(m)
            if v is None:
                cells.append("")
            elif "untrained" in v:
                gain = 100 * (1 - v["rmse"] / v["untrained"])
                cells.append(f"{v['rmse']:.5f} / {v['untrained']:.5f} ({gain:+.1f} %, {v['train_seconds']:.0f} s)")
            else:
                cells.append(f"{v['rmse']:.5f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
