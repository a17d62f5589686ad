import csv
import datetime as dt
import json
import os

import numpy as np
import pytest
from helpers import make_raster

from stf_fusion.core.errors import GridMismatchError, InputError
from stf_fusion.core.evaluation import COLUMNS, evaluate_files, match_files, method_from_name, write_csv
from stf_fusion.core.naive import fuse_naive
from stf_fusion.core.raster import OutputTransaction, read_raw
from stf_fusion.core.report import write_html
from stf_fusion.core.series import build_series


@pytest.mark.parametrize("name, method", [
    ("starfm_2021-05-03.tif", "starfm"), ("/x/stfdcnn_v2_20210503.tif", "stfdcnn_v2"),
    ("2021-05-03.tif", "prediction"), ("naive-2021_05_03.tif", "naive"),
])
def test_method_from_name(name, method):
    assert method_from_name(name) == method


def test_matching_by_date_and_by_order():
    preds = ["a/starfm_2021-05-03.tif", "a/naive_2021-05-03.tif", "a/starfm_2021-05-19.tif"]
    refs = ["r/truth_2021-05-19.tif", "r/truth_2021-05-03.tif"]
    matches = match_files(preds, refs)
    assert [(m.method, m.reference) for m in matches] == [
        ("starfm", refs[1]), ("naive", refs[1]), ("starfm", refs[0])]
    with pytest.raises(InputError, match="No reference image for the prediction 'a/x_2021-06-01.tif'"):
        match_files(["a/x_2021-06-01.tif"], refs)
    by_order = match_files(["p1.tif", "p2.tif"], ["r1.tif", "r2.tif"])
    assert [m.reference for m in by_order] == ["r1.tif", "r2.tif"] and by_order[0].date is None
    with pytest.raises(InputError, match="Cannot match 2 predictions with 1 references by order"):
        match_files(["p1.tif", "p2.tif"], ["r1.tif"])


def _series(small, tmp_path):
    from stf_fusion.core.series import resample_series

    series = build_series(small.fine, small.coarse)
    with OutputTransaction() as tx:
        resample_series(series, str(tmp_path / "coarse"), "bilinear", tx)
    return build_series(small.fine, sorted(str(p) for p in (tmp_path / "coarse").iterdir()))


def test_naive_copies_the_nearest_pair(small_series, tmp_path):
    series = _series(small_series, tmp_path)
    d = series.pair_dates  # 2021-04-01 and 2021-06-20, 80 days apart
    assert series.nearest_pair(d[0] + dt.timedelta(days=39)).date == d[0]
    assert series.nearest_pair(d[0] + dt.timedelta(days=40)).date == d[0]  # tie: the earlier
    assert series.nearest_pair(d[0] + dt.timedelta(days=41)).date == d[1]
    files = fuse_naive(series, series.predict_dates, str(tmp_path / "pred"))
    assert [os.path.basename(f) for f in files] == [f"naive_{x.isoformat()}.tif" for x in series.predict_dates]
    for path, date in zip(files, series.predict_dates):
        np.testing.assert_array_equal(read_raw(path), read_raw(series.nearest_pair(date).path))


def test_evaluation_table_report_and_conventions(small_series, tmp_path):
    series = _series(small_series, tmp_path)
    naive = fuse_naive(series, series.predict_dates, str(tmp_path / "pred"))
    # a second "method": the truth plus a small bias, named like a method's output
    better = []
    for path in small_series.truth[1:5]:
        date = os.path.basename(path)[6:16]
        values = read_raw(path).astype(np.int32) + 20
        better.append(make_raster(tmp_path / f"biased_{date}.tif", values))
    evaluation = evaluate_files(naive + better, small_series.truth, baselines=naive, ratio=1 / 16)
    assert len(evaluation.rows) == 8 * 7
    csv_path, html_path = str(tmp_path / "out" / "m.csv"), str(tmp_path / "out" / "m.html")
    import matplotlib

    backend = matplotlib.get_backend()
    with OutputTransaction() as tx:
        write_csv(evaluation, csv_path, tx)
        write_html(evaluation, html_path, tx)
    rows = list(csv.DictReader(open(csv_path)))
    assert tuple(rows[0]) == COLUMNS
    biased = [r for r in rows if r["method"] == "biased" and r["band"] == "all"]
    assert len(biased) == 4 and all(float(r["ad"]) == pytest.approx(0.002, abs=1e-6) for r in biased)
    assert all(float(r["rmse"]) < 0.0025 for r in biased)
    naive_all = [r for r in rows if r["method"] == "naive" and r["band"] == "all"]
    assert all(float(r["maec"]) == 0 for r in naive_all)  # the baseline against itself
    assert all(r["sam"] == "" for r in rows if r["band"] != "all")
    conventions = json.load(open(str(tmp_path / "out" / "m.conventions.json")))
    assert "degrees" in conventions["sam"] and conventions["h/l"] == "0.0625 (given)"
    import matplotlib

    assert matplotlib.get_backend() == backend  # the report does not switch the global backend (QGIS desktop)
    page = open(html_path).read()
    assert page.count("data:image/png;base64,") == 1 and "Conventions" in page and "biased" in page
    assert page.count("data:image/jpeg;base64,") == 4  # one image strip per date, both methods in it


def test_scale_and_grid_mismatch_are_clear_errors(small_series, tmp_path):
    truth = small_series.truth[0]
    with pytest.raises(InputError, match=r"After SCALE \(x 1\), '.*truth_2021-04-01.tif' has values up to"):
        evaluate_files([truth], [truth], scale=1.0)
    as_float = make_raster(tmp_path / "float_2021-04-01.tif", read_raw(truth) * 1e-4, dtype=6)
    with pytest.raises(InputError, match="not stored in the same scale"):
        evaluate_files([as_float], [truth])
    shifted = make_raster(tmp_path / "shifted_2021-04-01.tif", read_raw(truth),
                          geotransform=(600030.0, 30.0, 0.0, 5800020.0, 0.0, -30.0))
    with pytest.raises(GridMismatchError, match="shifted_2021-04-01.tif' is not on the grid of 'truth_2021-04-01"):
        evaluate_files([shifted], [truth])


def test_evaluation_mask_excludes_pixels(small_series, tmp_path):
    truth = small_series.truth[2]  # 2021-05-03
    raw = read_raw(truth)
    noisy = raw + np.random.default_rng(0).integers(-50, 50, raw.shape)
    pred = make_raster(tmp_path / "p_2021-05-03.tif", noisy)
    mask = np.ones((64, 64), np.uint8)
    mask[:, :32] = 0
    mask_path = make_raster(tmp_path / "mask.tif", mask, dtype=1)
    masked = evaluate_files([pred], [truth], mask=mask_path, keep_details=False).rows[-1]
    assert masked["n_pixels"] == 64 * 32
    damaged = noisy.copy()
    damaged[:, :, :32] = 9999
    damaged_path = make_raster(tmp_path / "d_2021-05-03.tif", damaged)
    again = evaluate_files([damaged_path], [truth], mask=mask_path, keep_details=False).rows[-1]
    for name in ("rmse", "ssim", "q", "sam", "edge", "lbp"):
        assert again[name] == masked[name], name
    unmasked = evaluate_files([damaged_path], [truth], keep_details=False).rows[-1]
    assert unmasked["rmse"] > 10 * masked["rmse"]


def test_ergas_takes_h_over_l_from_the_fusion_outputs_and_is_not_computed_without_it(provider, tmp_path):
    """The sample's coarse images (480 m) resampled by stf:resample_coarse onto the 30 m grid: a fusion output
    records h/l = 30 / 480, and evaluate uses it (the hand-computed ERGAS); a prediction that does not say it gets
    no ERGAS instead of one 16 times too high."""
    import glob
    import math
    import shutil

    import processing

    from stf_fusion.core import metrics
    from stf_fusion.core.raster import read_block

    sample = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "sample")
    fine = sorted(glob.glob(os.path.join(sample, "fine", "*.tif")))
    coarse = processing.run("stf:resample_coarse", {
        "COARSE": sorted(glob.glob(os.path.join(sample, "coarse", "*.tif")))[:3], "REFERENCE": fine[0],
        "METHOD": "bicubic", "OUTPUT_FOLDER": str(tmp_path / "c")})["OUTPUT_FILES"]
    out = processing.run("stf:fuse_additive", {"FINE": fine[:1], "COARSE": coarse, "PREDICT_DATES": "2021-05-03",
                                               "OUTPUT_FOLDER": str(tmp_path / "p")})["OUTPUT_FILES"]
    truth = os.path.join(sample, "truth", "truth_2021-05-03.tif")
    bare = str(shutil.copy(truth, tmp_path / "other_2021-05-03.tif"))  # no recorded h/l
    result = processing.run("stf:evaluate", {"PREDICTIONS": out + [bare], "REFERENCES": [truth],
                                             "OUTPUT_CSV": str(tmp_path / "e.csv"),
                                             "OUTPUT_HTML": str(tmp_path / "e.html")})
    rows = {(r["method"], r["band"]): r for r in csv.DictReader(open(result["OUTPUT_CSV"]))}
    pred, ok1 = read_block(out[0], scale=1e-4)
    ref, ok2 = read_block(truth, scale=1e-4)
    expected = metrics.ergas(pred, ref, ok1 & ok2, ratio=30 / 480)
    assert float(rows[("additive", "all")]["ergas"]) == pytest.approx(expected, rel=1e-4)
    assert math.isnan(float(rows[("other", "all")]["ergas"] or "nan"))


def test_maec_marks_no_method_best(tmp_path):
    """MAEC is 0 for the baseline by definition: the report must not bold the naive prediction as the best."""
    from stf_fusion.core.evaluation import Evaluation
    from stf_fusion.core.report import write_html

    from stf_fusion.core.metrics import METRICS

    rows = [{**{k: float("nan") for k in METRICS}, "method": m, "band": "all", "date": "2021-05-03",
             "prediction": f"{m}.tif", "n_pixels": 100, "maec": v, "rmse": r}
            for m, v, r in (("naive", 0.0, 0.03), ("starfm", 0.4, 0.02))]
    with OutputTransaction() as tx:
        path = write_html(Evaluation(rows, {}), str(tmp_path / "r.html"), tx)
    page = open(tx.committed[0] if tx.committed else path).read()
    assert "<td class=best>0</td>" not in page and "<td class=best>0.02</td>" in page


def test_the_report_has_a_ranking_and_one_image_strip_per_date(provider, sample_on_fine_grid, tmp_path):
    import glob
    import re

    import processing

    series = sample_on_fine_grid
    args = {"FINE": [f.path for f in series.fine], "COARSE": [c.path for c in series.coarse],
            "PREDICT_DATES": "2021-05-03,2021-07-06", "OUTPUT_FOLDER": str(tmp_path / "p")}
    files = processing.run("stf:fuse_naive", args)["OUTPUT_FILES"] + \
        processing.run("stf:fuse_additive", args)["OUTPUT_FILES"]
    sample = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "sample")
    result = processing.run("stf:evaluate", {"PREDICTIONS": files,
                                             "REFERENCES": sorted(glob.glob(os.path.join(sample, "truth", "*.tif"))),
                                             "OUTPUT_CSV": str(tmp_path / "e.csv"),
                                             "OUTPUT_HTML": str(tmp_path / "e.html")})
    page = open(result["OUTPUT_HTML"]).read()
    ranking = re.search(r"<p class=ranking>Best: <b>(\w+)</b>, mean RMSE [\d.]+ \((-\d+) % vs naive\)", page)
    assert ranking and ranking.group(1) == "additive" and int(ranking.group(2)) < 0
    assert page.count("alt='images of 2021-") == 2  # one strip per date, every method in it
    assert "rmse (refl.)" in page and "sam (deg)" in page and "<th>dd</th>" not in page
    assert os.path.getsize(result["OUTPUT_HTML"]) < 2 * 2**20
    # the fusion outputs say their pair dates: the report's time plots mark them
    evaluation = evaluate_files(files, sorted(glob.glob(os.path.join(sample, "truth", "*.tif"))), keep_details=False)
    assert evaluation.pair_dates == [d.isoformat() for d in series.pair_dates]
