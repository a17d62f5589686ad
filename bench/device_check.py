"""The classic methods and the additive benchmark on two devices, value by value:
``python -m bench.device_check WORKDIR [--devices cpu,cuda]``.

On the bundled sample (its coarse images resampled onto the fine grid in WORKDIR), each method predicts every
non-pair date with its default settings and its own rules (``rules="strict"``) on each device; printed: the largest
difference in stored units, the share of values that differ by more than one unit, and each device's seconds (the
CPU's first run of a method includes compiling its kernels). Run on a GPU machine before ``STF_BENCH_DEVICE=cuda
make bench``; it needs no QGIS (GDAL's Python bindings, torch, numba). FSDAF's k-smallest selection may rank
near-equal keys differently (float rounding): its tests allow 0.1 % of the values to differ.
"""
from __future__ import annotations

import argparse
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
    for method in args.methods.split(","):
        outputs, seconds = [], []
        for n, device in enumerate((first, second)):
            start = time.perf_counter()
            files = fuse_method(method, series, series.predict_dates,
                                os.path.join(args.workdir, f"check_{method}_{n}"), 1e-4, device=device, rules="strict")
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
