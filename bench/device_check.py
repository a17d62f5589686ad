"""The classic methods and the additive benchmark on two devices, value by value:
``python -m bench.device_check WORKDIR [--devices cpu,cuda] [--models DIR]``.

On the bundled sample (its coarse images resampled onto the fine grid in WORKDIR), each method predicts every
non-pair date with its default settings and its own rules (``rules="strict"``) on each device; printed: the largest
difference in stored units, the share of values that differ by more than one unit, and each device's seconds (the
CPU's first run of a method includes compiling its kernels). Run on a GPU machine before ``STF_BENCH_DEVICE=cuda
make bench``; it needs no QGIS (GDAL's Python bindings, torch, numba). FSDAF's k-smallest selection may rank
near-equal keys differently (float rounding): its tests allow 0.1 % of the values to differ. With ``--models`` each
model file in DIR (e.g. the tiny STFDCNN, DCNN, DCSTFN, STFSR and STF3DCNN models a ``make bench`` workdir holds)
also predicts the sample's dates on both devices, compared the same way (the learned methods' CUDA paths).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "build", "plugins")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workdir")
    parser.add_argument("--devices", default="cpu,cuda", help="two devices, comma-separated")
    parser.add_argument("--methods", default="additive,starfm,estarfm,fsdaf,fitfc")
    parser.add_argument("--models", default="", help="a folder of .stfmodel files (e.g. the tiny models of a "
                        "`make bench` workdir): each also predicts the sample on both devices")
    args = parser.parse_args()

    import numpy as np
    from osgeo import gdal

    from bench.cases import _bundled_sample, _prepare_sample_on_fine_grid
    from stf_fusion.core.fusion import fuse_method
    from stf_fusion.core.raster import read_raw

    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
        versions = f"torch {torch.__version__} ({gpu})"
    except ImportError:
        versions = "no torch"
    print(f"numpy {np.__version__}, GDAL {gdal.__version__}, {versions}", flush=True)
    os.makedirs(args.workdir, exist_ok=True)
    _prepare_sample_on_fine_grid(args.workdir)
    series = _bundled_sample(args.workdir)
    first, second = args.devices.split(",")
    runs = [(method, lambda out, device, m=method: fuse_method(m, series, series.predict_dates, out, 1e-4,
                                                              device=device, rules="strict"))
            for method in args.methods.split(",") if method]
    if args.models:  # the learned methods' prediction paths (issue 28's GPU check)
        from stf_fusion.core.deep.api import predict_with_model

        for model in sorted(glob.glob(os.path.join(args.models, "*.stfmodel"))):
            runs.append((os.path.basename(model), lambda out, device, m=model: predict_with_model(
                m, series, series.predict_dates, out, 1e-4, device, rules="strict")))
    for method, run in runs:
        outputs, seconds = [], []
        for n, device in enumerate((first, second)):
            start = time.perf_counter()
            files = run(os.path.join(args.workdir, f"check_{method}_{n}"), device)
            seconds.append(time.perf_counter() - start)
            outputs.append(sorted(files))
        largest, share = 0, 0.0
        for a, b in zip(*outputs):
            difference = np.abs(read_raw(a).astype(np.int64) - read_raw(b).astype(np.int64))
            largest, share = max(largest, int(difference.max())), max(share, float((difference > 1).mean()))
        print(f"{method}: {len(outputs[0])} dates, largest |{first} - {second}| {largest} units, share > 1 unit "
              f"{share:.2e}; {first} {seconds[0]:.1f} s, {second} {seconds[1]:.1f} s", flush=True)


if __name__ == "__main__":
    main()
