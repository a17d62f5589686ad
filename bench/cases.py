"""Benchmark cases. Each case has a ``prepare`` step (untimed, in its own process) and a ``run`` step (timed, in a
fresh process whose peak resident memory is recorded). Method issues register their cases here with @case."""
from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass
from typing import Callable

import numpy as np

CIA_ROWS, CIA_COLS, CIA_BANDS = 2040, 1720, 6  # the CIA scene of the STF literature
# the device of every timed step: "cpu" unless STF_BENCH_DEVICE says otherwise ("cuda" on a GPU machine; bench/run.py
# then writes <case>.<device>.json beside the CPU figures). Untimed prepare steps train their tiny models on the CPU,
# so both devices time the same models.
DEVICE = os.environ.get("STF_BENCH_DEVICE", "cpu")


@dataclass
class Case:
    name: str
    description: str
    prepare: Callable[[str], None]
    run: Callable[[str], dict]


CASES: dict[str, Case] = {}


def case(name: str, description: str, prepare: Callable[[str], None]):
    """Register ``run(workdir) -> dict`` (extra figures, e.g. pixels) as a benchmark case."""
    def register(run: Callable[[str], dict]) -> Callable[[str], dict]:
        CASES[name] = Case(name, description, prepare, run)
        return run
    return register


def _write_scene(path: str, rows: int, cols: int, bands: int = CIA_BANDS) -> None:
    """A random int16 reflectance scene written in strips (the prepare step itself stays small in memory)."""
    from stf_fusion.core.raster import RasterWriter, grid_info
    from stf_fusion.core.synthetic import _srs_wkt
    from stf_fusion.core.tiles import Window

    if os.path.exists(path):
        return
    like = grid_info(path, cols, rows, bands, (600000.0, 30.0, 0.0, 5800020.0, 0.0, -30.0), _srs_wkt(32633), "int16")
    rng = np.random.default_rng(0)
    with RasterWriter(path, like, scale=1e-4, nodata=-9999) as writer:
        for y in range(0, rows, 256):
            h = min(256, rows - y)
            writer.write(rng.uniform(0, 0.5, (bands, h, cols)).astype(np.float32), Window(0, y, cols, h))


def _tiled_filter(workdir: str, rows: int, cols: int) -> dict:
    """Read by tiles (halo 15), 31 x 31 moving mean (STARFM's default window), write by tiles."""
    from scipy import ndimage

    from stf_fusion.core.raster import OutputTransaction, RasterWriter, raster_info, read_block
    from stf_fusion.core.tiles import plan_tiles, run_tiled, tile_size_for_budget

    src = os.path.join(workdir, f"scene_{rows}x{cols}.tif")
    info = raster_info(src)
    halo = 15
    size = tile_size_for_budget(CIA_BANDS * 4 * 4, 64 * 2**20, halo)
    tiles = plan_tiles(cols, rows, size, halo)

    def op(tile):
        block, _ = read_block(src, tile.outer, scale=1e-4, info=info)
        return ndimage.uniform_filter(block, size=(1, 31, 31), mode="nearest")

    with OutputTransaction() as tx:
        with RasterWriter(tx.add(os.path.join(workdir, "filtered.tif")), info, scale=1e-4) as writer:
            run_tiled(op, tiles, lambda t, b: writer.write(b, t.inner))
    os.remove(os.path.join(workdir, "filtered.tif"))
    return {"pixels": rows * cols, "tiles": len(tiles), "tile_size": size}


for _factor, _label in ((1, "cia"), (2, "cia_x4")):
    _r, _c = CIA_ROWS * _factor, CIA_COLS * _factor
    case(
        f"tiled_filter_{_label}",
        f"Tiled GeoTIFF read -> 31x31 moving mean -> tiled write, {_r} x {_c} x 6, 64 MiB tile budget "
        "(memory must not grow with the scene)",
        lambda w, r=_r, c=_c: _write_scene(os.path.join(w, f"scene_{r}x{c}.tif"), r, c),
    )(lambda w, r=_r, c=_c: _tiled_filter(w, r, c))


@case("sample_series_cia", "Synthetic series generator, CIA size (2040 x 1720, factor 20), 4 dates, 2 pairs",
      lambda w: None)
def _sample_series(workdir: str) -> dict:
    from stf_fusion.core.synthetic import SampleSeriesConfig, make_sample_series

    config = SampleSeriesConfig(size=CIA_ROWS, width=CIA_COLS, factor=20, n_dates=4, pair_indices=(0, 3),
                                flood_indices=(2,))
    make_sample_series(os.path.join(workdir, "series"), config)
    return {"pixels": CIA_ROWS * CIA_COLS * 4}


def _make_cia_like(folder: str, pair_indices: tuple[int, ...], seed: int = 42, n_dates: int = 17,
                   flood_indices: tuple[int, ...] = (11, 12), interval_days: int = 9,
                   start: str = "2021-04-01") -> None:
    """A CIA-like synthetic series (2040 x 1720 x 6, factor 20) in ``folder``, its coarse images resampled onto the
    fine grid into ``coarse_fine``; redone when an earlier run was cut."""
    from stf_fusion.core.raster import OutputTransaction
    from stf_fusion.core.series import build_series, resample_series
    from stf_fusion.core.synthetic import SampleSeriesConfig, make_sample_series

    if len(glob.glob(os.path.join(folder, "coarse_fine", "*.tif"))) == n_dates:
        return
    shutil.rmtree(folder, ignore_errors=True)  # an interrupted earlier preparation
    config = SampleSeriesConfig(size=CIA_ROWS, width=CIA_COLS, factor=20, n_dates=n_dates,
                                pair_indices=pair_indices, flood_indices=flood_indices, interval_days=interval_days,
                                start=start, seed=seed)
    make_sample_series(folder, config)
    fine = sorted(glob.glob(os.path.join(folder, "fine", "*.tif")))
    series = build_series(fine, sorted(glob.glob(os.path.join(folder, "coarse", "*.tif"))))
    with OutputTransaction() as tx:
        resample_series(series, os.path.join(folder, "coarse_fine"), "bicubic", tx)


def _load_cia_like(folder: str):
    from stf_fusion.core.series import build_series

    return build_series(sorted(glob.glob(os.path.join(folder, "fine", "*.tif"))),
                        sorted(glob.glob(os.path.join(folder, "coarse_fine", "*.tif"))))


def _prepare_cia_series(workdir: str) -> None:
    """A CIA-size synthetic series (2040 x 1720 x 6): pairs on dates 0 and 2, the prediction date 1 between them,
    coarse images (factor 20) resampled onto the fine grid (bicubic)."""
    _make_cia_like(os.path.join(workdir, "cia_series"), (0, 2), n_dates=3, flood_indices=(), interval_days=32,
                   start="2021-05-01")


def _cia_series(workdir: str):
    return _load_cia_like(os.path.join(workdir, "cia_series"))


def _classic(workdir: str, method: str) -> dict:
    from stf_fusion.core.classic.estarfm import fuse_estarfm
    from stf_fusion.core.classic.fitfc import FitfcParams, fuse_fitfc
    from stf_fusion.core.classic.fsdaf import FsdafParams, fuse_fsdaf
    from stf_fusion.core.classic.starfm import fuse_starfm

    series = _cia_series(workdir)
    out = os.path.join(workdir, f"out_{method}")
    if method == "fsdaf":
        files = fuse_fsdaf(series, series.predict_dates, out, params=FsdafParams(factor=20), device=DEVICE)
    elif method == "fitfc":
        files = fuse_fitfc(series, series.predict_dates, out, params=FitfcParams(factor=20), device=DEVICE)
    else:
        files = {"starfm": fuse_starfm, "estarfm": fuse_estarfm}[method](series, series.predict_dates, out,
                                                                         device=DEVICE)
    for f in files:
        os.remove(f)
    return {"pixels": CIA_ROWS * CIA_COLS}


def _prepare_cia_series8(workdir: str) -> None:
    """Issue 28: a CIA-size series with 8 dates between its two pairs (the marginal cost of a date: this case's
    time against the one-date case's)."""
    _make_cia_like(os.path.join(workdir, "cia_series8"), (0, 9), n_dates=10, flood_indices=(), interval_days=8,
                   start="2021-05-01")


def _classic_series8(workdir: str, method: str) -> dict:
    from stf_fusion.core.fusion import fuse_method

    series = _load_cia_like(os.path.join(workdir, "cia_series8"))
    files = fuse_method(method, series, series.predict_dates, os.path.join(workdir, f"out8_{method}"), 1e-4,
                        device=DEVICE, rules="strict")
    for f in files:
        os.remove(f)
    return {"pixels": CIA_ROWS * CIA_COLS * len(files), "dates": len(files),
            "note": f"marginal cost of a date = (this - {method}_cia_cpu) / 7"}


case("estarfm_cia_series8", "ESTARFM on the CPU, CIA size, 8 dates between the same two pairs (one pass per tile "
     "for the dates sharing their pairs)", _prepare_cia_series8)(lambda w: _classic_series8(w, "estarfm"))


for _method, _what in (("starfm", "two pairs, window 31"), ("estarfm", "two pairs, window 51"),
                       ("fsdaf", "one pair, 5 classes, window 41, 20 similar pixels"),
                       ("fitfc", "one pair, regression radius 5 coarse pixels, window 41, 20 similar pixels")):
    case(f"{_method}_cia_cpu", f"{_method.upper()} on the CPU, CIA size 2040 x 1720 x 6, one date, {_what}",
         _prepare_cia_series)(lambda w, m=_method: _classic(w, m))


def _marginal(workdir: str, method: str) -> dict:
    """Issue 28: the per-pair set-up cost and the marginal cost of one more date, for every method: the method
    predicts the first date of the 8-date CIA-size series alone, then its first three dates in one run;
    marginal = (t3 - t1) / 2, set-up = t1 - marginal. Learned methods use the tiny models of ``_prepare_cia_models``
    (speed, not accuracy)."""
    import time

    from stf_fusion.core.classic.fitfc import FitfcParams
    from stf_fusion.core.classic.fsdaf import FsdafParams
    from stf_fusion.core.deep.api import predict_with_model
    from stf_fusion.core.fusion import fuse_method

    series = _load_cia_like(os.path.join(workdir, "cia_series8"))
    params = {"fsdaf": FsdafParams(factor=20), "fitfc": FitfcParams(factor=20)}.get(method)
    seconds = {}
    for count in (1, 3):
        out = os.path.join(workdir, f"marginal_{method}_{count}")
        dates = series.predict_dates[:count]
        start = time.perf_counter()
        if os.path.exists(os.path.join(workdir, f"{method}.stfmodel")):
            files = predict_with_model(os.path.join(workdir, f"{method}.stfmodel"), series, dates, out, 1e-4, DEVICE)
        else:
            files = fuse_method(method, series, dates, out, 1e-4, device=DEVICE, params=params, rules="strict")
        seconds[count] = time.perf_counter() - start
        for f in files:
            os.remove(f)
    marginal = (seconds[3] - seconds[1]) / 2
    return {"pixels": CIA_ROWS * CIA_COLS * 4, "one_date_s": seconds[1], "three_dates_s": seconds[3],
            "marginal_s_per_date": marginal, "setup_s": seconds[1] - marginal,
            "46_dates_min_estimate": (seconds[1] + 45 * marginal) / 60}


def _prepare_marginal(workdir: str) -> None:
    _prepare_cia_series8(workdir)
    _prepare_cia_models(workdir)


def _prepare_marginal_stf3dcnn(workdir: str) -> None:
    _prepare_marginal(workdir)
    _prepare_cia17(workdir)  # its tiny STF3DCNN (trained on the 17-date series; speed only)


for _method in ("starfm", "estarfm", "fsdaf", "fitfc", "stfdcnn", "stfsr", "dcnn", "dcstfn", "stf3dcnn"):
    case(f"{_method}_cia_marginal", f"{_method.upper()}, CIA size: one date, then three dates between the same two "
         "pairs: the set-up and the marginal cost of a date (issue 28)",
         _prepare_marginal_stf3dcnn if _method == "stf3dcnn" else _prepare_marginal)(
        lambda w, m=_method: _marginal(w, m))


def _prepare_cia_series46(workdir: str) -> None:
    """Issue 28's target series: 46 dates (an 8-day year) between two pairs, CIA size."""
    _make_cia_like(os.path.join(workdir, "cia_series46"), (0, 47), n_dates=48, flood_indices=(), interval_days=8,
                   start="2021-01-01")


def _series46(workdir: str, method: str) -> dict:
    from stf_fusion.core.classic.fitfc import FitfcParams
    from stf_fusion.core.classic.fsdaf import FsdafParams
    from stf_fusion.core.fusion import fuse_method

    series = _load_cia_like(os.path.join(workdir, "cia_series46"))
    params = {"fsdaf": FsdafParams(factor=20), "fitfc": FitfcParams(factor=20)}.get(method)
    files = fuse_method(method, series, series.predict_dates, os.path.join(workdir, f"out46_{method}"), 1e-4,
                        device=DEVICE, params=params, rules="strict")
    for f in files:
        os.remove(f)
    return {"pixels": CIA_ROWS * CIA_COLS * len(files), "dates": len(files)}


for _method, _target in (("fitfc", 4), ("estarfm", 4), ("starfm", 2), ("fsdaf", 6)):
    case(f"{_method}_cia_series46", f"{_method.upper()}, CIA size, 46 dates between two pairs (issue 28's target: "
         f"{_target} min)", _prepare_cia_series46)(lambda w, m=_method: _series46(w, m))


def _make_networks_run(networks: dict) -> None:
    """Speed, not accuracy: a network whose last layer is still zero (it kept its untrained start) is the identity,
    which the learned methods' predictions skip, so the case would time the fusion model alone; a small
    constant last layer makes every network run."""
    import torch

    for state in networks.values():
        last = [key for key in state if key.endswith("weight")][-1]
        if not state[last].any():
            state[last] = torch.full_like(state[last], 1e-4)


def _prepare_cia_models(workdir: str) -> None:
    """The CIA-size series plus a tiny STFDCNN, DCNN, DCSTFN and STFSR model (the timed steps measure speed, not
    accuracy; every network runs, :func:`_make_networks_run`)."""
    from stf_fusion.core.deep.api import write_model
    from stf_fusion.core.deep.dcnn import DcnnParams, train_dcnn
    from stf_fusion.core.deep.dcstfn import DcstfnParams, train_dcstfn
    from stf_fusion.core.deep.stfdcnn import StfdcnnParams, train_stfdcnn
    from stf_fusion.core.deep.stfsr import StfsrParams, train_stfsr
    from stf_fusion.core.raster import OutputTransaction

    _prepare_cia_series(workdir)
    series = _cia_series(workdir)
    for name, trainer, params in (("stfdcnn", train_stfdcnn, StfdcnnParams(epochs=1, stride=200)),
                                  ("dcnn", train_dcnn, DcnnParams(epochs=1, max_patches=2000)),
                                  ("dcstfn", train_dcstfn, DcstfnParams(epochs=0, factor=4)),
                                  ("stfsr", train_stfsr, StfsrParams(max_patches=2000))):
        path = os.path.join(workdir, f"{name}.stfmodel")
        if not os.path.exists(path):
            networks, meta = trainer(series, None, 1e-4, params, "cpu")
            if name in ("stfdcnn", "dcstfn", "dcnn"):
                _make_networks_run(networks)
            with OutputTransaction() as tx:
                write_model(path, name, networks, meta, tx)


def _predict_cia(workdir: str, name: str) -> dict:
    from stf_fusion.core.deep.api import predict_with_model

    series = _cia_series(workdir)
    files = predict_with_model(os.path.join(workdir, f"{name}.stfmodel"), series, series.predict_dates,
                               os.path.join(workdir, f"out_{name}"), 1e-4, DEVICE)
    for f in files:
        os.remove(f)
    return {"pixels": CIA_ROWS * CIA_COLS}


def _train_throughput(workdir: str, name: str) -> dict:
    from stf_fusion.core.deep.dcnn import DcnnParams, train_dcnn
    from stf_fusion.core.deep.stfdcnn import StfdcnnParams, train_stfdcnn

    series = _cia_series(workdir)
    if name == "stfdcnn":
        _, meta = train_stfdcnn(series, None, 1e-4, StfdcnnParams(epochs=1, stride=40), DEVICE)
        sr = meta["history"]["sr"]
        return {"sr_sub_images_per_s": sr["samples_per_second"],
                "nlm_sub_images_per_s": meta["history"]["nlm_0"]["samples_per_second"]}
    _, meta = train_dcnn(series, None, 1e-4, DcnnParams(epochs=1, max_patches=200_000), DEVICE)
    return {"patches_per_s": meta["history"]["dcnn"]["samples_per_second"]}


for _name, _what in (("stfdcnn", "NLM + SR CNNs, two pairs"), ("dcnn", "3x3 patch DCNN, nearest pair"),
                     ("dcstfn", "channels 64 / 96 / 128, coarse factor 4 (the CIA series' factor 20 is no power of "
                      "two), nearest pair"),
                     ("stfsr", "256-atom dictionaries at the LSR level, two pairs")):
    case(f"{_name}_predict_cia", f"{_name.upper()} prediction of one CIA-size date (2040 x 1720 x 6), {_what}",
         _prepare_cia_models)(lambda w, n=_name: _predict_cia(w, n))
case("stfdcnn_train", "STFDCNN training throughput, 1 epoch, CIA-size pairs (33 x 33 sub-images, stride 40)",
     _prepare_cia_series)(lambda w: _train_throughput(w, "stfdcnn"))
case("dcnn_train", "DCNN training throughput, 1 epoch of 200 000 3x3 patches, batch 64",
     _prepare_cia_series)(lambda w: _train_throughput(w, "dcnn"))


def _prepare_cia17(workdir: str) -> None:
    """A CIA-like series of 17 dates (pairs on dates 0, 8, 16) and a tiny STF3DCNN model."""
    from stf_fusion.core.deep.api import write_model
    from stf_fusion.core.deep.stf3dcnn import Stf3dcnnParams, train_stf3dcnn
    from stf_fusion.core.raster import OutputTransaction

    _make_cia_like(os.path.join(workdir, "cia17"), (0, 8, 16))
    path = os.path.join(workdir, "stf3dcnn.stfmodel")
    if not os.path.exists(path):
        networks, meta = train_stf3dcnn(_cia17(workdir), 1e-4, Stf3dcnnParams(epochs=1, windows=6), "cpu")
        _make_networks_run(networks)  # a kept start would be skipped (speed, not accuracy)
        with OutputTransaction() as tx:
            write_model(path, "stf3dcnn", networks, meta, tx)


def _cia17(workdir: str):
    return _load_cia_like(os.path.join(workdir, "cia17"))


@case("stf3dcnn_predict_cia17", "STF3DCNN whole-series prediction, CIA-like 17 dates x 2040 x 1720 x 6 (14 dates "
      "predicted, time weighting by distance; the paper reports 552 s for CIA)", _prepare_cia17)
def _stf3dcnn_series(workdir: str) -> dict:
    from stf_fusion.core.deep.api import predict_with_model

    series = _cia17(workdir)
    files = predict_with_model(os.path.join(workdir, "stf3dcnn.stfmodel"), series, series.predict_dates,
                               os.path.join(workdir, "out_stf3dcnn"), 1e-4, DEVICE)
    for f in files:
        os.remove(f)
    return {"pixels": CIA_ROWS * CIA_COLS * len(files), "dates_predicted": len(files)}


def _prepare_cia17_pairs(workdir: str) -> None:
    """A CIA-like series of 17 dates with a fine image on EVERY date: the largest training set a CIA user has
    (issue 11: training memory must stay under 4 GB)."""
    _make_cia_like(os.path.join(workdir, "cia17_pairs"), tuple(range(17)), seed=3)


def _train_cia17(workdir: str, method: str) -> dict:
    """Training with the DEFAULT settings; the figures of the held-out task come from the model's record."""
    from stf_fusion.core.deep.dcnn import DcnnParams, train_dcnn
    from stf_fusion.core.deep.stf3dcnn import Stf3dcnnParams, train_stf3dcnn
    from stf_fusion.core.deep.stfdcnn import StfdcnnParams, train_stfdcnn

    series = _load_cia_like(os.path.join(workdir, "cia17_pairs"))
    if method == "stfdcnn":
        _, meta = train_stfdcnn(series, None, 1e-4, StfdcnnParams(), DEVICE)
    elif method == "dcnn":
        _, meta = train_dcnn(series, None, 1e-4, DcnnParams(), DEVICE)
    else:
        _, meta = train_stf3dcnn(series, 1e-4, Stf3dcnnParams(), DEVICE)
    record = meta["validation"]
    epochs = {name: f"{h['best_epoch']}/{len(h['train'])}" for name, h in meta["history"].items()}
    return {"pairs": 17, "training_pairs": len(meta["training_pairs"]),
            "held_out_dates": list(record.get("targets", {})),
            "held_out_rmse": round(record["rmse"], 5), "untrained_rmse": round(record["untrained_rmse"], 5),
            "additive_rmse": round(record["additive_rmse"], 5), "naive_rmse": round(record["naive_rmse"], 5),
            "kept_epoch_of_run": epochs if len(epochs) < 3 else {k: epochs[k] for k in ("nlm_0", "sr")}}


for _name in ("stfdcnn", "dcnn", "stf3dcnn"):
    case(f"train_{_name}_cia17", f"{_name.upper()} training with the default settings on a CIA-like 17-date series "
         "(2040 x 1720 x 6, a fine image on every date, flood on two): time, peak memory, held-out RMSE vs "
         "untrained, additive and naive", _prepare_cia17_pairs)(lambda w, n=_name: _train_cia17(w, n))


def _prepare_scaled_series(workdir: str, scale: int) -> None:
    """A CIA-size series (scale 1) or one with ``scale`` times the rows and columns (3 dates, pairs 0 and 2)."""
    from stf_fusion.core.raster import OutputTransaction
    from stf_fusion.core.series import build_series, resample_series
    from stf_fusion.core.synthetic import SampleSeriesConfig, make_sample_series

    folder = os.path.join(workdir, f"series_x{scale * scale}")
    if len(glob.glob(os.path.join(folder, "coarse_fine", "*.tif"))) == 3:
        return
    shutil.rmtree(folder, ignore_errors=True)
    config = SampleSeriesConfig(size=CIA_ROWS * scale, width=CIA_COLS * scale, factor=20, n_dates=3,
                                pair_indices=(0, 2), flood_indices=(), interval_days=32, start="2021-05-01")
    make_sample_series(folder, config)
    fine = sorted(glob.glob(os.path.join(folder, "fine", "*.tif")))
    series = build_series(fine, sorted(glob.glob(os.path.join(folder, "coarse", "*.tif"))))
    with OutputTransaction() as tx:
        resample_series(series, os.path.join(folder, "coarse_fine"), "bicubic", tx)


def _starfm_small_window(workdir: str, scale: int) -> dict:
    from stf_fusion.core.classic.starfm import StarfmParams, fuse_starfm
    from stf_fusion.core.series import build_series

    folder = os.path.join(workdir, f"series_x{scale * scale}")
    series = build_series(sorted(glob.glob(os.path.join(folder, "fine", "*.tif"))),
                          sorted(glob.glob(os.path.join(folder, "coarse_fine", "*.tif"))))
    files = fuse_starfm(series, series.predict_dates, os.path.join(workdir, "out_memory"),
                        params=StarfmParams(window=7), device=DEVICE)
    for f in files:
        os.remove(f)
    return {"pixels": CIA_ROWS * CIA_COLS * scale * scale}


for _scale, _label in ((1, "cia"), (2, "cia_x4")):
    case(f"starfm_w7_{_label}", f"STARFM window 7 on {CIA_ROWS * _scale} x {CIA_COLS * _scale} x 6: peak memory must "
         "not grow with the scene (compare the two rows)",
         lambda w, s=_scale: _prepare_scaled_series(w, s))(lambda w, s=_scale: _starfm_small_window(w, s))


def _starfm_scheduler(workdir: str, scheduler: str) -> dict:
    """STARFM on the CIA-size series with SCHEDULER; the figures a scaling estimate needs (tiles, seconds per
    tile and worker)."""
    import re
    import time

    from stf_fusion.core.classic.starfm import fuse_starfm
    from stf_fusion.core.executor import parse_scheduler, scheduler_scope
    from stf_fusion.core.feedback import RecordingFeedback

    series, feedback = _cia_series(workdir), RecordingFeedback()
    start = time.perf_counter()
    with scheduler_scope(scheduler):
        files = fuse_starfm(series, series.predict_dates, os.path.join(workdir, "out_scheduler"), device=DEVICE,
                            feedback=feedback)
    seconds = time.perf_counter() - start
    for f in files:
        os.remove(f)
    tiles = next(int(m.group(1)) for m in (re.search(r"(\d+) tile\(s\)", line) for line in feedback.lines) if m)
    kind, workers = parse_scheduler(scheduler)
    workers = workers if kind == "local" else 1
    # from the tile plan (after the scene statistics) to the workers' being ready; in-process: 0
    planned = next(t for t, line in zip(feedback.times, feedback.lines) if "tile(s)" in line)
    ready = next((t for t, line in zip(feedback.times, feedback.lines) if line.startswith("Tiles computed on")),
                 planned)
    tiling = start + seconds - ready
    return {"pixels": CIA_ROWS * CIA_COLS, "tiles": tiles, "workers": workers, "cluster_start_s": ready - planned,
            "tiles_per_hour_per_worker": round(tiles / tiling * 3600 / workers)}


for _scheduler, _label in (("", "inprocess"), ("local:2", "local2")):
    case(f"starfm_cia_{_label}", "STARFM, CIA size, one date, two pairs: SCHEDULER "
         + (f"{_scheduler} (2 worker processes, 1 thread each; includes starting them)" if _scheduler else
            "empty (in this process, 2 threads)"), _prepare_cia_series)(
        lambda w, s=_scheduler: _starfm_scheduler(w, s))


def _prepare_sample_on_fine_grid(workdir: str) -> None:
    """The bundled sample with its coarse images resampled onto the fine grid (bicubic)."""
    from stf_fusion.core.raster import OutputTransaction
    from stf_fusion.core.series import resample_series

    target = os.path.join(workdir, "sample_coarse_fine")
    if os.path.isdir(target):
        return
    with OutputTransaction() as tx:
        resample_series(_bundled_sample(), target, "bicubic", tx)


def _bundled_sample(workdir: str | None = None):
    from stf_fusion.core.series import build_series

    sample = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "sample")
    fine = sorted(glob.glob(os.path.join(sample, "fine", "*.tif")))
    if workdir is None:
        return build_series(fine, sorted(glob.glob(os.path.join(sample, "coarse", "*.tif"))))
    return build_series(fine, sorted(glob.glob(os.path.join(workdir, "sample_coarse_fine", "*.tif"))))


def _train_defaults(workdir: str, name: str) -> dict:
    """Train with the DEFAULT settings (the user's budget) on the bundled sample; the held-out record."""
    from stf_fusion.core.deep.api import train_method
    from stf_fusion.core.deep.training import bf16_training
    from stf_fusion.core.device import resolve_device

    _, meta = train_method(name, _bundled_sample(workdir), 1e-4, None, DEVICE)
    record = meta.get("validation", {})
    return {"held_out_rmse": record.get("rmse"), "untrained_rmse": record.get("untrained_rmse"),
            "best_epoch": record.get("best_epoch"), "bf16": bf16_training(str(resolve_device(DEVICE)))}


for _name in ("stfdcnn", "stf3dcnn"):
    case(f"train_{_name}_sample", f"{_name.upper()} training with the default settings on the bundled sample "
         "(192 x 192 x 6, 10 dates, 3 pairs; bf16 autocast where the CPU has it, STF_TRAIN_PRECISION=fp32 "
         "turns it off)", _prepare_sample_on_fine_grid)(lambda w, n=_name: _train_defaults(w, n))
