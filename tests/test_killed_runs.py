"""Killed runs leave nothing behind (issue 13, item 3): SIGTERM is a cancel (every output rolled back, exit 1
with a message); after SIGKILL the hidden temporaries, named with the dead process's id, are removed by the next
run into the same folder; a backup of a replaced file is put back if its original is missing."""
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, files_in

from stf_fusion.core.raster import OutputTransaction, clean_stale, scratch_name

QGIS_PROCESS = os.path.join(ROOT, "scripts", "qgis_process")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_run_removes_what_a_dead_process_left(tmp_path):
    pid = dead_pid()
    mine = scratch_name("estarfm_2021-05-03.tif", "partial")
    left = [f".starfm_2021-05-03.partial-{pid}-0a1b2c3d.tif", f".fsdaf.scratch-{pid}-x_9abcde",
            f".starfm_2021-05-03.partial-{pid}-0a1b2c3d.tif.aux.xml",  # GDAL's side-car of the partial file
            f".starfm_2021-05-03.partial-{pid}-1b2c3d4e.qml"]  # the style beside it
    (tmp_path / left[2]).write_text("<PAMDataset/>")
    (tmp_path / left[3]).write_text("<qgis/>")
    (tmp_path / left[0]).write_bytes(b"half a raster")
    (tmp_path / left[1]).mkdir()
    (tmp_path / left[1] / "change.tif").write_bytes(b"scratch")
    (tmp_path / f".kept.tif.replaced-{pid}-0a1b2c3d").write_text("the user's file")  # its original is gone
    (tmp_path / f".kept.tif.replaced-{pid}-0a1b2c3d.aux.xml").write_text("<PAMDataset/>")  # not a backup: removed
    (tmp_path / "other.tif").write_text("new")
    (tmp_path / f".other.tif.replaced-{pid}-0a1b2c3d").write_text("old")  # committed: the backup is stale
    (tmp_path / mine).write_bytes(b"this process is alive: not touched")
    (tmp_path / "user.tif").write_text("not ours")
    with OutputTransaction() as tx:
        open(tx.add(str(tmp_path / "result.txt")), "w").write("done")
    assert files_in(tmp_path) == sorted([mine, "kept.tif", "other.tif", "result.txt", "user.tif"])
    assert (tmp_path / "kept.tif").read_text() == "the user's file" and (tmp_path / "other.tif").read_text() == "new"
    assert clean_stale(str(tmp_path)) == []


def _start_estarfm(series, out, tmp_path):
    # the torch path: the compiled kernel finishes the sample in about 2 s, before the signal could arrive
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"), STF_COMPILED_KERNELS="0")
    args = [f"FINE={f.path}" for f in series.fine] + [f"COARSE={c.path}" for c in series.coarse]
    return subprocess.Popen([QGIS_PROCESS, "run", "stf:fuse_estarfm", "--", *args, "DEVICE=cpu",
                             f"OUTPUT_FOLDER={out}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _wait_for_partial(process, out, limit=120.0):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if out.exists() and any(".partial-" in f for f in files_in(out)):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.2)
    return False


@pytest.mark.skipif(not os.path.exists("/usr/bin/qgis_process.bin"), reason="qgis_process not installed")
def test_sigterm_rolls_back_and_sigkill_leftovers_go_with_the_next_run(sample_on_fine_grid, tmp_path):
    out = tmp_path / "out"
    run = _start_estarfm(sample_on_fine_grid, out, tmp_path)
    assert _wait_for_partial(run, out), run.communicate()
    os.killpg(run.pid, signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode != 0 and "termination signal" in stderr
    assert files_in(out) == []  # rolled back like a cancel
    run = _start_estarfm(sample_on_fine_grid, out, tmp_path)
    assert _wait_for_partial(run, out), run.communicate()
    os.killpg(run.pid, signal.SIGKILL)  # nothing can clean up after SIGKILL...
    run.communicate(timeout=60)
    assert any(".partial-" in f for f in files_in(out))
    with OutputTransaction() as tx:  # ...but the next run into the folder does
        open(tx.add(str(out / "next.txt")), "w").write("next run")
    assert files_in(out) == ["next.txt"]


def _hold_lock(path):
    """A process that holds ``path``'s flock (as a run on another host or in another PID namespace would, through
    NFS) until its stdin closes."""
    code = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('ready', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "ready"
    return holder


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_live_runs_lock_protects_its_temporaries_whatever_its_pid_says(tmp_path):
    """Issue 27: runs on hosts or in containers that do not share a PID namespace. A temporary whose owner's pid
    means nothing here (dead here; another host's process) is kept while the owner's lock is held; a killed
    container run's (pid 1, alive here as init) is removed once its lock is free."""
    elsewhere = f"{dead_pid()}x0123456789"
    kept = [f".fsdaf_2021-05-03.partial-{elsewhere}-0a1b2c3d.tif", f".auto.scratch-{elsewhere}-ab_cd123"]
    (tmp_path / kept[0]).write_bytes(b"being written on another node")
    (tmp_path / kept[1]).mkdir()
    (tmp_path / kept[1] / "change.tif").write_bytes(b"scratch")
    holder = _hold_lock(tmp_path / f".stf-lock-{elsewhere}")
    container = "1xabcdefabcd"  # every run in a container is pid 1; this one was killed: no lock, or a free one
    left = [f".starfm_2021-05-03.partial-{container}-0a1b2c3d.tif"]
    (tmp_path / left[0]).write_bytes(b"half a raster")
    (tmp_path / f".stf-lock-{container}").write_bytes(b"")
    try:
        with OutputTransaction() as tx:
            open(tx.add(str(tmp_path / "result.txt")), "w").write("done")
        assert files_in(tmp_path) == sorted([kept[0], f"{kept[1]}/change.tif", f".stf-lock-{elsewhere}", "result.txt"])
    finally:
        holder.communicate("")
    assert sorted(os.path.basename(p) for p in clean_stale(str(tmp_path))) == sorted(kept)  # free now: dead
    assert files_in(tmp_path) == ["result.txt"]


def test_a_run_holds_its_lock_while_it_has_temporaries_and_leaves_none(tmp_path):
    from stf_fusion.core.raster import scratch_dir

    with scratch_dir("fsdaf", str(tmp_path)) as scratch, OutputTransaction() as tx:
        open(tx.add(str(tmp_path / "a.txt")), "w").write("a")
        locks = [f for f in os.listdir(tmp_path) if f.startswith(".stf-lock-")]
        assert len(locks) == 1 and os.path.isdir(scratch)
        probe = subprocess.run([sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
                                "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", str(tmp_path / locks[0])],
                               capture_output=True)
        assert probe.returncode != 0  # held: another process cannot take it
    assert files_in(tmp_path) == ["a.txt"]


def test_outputs_with_long_legal_names(tmp_path):
    """Issue 27: a 240-250 byte output name (legal) failed: its temporary passed 255 bytes. Temporaries are
    shortened; writing, replacing and a killed run's leftovers all work."""
    name = "p" * 236 + "_2021-05-03.tif"  # 251 bytes
    for content in ("first", "second"):  # the second run replaces the file (its backup is shortened too)
        with OutputTransaction() as tx:
            temp = tx.add(str(tmp_path / name))
            assert len(os.path.basename(temp).encode()) <= 255
            open(temp, "w").write(content)
    assert files_in(tmp_path) == [name] and (tmp_path / name).read_text() == "second"
    from stf_fusion.core.raster import final_name

    with OutputTransaction() as tx:
        temp = tx.add(str(tmp_path / name))
        assert final_name(temp) == str(tmp_path / name)  # messages name the output, not the shortened temporary
        tx.rollback()
