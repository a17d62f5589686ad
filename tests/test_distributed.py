"""SCHEDULER with the real engine: a `dask scheduler` and two `dask worker` processes on loopback (and `local:2`).

Every method must write the same files as in this process, byte for byte; a worker killed during a run must not
change the result; an input error raised in a task fails the whole run with its message and commits nothing;
cancel leaves nothing."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import PLUGIN_DIR, files_in

pytest.importorskip("distributed")

from stf_fusion.core.errors import CancelledError, InputError  # noqa: E402
from stf_fusion.core.executor import parse_scheduler, scheduler_scope  # noqa: E402


def _digests(files: list[str]) -> list[str]:
    return [hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``dask scheduler`` + two ``dask worker`` processes (1 thread each, with nannies) on 127.0.0.1; yields
    the scheduler's address and a function returning the workers' process ids."""
    folder = tmp_path_factory.mktemp("dask")
    file = str(folder / "scheduler.json")
    env = {**os.environ, "PYTHONPATH": PLUGIN_DIR + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen(command + ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                         "--scheduler-file", file], cwd=folder, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    deadline = time.time() + 60
    while not os.path.exists(file) and time.time() < deadline:
        time.sleep(0.2)
    procs += [subprocess.Popen(command + ["worker", "--scheduler-file", file, "--nthreads", "1", "--no-dashboard"],
                               cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for _ in range(2)]
    with open(file, encoding="utf-8") as fh:
        address = json.load(fh)["address"]
    from distributed import Client

    client = Client(address, timeout=60, set_as_default=False)
    client.wait_for_workers(2, timeout=120)

    def worker_pids() -> dict:
        return client.run(os.getpid)

    try:
        yield address, worker_pids
    finally:
        client.close()
        for proc in procs[::-1]:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _methods(series, models):
    """Every method with its default settings (small tiles, so that a run has several tile jobs)."""
    from stf_fusion.core.classic.estarfm import EstarfmParams, fuse_estarfm
    from stf_fusion.core.classic.fsdaf import FsdafParams, fuse_fsdaf
    from stf_fusion.core.classic.starfm import StarfmParams, fuse_starfm
    from stf_fusion.core.deep.api import predict_with_model
    from stf_fusion.core.naive import fuse_additive, fuse_naive

    dates = series.predict_dates
    runs = {
        "naive": lambda out: fuse_naive(series, dates, out),
        "additive": lambda out: fuse_additive(series, dates, out),
        "starfm": lambda out: fuse_starfm(series, dates, out, params=StarfmParams(tile_size=64), device="cpu"),
        "estarfm": lambda out: fuse_estarfm(series, dates, out, params=EstarfmParams(tile_size=96), device="cpu"),
        "fsdaf": lambda out: fuse_fsdaf(series, dates, out, params=FsdafParams(tile_size=96, block=4), device="cpu"),
    }
    for method in ("stfdcnn", "stf3dcnn", "dcnn"):
        runs[method] = lambda out, m=method: predict_with_model(models[m]["trained"], series, dates, out, 1e-4, "cpu")
    return runs


METHODS = ["naive", "additive", "starfm", "estarfm", "fsdaf", "stfdcnn", "stf3dcnn", "dcnn"]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_identical_on_a_real_scheduler(method, cluster, sample_on_fine_grid, default_models, tmp_path):
    address, _ = cluster
    run = _methods(sample_on_fine_grid, default_models)[method]
    here = run(str(tmp_path / "here"))
    with scheduler_scope(address):
        there = run(str(tmp_path / "there"))
    assert len(here) == len(sample_on_fine_grid.predict_dates) == len(there)
    assert [os.path.basename(f) for f in here] == [os.path.basename(f) for f in there]
    assert _digests(here) == _digests(there), f"{method}: the cluster's files differ from this process's"


def test_local_workers_identical_to_this_process(sample_on_fine_grid, default_models, tmp_path):
    """local:2 (a LocalCluster started for the run) for STARFM and a deep prediction, several tiles each."""
    runs = _methods(sample_on_fine_grid, default_models)
    for method in ("starfm", "stfdcnn"):
        here = runs[method](str(tmp_path / f"{method}_here"))
        with scheduler_scope("local:2"):
            there = runs[method](str(tmp_path / f"{method}_there"))
        assert _digests(here) == _digests(there), method


def test_a_killed_worker_does_not_change_the_result(cluster, sample_on_fine_grid, tmp_path):
    """SIGKILL one worker process after the first tile came back: its tasks are recomputed (its nanny starts a
    new worker) and the files are those of this process."""
    from stf_fusion.core.classic.starfm import StarfmParams, fuse_starfm

    address, worker_pids = cluster
    series = sample_on_fine_grid
    params = StarfmParams(tile_size=32)  # 64 tiles: many are in flight or waiting when the worker dies
    here = fuse_starfm(series, series.predict_dates, str(tmp_path / "here"), params=params, device="cpu")
    killed = []

    class KillOnce:
        def set_progress(self, percent: float) -> None:
            if not killed and 0 < percent < 50:
                pid = sorted(worker_pids().values())[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        def is_canceled(self) -> bool:
            return False

        def info(self, message: str) -> None:
            pass

    with scheduler_scope(address):
        there = fuse_starfm(series, series.predict_dates, str(tmp_path / "there"), params=params, device="cpu",
                            feedback=KillOnce())
    assert killed, "no worker was killed: the run ended before any progress"
    assert killed[0] not in worker_pids().values()
    assert _digests(here) == _digests(there)


def test_an_input_error_in_a_task_fails_the_run_and_commits_nothing(cluster, sample_on_fine_grid, tmp_path):
    from stf_fusion.core.fusion import write_predictions

    address, _ = cluster
    series = sample_on_fine_grid

    def predict(date, tile):  # sent to the workers by value (cloudpickle)
        from stf_fusion.core.errors import InputError as WorkerInputError
        from stf_fusion.core.series import read_item

        if tile.index == 5:
            raise WorkerInputError(f"tile {tile.index}: the coarse image 'x.tif' cannot be read")
        return read_item(series.nearest_pair(date), tile.inner, 1e-4)

    with scheduler_scope(address), pytest.raises(InputError, match="tile 5: the coarse image 'x.tif'"):
        write_predictions(series, series.predict_dates, "failing", str(tmp_path / "out"), predict, 1e-4,
                          tile_size=32)
    assert files_in(tmp_path / "out") == []


def test_cancel_cancels_the_futures_and_leaves_nothing(cluster, sample_on_fine_grid, tmp_path):
    from stf_fusion.core.classic.starfm import StarfmParams, fuse_starfm

    address, _ = cluster
    series = sample_on_fine_grid

    class CancelAfterFirstTile:
        progress = 0.0

        def set_progress(self, percent: float) -> None:
            self.progress = percent

        def is_canceled(self) -> bool:
            return self.progress > 0

        def info(self, message: str) -> None:
            pass

    with scheduler_scope(address), pytest.raises(CancelledError):
        fuse_starfm(series, series.predict_dates, str(tmp_path / "out"), params=StarfmParams(tile_size=32),
                    device="cpu", feedback=CancelAfterFirstTile())
    assert files_in(tmp_path / "out") == []


def test_scheduler_values():
    assert parse_scheduler("") == ("inprocess", None)
    assert parse_scheduler("local:3") == ("local", min(3, os.cpu_count()))
    assert parse_scheduler("local:999") == ("local", os.cpu_count())  # capped at the core count
    assert parse_scheduler("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    assert parse_scheduler("10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    for bad in ("local:0", "local:two", "tcp://host", "cluster"):
        with pytest.raises(InputError, match="SCHEDULER"):
            parse_scheduler(bad)


def test_unreachable_scheduler_is_a_clear_error(sample_on_fine_grid, tmp_path):
    from stf_fusion.core.naive import fuse_naive

    with scheduler_scope("tcp://127.0.0.1:9"), pytest.raises(InputError, match="Cannot reach the Dask scheduler"):
        fuse_naive(sample_on_fine_grid, sample_on_fine_grid.predict_dates, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out") or files_in(tmp_path / "out") == []


def test_without_dask_the_message_says_how_to_install_it(monkeypatch, sample_on_fine_grid, tmp_path):
    from stf_fusion.core.errors import MissingDependencyError
    from stf_fusion.core.naive import fuse_naive

    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails
    with scheduler_scope("local:2"), pytest.raises(MissingDependencyError, match="pip install"):
        fuse_naive(sample_on_fine_grid, sample_on_fine_grid.predict_dates, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out") or files_in(tmp_path / "out") == []
    with scheduler_scope(""):  # in this process dask is never imported
        assert len(fuse_naive(sample_on_fine_grid, sample_on_fine_grid.predict_dates, str(tmp_path / "o2"))) == 7
