"""The command line without QGIS (python -m stf_fusion): end to end with qgis unimportable, the same parameters
and the same files as the Processing algorithms, exit status 0 / 1 / 2."""
from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys

import pytest

from conftest import PLUGIN_DIR

# the plain venv Python with `import qgis` made to fail, then the package's __main__ as `python -m` runs it
NO_QGIS = ("import runpy, sys; sys.modules['qgis'] = None; sys.argv = ['stf_fusion'] + sys.argv[1:]; "
           "runpy.run_module('stf_fusion', run_name='__main__', alter_sys=True)")


def stf(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": PLUGIN_DIR, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ["HOME"]}
    return subprocess.run([sys.executable, "-c", NO_QGIS, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def _sha(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_fusion_end_to_end_without_qgis(tmp_path, provider):
    """make_sample_series -> resample_coarse -> fuse_starfm -> evaluate on the command line; the predictions are
    byte-identical to those of the Processing algorithm given the same parameters."""
    import processing

    sample = tmp_path / "sample"
    result = stf("make-sample", "--SIZE", "64", "--N_DATES", "5", "--PAIRS", "0,4", "--FLOOD", "2",
                 f"--OUTPUT_FOLDER={sample}")
    assert result.returncode == 0, result.stderr
    fine = sorted(glob.glob(str(sample / "fine" / "*.tif")))
    coarse = sorted(glob.glob(str(sample / "coarse" / "*.tif")))
    result = stf("resample", "--COARSE", *coarse, "--REFERENCE", fine[0], "--OUTPUT_FOLDER", str(tmp_path / "c"))
    assert result.returncode == 0, result.stderr
    resampled = sorted(glob.glob(str(tmp_path / "c" / "*.tif")))
    assert len(resampled) == 5
    result = stf("fuse_starfm", "--FINE", *fine, "--COARSE", *resampled, "--WINDOW=15",
                 f"--OUTPUT_FOLDER={tmp_path / 'cli'}", "--json")
    assert result.returncode == 0, result.stderr
    assert "STARFM on CPU" in result.stderr and "100 %" in result.stderr  # progress and messages on the terminal
    import json

    files = json.loads(result.stdout)["OUTPUT_FILES"]
    assert [os.path.basename(f) for f in files] == [f"starfm_{d}.tif" for d in
                                                   ("2021-04-17", "2021-05-03", "2021-05-19")]
    qgis_files = processing.run("stf:fuse_starfm", {"FINE": fine, "COARSE": resampled, "WINDOW": 15,
                                                    "OUTPUT_FOLDER": str(tmp_path / "qgis")})["OUTPUT_FILES"]
    assert [_sha(f) for f in files] == [_sha(f) for f in qgis_files]
    truth = [str(sample / "truth" / os.path.basename(f).replace("starfm", "truth")) for f in files]
    result = stf("evaluate", "--PREDICTIONS", *files, "--REFERENCES", *truth,
                 f"--OUTPUT_CSV={tmp_path / 'metrics.csv'}")
    assert result.returncode == 0, result.stderr
    assert "starfm: RMSE" in result.stderr and os.path.isfile(tmp_path / "metrics.csv")


def test_input_errors_exit_1_with_the_file_named_and_no_traceback(tmp_path, sample_on_fine_grid):
    text = tmp_path / "fine_2021-04-01.tif"
    text.write_text("not a raster")
    coarse = [c.path for c in sample_on_fine_grid.coarse]
    result = stf("fuse_naive", "--FINE", str(text), "--COARSE", *coarse, "--OUTPUT_FOLDER", str(tmp_path / "o"))
    assert result.returncode == 1
    assert "fine_2021-04-01.tif" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists() or os.listdir(tmp_path / "o") == []
    for args in (("fuse_starfm", "--WINDOW", "2"), ("fuse_starfm", "--SCHEDULER", "nowhere"), ("no_such_method",),
                 ("fuse_naive",)):
        fine = [f.path for f in sample_on_fine_grid.fine]
        full = (list(args) + ["--FINE", *fine, "--COARSE", *coarse, "--OUTPUT_FOLDER", str(tmp_path / "p")]
                if args[0] != "no_such_method" and len(args) > 1 else list(args))
        result = stf(*full)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr, args


def test_an_internal_error_exits_2_with_the_traceback(monkeypatch, capsys, sample_on_fine_grid, tmp_path):
    from stf_fusion.core import catalog, cli

    def broken(spec, values, feedback):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(catalog, "execute", broken)
    status = cli.main(["fuse_naive", "--FINE", *[f.path for f in sample_on_fine_grid.fine], "--COARSE",
                       *[c.path for c in sample_on_fine_grid.coarse], "--OUTPUT_FOLDER", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and "ZeroDivisionError" in err and "internal error" in err


def test_one_source_of_truth_for_parameters(provider):
    """Every Processing algorithm and every command-line sub-command has the catalog's parameters, with the same
    names, defaults and flags."""
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition

    from stf_fusion.core import catalog, cli

    parser = cli.build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "algorithm").choices
    registry = QgsApplication.processingRegistry()
    for spec in catalog.specs():
        alg = registry.algorithmById(f"stf:{spec.id}")
        assert alg is not None, spec.id
        assert [d.name() for d in alg.parameterDefinitions()] == [p.name for p in spec.params]
        options = {a.dest: a for a in subcommands[spec.id]._actions}
        for p in spec.params:
            definition = alg.parameterDefinition(p.name)
            advanced = bool(definition.flags() & QgsProcessingParameterDefinition.FlagAdvanced)
            assert advanced == p.advanced and definition.help() == p.full_help, (spec.id, p.name)
            if p.kind in ("int", "float", "bool", "enum") and p.default is not None:
                assert definition.defaultValue() == p.default, (spec.id, p.name)
                assert options[p.name].default == p.default, (spec.id, p.name)
            assert p.name in options, (spec.id, p.name)
    fusion = [s.id for s in catalog.specs() if s.id.startswith("fuse_")] + ["predict"]
    assert all(catalog.spec(i).param("SCHEDULER") is not None for i in fusion)


@pytest.mark.parametrize("alias,alg_id", [("resample", "resample_coarse"), ("make-sample", "make_sample_series"),
                                          ("fuse-starfm", "fuse_starfm")])
def test_aliases(alias, alg_id):
    from stf_fusion.core import cli

    assert cli._spec_of(alias).id == alg_id


@pytest.mark.parametrize("args, match", [
    (["--MAX_NODATA", "nan"], "MAX_NODATA must be a finite number"),
    (["--OUTPUT_FOLDER", ""], "OUTPUT_FOLDER is empty"),
])
def test_nan_and_empty_destinations_are_refused(args, match, tmp_path):
    """Issue 27: NaN switched the nodata guard off, and an empty destination wrote into the current folder."""
    sample = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "sample")
    base = ["--FINE", os.path.join(sample, "fine", "fine_2021-04-01.tif"), "--COARSE",
            os.path.join(sample, "coarse", "coarse_2021-04-01.tif"), "--OUTPUT_FOLDER", str(tmp_path / "o")]
    run = stf("fuse_naive", *base, *args, cwd=str(tmp_path))
    assert run.returncode == 1 and match in run.stderr and "Traceback" not in run.stderr
    assert sorted(os.listdir(tmp_path)) == []  # nothing written, not even into the current folder
