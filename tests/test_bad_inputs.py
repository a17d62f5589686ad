"""Nothing lost (issue 13, items 1-2): no output may replace an input, however the path leads to it (same name,
symbolic link to the folder, hard link), for any algorithm; an output that cannot be committed leaves the folder
as it was. Every case: a clear error naming the file, inputs byte-identical afterwards, no output written."""
import glob
import os
import shutil

import pytest
from conftest import files_in
from helpers import LogFeedback
from qgis.core import QgsProcessingException

from stf_fusion.core.errors import StfError
from stf_fusion.core.raster import OutputTransaction


def snapshot(paths):
    return {os.path.realpath(p): open(p, "rb").read() for p in paths}


def run_refused(alg, params, inputs, folder, match="is the input"):
    import processing

    before, listing = snapshot(inputs), files_in(folder)
    with pytest.raises(QgsProcessingException, match=match):
        processing.run(alg, params)
    assert snapshot(inputs) == before
    assert files_in(folder) == listing


def test_a_symbolic_link_to_the_input_folder_is_caught(provider, work):
    w, fine, coarse = work
    link = w.parent / "link"
    os.symlink(w, link)
    run_refused("stf:resample_coarse", {"COARSE": coarse[:2], "REFERENCE": fine[0], "METHOD": "bilinear",
                                        "OUTPUT_FOLDER": str(link)}, coarse + fine, w)


def test_a_prediction_named_like_its_fine_input_is_refused(provider, work):
    w, fine, coarse = work
    renamed = str(w / "naive_2021-04-01.tif")  # the output name of predicting 2021-04-01 in this folder
    os.replace(fine[0], renamed)
    fine[0] = renamed
    run_refused("stf:fuse_naive", {"FINE": fine, "COARSE": coarse, "PREDICT_DATES": "2021-04-01",
                                   "OUTPUT_FOLDER": str(w)}, fine + coarse, w)


def test_a_hard_link_to_an_input_is_refused(provider, work):
    w, fine, coarse = work
    out = w.parent / "out"
    out.mkdir()
    os.link(fine[0], out / "additive_2021-04-17.tif")
    run_refused("stf:fuse_additive", {"FINE": fine, "COARSE": coarse, "PREDICT_DATES": "2021-04-17",
                                      "OUTPUT_FOLDER": str(out)}, fine + coarse, out)


def test_evaluate_refuses_to_write_its_table_or_report_over_a_raster_it_reads(provider, work, tmp_path):
    import processing

    w, fine, coarse = work
    predictions = processing.run("stf:fuse_naive", {"FINE": fine, "COARSE": coarse, "PREDICT_DATES": "2021-05-03",
                                                    "OUTPUT_FOLDER": str(tmp_path / "p")})["OUTPUT_FILES"]
    truth = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "sample", "truth",
                         "truth_2021-05-03.tif")
    reference = shutil.copy(truth, tmp_path)
    run_refused("stf:evaluate", {"PREDICTIONS": predictions, "REFERENCES": [reference],
                                 "OUTPUT_CSV": predictions[0], "OUTPUT_HTML": str(tmp_path / "r.html")},
                predictions + [reference], tmp_path / "p")
    run_refused("stf:evaluate", {"PREDICTIONS": predictions, "REFERENCES": [reference],
                                 "OUTPUT_CSV": str(tmp_path / "t.csv"), "OUTPUT_HTML": reference},
                predictions + [reference], tmp_path / "p")
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "r.html").exists()


def test_arrange_series_refuses_to_write_over_a_coarse_input(provider, work):
    w, fine, coarse = work
    run_refused("stf:arrange_series", {"FINE": fine, "COARSE": coarse, "ORDER": "TSB", "OUTPUT_COARSE": coarse[1],
                                       "OUTPUT_FINE": str(w.parent / "fine4d.tif")}, fine + coarse, w)


def test_a_folder_at_an_output_name_fails_before_anything_is_committed(tmp_path):
    (tmp_path / "b.txt").mkdir()
    with pytest.raises(StfError, match="b.txt' is a folder"):
        with OutputTransaction() as tx:
            for name in ("a.txt", "b.txt", "c.txt"):
                open(tx.add(str(tmp_path / name)), "w").write(name)
    assert files_in(tmp_path) == []  # b.txt is a folder, not a file: nothing else was left


def test_a_failed_rename_restores_every_replaced_file(tmp_path, monkeypatch):
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(f"old {name}")
    real_replace = os.replace
    calls = []

    def failing(src, dst):
        calls.append((src, dst))
        if str(dst).endswith("b.txt") and ".partial-" in str(src):
            raise OSError(30, "Read-only file system", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(StfError, match="b.txt': Read-only file system; nothing was written"):
        with OutputTransaction() as tx:
            for name in ("a.txt", "b.txt"):
                open(tx.add(str(tmp_path / name)), "w").write(f"new {name}")
    assert (tmp_path / "a.txt").read_text() == "old a.txt" and (tmp_path / "b.txt").read_text() == "old b.txt"
    assert files_in(tmp_path) == ["a.txt", "b.txt"]


def test_scale_must_be_a_finite_positive_number(provider, work):
    """QGIS refuses 0, negative and infinite values of SCALE itself (below its minimum); NaN passes its check."""
    w, fine, coarse = work
    run_refused("stf:fuse_naive", {"FINE": fine, "COARSE": coarse, "SCALE": "nan",
                                   "OUTPUT_FOLDER": str(w.parent / "out")}, fine + coarse, w,
                match="SCALE must be a finite positive number")


def test_a_formula_like_name_is_not_a_formula_in_the_evaluation_table():
    from stf_fusion.core.evaluation import _fmt

    assert _fmt('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert [_fmt(v) for v in ("+1", "-1", "@SUM(A1)", "starfm")] == ["'+1", "'-1", "'@SUM(A1)", "starfm"]
    assert _fmt(-0.5) == "-0.5"  # numbers stay numbers


def test_a_model_with_non_finite_weights_is_never_saved(tmp_path):
    import torch

    from stf_fusion.core.deep.modelfile import save_model
    from stf_fusion.core.errors import InputError

    networks = {"dcnn": {"w": torch.tensor([1.0, float("nan")])}}
    with pytest.raises(InputError, match="non-finite weights"):
        with OutputTransaction() as tx:
            save_model(tx.add(str(tmp_path / "m.stfmodel")), "dcnn", networks, {})
    assert files_in(tmp_path) == []


def _crafted(model, target, metadata=None, weights=None):
    """A copy of ``model`` with its metadata.json and/or weights.pt replaced."""
    import json
    import zipfile

    with zipfile.ZipFile(model) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "metadata.json" and metadata is not None:
                data = json.dumps(metadata(json.loads(data))).encode()
            if item.filename == "weights.pt" and weights is not None:
                data = weights
            dst.writestr(item, data)
    return str(target)


def _edit(**changes):
    def apply(meta):
        for key, value in changes.items():
            if key.startswith("params."):
                meta["params"][key[7:]] = value
            else:
                meta[key] = value
        return meta
    return apply


@pytest.mark.parametrize("name, metadata, match", [
    ("list", lambda meta: [meta], "is not an object"),
    ("extra", _edit(**{"params.bogus": 1}), "unknown dcnn setting\\(s\\) bogus"),
    ("halo", _edit(halo=-5), "'halo' must be a non-negative integer, not -5"),
    ("type", _edit(**{"params.epochs": "many"}), "the setting 'epochs' is 'many', not a int"),
    ("method", _edit(method="stfdcnn"), "unknown stfdcnn setting"),
])
def test_crafted_model_metadata_is_a_clear_error(default_models, sample_on_fine_grid, tmp_path, name, metadata, match):
    from stf_fusion.core.deep.api import predict_with_model
    from stf_fusion.core.errors import InputError

    model = _crafted(default_models["dcnn"]["trained"], tmp_path / f"{name}.stfmodel", metadata=metadata)
    with pytest.raises(InputError, match=match):
        predict_with_model(model, sample_on_fine_grid, sample_on_fine_grid.predict_dates[:1], str(tmp_path / "o"),
                           1e-4, "cpu")
    assert not (tmp_path / "o").exists() or files_in(tmp_path / "o") == []


def test_weights_that_are_not_networks_are_a_clear_error(default_models, tmp_path):
    import io

    import torch

    from stf_fusion.core.deep.modelfile import load_model
    from stf_fusion.core.errors import InputError

    buffer = io.BytesIO()
    torch.save(torch.zeros(3), buffer)
    model = _crafted(default_models["dcnn"]["trained"], tmp_path / "t.stfmodel", weights=buffer.getvalue())
    with pytest.raises(InputError, match="not a set of networks"):
        load_model(model)


def test_a_valid_value_never_becomes_nodata(tmp_path):
    """uint16 with nodata 0 (the Landsat convention): a tiny or zero prediction is written as 1, not as a hole."""
    import numpy as np

    from stf_fusion.core.raster import RasterWriter, grid_info, read_raw

    like = grid_info("", 3, 1, 1, (0, 30, 0, 0, 0, -30), "", "uint16")
    path = str(tmp_path / "p.tif")
    with RasterWriter(path, like, scale=1e-4, nodata=0) as writer:
        writer.write(np.array([[[0.0, 0.00004, 0.5]]]), valid=np.array([[True, True, True]]))
    assert read_raw(path).tolist() == [[[1, 1, 5000]]]
    with RasterWriter(path, like, scale=1e-4, nodata=0) as writer:
        writer.write(np.array([[[0.0, 0.2, 0.5]]]), valid=np.array([[False, True, True]]))
    assert read_raw(path).tolist() == [[[0, 2000, 5000]]]


def _all_nodata_copy(path, target):
    """A copy of ``path`` with every value set to its nodata value."""
    import numpy as np
    from osgeo import gdal

    if os.path.realpath(path) != os.path.realpath(target):
        shutil.copy(path, target)
    ds = gdal.Open(str(target), gdal.GA_Update)
    for b in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(b)
        band.WriteArray(np.full((ds.RasterYSize, ds.RasterXSize), band.GetNoDataValue()))
    ds = None
    return str(target)


def test_an_all_nodata_coarse_image_fails_with_the_reason_instead_of_an_empty_prediction(provider, work):
    w, fine, coarse = work
    empty = next(c for c in coarse if "2021-05-03" in c)
    _all_nodata_copy(empty, empty)
    run_refused("stf:fuse_additive", {"FINE": fine, "COARSE": coarse, "PREDICT_DATES": "2021-05-03",
                                      "OUTPUT_FOLDER": str(w.parent / "out")}, fine + coarse, w,
                match="100% of the values would be nodata.*'coarse_2021-05-03.tif' 0%")
    import processing  # MAX_NODATA = 1 accepts it, as asked

    out = processing.run("stf:fuse_additive", {"FINE": fine, "COARSE": coarse, "PREDICT_DATES": "2021-05-03",
                                               "MAX_NODATA": 1.0, "OUTPUT_FOLDER": str(w.parent / "out")})
    assert len(out["OUTPUT_FILES"]) == 1


def test_an_all_nodata_fine_image_gives_no_silent_naive_prediction(provider, work):
    w, fine, coarse = work
    for f in fine:
        _all_nodata_copy(f, f)
    run_refused("stf:fuse_naive", {"FINE": fine, "COARSE": coarse, "OUTPUT_FOLDER": str(w.parent / "out")},
                fine + coarse, w, match="would be nodata")


def test_a_coarse_image_that_does_not_overlap_the_fine_grid_is_refused(provider, work, tmp_path):
    """Its resampled image would be nodata everywhere: refused before anything is written."""
    from helpers import make_raster, read

    w, fine, coarse = work
    far = make_raster(tmp_path / "coarse_2021-04-01.tif", read(coarse[0])[:, ::16, ::16], nodata=-9999,
                      geotransform=(900000.0, 480.0, 0.0, 5000000.0, 0.0, -480.0))
    run_refused("stf:resample_coarse", {"COARSE": [far], "REFERENCE": fine[0], "METHOD": "bilinear",
                                        "OUTPUT_FOLDER": str(tmp_path / "out")}, [far] + fine, w,
                match="'.*coarse_2021-04-01.tif' does not overlap the fine grid of '.*fine_2021-04-01.tif'")
    assert not (tmp_path / "out").exists() or files_in(tmp_path / "out") == []


def test_fine_and_coarse_swapped_are_named_as_such(provider, sample_on_fine_grid, tmp_path):
    import glob

    sample = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "sample")
    fine = [f.path for f in sample_on_fine_grid.fine]
    coarse = sorted(glob.glob(os.path.join(sample, "coarse", "*.tif")))
    pair_coarse = [c for c in coarse if any(os.path.basename(f)[5:] in c for f in fine)]
    run_refused("stf:fuse_naive", {"FINE": pair_coarse, "COARSE": fine, "OUTPUT_FOLDER": str(tmp_path / "out")},
                fine + pair_coarse, tmp_path, match="FINE and COARSE look swapped")


def test_a_bar_in_a_file_name_is_part_of_the_name(provider, work, tmp_path):
    """'coarse_2021-05-03.tif|v2.tif' is read, not 'coarse_2021-05-03.tif' (only QGIS's own '|layername=' style
    suffixes are removed from layer sources)."""
    import processing

    from stf_fusion.algorithms.base import source_path

    w, fine, coarse = work
    barred = str(w / "coarse_2021-05-03.tif|v2.tif")
    original = next(c for c in coarse if "05-03" in c)
    _all_nodata_copy(original, barred)  # the '|' file is empty: reading the other one would succeed
    others = [c for c in coarse if c != original]
    with pytest.raises(QgsProcessingException, match="would be nodata"):
        processing.run("stf:fuse_additive", {"FINE": fine, "COARSE": others + [barred],
                                             "DATES": ",".join([os.path.basename(f)[5:15] for f in fine]
                                                               + [os.path.basename(c)[7:17] for c in others]
                                                               + ["2021-05-03"]),
                                             "PREDICT_DATES": "2021-05-03", "OUTPUT_FOLDER": str(tmp_path / "o")})
    assert source_path("/d/a.tif|layername=a") == "/d/a.tif" and source_path("/d/a.tif|v2.tif") == "/d/a.tif|v2.tif"
    assert not glob.glob(str(w / "*.aux.xml"))  # processing.run opened no input as a map layer


@pytest.mark.parametrize("alg", ["fuse_starfm", "fuse_estarfm", "fuse_fsdaf"])
def test_an_even_window_is_refused_instead_of_silently_enlarged(provider, work, alg):
    w, fine, coarse = work
    run_refused(f"stf:{alg}", {"FINE": fine, "COARSE": coarse, "WINDOW": 4, "OUTPUT_FOLDER": str(w.parent / "o")},
                fine + coarse, w, match=r"window must have an odd side.*got 4; use 3 or 5")


def _reordered(series, folder, rename=None):
    """Copies of the series' images with the band order reversed (descriptions travel with the bands), or with
    the bands renamed by ``rename``."""
    from osgeo import gdal

    from stf_fusion.core.series import build_series

    os.makedirs(folder, exist_ok=True)
    out = {}
    for item in series.fine + series.coarse:
        target = os.path.join(folder, f"{item.kind}_{item.date.isoformat()}.tif")
        bands = list(range(1, item.info.bands + 1))
        ds = gdal.Translate(target, item.path, bandList=bands if rename else bands[::-1])
        if rename:
            for b in bands:
                ds.GetRasterBand(b).SetDescription(rename(b))
        ds = None
        out.setdefault(item.kind, []).append(target)
    return build_series(out["fine"], out["coarse"])


def test_a_model_refuses_a_series_whose_bands_are_in_another_order(default_models, sample_on_fine_grid, tmp_path):
    from stf_fusion.core.deep.api import predict_with_model
    from stf_fusion.core.errors import InputError

    series = _reordered(sample_on_fine_grid, str(tmp_path / "rev"))
    with pytest.raises(InputError, match=r"in another order \(swir2, swir1, nir.*reorder the bands"):
        predict_with_model(default_models["dcnn"]["trained"], series, series.predict_dates[:1], str(tmp_path / "o"),
                           1e-4)
    assert not (tmp_path / "o").exists()


def test_a_model_warns_when_the_band_names_differ(default_models, sample_on_fine_grid, tmp_path):
    from stf_fusion.core.deep.api import predict_with_model

    series = _reordered(sample_on_fine_grid, str(tmp_path / "renamed"), rename=lambda b: f"B{b}")
    log = LogFeedback()
    files = predict_with_model(default_models["dcnn"]["trained"], series, series.predict_dates[:1],
                               str(tmp_path / "o"), 1e-4, feedback=log)
    assert len(files) == 1
    assert any("trained on the bands blue, green, red" in m and "B1, B2" in m for m in log.lines)


def test_starfm_with_both_uncertainties_zero_gives_a_full_prediction(provider, work):
    """Once 67 % nodata (a candidate rule rejected almost every pixel); with the program's rules every pixel
    keeps its own candidate, so the prediction is complete (the nodata share is reported and checked)."""
    import numpy as np
    import processing

    from stf_fusion.core.raster import read_block

    w, fine, coarse = work
    out = processing.run("stf:fuse_starfm", {"FINE": fine, "COARSE": coarse, "PREDICT_DATES": "2021-05-03",
                                             "FINE_UNCERTAINTY": 0, "COARSE_UNCERTAINTY": 0,
                                             "OUTPUT_FOLDER": str(w.parent / "o")})["OUTPUT_FILES"]
    _, valid = read_block(out[0], scale=1e-4)
    assert np.mean(valid) > 0.98
