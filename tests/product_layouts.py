"""Test products in each product's real layout and naming (band files, QA bit layouts, metadata files), written
from one small synthetic landscape so that the fine and the coarse products agree.

The scene: 160 x 160 pixels of 30 m in UTM 31N near 0.1 deg E, 49.95 deg N, inside MODIS / VIIRS tile h18v04 (whose
top-left corner is 0 deg E, 50 deg N). Reflectance changes between the dates; each product gets a cloud.

HDF-EOS grids cannot be written here (GDAL writes neither HDF4-EOS nor HDF5 files): the MODIS and VIIRS products
are stand-ins, netCDF-4 files (which ARE HDF5 files) with the real file names and the real group / layer names,
written with GDAL's multidimensional API. GDAL reads them with its HDF5 driver through the same subdataset paths
as real VIIRS files (``HDF5:"f.h5"://HDFEOS/GRIDS/VNP_Grid_1km_2D/Data_Fields/SurfReflect_M3_1``); like real HDF5
tiles they carry no georeferencing, so the tile number places them. Real MODIS HDF4-EOS files differ only in the
subdataset prefix (``HDF4_EOS:EOS_GRID:"f.hdf":MODIS_Grid_500m_2D:sur_refl_b01_1``), which the reader matches by
the same layer name."""
from __future__ import annotations

import datetime as dt
import os

import numpy as np
from osgeo import gdal, osr

from stf_fusion.core.products.base import GRID_LEFT, GRID_TOP, SINUSOIDAL, TILE_SIZE

SIZE, PIXEL = 160, 30.0
DATES = [dt.date(2021, 6, 1), dt.date(2021, 6, 17), dt.date(2021, 7, 3)]
PREDICT = dt.date(2021, 6, 25)  # a coarse date without a fine image
H, V = 18, 4
FINE_CLOUD = (slice(20, 60), slice(100, 140))  # rows, columns of the fine grid, on the first date
BASE = np.array([0.04, 0.07, 0.06, 0.30, 0.20, 0.11])


def utm31() -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    return srs.ExportToWkt()


def sinusoidal() -> str:
    srs = osr.SpatialReference()
    srs.ImportFromProj4(SINUSOIDAL)
    return srs.ExportToWkt()


def origin() -> tuple[float, float]:
    """The top-left corner of the fine grid (UTM 31N), on a 30 m multiple."""
    wgs = osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    utm = osr.SpatialReference()
    utm.ImportFromEPSG(32631)
    utm.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    x, y, _ = osr.CoordinateTransformation(wgs, utm).TransformPoint(0.06, 49.97)
    return round(x / 120) * 120, round(y / 120) * 120


def truth(date: dt.date, size: int = SIZE, pixel: float = PIXEL) -> np.ndarray:
    """Reflectance [6, size, size] on the date: fields (blocks of 20 x 20 at 30 m) whose NIR grows at their own
    rate; at other pixel sizes the same landscape resampled."""
    days = (date - DATES[0]).days
    yy, xx = np.meshgrid(np.arange(size) * pixel / PIXEL, np.arange(size) * pixel / PIXEL, indexing="ij")
    field = (yy // 20).astype(int) * 13 + (xx // 20).astype(int) * 7
    rate = ((field * 37) % 11) / 10.0 - 0.3  # -0.3 .. 0.7 per field
    texture = 0.01 * np.sin(yy / 3.0) * np.cos(xx / 5.0)
    out = np.empty((6, size, size))
    for b in range(6):
        sign = 1.0 if b == 3 else -0.3
        out[b] = BASE[b] * (1 + 0.3 * ((field % 5) - 2) / 2) + sign * 0.004 * rate * days + texture
    return np.clip(out, 0.005, 0.8)


def _gtiff(path: str, data: np.ndarray, gt: tuple, crs: str, dtype: int, nodata=None, driver="GTiff") -> str:
    data = data if data.ndim == 3 else data[None]
    mem = gdal.GetDriverByName("MEM").Create("", data.shape[2], data.shape[1], data.shape[0], dtype)
    mem.SetGeoTransform(gt)
    mem.SetProjection(crs)
    for i in range(data.shape[0]):
        if nodata is not None:
            mem.GetRasterBand(i + 1).SetNoDataValue(nodata)
        mem.GetRasterBand(i + 1).WriteArray(data[i])
    options = ["QUALITY=100", "REVERSIBLE=YES"] if driver == "JP2OpenJPEG" else []
    gdal.GetDriverByName(driver).CreateCopy(path, mem, options=options)
    return path


def fine_gt(pixel: float = PIXEL) -> tuple:
    x0, y0 = origin()
    return (x0, pixel, 0.0, y0, 0.0, -pixel)


# --- fine products ------------------------------------------------------------------------------------------------
def landsat(folder: str, date: dt.date, cloud: bool) -> list[str]:
    """Landsat 8 Collection 2 Level-2: SR_B1..B7, QA_PIXEL, QA_RADSAT, MTL.txt."""
    pid = f"LC08_L2SP_199026_{date:%Y%m%d}_{date + dt.timedelta(days=9):%Y%m%d}_02_T1"
    os.makedirs(folder, exist_ok=True)
    rho = truth(date)
    files = []
    for n, b in zip((2, 3, 4, 5, 6, 7), range(6)):
        dn = np.round((rho[b] + 0.2) / 2.75e-5).astype(np.uint16)
        files.append(_gtiff(os.path.join(folder, f"{pid}_SR_B{n}.TIF"), dn, fine_gt(), utm31(), gdal.GDT_UInt16, 0))
    files.append(_gtiff(os.path.join(folder, f"{pid}_SR_B1.TIF"), np.full((SIZE, SIZE), 8000, np.uint16),
                        fine_gt(), utm31(), gdal.GDT_UInt16, 0))
    qa = np.full((SIZE, SIZE), (1 << 6), np.uint16)  # clear
    if cloud:
        qa[FINE_CLOUD] = (1 << 3) | (1 << 1)  # cloud, dilated cloud
    files.append(_gtiff(os.path.join(folder, f"{pid}_QA_PIXEL.TIF"), qa, fine_gt(), utm31(), gdal.GDT_UInt16, 1))
    radsat = np.zeros((SIZE, SIZE), np.uint16)
    radsat[5, 5] = 1 << 3  # band 4 (red) saturated at one pixel
    files.append(_gtiff(os.path.join(folder, f"{pid}_QA_RADSAT.TIF"), radsat, fine_gt(), utm31(), gdal.GDT_UInt16))
    mtl = os.path.join(folder, f"{pid}_MTL.txt")
    with open(mtl, "w") as fh:
        fh.write("GROUP = LANDSAT_METADATA_FILE\n  GROUP = IMAGE_ATTRIBUTES\n    SPACECRAFT_ID = \"LANDSAT_8\"\n"
                 f"    DATE_ACQUIRED = {date.isoformat()}\n  END_GROUP = IMAGE_ATTRIBUTES\n"
                 "  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS\n")
        for n in range(1, 8):
            fh.write(f"    REFLECTANCE_MULT_BAND_{n} = 2.75E-05\n    REFLECTANCE_ADD_BAND_{n} = -0.200000\n")
        fh.write("  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS\nEND_GROUP = LANDSAT_METADATA_FILE\nEND\n")
    return files + [mtl]


def sentinel2(folder: str, date: dt.date, cloud: bool) -> str:
    """A Sentinel-2 L2A SAFE (processing baseline 04.00: BOA_ADD_OFFSET -1000) with the 20 m bands and SCL."""
    safe = os.path.join(folder, f"S2B_MSIL2A_{date:%Y%m%d}T105619_N0400_R094_T31UCQ_{date:%Y%m%d}T134512.SAFE")
    img = os.path.join(safe, "GRANULE", f"L2A_T31UCQ_A022468_{date:%Y%m%d}T105900", "IMG_DATA", "R20m")
    os.makedirs(img, exist_ok=True)
    n20 = SIZE * 3 // 2  # the same 4.8 km at 20 m
    rho = truth(date, n20, 20.0)
    for band, b in zip(("B02", "B03", "B04", "B8A", "B11", "B12"), range(6)):
        dn = np.round(rho[b] * 10000 + 1000).astype(np.uint16)
        _gtiff(os.path.join(img, f"T31UCQ_{date:%Y%m%d}T105619_{band}_20m.jp2"), dn, fine_gt(20.0), utm31(),
               gdal.GDT_UInt16, driver="JP2OpenJPEG")
    scl = np.full((n20, n20), 4, np.uint8)  # vegetation
    if cloud:
        scl[30:90, 150:210] = 9  # cloud, high probability (the FINE_CLOUD area at 20 m)
    _gtiff(os.path.join(img, f"T31UCQ_{date:%Y%m%d}T105619_SCL_20m.jp2"), scl, fine_gt(20.0), utm31(), gdal.GDT_Byte,
           driver="JP2OpenJPEG")
    offsets = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
    with open(os.path.join(safe, "MTD_MSIL2A.xml"), "w") as fh:
        fh.write(f'<?xml version="1.0" encoding="UTF-8"?><n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"><n1:General_Info><Product_Info>'
                 f"<PRODUCT_START_TIME>{date.isoformat()}T10:56:19.024Z</PRODUCT_START_TIME>"
                 f"<PROCESSING_BASELINE>04.00</PROCESSING_BASELINE></Product_Info><Product_Image_Characteristics>"
                 f'<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>'
                 f"</QUANTIFICATION_VALUES_LIST><BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>"
                 "</Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>")
    return safe


def hls(folder: str, date: dt.date, cloud: bool) -> list[str]:
    """An HLS v2.0 L30 granule: B01..B07 and Fmask COGs."""
    os.makedirs(folder, exist_ok=True)
    doy = date.timetuple().tm_yday
    stem = f"HLS.L30.T31UCQ.{date.year}{doy:03d}T105619.v2.0"
    rho = truth(date)
    files = []
    for band, b in zip(("B02", "B03", "B04", "B05", "B06", "B07"), range(6)):
        files.append(_gtiff(os.path.join(folder, f"{stem}.{band}.tif"), np.round(rho[b] * 10000).astype(np.int16),
                            fine_gt(), utm31(), gdal.GDT_Int16, -9999, driver="COG"))
    fmask = np.full((SIZE, SIZE), 1 << 6, np.uint8)  # low aerosol
    if cloud:
        fmask[FINE_CLOUD] = (1 << 1) | (1 << 6)
    files.append(_gtiff(os.path.join(folder, f"{stem}.Fmask.tif"), fmask, fine_gt(), utm31(), gdal.GDT_Byte, 255,
                        driver="COG"))
    return files


# --- coarse products (HDF5 stand-ins, module docstring) -----------------------------------------------------------
def _coarse_truth(date: dt.date, columns: int, size: int) -> np.ndarray:
    """The landscape on the first ``size`` x ``size`` pixels of tile h18v04 at ``columns`` pixels per tile: block
    average of the fine truth where the scene is, the scene's mean elsewhere."""
    pixel = TILE_SIZE / columns
    gt = (GRID_LEFT + H * TILE_SIZE, pixel, 0.0, GRID_TOP - V * TILE_SIZE, 0.0, -pixel)
    rho = truth(date)
    mem = gdal.GetDriverByName("MEM").Create("", SIZE, SIZE, 6, gdal.GDT_Float64)
    mem.SetGeoTransform(fine_gt())
    mem.SetProjection(utm31())
    for b in range(6):
        mem.GetRasterBand(b + 1).WriteArray(rho[b])
    out = gdal.Warp("", mem, format="MEM", outputBounds=(gt[0], gt[3] - size * pixel, gt[0] + size * pixel, gt[3]),
                    width=size, height=size, dstSRS=sinusoidal(), resampleAlg="average", dstNodata=np.nan)
    data = out.ReadAsArray()
    for b in range(6):
        data[b][~np.isfinite(data[b])] = rho[b].mean()
    return data


def coarse_cloud(size: int) -> tuple[slice, slice]:
    """A cloud over the middle of the scene on the coarse grid of ``size`` pixels (40: 500 m; 20: 1 km)."""
    return (slice(size // 4, size // 4 + size // 10), slice(size // 4, size // 4 + size // 10))


def _hdf(path: str, groups: dict[str, dict[str, np.ndarray]], fills: dict[str, float]) -> str:
    drv = gdal.GetDriverByName("netCDF")
    ds = drv.CreateMultiDimensional(path)
    root = ds.GetRootGroup()
    for group_path, arrays in groups.items():
        g = root
        for part in group_path.split("/"):
            g = g.CreateGroup(part)
        first = next(iter(arrays.values()))
        dy = g.CreateDimension("YDim", None, None, first.shape[0])
        dx = g.CreateDimension("XDim", None, None, first.shape[1])
        for name, data in arrays.items():
            kind = {np.dtype(np.int16): gdal.GDT_Int16, np.dtype(np.uint16): gdal.GDT_UInt16,
                    np.dtype(np.uint8): gdal.GDT_Byte}[data.dtype]
            a = g.CreateMDArray(name, [dy, dx], gdal.ExtendedDataType.Create(kind))
            if name in fills:
                a.SetNoDataValueDouble(fills[name])
            a.Write(data)
    ds = None
    return path


MODIS_BANDS = (3, 4, 1, 2, 6, 7)  # in the order of COMMON_BANDS
VIIRS_M = ("M3", "M4", "M5", "M7", "M10", "M11")


def _tile_path(folder: str, short: str, date: dt.date, version: str, processed: str, ext: str) -> str:
    """``<short>.A<YYYYDDD>.h18v04.<version>.<processing YYYYDDD + time>.<ext>`` in ``folder`` (created)."""
    os.makedirs(folder, exist_ok=True)
    doy = date.timetuple().tm_yday
    name = f"{short}.A{date.year}{doy:03d}.h{H:02d}v{V:02d}.{version}.{date.year}{processed}.{ext}"
    return os.path.join(folder, name)


def _stored(date: dt.date, columns: int, size: int) -> np.ndarray:
    """The coarse truth as stored: int16 reflectance x 1e4 [6, size, size], bands in COMMON_BANDS order."""
    return np.round(_coarse_truth(date, columns, size) * 10000).astype(np.int16)


def _nbar(path: str, group: str, band_ids, stored: np.ndarray, cloud: bool) -> str:
    """A nadir BRDF-adjusted product: Nadir_Reflectance_<id> and its mandatory quality (fill 255 under the
    cloud) per band."""
    size = stored.shape[-1]
    arrays = {}
    for b, band in enumerate(band_ids):
        arrays[f"Nadir_Reflectance_{band}"] = stored[b]
        quality = np.zeros((size, size), np.uint8)
        if cloud:
            quality[coarse_cloud(size)] = 255  # no inversion (fill)
        arrays[f"BRDF_Albedo_Band_Mandatory_Quality_{band}"] = quality
    return _hdf(path, {group: arrays}, {k: 32767 for k in arrays if "Nadir" in k})


def mod09ga(folder: str, date: dt.date, cloud: bool) -> str:
    doy = date.timetuple().tm_yday
    path = _tile_path(folder, "MOD09GA", date, "061", f"{doy + 2:03d}032017", "hdf")
    stored = _stored(date, 2400, 40)
    bands = {f"sur_refl_b0{n}_1": stored[b] for b, n in enumerate(MODIS_BANDS)}
    bands["sur_refl_b05_1"] = np.full((40, 40), 2500, np.int16)
    state = np.full((20, 20), 0b1000, np.uint16)  # land, clear
    if cloud:
        state[coarse_cloud(20)] = 0b1001 | (1 << 10)  # cloudy, internal cloud flag
    return _hdf(path, {"MODIS_Grid_500m_2D/Data_Fields": bands,
                       "MODIS_Grid_1km_2D/Data_Fields": {"state_1km_1": state}}, {k: -28672 for k in bands})


def mcd43a4(folder: str, date: dt.date, cloud: bool) -> str:
    doy = date.timetuple().tm_yday
    path = _tile_path(folder, "MCD43A4", date, "061", f"{doy + 9:03d}040817", "hdf")
    return _nbar(path, "MOD_Grid_BRDF/Data_Fields", [f"Band{n}" for n in MODIS_BANDS], _stored(date, 2400, 40), cloud)


def vnp09ga(folder: str, date: dt.date, cloud: bool) -> str:
    doy = date.timetuple().tm_yday
    path = _tile_path(folder, "VNP09GA", date, "002", f"{doy + 1:03d}090516", "h5")
    stored = _stored(date, 1200, 20)
    bands = {f"SurfReflect_{m}_1": stored[b] for b, m in enumerate(VIIRS_M)}
    qf1 = np.zeros((20, 20), np.uint8)
    qf2 = np.zeros((20, 20), np.uint8)
    if cloud:
        qf1[coarse_cloud(20)] = 0b1100  # confident cloudy
        shadow = coarse_cloud(20)
        qf2[shadow[0].stop, shadow[1]] = 1 << 3  # a row of cloud shadow below the cloud
    return _hdf(path, {"HDFEOS/GRIDS/VNP_Grid_1km_2D/Data_Fields": {**bands, "SurfReflect_QF1_1": qf1,
                                                                   "SurfReflect_QF2_1": qf2}},
                {k: -28672 for k in bands})


def vnp43ma4(folder: str, date: dt.date, cloud: bool) -> str:
    doy = date.timetuple().tm_yday
    path = _tile_path(folder, "VNP43MA4", date, "002", f"{doy + 9:03d}111111", "h5")
    return _nbar(path, "HDFEOS/GRIDS/VIIRS_Grid_BRDF/Data_Fields", VIIRS_M, _stored(date, 1200, 20), cloud)


def prepared_geotiff(folder: str, date: dt.date, kind: str) -> str:
    """An already prepared GeoTIFF: fine on the 30 m grid, coarse at 480 m over it (int16 x 1e4)."""
    os.makedirs(folder, exist_ok=True)
    if kind == "fine":
        return _gtiff(os.path.join(folder, f"{kind}_{date.isoformat()}.tif"),
                      np.round(truth(date) * 10000).astype(np.int16), fine_gt(), utm31(), gdal.GDT_Int16, -9999)
    rho = truth(date).reshape(6, SIZE // 16, 16, SIZE // 16, 16).mean(axis=(2, 4))
    return _gtiff(os.path.join(folder, f"{kind}_{date.isoformat()}.tif"), np.round(rho * 10000).astype(np.int16),
                  fine_gt(480.0), utm31(), gdal.GDT_Int16, -9999)
