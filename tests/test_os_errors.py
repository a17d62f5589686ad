"""Operating-system errors are messages, not tracebacks (issue 13, item 7): a disk that cannot take the outputs
(here: a file-size limit, which fails writes as a full disk does) in fusion, in FSDAF's scratch files and in
training; a read-only file system while a failed commit is rolled back. Every case: exit 1, a message naming the
path and the problem, no traceback, nothing left in the output folder."""
import errno
import os
import subprocess

import pytest
from conftest import ROOT, files_in

from stf_fusion.core.errors import StfError
from stf_fusion.core.raster import OutputTransaction

QGIS_PROCESS = os.path.join(ROOT, "scripts", "qgis_process")
pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/qgis_process.bin"), reason="qgis_process not installed")


def _file_size_limit(limit: int):
    def apply():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def run_with_small_disk(tmp_path, alg, args, limit):
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"))
    subprocess.run([QGIS_PROCESS, "list"], env=env, capture_output=True, timeout=300)  # the profile, unlimited
    return subprocess.run([QGIS_PROCESS, "run", alg, "--", *args], env=env, capture_output=True, text=True,
                          timeout=300, preexec_fn=_file_size_limit(limit))


def series_args(series):
    return [f"FINE={f.path}" for f in series.fine] + [f"COARSE={c.path}" for c in series.coarse]


@pytest.mark.parametrize("alg,limit", [("fuse_additive", 64 * 1024), ("fuse_fsdaf", 8 * 1024)])
def test_a_full_disk_in_fusion_is_a_message_and_leaves_nothing(sample_on_fine_grid, tmp_path, alg, limit):
    out = tmp_path / "out"
    result = run_with_small_disk(tmp_path, f"stf:{alg}", series_args(sample_on_fine_grid) + [
        "PREDICT_DATES=2021-05-03", f"OUTPUT_FOLDER={out}"], limit)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"'{out}/{'additive_2021-05-03.tif' if alg == 'fuse_additive' else '.fsdaf.scratch-'}" in result.stderr
    assert "failed: " in result.stderr and "(is the disk full?)" in result.stderr
    assert files_in(out) == []


def test_a_full_disk_when_saving_a_model_is_a_message_and_leaves_nothing(sample_on_fine_grid, tmp_path):
    model = tmp_path / "m" / "dcnn.stfmodel"
    result = run_with_small_disk(tmp_path, "stf:train_dcnn", series_args(sample_on_fine_grid) + [
        "EPOCHS=0", f"MODEL={model}"], 4 * 1024)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"File too large while writing the model '{model}'" in result.stderr, result.stderr[-2000:]
    assert files_in(tmp_path / "m") == []


def test_a_read_only_file_system_during_the_rollback_is_a_message_that_says_where_the_file_is(tmp_path,
                                                                                               monkeypatch):
    """The second output cannot be renamed, and then the file system refuses to take the first back: the message
    says where the replaced file is kept, instead of a traceback from the rollback."""
    import stf_fusion.core.raster as raster

    (tmp_path / "a.txt").write_text("old a")
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) > 3:  # a.txt aside, a in place, b.txt aside; then everything fails
            raise OSError(errno.EROFS, "Read-only file system", dst)
        return real_replace(src, dst)

    monkeypatch.setattr(raster.os, "replace", replace)
    (tmp_path / "b.txt").write_text("old b")
    with pytest.raises(StfError, match="Read-only file system; and the folder could not be restored: "
                                       "'.*a.txt' is kept as '.*a.txt.replaced-"):
        with OutputTransaction() as tx:
            for name in ("a.txt", "b.txt"):
                open(tx.add(str(tmp_path / name)), "w").write(f"new {name}")
