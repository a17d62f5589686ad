"""Learning on the realistic simulator (issue "Learning that pays"), a small case run on every CI run: each deep
method (and the refinement of issue "The best prediction without expertise", base auto = FSDAF here), trained with its DEFAULT settings on a realistic series it was never tuned on (seed 7, 128 pixels, 10
dates, 3 pairs), selects its epoch on the pair date held out in time and ends, over ALL predicted dates, no worse
than its own untrained start (beyond 1 %), and better than the naive prediction.

The issue's further goal, a gain of at least 5 % over the untrained start for every network, is NOT reached (the
README's "Does learning pay?" table has the measured gains); this test guards what holds: training never makes a
model worse on dates it did not see, and the DCNN, trained with the coarse error of short gaps (COARSE_NOISE,
core/deep/coarse_noise.py), gains here (measured 0.02927 vs 0.02971, +1.5 %; without it the DCNN kept its start)."""
import numpy as np
import pytest

from stf_fusion.bench.learning import make_series, mean_rmse
from stf_fusion.core.deep.api import predict_trained, settings_class, train_method
from stf_fusion.core.naive import fuse_naive

METHODS = ("stfdcnn", "stf3dcnn", "dcstfn", "dcnn", "refine")
# Not worse beyond 1 %: selection compares held-out dates, this test every date. Measured: STFDCNN here 0.02891 vs
# 0.02882 (+0.3 %); DCSTFN on seed 101 (make bench-learning) was 3.4 % worse before the short-gap validation.
TOLERANCE = 1.01
GAINS = {"dcnn": 0.995}  # trained / untrained at most


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("realistic")
    series, truth = make_series(str(folder), "realistic", 128, 7)
    naive = mean_rmse(fuse_naive(series, series.predict_dates, str(folder / "naive")), truth)[0]
    return series, truth, naive, folder


@pytest.mark.parametrize("method", METHODS)
def test_default_training_is_never_worse_than_its_start_on_unseen_dates(method, realistic):
    series, truth, naive, folder = realistic
    dates = series.predict_dates
    assert len(dates) == 7
    scores = {}
    for kind, params in (("trained", None), ("untrained", settings_class(method)(epochs=0))):
        networks, meta = train_method(method, series, 1e-4, params, "cpu")
        files = predict_trained(method, networks, meta, series, dates, str(folder / f"{method}_{kind}"), 1e-4, "cpu")
        scores[kind], per_date = mean_rmse(files, truth)
        print(f"realistic {method} {kind}: {scores[kind]:.5f} per date {np.round(per_date, 4).tolist()}")
        if kind == "trained":
            record = meta["validation"]
            assert record["protocol"] == "temporal" and record["rmse"] <= record["untrained_rmse"]
            held = list(record["targets"])
            assert held and not set(held) & set(meta["training_pairs"])
    print(f"realistic naive {naive:.5f}")
    assert scores["trained"] <= TOLERANCE * scores["untrained"]
    assert scores["trained"] <= GAINS.get(method, TOLERANCE) * scores["untrained"]
    assert scores["trained"] < naive
