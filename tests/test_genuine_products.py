"""The product readers on GENUINE product files (tests/data/genuine, sources in tests/data/README.md): the values
written are the product's documented scale applied to the stored numbers (within 1.5e-4 reflectance), nodata lies
exactly on the product's quality flags, and the forms a download takes (folders, .tar / .tar.gz, .SAFE.zip,
per-layer GeoTIFFs, STAC items) give the same series as the files themselves.

Where only genuine METADATA exists (Landsat 4/5/7/9 MTL files, Sentinel-2 MTD_MSIL2A.xml of three processing
baselines), the images beside it are written here with known stored values, so the scale read from the genuine
metadata is what is checked."""
import datetime as dt
import glob
import json
import os
import re
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
from osgeo import gdal, osr

from stf_fusion.core.errors import InputError
from stf_fusion.core.products import landsat, stac
from stf_fusion.core.products.base import Grid, native_grid, read_on_grid
from stf_fusion.core.products.prepare import PrepareConfig, find_products, prepare_series
from stf_fusion.core.raster import read_block

GENUINE = os.path.join(os.path.dirname(__file__), "data", "genuine")
L8_ID = "LC08_L2SP_005009_20150710_20200908_02_T2"
L8 = os.path.join(GENUINE, "landsat", L8_ID)
L8_BANDS = {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir1": 6, "swir2": 7}
TOLERANCE = 1.5e-4  # the bound: documented scale within 1.5e-4 reflectance


def _l8_truth():
    """(reflectance [6, H, W] from the documented C2 L2 scale, nodata mask from QA_PIXEL / QA_RADSAT)."""
    dn = np.stack([gdal.Open(f"{L8}/{L8_ID}_SR_B{n}.TIF").ReadAsArray().astype(float) for n in L8_BANDS.values()])
    qa = gdal.Open(f"{L8}/{L8_ID}_QA_PIXEL.TIF").ReadAsArray().astype(np.int64)
    radsat = gdal.Open(f"{L8}/{L8_ID}_QA_RADSAT.TIF").ReadAsArray().astype(np.int64)
    flagged = (qa & 0b11111) != 0  # fill, dilated cloud, cirrus, cloud, cloud shadow (Collection 2 QA_PIXEL)
    flagged |= (radsat & (1 << 11)) != 0
    for n in L8_BANDS.values():
        flagged |= (radsat & (1 << (n - 1))) != 0
    flagged |= (dn == 0).any(axis=0)  # DN 0: fill
    return dn * 2.75e-5 - 0.2, flagged


def _coarse_for(fine_path: str, folder: str, date: dt.date) -> str:
    """A prepared coarse GeoTIFF (8 x the fine pixel) over a fine band's area on ``date``: the pair's other half."""
    ds = gdal.Open(fine_path)
    gt = ds.GetGeoTransform()
    size = (ds.RasterXSize // 8 + 2, ds.RasterYSize // 8 + 2)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"coarse_{date.isoformat()}.tif")
    out = gdal.GetDriverByName("GTiff").Create(path, size[0], size[1], 6, gdal.GDT_Int16)
    out.SetGeoTransform((gt[0] - 8 * gt[1], 8 * gt[1], 0, gt[3] - 8 * gt[5], 0, 8 * gt[5]))
    out.SetProjection(ds.GetProjection())
    for b in range(6):
        out.GetRasterBand(b + 1).WriteArray(np.full((size[1], size[0]), 1000 + 100 * b, np.int16))
        out.GetRasterBand(b + 1).SetNoDataValue(-9999)
    out = None
    return path


def _prepare_l8(inputs, tmp_path, name):
    coarse = _coarse_for(f"{L8}/{L8_ID}_SR_B2.TIF", str(tmp_path / f"coarse_{name}"), dt.date(2015, 7, 10))
    result = prepare_series(inputs, [], [coarse], str(tmp_path / name), PrepareConfig())
    assert len(result.fine) == 1
    return result


def test_every_genuine_landsat_mtl_gives_the_level2_scale_not_the_level1_one():
    """Each MTL form USGS delivers (text, XML, JSON; Landsat 4, 5, 7, 8, 9; L2SP and L2SR) repeats
    REFLECTANCE_MULT_BAND_n in a LEVEL1 group with top-of-atmosphere constants; the reader takes the Level-2
    surface-reflectance ones (2.75e-5, -0.2) and DATE_ACQUIRED from IMAGE_ATTRIBUTES."""
    mtls = sorted(glob.glob(f"{GENUINE}/landsat_mtl/*_MTL.*") + glob.glob(f"{L8}/*_MTL.*"))
    assert len(mtls) == 10
    for mtl in mtls:
        text = open(mtl, encoding="utf-8").read()
        assert len(re.findall(r"REFLECTANCE_MULT_BAND_\d", text)) > 7  # the key stands in two groups
        pid = os.path.basename(mtl).split("_MTL.")[0]
        table = landsat.OLI if pid.startswith("LC") else landsat.TM
        bands = [f"/nowhere/{pid}_SR_B{n}.TIF" for n in table.values()]
        product = landsat.read(pid, bands + [mtl])
        for name in table:
            assert product.bands[name].scale == pytest.approx(2.75e-5, rel=1e-9), (mtl, name)
            assert product.bands[name].offset == pytest.approx(-0.2, rel=1e-9), (mtl, name)
        acquired = dt.datetime.strptime(pid.split("_")[3], "%Y%m%d").date()
        assert product.date == acquired
        assert product.sensor.startswith({"LC08": "Landsat 8", "LC09": "Landsat 9", "LE07": "Landsat 7",
                                          "LT05": "Landsat 5", "LT04": "Landsat 4"}[pid[:4]])


def test_genuine_landsat8_scene_as_folder_tar_and_tar_gz(tmp_path):
    """A genuine Landsat 8 C2 L2SP scene (a window of its files): the series' fine image is DN x 2.75e-5 - 0.2
    within 1.5e-4 and nodata exactly on QA_PIXEL / QA_RADSAT; the same scene as the .tar USGS delivers (and
    .tar.gz) gives the same image, read in place (nothing extracted beside it)."""
    truth, flagged = _l8_truth()
    folder = _prepare_l8([L8], tmp_path, "folder")
    values, ok = read_block(folder.fine[0], scale=1e-4)
    assert np.array_equal(~ok, flagged)
    assert np.abs(values - truth)[:, ok].max() <= TOLERANCE
    assert 0.1 < ok.mean() < 0.9  # clouds, fill and clear land all present: the check can fail
    # the blue mean of the clear pixels is the documented one, far from the Level-1 constants' (DN x 2e-5 - 0.1)
    dn_blue = gdal.Open(f"{L8}/{L8_ID}_SR_B2.TIF").ReadAsArray().astype(float)
    assert abs(values[0][ok].mean() - (dn_blue * 2e-5 - 0.1)[ok].mean()) > 0.05
    reference = gdal.Open(folder.fine[0]).ReadAsArray()
    for suffix, mode in ((".tar", "w"), (".tar.gz", "w:gz")):
        archive = str(tmp_path / f"{L8_ID}{suffix}")
        with tarfile.open(archive, mode) as tar:  # USGS: the product's files at the archive's root
            for path in sorted(glob.glob(f"{L8}/*")):
                tar.add(path, arcname=os.path.basename(path))
        before = sorted(os.listdir(tmp_path))
        result = _prepare_l8([archive], tmp_path, f"from{suffix}")
        assert np.array_equal(gdal.Open(result.fine[0]).ReadAsArray(), reference)
        assert sorted(os.listdir(tmp_path)) == sorted(before + [f"from{suffix}", f"coarse_from{suffix}"])
        manifest = json.load(open(result.manifest))
        assert any(f"{L8_ID}_SR_B2.TIF" in f for f in manifest["dates"][0]["reads"][0]["files"])


def test_genuine_landsat5_mtl_with_known_dn(tmp_path):
    """Genuine Landsat 5 TM C2 L2 MTL (XML, its LEVEL1 group says REFLECTANCE_MULT_BAND_1 = 1.0977E-03) beside
    band files of known DN: reflectance = DN x 2.75e-5 - 0.2, nothing saturates."""
    pid = "LT05_L2SP_010067_19860424_20200918_02_T2"
    folder = tmp_path / pid
    folder.mkdir()
    shutil.copy(f"{GENUINE}/landsat_mtl/{pid}_MTL.xml", folder)
    dn = (7273 + (np.arange(40 * 40).reshape(40, 40) * 23) % 36000).astype(np.uint16)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    for n in (1, 2, 3, 4, 5, 7):
        ds = gdal.GetDriverByName("GTiff").Create(str(folder / f"{pid}_SR_B{n}.TIF"), 40, 40, 1, gdal.GDT_UInt16)
        ds.SetGeoTransform((500000, 30, 0, 9000000, 0, -30))
        ds.SetProjection(srs.ExportToWkt())
        ds.GetRasterBand(1).WriteArray(dn + n)
        ds = None
    product = find_products([str(folder)], [], [], PrepareConfig())[0]
    crs, gt, w, h = native_grid(product, "blue")
    grid = Grid(crs, (gt[0], gt[3] + h * gt[5], gt[0] + w * gt[1], gt[3]), w, h)
    values, valid, _ = read_on_grid(product, ["blue", "swir2"], grid, "near", False)
    assert valid.all()
    assert np.abs(values[0] - ((dn + 1) * 2.75e-5 - 0.2)).max() <= TOLERANCE
    assert np.abs(values[1] - ((dn + 7) * 2.75e-5 - 0.2)).max() <= TOLERANCE
    assert values.max() < 1.0


def _sentinel2_images(safe: str, metadata: str, dn: np.ndarray, scl: np.ndarray) -> None:
    """JP2 images (lossless) at the 20 m paths the genuine metadata lists."""
    text = open(metadata, encoding="utf-8").read()
    listed = re.findall(r"<IMAGE_FILE>([^<]*R20m[^<]*_(B02|B03|B04|B8A|B11|B12|SCL)_20m)</IMAGE_FILE>", text)
    assert len(listed) == 7
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32601)
    for i, (path, band) in enumerate(listed):
        data = scl if band == "SCL" else dn + 10 * i
        full = os.path.join(safe, path + ".jp2")
        os.makedirs(os.path.dirname(full), exist_ok=True)
        mem = gdal.GetDriverByName("MEM").Create("", 32, 32, 1, gdal.GDT_Byte if band == "SCL" else gdal.GDT_UInt16)
        mem.SetGeoTransform((499980, 20, 0, 7800000, 0, -20))
        mem.SetProjection(srs.ExportToWkt())
        mem.GetRasterBand(1).WriteArray(data)
        gdal.GetDriverByName("JP2OpenJPEG").CreateCopy(full, mem, options=["QUALITY=100", "REVERSIBLE=YES"])


@pytest.mark.parametrize("safe_name,offset", [
    ("S2A_MSIL2A_20230625T234621_N0509_R073_T01WCP_20230626T022157.SAFE", -1000),  # baseline 05.09
    ("S2A_MSIL2A_20190212T192651_N0212_R013_T07HFE_20201007T160857.SAFE", 0),  # baseline 02.12
    ("S2A_MSIL2A_20180721T053721_N0212_R062_T43MDV_20201011T181419.SAFE", 0),  # metadata named MTD_MSIL2a.xml
])
def test_genuine_sentinel2_metadata_folder_renamed_and_zip(tmp_path, safe_name, offset):
    """Genuine MTD_MSIL2A.xml of three products: (DN + BOA_ADD_OFFSET) / 10000, SCL classes as nodata, the date of
    PRODUCT_START_TIME; the SAFE read under its ESA name, under another folder name, and as the .SAFE.zip."""
    metadata = glob.glob(f"{GENUINE}/sentinel2/{safe_name}/MTD_MSIL2*.xml")[0]
    safe = tmp_path / "as_downloaded" / safe_name
    safe.mkdir(parents=True)
    shutil.copy(metadata, safe)
    dn = (1000 + (np.arange(32 * 32).reshape(32, 32) * 37) % 9000).astype(np.uint16)
    scl = np.full((32, 32), 4, np.uint8)
    scl[:8] = 9  # cloud high probability
    scl[8:12, :5] = 3  # cloud shadow
    scl[20:, 20:] = 11  # snow: valid unless asked
    _sentinel2_images(str(safe), metadata, dn, scl)
    renamed = tmp_path / "renamed" / "my_download"
    shutil.copytree(safe, renamed)
    archive = str(tmp_path / f"{safe_name}.zip")
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(glob.glob(f"{safe}/**", recursive=True)):
            if os.path.isfile(path):
                z.write(path, os.path.relpath(path, safe.parent))
    date = dt.date.fromisoformat(re.search(r"<PRODUCT_START_TIME>(\d{4}-\d\d-\d\d)", open(metadata).read())[1])
    for given in (str(safe), str(renamed), archive, str(tmp_path / "as_downloaded")):
        products = find_products([given], [], [], PrepareConfig())
        assert len(products) == 1, given
        product = products[0]
        assert product.date == date and product.kind == "fine"
        assert product.bands["blue"].scale == 1e-4 and product.bands["blue"].offset == offset * 1e-4
        crs, gt, w, h = native_grid(product, "blue")
        grid = Grid(crs, (gt[0], gt[3] + h * gt[5], gt[0] + w * gt[1], gt[3]), w, h)
        values, valid, _ = read_on_grid(product, ["blue", "nir", "swir2"], grid, "near", False)
        assert np.array_equal(valid, ~np.isin(scl, (0, 1, 3, 8, 9, 10)))
        for k, i in enumerate((0, 3, 5)):  # listed order: B02, B03, B04, B8A, B11, B12
            assert np.abs(values[k] - (dn + 10 * i + offset) / 1e4)[valid].max() <= TOLERANCE, (given, k)


def test_genuine_mcd43a4_per_layer_geotiff(tmp_path):
    """A genuine MCD43A4 per-band COG (the cloud archives' form, <id>_B01.TIF; a 2 x 2 crop whose pixels are all
    the fill 32767) with a quality layer beside it: band 1 is red, x 1e-4, and every pixel is nodata (fill)."""
    pid = "MCD43A4.A2022073.h28v08.006.2022082044758"
    folder = tmp_path / "modis"
    folder.mkdir()
    shutil.copy(f"{GENUINE}/modis/{pid}_B01.TIF", folder)
    src = gdal.Open(f"{GENUINE}/modis/{pid}_B01.TIF")  # stand-in quality (no genuine _B01qa.TIF found): 0, full
    qa = gdal.GetDriverByName("GTiff").CreateCopy(str(folder / f"{pid}_B01qa.TIF"), src)
    qa.GetRasterBand(1).WriteArray(np.zeros((2, 2), np.int16))
    qa = None
    products = find_products([str(folder)], [], [], PrepareConfig(bands=("red",)))
    assert len(products) == 1
    product = products[0]
    assert product.kind == "coarse" and product.date == dt.date(2022, 3, 14) and product.tile == (28, 8)
    assert product.band_ids == {"red": "Nadir_Reflectance_Band1"} and product.bands["red"].scale == 1e-4
    crs, gt, w, h = native_grid(product, "red")
    assert abs(gt[1] - 463.3127165) < 1e-6 and "Sinusoidal" in crs
    grid = Grid(crs, (gt[0], gt[3] + h * gt[5], gt[0] + w * gt[1], gt[3]), w, h)
    _, valid, counts = read_on_grid(product, ["red"], grid, "near", False)
    assert not valid.any() and counts["nodata"] == 4


def _usgs_item(folder: str) -> dict:
    """A STAC 1.0 Item in the form of the USGS Landsat C2 STAC (asset keys, eo:bands, raster:bands), its assets
    the genuine files by relative href."""
    assets = {}
    for key, n in {"blue": 2, "green": 3, "red": 4, "nir08": 5, "swir16": 6, "swir22": 7}.items():
        assets[key] = {"href": f"./{L8_ID}/{L8_ID}_SR_B{n}.TIF", "type": "image/tiff", "roles": ["data"],
                       "eo:bands": [{"name": f"SR_B{n}", "common_name": key}],
                       "raster:bands": [{"data_type": "uint16", "nodata": 0, "scale": 2.75e-5, "offset": -0.2}]}
    assets["qa_pixel"] = {"href": f"./{L8_ID}/{L8_ID}_QA_PIXEL.TIF", "roles": ["cloud", "cloud-shadow"]}
    assets["qa_radsat"] = {"href": f"./{L8_ID}/{L8_ID}_QA_RADSAT.TIF", "roles": ["saturation"]}
    assets["mtl.txt"] = {"href": f"./{L8_ID}/{L8_ID}_MTL.txt", "roles": ["metadata"]}
    return {"type": "Feature", "stac_version": "1.0.0", "id": L8_ID, "collection": "landsat-c2l2-sr",
            "properties": {"datetime": "2015-07-10T14:29:33.425Z", "platform": "LANDSAT_8"},
            "geometry": None, "assets": assets}


def test_stac_item_and_collection_with_local_assets_give_the_files_series(tmp_path):
    """A STAC Item (and an ItemCollection) whose assets are the genuine files gives the same fine image as the
    files; the genuine USGS item that ships beside the files (URL assets) is not read as a second product."""
    root = tmp_path / "catalogue"
    shutil.copytree(L8, root / L8_ID)
    item = root / "item.json"
    item.write_text(json.dumps(_usgs_item(str(root))))
    collection = root / "items.json"
    collection.write_text(json.dumps({"type": "FeatureCollection", "features": [_usgs_item(str(root))]}))
    files = _prepare_l8([L8], tmp_path, "files")
    reference = gdal.Open(files.fine[0]).ReadAsArray()
    for given in (item, collection):
        result = _prepare_l8([str(given)], tmp_path, f"stac_{given.stem}")
        assert np.array_equal(gdal.Open(result.fine[0]).ReadAsArray(), reference)
    beside = tmp_path / "beside" / L8_ID
    shutil.copytree(L8, beside)
    shutil.copy(f"{GENUINE}/stac/{L8_ID}_SR_stac.json", beside)
    assert stac.is_stac(str(beside / f"{L8_ID}_SR_stac.json"))
    assert [p.product_id for p in find_products([str(beside.parent)], [], [], PrepareConfig())] == [L8_ID]


def test_stac_urls_are_read_through_vsicurl_and_never_shown_with_their_token(tmp_path):
    assert stac.source("https://example.org/a/B04.tif?se=1&sig=SECRET", "/x") == \
        "/vsicurl/https://example.org/a/B04.tif?se=1&sig=SECRET"
    assert stac.source("s3://bucket/k/B04.tif", "/x") == "/vsis3/bucket/k/B04.tif"
    assert stac.source("B04.tif", "/x/y") == "/x/y/B04.tif"
    item = _usgs_item(str(tmp_path))
    for asset in item["assets"].values():  # a closed local port: the read fails at once
        asset["href"] = "http://user:PASSWORD@127.0.0.1:9/" + os.path.basename(asset["href"]) + "?sig=SECRET"
    del item["assets"]["mtl.txt"]
    path = tmp_path / "remote.json"
    path.write_text(json.dumps(item))
    products = find_products([str(path)], [], [], PrepareConfig())
    assert products[0].product_id == L8_ID and products[0].sensor.startswith("Landsat 8 OLI")  # the reader's own
    assert not any("SECRET" in f or "PASSWORD" in f for f in products[0].files)
    with pytest.raises(InputError) as err:
        prepare_series([str(path)], [], [], str(tmp_path / "out"), PrepareConfig())
    assert "SECRET" not in str(err.value) and "PASSWORD" not in str(err.value)
    assert not (tmp_path / "out" / "fine").exists()


def test_a_fully_clouded_scene_says_why_it_was_left_out(tmp_path):
    """The genuine scene with MIN_VALID above its valid share: the error gives the share, not 'no coarse image'."""
    coarse = _coarse_for(f"{L8}/{L8_ID}_SR_B2.TIF", str(tmp_path / "c"), dt.date(2015, 7, 10))
    with pytest.raises(InputError, match=r"fine 2015-07-10: \d+\.\d% valid, below MIN_VALID 95%"):
        prepare_series([L8], [], [coarse], str(tmp_path / "out"), PrepareConfig(min_valid=0.95))


def test_a_product_without_its_bands_lists_what_it_has(tmp_path):
    folder = tmp_path / "hls"
    folder.mkdir()
    ds = gdal.GetDriverByName("GTiff").Create(str(folder / "HLS.L30.T10SEG.2021152T183919.v2.0.Fmask.tif"), 4, 4)
    ds = None
    with pytest.raises(InputError, match=r"has no band 'blue' \(none of the bands .*Fmask\.tif; incomplete"):
        prepare_series([str(folder)], [], [_coarse_for(str(folder / os.listdir(folder)[0]), str(tmp_path / "c"),
                                                       dt.date(2021, 6, 1))], str(tmp_path / "out"))
