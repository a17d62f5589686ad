"""Issue 26: STARFM, ESTARFM, FSDAF, Fit-FC, the benchmarks, product preparation and the evaluation run without
PyTorch, on the NumPy stand-in of core/arrays.py, with results equal to the torch path to one stored unit; their
own tests pass with torch unimportable."""
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from helpers import crop_series

from stf_fusion.core.arrays import backend, is_numpy, torch_importable
from stf_fusion.core.classic.starfm import StarfmParams
from stf_fusion.core.fusion import fuse_method
from stf_fusion.core.raster import read_raw

BLOCKED = os.environ.get("STF_BLOCK_TORCH") == "1"
# the classic methods' tests (against USDA STARFM, Zhu's ESTARFM and FSDAF, loops written from the papers, the
# sample's baselines), the products' and the evaluation's, run again with torch unimportable
WITHOUT_TORCH = ("test_starfm.py", "test_starfm_usda.py", "test_estarfm.py", "test_estarfm_zhu.py", "test_fsdaf.py",
                 "test_fsdaf_zhu.py", "test_fitfc.py", "test_classic_methods.py", "test_evaluation.py",
                 "test_metrics.py", "test_products.py", "test_without_torch.py")
METHODS = {"starfm": None, "starfm-paper": StarfmParams(variant="paper"), "estarfm": None, "fsdaf": None,
           "fitfc": None}


@pytest.mark.skipif(not BLOCKED, reason="runs inside the torch-less run of test_classic_tests_pass_without_torch")
def test_torch_is_really_unimportable_there():
    with pytest.raises(ImportError):
        import torch  # noqa: F401  (pyflakes: the import is the test)
    assert not torch_importable() and is_numpy(backend())
    from stf_fusion.core.auto import MEMBERS, default_members

    assert default_members() == MEMBERS  # fuse_auto's default members: STFDCNN's fusion model needs torch


@pytest.mark.skipif(BLOCKED, reason="starts the torch-less run itself")
def test_classic_tests_pass_without_torch():
    tests = os.path.join(ROOT, "tests")
    env = dict(os.environ, STF_BLOCK_TORCH="1")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"]
                         + [os.path.join(tests, name) for name in WITHOUT_TORCH],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    assert "test_torch_is_really_unimportable_there" not in run.stdout  # it ran (not listed as skipped)


@pytest.fixture(scope="module")
def cropped_sample(sample_on_fine_grid, tmp_path_factory):
    """The sample's north-west 96 x 96 pixels (coarse on the fine grid): small enough for the tensor path."""
    from stf_fusion.core.series import build_series

    crop = crop_series(sample_on_fine_grid, str(tmp_path_factory.mktemp("cropped_sample")), 96)
    return build_series(crop["fine"], crop["coarse"])


def _fuse(method, series, dates, folder):
    name = "starfm" if method.startswith("starfm") else method
    return [read_raw(p).astype(np.int32) for p in fuse_method(name, series, dates, folder, 1e-4, METHODS[method],
                                                              device="cpu")]


@pytest.mark.skipif(BLOCKED or not torch_importable(), reason="compares with torch")
@pytest.mark.parametrize("method", METHODS)
def test_numpy_equals_torch_to_one_stored_unit(method, sample_on_fine_grid, cropped_sample, tmp_path, monkeypatch):
    """A calm and the flood date of the sample with the compiled kernels, and the flood date of a 96-pixel crop
    on the tensor path (no numba): the NumPy backend's values within one stored unit of torch's, the same
    nodata. (FSDAF's tensor path: as its own compiled and tensor paths, a few near-equal keys may rank differently
    in the k-smallest selection, test_fsdaf_zhu.py.)"""
    sample = sample_on_fine_grid
    flood = [d for d in sample.predict_dates if d.isoformat() == "2021-07-06"]
    assert flood
    cases = (("1", sample, [sample.predict_dates[0]] + flood), ("0", cropped_sample, flood))
    for compiled, series, dates in cases:
        monkeypatch.setenv("STF_COMPILED_KERNELS", compiled)
        out = {}
        for array_backend in ("torch", "numpy"):
            monkeypatch.setenv("STF_ARRAY_BACKEND", array_backend)
            out[array_backend] = _fuse(method, series, dates, str(tmp_path / f"{array_backend}{compiled}"))
        assert len(out["numpy"]) == len(dates)
        for a, b in zip(out["torch"], out["numpy"]):
            assert np.array_equal(a == -9999, b == -9999)
            close = np.abs(a - b)[a != -9999] <= 1
            assert close.mean() >= (0.999 if method == "fsdaf" and compiled == "0" else 1.0), close.mean()


def test_the_stand_in_follows_torch_where_the_methods_rely_on_it():
    """Hand-checked values of the stand-in's torch semantics: dim reductions, stable sort with indices, F.pad's
    order, gather, index_add_, in-place chains, and bicubic upsampling (a = -0.75, align_corners=False)."""
    from stf_fusion.core import arrays as xp

    t = xp.from_numpy(np.array([[3.0, 1.0, 1.0], [0.0, 5.0, 2.0]], np.float32))
    assert t.sum(dim=0).tolist() == [3.0, 6.0, 3.0] and t.amax(dim=1).tolist() == [3.0, 5.0]
    values, indices = t.sort(dim=1, stable=True)
    assert values.tolist() == [[1, 1, 3], [0, 2, 5]] and indices.tolist() == [[1, 2, 0], [0, 2, 1]]
    padded = xp.nn.functional.pad(t, (1, 0, 0, 2), value=9.0)  # last axis: 1 before; first axis: 2 after
    assert padded.shape == (4, 4) and padded[0].tolist() == [9, 3, 1, 1] and padded[3].tolist() == [9] * 4
    assert t.gather(1, xp.tensor([[2], [1]])).tolist() == [[1.0], [5.0]]
    acc = xp.zeros(3).index_add_(0, xp.tensor([0, 2, 0]), xp.tensor([1.0, 2.0, 3.0]))
    assert acc.tolist() == [4.0, 0.0, 2.0]
    chained = xp.sub(t, 2.0, out=xp.empty_like(t)).abs_().clamp_min_(0.5)
    assert chained.tolist() == [[1.0, 1.0, 1.0], [2.0, 3.0, 0.5]] and chained.dtype == np.float32
    assert t.flatten(0, 1).shape == (6,) and t[None].flatten(1).shape == (1, 6)
    # bicubic x2 of [0, 1]: outputs at x = -0.25, 0.25, 0.75, 1.25 input pixels, edge pixels repeated; Keys'
    # kernel with a = -0.75: near(d) = 1.25 d^3 - 2.25 d^2 + 1, far(d) = -0.75 d^3 + 3.75 d^2 - 6 d + 3
    up = xp.nn.functional.interpolate(xp.tensor([[[[0.0, 1.0]]]]), scale_factor=2, mode="bicubic",
                                      align_corners=False)
    near = lambda d: 1.25 * d ** 3 - 2.25 * d ** 2 + 1  # noqa: E731
    far = lambda d: -0.75 * d ** 3 + 3.75 * d ** 2 - 6 * d + 3  # noqa: E731
    first = far(1.25)  # only the tap on pixel 1 (at distance 1.25) holds a non-zero value
    second = near(0.75) + far(1.75)  # pixel 1 and its repeat beyond the edge
    assert up[0, 0, 0].tolist() == pytest.approx([first, second, 1 - second, 1 - first], abs=1e-6)
    assert first == pytest.approx(-0.10546875) and second == pytest.approx(0.2265625)  # what torch gives
