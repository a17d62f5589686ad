"""Nothing lost, nothing silent, round 2 (issue 27): each case found from outside, with its relatives. Every
refusal: a clear error naming the file, inputs byte-identical, nothing written."""
import os
import shutil
import subprocess
import sys

import pytest
from conftest import files_in
from helpers import crop_series
from test_bad_inputs import run_refused, snapshot

from stf_fusion.core.errors import InputError
from stf_fusion.core.raster import OutputTransaction, protect_inputs


def test_a_file_behind_a_vrt_input_is_protected(provider, work):
    """A VRT input whose source file lies in OUTPUT_FOLDER under an output's name: the prediction would have
    replaced the file behind the VRT."""
    from osgeo import gdal

    w, fine, coarse = work
    out = w.parent / "out"
    out.mkdir()
    hidden = out / "naive_2021-06-04.tif"  # the name stf:fuse_naive would write for that date
    shutil.move(fine[1], hidden)
    vrt = str(w / "fine_2021-06-04.vrt")
    gdal.Translate(vrt, str(hidden), format="VRT")
    inputs = [fine[0], vrt, fine[2]] + coarse
    run_refused("stf:fuse_naive", {"FINE": [fine[0], vrt, fine[2]], "COARSE": coarse, "PREDICT_DATES": "2021-06-04",
                                   "OUTPUT_FOLDER": str(out)}, inputs + [str(hidden)], out,
                match="naive_2021-06-04.tif.*read through.*fine_2021-06-04.vrt")


def test_an_input_named_like_an_outputs_side_car_is_not_deleted(provider, work):
    """The commit removes an output's stale ``.aux.xml`` side-car: a coarse input named so was deleted."""
    w, fine, coarse = work
    out = w.parent / "out"
    out.mkdir()
    odd = out / "naive_2021-05-03.tif.aux.xml"  # a GeoTIFF, oddly named
    shutil.copy(coarse[2], odd)
    coarse = coarse[:2] + [str(odd)] + coarse[3:]
    run_refused("stf:fuse_naive", {"FINE": fine, "COARSE": coarse, "PREDICT_DATES": "2021-05-03",
                                   "OUTPUT_FOLDER": str(out)}, fine + coarse, out, match="named like the side-car")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_outputs_and_inputs_must_be_regular_files(provider, work, tmp_path):
    """An output path that is a FIFO or a device was replaced by a regular file (as root, /dev/null); a FIFO named
    like a raster input blocked forever."""
    w, fine, coarse = work
    fifo = tmp_path / "table.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"), OutputTransaction() as tx:
        tx.add(str(fifo))
    with pytest.raises(InputError, match="not a regular file"), OutputTransaction() as tx:
        tx.add(os.devnull)
    assert os.path.exists(os.devnull) and not os.path.isfile(os.devnull)
    run_refused("stf:evaluate", {"PREDICTIONS": [fine[0]], "REFERENCES": [fine[0]], "OUTPUT_CSV": str(fifo)},
                fine[:1], w, match="not a regular file")
    pipe_input = tmp_path / "fine_2021-04-01.tif"
    os.mkfifo(pipe_input)
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from stf_fusion.core.raster import raster_info; "
            "from stf_fusion.core.errors import InputError\ntry:\n raster_info(sys.argv[1], 'fine')\n"
            "except InputError as e:\n print(e)")
    import stf_fusion

    plugins = os.path.dirname(os.path.dirname(stf_fusion.__file__))
    done = subprocess.run([sys.executable, "-c", code, str(pipe_input), plugins], capture_output=True, text=True,
                          timeout=60)  # it used to block here forever
    assert "is not a regular file" in done.stdout, done.stderr


def test_protection_reads_through_nested_vrts(tmp_path):
    from osgeo import gdal

    from stf_fusion.core.synthetic import SampleSeriesConfig, make_sample_series

    s = make_sample_series(str(tmp_path / "s"), SampleSeriesConfig(size=32, factor=8, n_dates=2, pair_indices=(0, 1),
                                                                     flood_indices=(), seed=1))
    inner = str(tmp_path / "inner.vrt")
    outer = str(tmp_path / "outer.vrt")
    gdal.Translate(inner, s.fine[0], format="VRT")
    gdal.Translate(outer, inner, format="VRT")
    before = snapshot([s.fine[0]])
    with protect_inputs([outer]), pytest.raises(InputError, match="read through"), OutputTransaction() as tx:
        open(tx.add(s.fine[0]), "w").write("replaced")
    assert snapshot([s.fine[0]]) == before and not [f for f in files_in(tmp_path / "s") if f.startswith(".")]


def test_a_vrt_with_a_raw_raster_band_is_refused(provider, work, tmp_path):
    """Security: a VRT raw raster band maps any readable file (here a secret) into the prediction."""
    w, fine, coarse = work
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"password=hunter2\n" * 4096)
    from osgeo import gdal

    ref = gdal.Open(fine[0])  # on the series' grid: without the check the secret would become a fine image
    srs, gt = ref.GetProjection(), ", ".join(repr(v) for v in ref.GetGeoTransform())
    raw = (f'<VRTDataset rasterXSize="192" rasterYSize="192"><SRS>{srs}</SRS><GeoTransform>{gt}</GeoTransform>'
           + "".join(f'<VRTRasterBand dataType="Int16" band="{b}" subClass="VRTRawRasterBand">'
                     f'<SourceFilename relativeToVRT="0">{secret}</SourceFilename><ImageOffset>0</ImageOffset>'
                     '<PixelOffset>2</PixelOffset><LineOffset>384</LineOffset></VRTRasterBand>'
                     for b in range(1, 7)) + "</VRTDataset>")
    vrt = w / "fine_2021-06-04.vrt"
    vrt.write_text(raw)
    out = tmp_path / "out"
    run_refused("stf:fuse_naive", {"FINE": [fine[0], str(vrt), fine[2]], "COARSE": coarse,
                                   "PREDICT_DATES": "2021-06-20", "OUTPUT_FOLDER": str(out)},
                fine + coarse + [str(vrt)], tmp_path, match="raw raster band")


# --- shared model files (people exchange .stfmodel files) --------------------------------------------------------
@pytest.fixture(scope="module")
def small_model(sample_on_fine_grid, tmp_path_factory):
    """An untrained DCNN model file of the sample (EPOCHS=0: seconds)."""
    from stf_fusion.core.deep.api import train_method, write_model
    from stf_fusion.core.deep.dcnn import DcnnParams

    networks, meta = train_method("dcnn", sample_on_fine_grid, 1e-4, DcnnParams(epochs=0), "cpu")
    with OutputTransaction() as tx:
        path, _, _ = write_model(str(tmp_path_factory.mktemp("model") / "dcnn.stfmodel"), "dcnn", networks, meta, tx)
    return path


def _rewrite(model, target, **entries):
    """A copy of ``model`` with entries replaced (bytes) or added."""
    import zipfile

    with zipfile.ZipFile(model) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename not in entries:
                dst.writestr(item.filename, src.read(item))
        for name, data in entries.items():
            dst.writestr(name, data)
    return str(target)


def _predict(model, series, folder):
    from stf_fusion.core.deep.api import predict_with_model

    return predict_with_model(model, series, series.predict_dates[:1], str(folder), 1e-4, "cpu")


def test_a_zip_bomb_model_is_refused_before_it_is_inflated(small_model, sample_on_fine_grid, tmp_path, monkeypatch):
    """A 6 MB .stfmodel that inflates to GBs was read into memory until the OOM killer ended the process."""
    from stf_fusion.core.deep import modelfile

    bomb = _rewrite(small_model, tmp_path / "bomb.stfmodel", **{"metadata.json": b" " * (80 * 2**20)})
    assert os.path.getsize(bomb) < 2 * 2**20  # small on disk
    with pytest.raises(InputError, match="declares 80 MB for metadata.json"):
        _predict(bomb, sample_on_fine_grid, tmp_path / "o")
    monkeypatch.setattr(modelfile, "WEIGHTS_LIMIT", 1000)  # the weights go through the same bound
    with pytest.raises(InputError, match="for weights.pt"):
        _predict(small_model, sample_on_fine_grid, tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name, change, match", [
    ("nested", lambda meta: "[" * 100000 + "]" * 100000, "nested too deeply"),
    ("pairs", lambda meta: {**meta, "training_pairs": 5}, "'training_pairs' must be a list of texts"),
    ("validation", lambda meta: {**meta, "validation": "good"}, "'validation' must be an object"),
    ("width", lambda meta: {**meta, "params": {**meta["params"], "hidden1": 60_000_000}},
     "weights of its DCNN network do not match its settings"),
])
def test_crafted_model_files_are_clear_errors(small_model, sample_on_fine_grid, tmp_path, name, change, match):
    """Deeply nested JSON (RecursionError), wrong types (KeyError, TypeError from the warnings), an architecture
    field that would build a network of gigabytes before the weights are checked: each a clear error."""
    import json
    import zipfile

    with zipfile.ZipFile(small_model) as archive:
        meta = json.loads(archive.read("metadata.json"))
    changed = change(meta)
    data = changed.encode() if isinstance(changed, str) else json.dumps(changed).encode()
    model = _rewrite(small_model, tmp_path / f"{name}.stfmodel", **{"metadata.json": data})
    with pytest.raises(InputError, match=match):
        _predict(model, sample_on_fine_grid, tmp_path / "o")
    assert not (tmp_path / "o").exists() or files_in(tmp_path / "o") == []


def test_a_validation_record_of_the_wrong_shape_gives_a_sentence():
    from stf_fusion.core.deep.validation import model_warnings

    for record in ({"beats": {"naive": False}, "naive_rmse": "x", "rmse": None}, {"beats": ["naive"]},
                   {"beats": {"bogus": False}}):
        assert model_warnings({"validation": record}) == [
            "Warning: this model's validation record is unreadable (damaged or edited file); its quality against "
            "the baselines is unknown."]


def test_a_dollar_in_a_file_name_does_not_break_the_report(provider, sample_on_fine_grid, tmp_path):
    """matplotlib read 'a$_^$b' as a (broken) formula: the report failed with exit 2."""
    import processing
    from conftest import SAMPLE

    reference = os.path.join(SAMPLE, "truth", "truth_2021-05-03.tif")
    prediction = tmp_path / "a$_^$b_2021-05-03.tif"
    shutil.copy(sample_on_fine_grid.fine[0].path, prediction)
    out = processing.run("stf:evaluate", {"PREDICTIONS": [str(prediction)], "REFERENCES": [reference],
                                          "OUTPUT_CSV": str(tmp_path / "e.csv"), "OUTPUT_HTML": str(tmp_path / "e.html")})
    assert os.path.isfile(out["OUTPUT_HTML"]) and "a$_^$b" in open(out["OUTPUT_HTML"], encoding="utf-8").read()


def test_evaluate_keeps_two_runs_with_the_same_file_names_apart(sample_on_fine_grid, tmp_path):
    """Two methods' (or runs') predictions sharing a file name in different folders were merged into one row."""
    from conftest import SAMPLE

    from stf_fusion.core.evaluation import evaluate_files

    reference = os.path.join(SAMPLE, "truth", "truth_2021-05-03.tif")
    paths = []
    for run, source in (("run_a", sample_on_fine_grid.fine[0].path), ("run_b", sample_on_fine_grid.fine[1].path)):
        os.makedirs(tmp_path / run)
        paths.append(shutil.copy(source, tmp_path / run / "starfm_2021-05-03.tif"))
    rows = [r for r in evaluate_files(paths, [reference], keep_details=False).rows if r["band"] == "all"]
    assert sorted(r["method"] for r in rows) == ["starfm (run_a)", "starfm (run_b)"]
    assert rows[0]["rmse"] != rows[1]["rmse"]
    with pytest.raises(InputError, match="given twice"):
        evaluate_files([paths[0], paths[0]], [reference], keep_details=False)


def test_bands_named_in_another_order_are_refused_by_fusion_and_evaluate(provider, work, tmp_path):
    """Coarse and fine images whose band names are a permutation of each other were fused by position."""
    from osgeo import gdal

    from conftest import SAMPLE
    from stf_fusion.core.evaluation import evaluate_files

    w, fine, coarse = work
    swapped = str(w / "coarse_2021-05-03.tif")
    original = str(shutil.copy(swapped, tmp_path / "original.tif"))
    os.remove(swapped)
    gdal.Translate(swapped, original, bandList=[3, 2, 1, 4, 5, 6])  # red and blue swapped, names kept with the data
    run_refused("stf:fuse_starfm", {"FINE": fine, "COARSE": coarse, "OUTPUT_FOLDER": str(tmp_path / "out")},
                fine + coarse, tmp_path, match="in another order")
    with pytest.raises(InputError, match="in another order"):
        evaluate_files([swapped], [os.path.join(SAMPLE, "truth", "truth_2021-05-03.tif")], keep_details=False)


def test_signed_byte_inputs_keep_their_sign(sample_on_fine_grid, tmp_path):
    """Signed int8 inputs (an index x 100) were written back as uint8: negative values became 0 or wrapped."""
    import numpy as np
    from osgeo import gdal

    from stf_fusion.core.fusion import fuse_method
    from stf_fusion.core.raster import RasterWriter, raster_info, read_block, read_raw
    from stf_fusion.core.series import build_series

    paths = {}
    for kind, items in (("fine", sample_on_fine_grid.fine), ("coarse", sample_on_fine_grid.coarse)):
        os.makedirs(tmp_path / kind)
        paths[kind] = []
        for item in items:
            values, ok = read_block(item.path, scale=1e-4)
            path = str(tmp_path / kind / os.path.basename(item.path))
            with RasterWriter(path, item.info, dtype="int8", scale=0.01) as writer:  # -0.3 .. 0.9: signed bytes
                writer.write(np.clip(values - 0.3, -1.2, 1.2), valid=ok)
            paths[kind].append(path)
    assert raster_info(paths["fine"][0]).dtype == "int8" and read_raw(paths["fine"][0]).min() < 0
    series = build_series(paths["fine"], paths["coarse"])
    date = series.predict_dates[0]
    for method in ("naive", "additive"):
        out = fuse_method(method, series, [date], str(tmp_path / method), 0.01)[0]
        assert raster_info(out).dtype == "int8" and gdal.Open(out).GetRasterBand(1).GetNoDataValue() == -128
        stored = read_raw(out)
        assert stored.min() < 0  # negative values kept
        if method == "naive":
            nearest = read_raw(series.nearest_pair(date).path)
            valid = nearest[0] != -128
            assert np.array_equal(stored[:, valid], nearest[:, valid])


def test_resampling_keeps_each_bands_nodata_and_real_zeros(tmp_path):
    """resample_coarse passed band 1's nodata to the warp (another band's nodata was interpolated into valid
    pixels) and declared nodata 0 on a uint16 source that had none (real zeros became holes)."""
    import numpy as np
    from osgeo import gdal, osr

    from stf_fusion.core.raster import OutputTransaction, raster_info, read_raw
    from stf_fusion.core.resample import resample_to_grid

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)

    def write(path, size, pixel, data, dtype, nodata):
        ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, data.shape[0], dtype)
        ds.SetGeoTransform((500000, pixel, 0, 4000000, 0, -pixel))
        ds.SetProjection(srs.ExportToWkt())
        for b in range(data.shape[0]):
            ds.GetRasterBand(b + 1).WriteArray(data[b])
            if nodata[b] is not None:
                ds.GetRasterBand(b + 1).SetNoDataValue(nodata[b])
        ds = None
        return raster_info(str(path))

    fine = write(tmp_path / "fine.tif", 16, 30, np.ones((2, 16, 16)), gdal.GDT_Int16, [-9999, -9999])
    coarse = np.full((2, 2, 2), 500.0)
    coarse[1, 0, 0] = 7  # band 2's nodata; band 1 is valid there
    src = tmp_path / "coarse.tif"
    write(src, 2, 240, coarse, gdal.GDT_Int16, [-9999, 7])
    with OutputTransaction() as tx:
        out = resample_to_grid(str(src), fine, tx.add(str(tmp_path / "on_fine.tif")), "bilinear")
    out = str(tmp_path / "on_fine.tif")
    values = read_raw(out)
    assert gdal.Open(out).GetRasterBand(2).GetNoDataValue() == 7
    assert set(np.unique(values[1]).tolist()) <= {7, 500}  # the hole stays a hole, never mixed into 500
    assert (values[0] == 500).all()
    zeros = np.zeros((1, 2, 2))
    zeros[0, 1, 1] = 1000
    src = tmp_path / "zeros.tif"
    write(src, 2, 240, zeros, gdal.GDT_UInt16, [None])  # real zeros, no nodata declared
    with OutputTransaction() as tx:
        resample_to_grid(str(src), fine, tx.add(str(tmp_path / "zeros_on_fine.tif")), "nearest")
    info = raster_info(str(tmp_path / "zeros_on_fine.tif"))
    assert info.nodata[0] not in (0, 1000) and (read_raw(info.path) == 0).sum() == 3 * 64


def test_dates_that_contradict_the_file_names_are_said(provider, work, tmp_path):
    from stf_fusion.core import catalog
    from stf_fusion.core.feedback import RecordingFeedback

    w, fine, coarse = work
    dates = ["2021-04-01", "2021-08-23", "2021-06-04"]  # the fine files' dates in another order
    dates += [os.path.basename(c)[7:17] for c in coarse]
    spec = catalog.spec("fuse_naive")
    values = {p.name: p.default for p in spec.params}
    values.update(FINE=fine, COARSE=coarse, DATES=",".join(dates), PREDICT_DATES="2021-05-03",
                  OUTPUT_FOLDER=str(tmp_path / "out"))
    feedback = RecordingFeedback()
    catalog.execute(spec, values, feedback)
    said = [line for line in feedback.lines if line.startswith("Warning: DATES gives")]
    assert len(said) == 2 and "fine_2021-06-04.tif', whose name says 2021-06-04" in said[0]


def test_a_sample_series_beyond_2100_is_refused_before_writing(provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="must lie in 1950-2100"):
        processing.run("stf:make_sample_series", {"START_DATE": "2100-12-01", "OUTPUT_FOLDER": str(tmp_path / "s")})
    assert not (tmp_path / "s").exists()


def test_a_write_error_while_closing_does_not_hide_the_first_one(tmp_path):
    """A full disk: the clear message was replaced by GDAL's RuntimeError from the writer's close (exit 2)."""
    import numpy as np

    from stf_fusion.core.errors import StfError
    from stf_fusion.core.raster import RasterWriter, grid_info

    like = grid_info("", 1, 4, 4, (0, 30, 0, 0, 0, -30), "", "int16")

    class FullDisk:
        def __init__(self, ds):
            self.ds = ds

        def GetRasterBand(self, i):  # noqa: N802
            return self.ds.GetRasterBand(i)

        def FlushCache(self):  # noqa: N802
            raise RuntimeError("No space left on device")

    with pytest.raises(StfError, match="No space left on device.*is the disk full"):
        with RasterWriter(str(tmp_path / "a.tif"), like, scale=1e-4) as writer:
            writer.ds = FullDisk(writer.ds)
            writer.write(np.zeros((1, 4, 4)))  # the first failure: its message, not the close's
    with pytest.raises(StfError, match="Writing .*b.tif' failed: No space left"):
        with RasterWriter(str(tmp_path / "b.tif"), like, scale=1e-4) as writer:
            writer.ds = FullDisk(writer.ds)  # fails only when closing


@pytest.mark.parametrize("method", ["stf3dcnn", "dcnn", "dcstfn", "stfdcnn", "stfsr"])
def test_training_on_a_one_pixel_scene_is_a_model_or_a_message(sample_on_fine_grid, tmp_path, method):
    """A 1 x 1 scene made train_stf3dcnn fail in conv3d (exit 2): every trainer either trains or says why."""
    from stf_fusion.core import catalog
    from stf_fusion.core.errors import StfError
    from stf_fusion.core.feedback import RecordingFeedback

    paths = crop_series(sample_on_fine_grid, str(tmp_path), 1)
    spec = catalog.spec(f"train_{method}")
    values = {p.name: p.default for p in spec.params}
    values.update(FINE=paths["fine"], COARSE=paths["coarse"], MODEL=str(tmp_path / "m.stfmodel"))
    if "EPOCHS" in values:
        values["EPOCHS"] = 1
    try:
        catalog.execute(spec, values, RecordingFeedback())
        assert os.path.isfile(tmp_path / "m.stfmodel")
    except StfError as exc:
        assert str(exc) and not (tmp_path / "m.stfmodel").exists()


def test_styles_are_committed_after_their_rasters(sample_on_fine_grid, tmp_path, monkeypatch):
    """Leftovers: a run killed while committing left .qml styles without their rasters, which no later run
    removes (they are final names). The styles are now committed last."""
    from stf_fusion.core import raster
    from stf_fusion.core.fusion import fuse_method

    order = []
    real = raster.OutputTransaction.commit

    def commit(self):
        order.extend(final for _, final in self._pending)
        return real(self)

    monkeypatch.setattr(raster.OutputTransaction, "commit", commit)
    fuse_method("naive", sample_on_fine_grid, sample_on_fine_grid.predict_dates[:3], str(tmp_path / "o"), 1e-4,
                rules="strict")
    styles = [i for i, p in enumerate(order) if p.endswith(".qml")]
    rasters = [i for i, p in enumerate(order) if p.endswith(".tif")]
    assert len(styles) == 3 and min(styles) > max(rasters)
