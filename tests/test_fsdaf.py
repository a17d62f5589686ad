"""FSDAF's building blocks (the whole method against Zhu's code is in test_fsdaf_zhu.py): the multiquadric
interpolation, the class changes from the purest coarse pixels, and the final step on a tiny scene."""
import numpy as np

from stf_fusion.core.arrays import backend
from stf_fusion.core.classic.fsdaf import (_class_changes, _percentile_position, multiquadric, multiquadric_lattice,
                                          multiquadric_weights)

torch = backend()  # PyTorch, or its NumPy stand-in where torch is not installed (core/arrays.py)


def test_multiquadric_interpolates_its_nodes_and_is_smooth_between():
    rng = np.random.default_rng(0)
    yy, xx = np.meshgrid(np.arange(5) * 16 + 7.5, np.arange(6) * 16 + 7.5, indexing="ij")
    nodes = np.stack([yy.ravel(), xx.ravel()], axis=1)
    values = rng.uniform(0.1, 0.4, (len(nodes), 2))
    at_nodes = multiquadric(nodes, values, torch.from_numpy(nodes).float())
    np.testing.assert_allclose(at_nodes.numpy(), values, atol=1e-5)  # no smoothing: exact at the nodes
    # a linear field is reproduced closely between the nodes (multiquadrics are near-linear at this spacing)
    linear = (0.1 + 0.001 * nodes[:, 0] + 0.002 * nodes[:, 1])[:, None]
    mid = torch.tensor([[23.5, 39.5], [40.0, 50.0]])
    got = multiquadric(nodes, linear, mid).numpy()[:, 0]
    np.testing.assert_allclose(got, 0.1 + 0.001 * mid[:, 0].numpy() + 0.002 * mid[:, 1].numpy(), atol=2e-3)


def test_multiquadric_on_the_coarse_lattice_by_fft_equals_the_direct_sums():
    # FSDAF's nodes are the coarse pixel centres (some missing), its points every fine pixel: the FFT form must give
    # the direct sums at every pixel, for an odd and an even factor and a lattice that is not square
    rng = np.random.default_rng(3)
    for f, m, n in ((4, 7, 9), (5, 6, 5)):
        present = rng.random((m, n)) > 0.2
        cy, cx = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
        nodes = np.stack([cy[present] * f + (f - 1) / 2.0, cx[present] * f + (f - 1) / 2.0], axis=1)
        values = rng.uniform(0.05, 0.5, (len(nodes), 3))
        weights, eps = multiquadric_weights(nodes, values)
        lattice = np.zeros((3, m, n))
        lattice[:, present] = weights.T
        got = multiquadric_lattice(lattice, eps, f)
        py, px = np.meshgrid(np.arange(m * f), np.arange(n * f), indexing="ij")
        points = torch.from_numpy(np.stack([py.ravel(), px.ravel()], axis=1).astype(np.float32))
        direct = np.asarray(multiquadric(nodes, values, points)).T.reshape(3, m * f, n * f)
        np.testing.assert_allclose(got, direct, atol=1e-6)


def test_percentile_positions_as_the_reference_code():
    # value_locate(findgen(n + 1) / n, q): the last i with i / n <= q
    assert [_percentile_position(100, q) for q in (0.1, 0.9)] == [10, 90]
    assert [_percentile_position(7, q) for q in (0.1, 0.9)] == [0, 6]


def test_class_changes_from_the_purest_pixels_ignore_land_cover_change():
    rng = np.random.default_rng(1)
    n = 400
    fractions = rng.dirichlet([0.3, 0.3, 0.3], n).T.reshape(3, 20, 20)  # mostly pure pixels
    truth = np.array([0.05, -0.02, 0.10])
    change = np.einsum("c,chw->hw", truth, fractions)[None] + rng.normal(0, 0.001, (1, 20, 20))
    purest = np.argsort(-fractions[1].ravel())[:3]
    change.reshape(1, -1)[0, purest] += 0.5  # three pixels of class 1 changed their land cover
    got = _class_changes(change, fractions, num_pure=100)[0]
    np.testing.assert_allclose(got, truth, atol=0.005)


def test_the_dates_of_a_pair_in_one_pass_equal_each_date_alone(sample_on_fine_grid, tmp_path):
    """Issue 28: the final step chooses the similar pixels once per tile for the dates that share a pair and sums
    each date's change in the same order: every output equals the date predicted alone, also where one date's
    coarse image has a hole (another validity: its own group), on both CPU paths."""
    from helpers import assert_one_pass_equals_each_date

    from stf_fusion.core.classic.fsdaf import FsdafParams, fuse_fsdaf

    assert_one_pass_equals_each_date(fuse_fsdaf, sample_on_fine_grid, str(tmp_path), 64,
                                     (slice(20, 30), slice(30, 45)),
                                     ("2021-04-17", "2021-05-03", "2021-05-19", "2021-07-06", "2021-07-22"),
                                     FsdafParams(tile_size=32, factor=16, window=15, block=2))


def test_the_pairs_scan_shared_by_its_dates_equals_each_dates_own_scan(sample_on_fine_grid, tmp_path):
    """Issue 28: the class map and coarse-pixel sums over the pixels valid in F1 and C1 are computed once per pair
    and completed with each date's C2; that equals the date's own scan, and a C2 with a hole the pair lacks gets
    its own scan (its class counts change)."""
    from helpers import crop_series
    from osgeo import gdal

    from stf_fusion.core.classic.fsdaf import FsdafParams, _PairScan, _Scene
    from stf_fusion.core.device import array_device
    from stf_fusion.core.series import build_series

    crop = crop_series(sample_on_fine_grid, str(tmp_path), 96)
    series = build_series(crop["fine"], crop["coarse"])
    pair, date = series.fine[0], series.predict_dates[0]
    shared: dict = {}
    scene = _Scene(series, pair, date, 1e-4, FsdafParams(factor=16, block=2), array_device("cpu"), None,
                   shared)
    c1, c2 = series.coarse_at(pair.date), series.coarse_at(date)
    own = _PairScan(scene, pair, c1, c2, None)
    completed = shared["scan"].with_c2(scene, c2, None)
    for name in ("labels", "sums", "counts", "class_min", "class_max", "c2_min", "c2_max", "f1_sum", "f1_squares",
                 "f1_n"):
        np.testing.assert_array_equal(getattr(completed, name), getattr(own, name), err_msg=name)
    np.testing.assert_array_equal(scene.classes, own.labels)
    assert (own.labels != 255).all()  # the sample's pair is valid everywhere: nothing was left out of the check

    ds = gdal.Open(c2.path, gdal.GA_Update)
    band = ds.GetRasterBand(1)
    values = band.ReadAsArray()
    values[10:20, 10:20] = band.GetNoDataValue()
    band.WriteArray(values)
    ds = None
    assert shared["scan"].with_c2(scene, c2, None) is None
    holed = _Scene(series, pair, date, 1e-4, FsdafParams(factor=16, block=2), array_device("cpu"), None,
                   shared)
    assert (holed.classes[10:20, 10:20] == 255).all() and (holed.classes[30:40, 30:40] != 255).all()
