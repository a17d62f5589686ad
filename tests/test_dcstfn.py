"""DCSTFN (Tan et al. 2018): the two-stream shapes, the untrained network is the additive baseline and an unchanged
coarse pair gives the reference whatever the weights, windows at any offset see the scene's coarse pixels, the
save/load round trip and the Processing chain. Its quality with default settings is in test_deep_quality.py."""
import os

import numpy as np
import pytest
import torch

from stf_fusion.core.deep.api import predict_with_model, write_model
from stf_fusion.core.deep.dcstfn import DcstfnParams, apply, build_network
from stf_fusion.core.deep.modelfile import load_model, read_metadata
from stf_fusion.core.errors import InputError
from stf_fusion.core.raster import OutputTransaction, read_raw


def _trained_like(net):
    torch.manual_seed(3)
    for layer in net.reconstruct:
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(layer.weight, std=0.1)
    return net


def test_streams_meet_at_half_resolution_and_the_output_has_the_input_size():
    params = DcstfnParams(c0=8, c1=12, c2=16, factor=16)
    net = build_network(params).eval()
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        coarse = net.coarse(torch.nn.functional.avg_pool2d(x, 16))
        fine = net.fine(x)
        out = net(torch.rand(2, 3, 64, 96))
    assert coarse.shape == fine.shape == (2, 16, 32, 48)
    assert out.shape == (2, 1, 64, 96)
    ups = [m for m in net.coarse if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(ups) == 3  # log2(16) - 1 doublings, as the authors' MODIS -> Landsat network


def test_untrained_is_additive_and_no_change_gives_the_reference():
    params = DcstfnParams(c0=8, c1=12, c2=16, factor=16)
    net = build_network(params).eval()
    c2, c1, f1 = (torch.rand(3, 48, 40) for _ in range(3))
    with torch.no_grad():
        torch.testing.assert_close(apply(net, params, c2, c1, f1), f1 + c2 - c1)
        _trained_like(net)
        assert not torch.allclose(apply(net, params, c2, c1, f1), f1 + c2 - c1)
        torch.testing.assert_close(apply(net, params, c1, c1, f1), f1)


def test_a_window_sees_the_scene_grid_of_coarse_pixels():
    """A window starting inside a coarse pixel is padded to the scene's coarse grid: away from its edges it gives
    the whole-scene values."""
    params = DcstfnParams(c0=8, c1=12, c2=16, factor=16)
    net = _trained_like(build_network(params).eval())
    c2, c1, f1 = (torch.rand(2, 160, 160) for _ in range(3))
    with torch.no_grad():
        whole = apply(net, params, c2, c1, f1)
        part = apply(net, params, c2[:, 5:155, 3:150], c1[:, 5:155, 3:150], f1[:, 5:155, 3:150], 5, 3)
    torch.testing.assert_close(part[:, 75:85, 77:87], whole[:, 80:90, 80:90], atol=1e-5, rtol=1e-4)


def test_the_factor_must_be_a_power_of_two():
    with pytest.raises(InputError, match="power of two"):
        DcstfnParams(factor=20).validate()


def test_round_trip(default_models, sample_on_fine_grid, tmp_path):
    series = sample_on_fine_grid
    model = default_models["dcstfn"]["trained"]
    meta, weights = load_model(model)
    assert meta["patch"] == 160  # the authors' patches: with 3 pairs no spatial block is held out (temporal protocol)
    with OutputTransaction() as tx:
        again, _, _ = write_model(str(tmp_path / "copy.stfmodel"), "dcstfn", weights, meta, tx)
    date = series.predict_dates[:1]
    a = predict_with_model(model, series, date, str(tmp_path / "a"), 1e-4, "cpu")
    b = predict_with_model(again, series, date, str(tmp_path / "b"), 1e-4, "cpu")
    np.testing.assert_array_equal(read_raw(a[0]), read_raw(b[0]))


def test_train_predict_chain_in_processing(provider, sample_on_fine_grid, tmp_path):
    import processing

    series = sample_on_fine_grid
    common = {"FINE": [f.path for f in series.fine], "COARSE": [c.path for c in series.coarse], "DEVICE": "cpu"}
    untrained = processing.run("stf:train_dcstfn", dict(common, EPOCHS=0, MODEL=str(tmp_path / "u.stfmodel")))
    assert read_metadata(untrained["MODEL"])["history"]["dcstfn"]["train"] == []
    files = processing.run("stf:predict", dict(common, MODEL=untrained["MODEL"], PREDICT_DATES="2021-07-06",
                                               OUTPUT_FOLDER=str(tmp_path / "p")))["OUTPUT_FILES"]
    assert [os.path.basename(f) for f in files] == ["dcstfn_2021-07-06.tif"]
    additive = processing.run("stf:fuse_additive", dict(common, PREDICT_DATES="2021-07-06",
                                                        OUTPUT_FOLDER=str(tmp_path / "a")))["OUTPUT_FILES"]
    difference = np.abs(read_raw(files[0]).astype(int) - read_raw(additive[0]).astype(int))
    assert difference.max() <= 1  # the untrained network is the additive baseline (float rounding)
