"""STFSR (Song & Huang 2013): the dictionary pair learns a high-pass detail it can reproduce on unseen images, and
with default settings through Processing the model beats the naive and additive predictions on the sample (mean
over ALL predicted dates), predicting one-pair and two-pair dates. STFDCNN, trained on the same sample, is
expected to do better (seed 001's finding); the figures are printed."""
import os

import numpy as np

from stf_fusion.core.deep.stfsr import Dictionary, StfsrParams, _features


def _smooth_field(rng, size):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(rng.standard_normal((size, size)), 2.0) * 0.1 + 0.3


def test_batched_omp_equals_scikit_learn_including_its_early_stops():
    """The batched Orthogonal Matching Pursuit (all patches step together) gives scikit-learn's codes: random
    signals, a signal that IS an atom (exact after one atom: stops), a zero signal (no atom), and a dictionary with
    a duplicated atom (its two copies tie: the same reconstruction), on more signals than one chunk."""
    import warnings

    from sklearn.decomposition import sparse_encode

    from stf_fusion.core.deep import stfsr

    rng = np.random.default_rng(4)
    d = rng.standard_normal((40, 16))
    d[7] = d[3]  # a duplicate
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    y = rng.standard_normal((300, 16))
    y[0] = 0.0
    y[1] = 2.5 * d[5]
    y[2] = d[3] + 1e-3 * d[9]
    stfsr._OMP_CHUNK, chunk = 128, stfsr._OMP_CHUNK
    try:
        for k in (1, 3, 5):
            atoms, coefs = stfsr.omp(d, y, k)
            dense = np.zeros((len(y), len(d)))
            np.add.at(dense, (np.arange(len(y))[:, None].repeat(k, 1), atoms), coefs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # scikit-learn warns of its early stops
                expected = sparse_encode(y, d, algorithm="omp", n_nonzero_coefs=k)
            # the duplicate's two copies tie exactly; scikit-learn's column swaps may pick the other copy: the
            # same code up to that, and the same reconstruction everywhere
            tie = dense[:, [3, 7]].any(axis=1) | expected[:, [3, 7]].any(axis=1)
            assert (~tie).sum() > len(y) // 2
            np.testing.assert_allclose(dense[~tie], expected[~tie], atol=1e-10)
            merged = lambda c: np.c_[c[:, :3], c[:, 3] + c[:, 7], c[:, 4:7], c[:, 8:]]  # noqa: E731
            np.testing.assert_allclose(merged(dense), merged(expected), atol=1e-10)
            np.testing.assert_allclose(dense @ d, expected @ d, atol=1e-10)
            assert (np.count_nonzero(dense, axis=1) <= k).all()
            assert not dense[0].any() and np.count_nonzero(dense[1]) == 1
    finally:
        stfsr._OMP_CHUNK = chunk


def test_the_dictionary_reproduces_a_learned_detail_on_an_unseen_image():
    """The detail is a fixed linear function of the second derivatives (a sharpening): learned on two images, it
    is reproduced on a third far better than no detail at all."""
    rng = np.random.default_rng(0)
    params = StfsrParams(atoms=64, max_patches=5000)

    def pair():
        low = _smooth_field(rng, 48)
        f = _features(low)
        return low, low - 0.4 * (f[2] + f[3]), np.ones(low.shape, bool)

    dictionary = Dictionary.learn([pair(), pair()], params, 1, 0)
    low, high, _ = pair()
    truth = high - low
    error = dictionary.detail(low, 1) - truth
    inner = (slice(3, -3), slice(3, -3))
    assert np.sqrt(np.mean(error[inner] ** 2)) < 0.5 * np.sqrt(np.mean(truth[inner] ** 2))


def test_flat_images_get_no_detail():
    rng = np.random.default_rng(1)
    low = _smooth_field(rng, 32)
    dictionary = Dictionary.learn([(low, low * 1.1, np.ones(low.shape, bool))], StfsrParams(atoms=16), 1, 0)
    np.testing.assert_array_equal(dictionary.detail(np.full((20, 20), 0.2), 1), 0.0)


def test_default_settings_through_processing_beat_naive_and_additive(provider, sample_on_fine_grid, tmp_path):
    import processing
    from test_deep_quality import mean_rmse

    from stf_fusion.core.deep.modelfile import read_metadata
    from stf_fusion.core.naive import fuse_additive, fuse_naive

    series = sample_on_fine_grid
    common = {"FINE": [f.path for f in series.fine], "COARSE": [c.path for c in series.coarse], "DEVICE": "cpu"}
    model = processing.run("stf:train_stfsr", dict(common, MODEL=str(tmp_path / "stfsr.stfmodel")))["MODEL"]
    files = processing.run("stf:predict", dict(common, MODEL=model, OUTPUT_FOLDER=str(tmp_path / "p")))
    files = files["OUTPUT_FILES"]
    dates = series.predict_dates
    assert [os.path.basename(f) for f in files] == [f"stfsr_{d.isoformat()}.tif" for d in dates]
    ours, per_date = mean_rmse(files)
    naive = mean_rmse(fuse_naive(series, dates, str(tmp_path / "n")))[0]
    additive = mean_rmse(fuse_additive(series, dates, str(tmp_path / "a")))[0]
    print(f"STFSR mean RMSE {ours:.5f} per date {np.round(per_date, 4).tolist()}; naive {naive:.5f}, additive "
          f"{additive:.5f}")
    assert ours < 0.995 * naive and ours < 0.995 * additive
    record = read_metadata(model)["validation"]
    assert record["beats"]["naive"] and record["rmse"] < record["untrained_rmse"]  # held-out pair: the dictionaries help


def test_without_scikit_learn_the_message_says_how_to_install_it(monkeypatch, sample_on_fine_grid):
    import sys

    import pytest

    from stf_fusion.core.deep.stfsr import train_stfsr
    from stf_fusion.core.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn -> ImportError
    monkeypatch.setitem(sys.modules, "sklearn.decomposition", None)
    with pytest.raises(MissingDependencyError, match="scikit-learn is not installed.*pip install"):
        train_stfsr(sample_on_fine_grid, None, 1e-4, StfsrParams(), "cpu")


def test_the_dialogs_epochs_budget_does_not_reach_a_method_without_epochs(sample_on_fine_grid, tmp_path):
    """'Train now: STFSR' with the dialog's epochs field set: STFSR learns (it has no epochs) and predicts."""
    from stf_fusion.core.workflow import WorkflowConfig, run_workflow

    series = sample_on_fine_grid
    config = WorkflowConfig(fine=[(f.path, f.date) for f in series.fine],
                            coarse=[(c.path, c.date) for c in series.coarse], method="train_stfsr",
                            output_folder=str(tmp_path / "out"), epochs=3, device="cpu")
    result = run_workflow(config)
    assert len(result.predictions) == len(series.predict_dates)
