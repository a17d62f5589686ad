"""Test set-up: the plugin importable as ``stf_fusion`` (build/plugins/stf_fusion -> repository root), the
``stf`` provider registered on top of pytest-qgis, and small synthetic series made once per session."""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_DIR = os.path.join(ROOT, "build", "plugins")
PLUGIN_ID = "stf_fusion"
os.makedirs(PLUGIN_DIR, exist_ok=True)
if not os.path.islink(os.path.join(PLUGIN_DIR, PLUGIN_ID)):
    os.symlink(os.path.join("..", ".."), os.path.join(PLUGIN_DIR, PLUGIN_ID))
if PLUGIN_DIR not in sys.path:
    sys.path.insert(0, PLUGIN_DIR)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if os.environ.get("STF_BLOCK_TORCH") == "1":  # the classic methods' tests as a user without PyTorch runs them

    class _NoTorch:
        """`import torch` (and any torch.*) raises ModuleNotFoundError, as where it is not installed
        (tests/test_without_torch.py); sys.modules keeps no entry, as there."""

        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named '{name}' (blocked: STF_BLOCK_TORCH=1)", name=name)
            return None

    sys.meta_path.insert(0, _NoTorch())

from stf_fusion.core.synthetic import SampleSeriesConfig, make_sample_series  # noqa: E402

SMALL = SampleSeriesConfig(size=64, factor=16, n_dates=6, pair_indices=(0, 5), flood_indices=(3,), seed=7)


@pytest.fixture(scope="session")
def small_series(tmp_path_factory):
    """A 64 x 64 series: 6 dates, pairs on the first and last, coarse on a 4 x 4 grid."""
    return make_sample_series(str(tmp_path_factory.mktemp("small_series")), SMALL)


SAMPLE = os.path.join(ROOT, "resources", "sample")


@pytest.fixture(scope="session")
def sample_on_fine_grid(tmp_path_factory):
    """The bundled sample series with its coarse images resampled onto the fine grid (bicubic)."""
    import glob

    from stf_fusion.core.raster import OutputTransaction
    from stf_fusion.core.series import build_series, resample_series

    folder = tmp_path_factory.mktemp("sample_fine_grid")
    fine = sorted(glob.glob(os.path.join(SAMPLE, "fine", "*.tif")))
    series = build_series(fine, sorted(glob.glob(os.path.join(SAMPLE, "coarse", "*.tif"))))
    with OutputTransaction() as tx:
        resample_series(series, str(folder / "coarse"), "bicubic", tx)
    return build_series(fine, sorted(str(p) for p in (folder / "coarse").iterdir()))


@pytest.fixture
def work(sample_on_fine_grid, tmp_path):
    """A copy of the sample series (fine + coarse on the fine grid) in tmp_path/w."""
    import shutil

    w = tmp_path / "w"
    w.mkdir()
    fine = [shutil.copy(f.path, w) for f in sample_on_fine_grid.fine]
    coarse = [shutil.copy(c.path, w) for c in sample_on_fine_grid.coarse]
    return w, fine, coarse


@pytest.fixture(scope="session")
def provider(qgis_processing):
    """The ``stf`` provider, registered once; the reference is kept so Python does not delete it."""
    from qgis.core import QgsApplication

    from stf_fusion.stf_plugin.provider import StfProvider

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("stf")
    if existing is not None:
        return existing
    instance = StfProvider()
    assert registry.addProvider(instance)
    return instance


def files_in(folder) -> list[str]:
    """Every file under ``folder`` (hidden temporaries included), relative names, sorted."""
    found = []
    for base, _dirs, names in os.walk(folder):
        found += [os.path.relpath(os.path.join(base, n), folder) for n in names]
    return sorted(found)


@pytest.fixture(scope="session")
def default_models(tmp_path_factory, sample_on_fine_grid):
    """Each deep method trained on the bundled sample with its DEFAULT settings, and its EPOCHS=0 model (the
    untrained start): {method: {"trained": path, "untrained": path, "meta": metadata}}. Trained once per session
    (about a minute on 2 CPU cores) and shared by the quality, round-trip and tiling tests."""
    from stf_fusion.core.deep.api import write_model
    from stf_fusion.core.deep.dcnn import DcnnParams, train_dcnn
    from stf_fusion.core.deep.dcstfn import DcstfnParams, train_dcstfn
    from stf_fusion.core.deep.refine import RefineParams, train_refine
    from stf_fusion.core.deep.stf3dcnn import Stf3dcnnParams, train_stf3dcnn
    from stf_fusion.core.deep.stfdcnn import StfdcnnParams, train_stfdcnn
    from stf_fusion.core.raster import OutputTransaction

    series = sample_on_fine_grid
    folder = tmp_path_factory.mktemp("default_models")
    trainers = {
        "stfdcnn": lambda p: train_stfdcnn(series, None, 1e-4, p, "cpu"),
        "dcnn": lambda p: train_dcnn(series, None, 1e-4, p, "cpu"),
        "stf3dcnn": lambda p: train_stf3dcnn(series, 1e-4, p, "cpu"),
        "dcstfn": lambda p: train_dcstfn(series, None, 1e-4, p, "cpu"),
        "refine": lambda p: train_refine(series, None, 1e-4, p, "cpu"),
    }
    params = {"stfdcnn": StfdcnnParams, "dcnn": DcnnParams, "stf3dcnn": Stf3dcnnParams, "dcstfn": DcstfnParams,
              "refine": RefineParams}
    models = {}
    for method, trainer in trainers.items():
        models[method] = {}
        for kind, settings in (("trained", params[method]()), ("untrained", params[method](epochs=0))):
            networks, meta = trainer(settings)
            with OutputTransaction() as tx:
                path, _, _ = write_model(str(folder / f"{method}_{kind}.stfmodel"), method, networks, meta, tx)
            models[method][kind] = path
            if kind == "trained":
                models[method]["meta"] = meta
    return models


# --- a reliable exit status -------------------------------------------------------------------------------------
# After every test has run and pytest has printed its summary, tearing down QGIS / Qt (pytest-qgis's exitQgis and
# the interpreter's destructors, with torch's threads alive) sometimes crashes with a segmentation fault (about one
# run in three on a fresh machine), turning a green run into exit 139. The session's result is known at
# pytest_sessionfinish (the cache and the reports are written there), so the process ends with that status before
# the teardown. STF_PYTEST_SOFT_EXIT=1 keeps the normal teardown (to debug it).
_SESSION = {}


def pytest_sessionfinish(session, exitstatus):
    _SESSION["status"] = int(exitstatus)


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    if "status" in _SESSION and os.environ.get("STF_PYTEST_SOFT_EXIT") != "1":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_SESSION["status"])
