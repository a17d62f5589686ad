"""stf:cross_validate: leave-one-pair-out ranking of the methods, with the spatial / temporal variance partition."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from stf_fusion.core.crossval import cross_validate, explanation, variance_partition
from stf_fusion.core.errors import InputError


def test_variance_partition_by_hand():
    # one band, two pixels, two dates: pixel 1 is 0 then 2, pixel 2 is 4 then 6
    images = [np.array([[[0.0, 4.0]]]), np.array([[[2.0, 6.0]]])]
    spatial, temporal = variance_partition(images, np.array([[True, True]]))
    assert spatial == pytest.approx(4.0)  # Var_p of the temporal means (1, 5)
    assert temporal == pytest.approx(1.0)  # mean_p of the variances over time (1, 1)
    assert spatial + temporal == pytest.approx(np.var([0.0, 2.0, 4.0, 6.0]))  # the law of total variance


def test_the_sample_ranked_through_processing(provider, sample_on_fine_grid, tmp_path):
    """Default settings through the Processing algorithm: every held-out interior pair, every default method;
    each fusion method beats the naive prediction of the held-out pair, and the report says which is best."""
    import processing

    series = sample_on_fine_grid
    result = processing.run("stf:cross_validate", {
        "FINE": [f.path for f in series.fine], "COARSE": [c.path for c in series.coarse],
        "OUTPUT_CSV": str(tmp_path / "cv.csv"), "OUTPUT_HTML": str(tmp_path / "cv.html")})
    with open(tmp_path / "cv.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    folds = [r for r in rows if r["held_out"] != "mean"]
    interior = [f.date.isoformat() for f in series.fine][1:-1]
    assert sorted({r["held_out"] for r in folds}) == interior
    assert {r["method"] for r in folds} == {"naive", "additive", "starfm", "estarfm", "fsdaf", "fitfc"}
    assert len(folds) == 6 * len(interior)
    for date in interior:
        rmse = {r["method"]: float(r["rmse"]) for r in folds if r["held_out"] == date}
        assert all(rmse[m] < rmse["naive"] for m in rmse if m != "naive"), rmse
        ranks = sorted(int(r["rank"]) for r in folds if r["held_out"] == date)
        assert ranks == [1, 2, 3, 4, 5, 6]
    means = {r["method"]: float(r["rmse"]) for r in rows if r["held_out"] == "mean"}
    assert result["BEST"] == min(means, key=means.get)
    report = (tmp_path / "cv.html").read_text(encoding="utf-8")
    assert f"Best on this scene: {result['BEST']}" in report and "Spatial / temporal variance" in report


def test_two_pairs_hold_out_each_and_leave_out_two_pair_methods(sample_on_fine_grid, tmp_path):
    from stf_fusion.core.series import build_series

    s = sample_on_fine_grid
    ends = [s.fine[0], s.fine[-1]]
    two = build_series([f.path for f in ends], [c.path for c in s.coarse],
                       [f.date for f in ends] + [c.date for c in s.coarse])
    result = cross_validate(two, ["naive", "additive", "estarfm"], str(tmp_path), 1e-4, "cpu")
    assert sorted({r["held_out"] for r in result.rows}) == [f.date.isoformat() for f in ends]
    assert {r["method"] for r in result.rows} == {"naive", "additive"}
    assert any("estarfm" in line and "left out" in line for line in explanation(result))
    assert list(tmp_path.iterdir()) == []  # the fold predictions were scratch


def test_unknown_method_is_refused(sample_on_fine_grid, tmp_path):
    with pytest.raises(InputError, match="METHODS: unknown method"):
        cross_validate(sample_on_fine_grid, ["starfm", "magic"], str(tmp_path), 1e-4, "cpu")


def test_learned_methods_train_on_each_fold_without_the_held_out_pair(sample_on_fine_grid, tmp_path):
    """STFSR and the DCNN, on request: trained on the fold's pairs only, they predict the held-out pair; both beat
    the naive prediction there."""
    result = cross_validate(sample_on_fine_grid, ["naive", "stfsr", "dcnn"], str(tmp_path), 1e-4, "cpu")
    rows = {r["method"]: r for r in result.rows}
    assert set(rows) == {"naive", "stfsr", "dcnn"}
    held = rows["stfsr"]["held_out"]
    assert held not in rows["stfsr"]["pairs_used"] and held not in rows["dcnn"]["pairs_used"]
    assert rows["stfsr"]["rmse"] < rows["naive"]["rmse"] and rows["dcnn"]["rmse"] < rows["naive"]["rmse"]
    assert [p for p in tmp_path.iterdir()] == []  # the fold's models and predictions were scratch
