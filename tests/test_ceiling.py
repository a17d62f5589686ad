"""bench/ceiling.py's least-squares ceiling on hand-made residuals: what each feature family can remove."""
import numpy as np

from stf_fusion.bench.ceiling import fit_ceiling


def test_each_family_removes_what_it_can_express():
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(4):  # four dates, two bands, 32 x 32 pixels
        fine = rng.uniform(0.1, 0.4, (2, 32, 32))
        coarse_ref = rng.uniform(0.1, 0.4, (2, 32, 32))
        coarse = rng.uniform(0.1, 0.4, (2, 32, 32))
        start = rng.uniform(0.1, 0.4, (2, 32, 32))
        truth = start.copy()
        truth[0] += 0.5 * (coarse[0] - coarse_ref[0])  # band 1: a gain on its coarse change
        truth[1] += 0.3  # band 2: a constant offset, which a gain alone cannot express
        rows.append((fine, coarse_ref, coarse, truth, start))
    found = fit_ceiling(rows, np.zeros((32, 32), int), factor=4)
    # the start's error: band 1 |0.5 dC| (dC the difference of two U(0.1, 0.4): RMSE 0.5 * 0.3 / sqrt(6)),
    # band 2 exactly 0.3; mean over bands
    assert abs(found["start"] - (0.5 * 0.3 / np.sqrt(6) + 0.3) / 2) < 0.005
    gain_only, with_constant = found["families"][0], found["families"][1]
    # a gain removes band 1's error; band 2 keeps nearly all of its 0.3 (its dC has mean zero): ~0.15 both ways
    assert abs(gain_only[0] - 0.15) < 0.005 and abs(gain_only[1] - 0.15) < 0.005
    # gain + constant express both: nothing left, in-sample and on a date left out
    assert with_constant[0] < 1e-9 and with_constant[1] < 1e-9
