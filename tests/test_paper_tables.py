"""make paper-tables (bench/paper_tables.py) on a small series with short training: both tables are written with
our measured values beside the published ones, and the sentences compare the rankings the numbers show."""
import re

import numpy as np

from stf_fusion.bench.paper_tables import PUBLISHED_000, PaperConfig, compute, markdown


def test_both_tables_with_measured_and_published_values(tmp_path):
    config = PaperConfig(size=64, width=80, settings={
        "stf3dcnn": {"epochs": 1}, "dcstfn": {"epochs": 1, "patches_per_epoch": 8},
        "stfdcnn": {"epochs": 1, "max_subimages": 256}, "stfsr": {"atoms": 32, "max_patches": 2000}})
    results = compute(str(tmp_path / "series"), config, log=lambda *_: None)
    assert len(results["dates"]) == 12 and results["key_date"] == results["dates"][5]  # the 8th of 17 dates
    for method, r in results["methods"].items():
        assert all(np.isfinite(v) for v in r["mean"].values()), method
        assert len(r["key"]["rmse"]) == 6 and r["seconds"] > 0
    # the naive prediction on a date is the nearest pair: its mean RMSE is the largest of all
    means = {m: r["mean"]["rmse"] for m, r in results["methods"].items()}
    assert max(means, key=means.get) == "naive"
    text = markdown(results)
    assert "## Seed 000 (STF3DCNN), Table 1" in text and "Tables I-II" in text
    assert "| STF3DCNN | 0.874 | 0.9928 | 386.4 |" in text  # published, as printed
    assert "Table II (LGC, 8th date)" in text and "| SAM | | 10.1531 | 9.8586 |" in text
    ours = re.search(r"\| FSDAF \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|", text)
    assert float(ours.group(3)) == round(results["methods"]["fsdaf"]["mean"]["rmse"], 4)
    assert ("(the same order)" in text) or ("(a different order)" in text)
    assert len(PUBLISHED_000["rows"]) == 4
