"""Smoke test of the command line: qgis_process with the plugin enabled through QGIS_PLUGINPATH."""
import json
import os
import subprocess
import zipfile

import pytest
from conftest import ROOT, files_in

QGIS_PROCESS = os.path.join(ROOT, "scripts", "qgis_process")
pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/qgis_process.bin"), reason="qgis_process not installed")


def qgis_process(tmp_path, *args):
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"))
    return subprocess.run([QGIS_PROCESS, *args], capture_output=True, text=True, env=env, timeout=300)


def test_list_shows_the_algorithms(tmp_path):
    result = qgis_process(tmp_path, "list")
    assert result.returncode == 0, result.stderr
    assert "stf:resample_coarse" in result.stdout and "stf:make_sample_series" in result.stdout


def test_json_run_and_chain(tmp_path):
    out = tmp_path / "series"
    result = qgis_process(tmp_path, "--json", "run", "stf:make_sample_series", "--", f"OUTPUT_FOLDER={out}",
                          "SIZE=32", "N_DATES=3", "PAIRS=0,2", "FLOOD=1")
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)["results"]
    assert len(outputs["COARSE"]) == 3 and all(os.path.exists(p) for p in outputs["FINE"])
    args = [f"COARSE={p}" for p in outputs["COARSE"]]
    result = qgis_process(tmp_path, "--json", "run", "stf:resample_coarse", "--", *args,
                          f"REFERENCE={outputs['FINE'][0]}", "METHOD=bicubic", f"OUTPUT_FOLDER={tmp_path / 'res'}")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["results"]["OUTPUT_FILES"]) == 3


def test_bad_input_fails_with_the_message_and_no_output(tmp_path):
    out = tmp_path / "bad"
    result = qgis_process(tmp_path, "--json", "run", "stf:make_sample_series", "--", f"OUTPUT_FOLDER={out}",
                          "SIZE=40", "FACTOR=16")
    assert result.returncode == 1 and result.stdout.strip() == ""
    assert "must be a multiple of the coarse factor 16" in result.stderr
    assert not out.exists() or files_in(out) == []


def test_package_has_the_plugin_folder_at_the_top(tmp_path):
    target = tmp_path / "stf_fusion.zip"
    subprocess.run(["python3", os.path.join(ROOT, "scripts", "package.py"), "stf_fusion", str(target)], check=True,
                   capture_output=True)
    names = zipfile.ZipFile(target).namelist()
    assert {n.split("/")[0] for n in names} == {"stf_fusion"}
    for required in ("metadata.txt", "__init__.py", "stf_plugin/provider.py", "core/raster.py", "resources/icon.svg"):
        assert f"stf_fusion/{required}" in names
    assert not any("/tests/" in n or "__pycache__" in n for n in names)


def test_a_run_leaves_the_input_folder_as_it_was(tmp_path, sample_on_fine_grid):
    """No .aux.xml (statistics) or anything else appears beside the inputs."""
    import shutil

    inputs = tmp_path / "in"
    inputs.mkdir()
    fine = [shutil.copy(f.path, inputs) for f in sample_on_fine_grid.fine]
    coarse = [shutil.copy(c.path, inputs) for c in sample_on_fine_grid.coarse]
    before = files_in(inputs)
    result = qgis_process(tmp_path, "run", "stf:fuse_naive", "--", *[f"FINE={f}" for f in fine],
                          *[f"COARSE={c}" for c in coarse], "PREDICT_DATES=2021-05-03",
                          f"OUTPUT_FOLDER={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    assert files_in(inputs) == before


def test_a_text_file_named_tif_is_named_in_the_message(tmp_path, sample_on_fine_grid):
    """qgis_process itself still logs its "Unable to load mesh" while it tries the argument as a layer; the error
    the run ends with names the file."""
    text = tmp_path / "coarse_2021-05-03.tif"
    text.write_text("not a raster")
    result = qgis_process(tmp_path, "run", "stf:fuse_naive", "--",
                          *[f"FINE={f.path}" for f in sample_on_fine_grid.fine],
                          *[f"COARSE={c.path}" for c in sample_on_fine_grid.coarse if "05-03" not in c.path],
                          f"COARSE={text}", f"OUTPUT_FOLDER={tmp_path / 'out'}")
    assert result.returncode == 1
    assert f"The coarse file '{text}' cannot be read as a raster" in result.stderr.splitlines()[-1]


def test_package_passes_the_plugin_repositorys_validation_rules(tmp_path):
    """The rules plugins.qgis.org applies to an uploaded zip (issue 26): one top folder named as a Python package,
    metadata.txt with every mandatory field (version numbers, the QGIS range up to 4.99, an icon that exists), a
    licence, no compiled or hidden files, no binaries, every Python file valid, under the 25 MB upload limit."""
    import configparser
    import re

    target = tmp_path / "stf_fusion.zip"
    subprocess.run(["python3", os.path.join(ROOT, "scripts", "package.py"), "stf_fusion", str(target)], check=True,
                   capture_output=True)
    assert target.stat().st_size < 25 * 2**20
    archive = zipfile.ZipFile(target)
    names = archive.namelist()
    top = {n.split("/")[0] for n in names}
    assert len(top) == 1 and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", next(iter(top)))
    for name in names:
        parts = name.split("/")
        assert not any(p.startswith(".") for p in parts), name  # no hidden files (.git, .DS_Store ...)
        assert not name.endswith((".pyc", ".pyo", ".so", ".dll", ".dylib", ".exe")) and "__pycache__" not in name
        if name.endswith(".py"):
            compile(archive.read(name).decode("utf-8"), name, "exec")
    config = configparser.ConfigParser()
    config.read_string(archive.read("stf_fusion/metadata.txt").decode("utf-8"))
    meta = config["general"]
    for field in ("name", "qgisMinimumVersion", "qgisMaximumVersion", "description", "about", "version", "author",
                  "email", "repository", "tracker"):
        assert meta.get(field, "").strip(), field
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", meta["version"])
    low, high = (tuple(int(x) for x in meta[k].split(".")) for k in ("qgisMinimumVersion", "qgisMaximumVersion"))
    assert low <= (3, 22) and high >= (4, 0)
    assert f"stf_fusion/{meta['icon']}" in names and "stf_fusion/LICENSE" in names
    assert "\n" not in meta["description"].strip()


def test_local_workers_start_under_qgis_process_and_write_the_same_bytes(tmp_path, sample_on_fine_grid):
    """Issue 27: SCHEDULER=local:2 failed under qgis_process ("No module named '_csv'", "Nanny failed to
    start"): the embedded Python's sys.executable was another Python found on PATH. Workers now start with an
    interpreter checked to be this Python."""
    args = [f"FINE={f.path}" for f in sample_on_fine_grid.fine] + [f"COARSE={c.path}" for c in sample_on_fine_grid.coarse]
    args.append("PREDICT_DATES=2021-05-03")
    here = qgis_process(tmp_path, "run", "stf:fuse_starfm", "--", *args, f"OUTPUT_FOLDER={tmp_path / 'here'}")
    workers = qgis_process(tmp_path, "run", "stf:fuse_starfm", "--", *args, "SCHEDULER=local:2",
                           f"OUTPUT_FOLDER={tmp_path / 'workers'}")
    assert here.returncode == 0, here.stderr[-3000:]
    assert workers.returncode == 0, workers.stderr[-3000:]
    assert "Traceback" not in workers.stderr
    for name in ("starfm_2021-05-03.tif", "quality/starfm_2021-05-03_quality.tif"):
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "workers" / name).read_bytes(), name
