"""Patch DCNN: the fully convolutional network equals the explicit 3 x 3 patch regression, short training beats the
naive prediction on the sample series, save/load round trip, the processing chain."""
import os

import numpy as np
import pytest
import torch
from conftest import ROOT

from stf_fusion.core.deep.api import predict_with_model, write_model
from stf_fusion.core.deep.dcnn import DcnnParams, build_network, stack_inputs, train_dcnn
from stf_fusion.core.deep.modelfile import load_model
from stf_fusion.core.evaluation import evaluate_files
from stf_fusion.core.naive import fuse_naive
from stf_fusion.core.raster import OutputTransaction, read_raw

SAMPLE = os.path.join(ROOT, "resources", "sample")


def test_fully_convolutional_equals_patch_by_patch():
    torch.manual_seed(0)
    net = build_network(DcnnParams()).eval()
    bands, h, w = 2, 12, 15
    c2, c1, f1 = (torch.rand(bands, h, w) for _ in range(3))
    x = stack_inputs(c2, c1, f1)
    with torch.no_grad():
        fcn = net(x)[:, 0]  # [B, H, W]
    # explicit: every 3 x 3 x 3 patch flattened, the regression as matrix products, the centre of fine(t_ref) added
    layers = net.layers
    w1, b1 = layers[0].weight.reshape(64, 27), layers[0].bias
    w2, b2 = layers[2].weight.reshape(32, 64), layers[2].bias
    w3, b3 = layers[4].weight.reshape(1, 32), layers[4].bias
    explicit = torch.zeros(bands, h, w)
    for b in range(bands):
        for i in range(h):
            for j in range(w):
                patch = x[b, :, i:i + 3, j:j + 3].reshape(27)
                hidden = torch.relu(w2 @ torch.relu(w1 @ patch + b1) + b2)
                explicit[b, i, j] = (w3 @ hidden + b3)[0] + f1[b, i, j]
    torch.testing.assert_close(fcn, explicit, atol=1e-6, rtol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sample_on_fine_grid):
    folder = tmp_path_factory.mktemp("dcnn")
    series = sample_on_fine_grid
    networks, meta = train_dcnn(series, None, 1e-4, DcnnParams(epochs=3, max_patches=30000), "cpu")
    with OutputTransaction() as tx:
        model, _, _ = write_model(str(folder / "dcnn.stfmodel"), "dcnn", networks, meta, tx)
    return series, folder, model, meta


def test_short_training_beats_the_naive_prediction(trained):
    series, folder, model, meta = trained
    assert meta["history"]["dcnn"]["train"][-1] < meta["history"]["dcnn"]["train"][0]
    dates = [d for d in series.predict_dates if d.isoformat() in ("2021-05-03", "2021-06-20", "2021-07-06")]
    files = predict_with_model(model, series, dates, str(folder / "pred"), 1e-4, "cpu")
    naive = fuse_naive(series, dates, str(folder / "naive"))
    truth = [os.path.join(SAMPLE, "truth", f"truth_{d.isoformat()}.tif") for d in dates]
    rows = [r for r in evaluate_files(files + naive, truth, keep_details=False).rows if r["band"] == "all"]
    ours = np.mean([r["rmse"] for r in rows if r["method"] == "dcnn"])
    base = np.mean([r["rmse"] for r in rows if r["method"] == "naive"])
    print("DCNN mean RMSE", round(ours, 4), "naive", round(base, 4))
    assert ours < 0.8 * base and ours < 0.04
    assert {"maec", "edge", "rmae", "r2"} <= set(rows[0])  # the seed's own metrics are in the table


def test_round_trip(trained, tmp_path):
    series, _, model, _ = trained
    meta, weights = load_model(model)
    with OutputTransaction() as tx:
        again, _, _ = write_model(str(tmp_path / "copy.stfmodel"), "dcnn", weights, meta, tx)
    date = series.predict_dates[:1]
    a = predict_with_model(model, series, date, str(tmp_path / "a"), 1e-4, "cpu")
    b = predict_with_model(again, series, date, str(tmp_path / "b"), 1e-4, "cpu")
    np.testing.assert_array_equal(read_raw(a[0]), read_raw(b[0]))


def test_train_predict_chain_in_processing(provider, trained, tmp_path):
    import processing

    series, _, _, _ = trained
    common = {"FINE": [f.path for f in series.fine], "COARSE": [c.path for c in series.coarse], "DEVICE": "cpu"}
    model = processing.run("stf:train_dcnn", dict(common, EPOCHS=1, MAX_PATCHES=2000, TWO_REFERENCES=True,
                                                  MODEL=str(tmp_path / "m.stfmodel")))["MODEL"]
    files = processing.run("stf:predict", dict(common, MODEL=model, PREDICT_DATES="2021-07-06",
                                               OUTPUT_FOLDER=str(tmp_path / "p")))["OUTPUT_FILES"]
    assert [os.path.basename(f) for f in files] == ["dcnn_2021-07-06.tif"]
