"""Patch DCNN: the fully convolutional network equals the explicit 3 x 3 patch regression, the untrained network
is the additive baseline, save/load round trip, the processing chain (EPOCHS=0 included). Its quality on the
sample with default settings is in test_deep_quality.py."""
import os

import numpy as np
import torch

from stf_fusion.core.deep.api import predict_with_model, write_model
from stf_fusion.core.deep.dcnn import DcnnParams, build_network, stack_inputs
from stf_fusion.core.deep.modelfile import load_model, read_metadata
from stf_fusion.core.raster import OutputTransaction, read_raw


def test_fully_convolutional_equals_patch_by_patch():
    torch.manual_seed(0)
    net = build_network(DcnnParams()).eval()
    torch.nn.init.normal_(net.layers[4].weight, std=0.1)  # a trained-like last layer (it starts at zero)
    torch.nn.init.normal_(net.layers[4].bias, std=0.1)
    bands, h, w = 2, 12, 15
    c2, c1, f1 = (torch.rand(bands, h, w) for _ in range(3))
    x = stack_inputs(c2, c1, f1)
    with torch.no_grad():
        fcn = net(x)[:, 0]  # [B, H, W]
    # explicit: every 3 x 3 x 3 patch flattened, the regression as matrix products giving the 9 filter weights,
    # applied to the 3 x 3 coarse change around the pixel, plus the additive prediction
    layers = net.layers
    w1, b1 = layers[0].weight.reshape(64, 27), layers[0].bias
    w2, b2 = layers[2].weight.reshape(32, 64), layers[2].bias
    w3, b3 = layers[4].weight.reshape(9, 32), layers[4].bias
    explicit = torch.zeros(bands, h, w)
    for b in range(bands):
        for i in range(h):
            for j in range(w):
                patch = x[b, :, i:i + 3, j:j + 3]
                hidden = torch.relu(w2 @ torch.relu(w1 @ patch.reshape(27) + b1) + b2)
                weights = w3 @ hidden + b3
                change = (patch[0] - patch[1]).reshape(9)
                explicit[b, i, j] = f1[b, i, j] + change[4] + weights @ change
    torch.testing.assert_close(fcn, explicit, atol=1e-6, rtol=1e-5)


def test_the_untrained_network_is_the_additive_baseline_and_no_change_gives_the_reference():
    torch.manual_seed(1)
    net = build_network(DcnnParams()).eval()
    c2, c1, f1 = (torch.rand(3, 9, 11) for _ in range(3))
    with torch.no_grad():
        torch.testing.assert_close(net(stack_inputs(c2, c1, f1))[:, 0], f1 + c2 - c1)
        torch.nn.init.normal_(net.layers[4].weight, std=0.1)
        torch.nn.init.normal_(net.layers[4].bias, std=0.1)
        # whatever it learned: where the coarse images do not change, the prediction is the fine reference
        torch.testing.assert_close(net(stack_inputs(c1, c1, f1))[:, 0], f1)


def test_a_kept_start_skips_the_network_value_for_value_and_channels_last_agrees():
    """A zero last layer (untrained, or a model that kept its start) predicts without running the network, the same
    values as running it; the channels-last layout of the CPU prediction agrees with
    the default layout to float rounding."""
    from stf_fusion.core.deep.dcnn import is_identity, predict_arrays

    params = DcnnParams(two_references=True)
    net = build_network(params).eval()
    c2, c1, f1, c3, f3 = (torch.rand(2, 20, 24) for _ in range(5))
    assert is_identity(net)
    with torch.no_grad():
        ran = net(stack_inputs(c2, c1, f1))[:, 0]
        np.testing.assert_array_equal(predict_arrays(net, params, c2, [(f1, c1)]).numpy(), ran.numpy())
        both = predict_arrays(net, params, c2, [(f1, c1), (f3, c3)])
        torch.nn.init.normal_(net.layers[4].weight, std=0.1)
        assert not is_identity(net)
        trained = predict_arrays(net, params, c2, [(f1, c1), (f3, c3)])
        assert not torch.allclose(trained, both)
        fast = predict_arrays(net.to(memory_format=torch.channels_last), params, c2, [(f1, c1), (f3, c3)])
        torch.testing.assert_close(fast, trained, atol=1e-6, rtol=1e-5)


def test_round_trip(default_models, sample_on_fine_grid, tmp_path):
    series = sample_on_fine_grid
    model = default_models["dcnn"]["trained"]
    meta, weights = load_model(model)
    with OutputTransaction() as tx:
        again, _, _ = write_model(str(tmp_path / "copy.stfmodel"), "dcnn", weights, meta, tx)
    date = series.predict_dates[:1]
    a = predict_with_model(model, series, date, str(tmp_path / "a"), 1e-4, "cpu")
    b = predict_with_model(again, series, date, str(tmp_path / "b"), 1e-4, "cpu")
    np.testing.assert_array_equal(read_raw(a[0]), read_raw(b[0]))


def test_train_predict_chain_in_processing(provider, sample_on_fine_grid, tmp_path):
    import processing

    series = sample_on_fine_grid
    common = {"FINE": [f.path for f in series.fine], "COARSE": [c.path for c in series.coarse], "DEVICE": "cpu"}
    model = processing.run("stf:train_dcnn", dict(common, EPOCHS=1, MAX_PATCHES=2000, TWO_REFERENCES=True,
                                                  MODEL=str(tmp_path / "m.stfmodel")))["MODEL"]
    files = processing.run("stf:predict", dict(common, MODEL=model, PREDICT_DATES="2021-07-06",
                                               OUTPUT_FOLDER=str(tmp_path / "p")))["OUTPUT_FILES"]
    assert [os.path.basename(f) for f in files] == ["dcnn_2021-07-06.tif"]
    # EPOCHS=0 saves the untrained model: its predictions are the additive baseline's
    untrained = processing.run("stf:train_dcnn", dict(common, EPOCHS=0, MODEL=str(tmp_path / "u.stfmodel")))
    assert read_metadata(untrained["MODEL"])["history"]["dcnn"]["train"] == []
    files = processing.run("stf:predict", dict(common, MODEL=untrained["MODEL"], PREDICT_DATES="2021-07-06",
                                               OUTPUT_FOLDER=str(tmp_path / "u")))["OUTPUT_FILES"]
    additive = processing.run("stf:fuse_additive", dict(common, PREDICT_DATES="2021-07-06",
                                                        OUTPUT_FOLDER=str(tmp_path / "add")))["OUTPUT_FILES"]
    diff = np.abs(read_raw(files[0]).astype(int) - read_raw(additive[0]))
    assert diff.max() <= 1  # float32 arithmetic in another order: at most one stored unit


def test_a_series_equals_each_date_alone(sample_on_fine_grid, tmp_path, monkeypatch):
    """Issue 28: a tile's dates share the reference pairs' images as read, and the prediction runs its ReLUs in
    place; with a trained-like network, two references and four tiles, every date of the series equals the date
    predicted alone, value for value."""
    import dataclasses
    import functools

    from stf_fusion.core.deep import dcnn

    series = sample_on_fine_grid
    params = DcnnParams(two_references=True)
    net = build_network(params)
    torch.manual_seed(5)
    torch.nn.init.normal_(net.layers[4].weight, std=0.05)
    meta = {"params": dataclasses.asdict(params), "halo": params.halo}
    weights = {"dcnn": net.state_dict()}
    monkeypatch.setattr(dcnn, "write_predictions", functools.partial(dcnn.write_predictions, tile_size=96))
    dates = series.predict_dates
    together = dcnn.predict(meta, weights, series, dates, str(tmp_path / "all"), 1e-4, "cpu")
    for date, path in zip(dates, together):
        alone = dcnn.predict(meta, weights, series, [date], str(tmp_path / date.isoformat()), 1e-4, "cpu")
        np.testing.assert_array_equal(read_raw(path), read_raw(alone[0]))
    untrained = dcnn.predict(meta, {"dcnn": build_network(params).state_dict()}, series, dates[:1],
                             str(tmp_path / "u"), 1e-4, "cpu")
    assert not np.array_equal(read_raw(untrained[0]), read_raw(together[0]))  # the network did run
