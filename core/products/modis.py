"""MODIS and VIIRS land products on the sinusoidal tile grid (NASA LP DAAC / LAADS), the coarse images:

* MOD09GA / MYD09GA (HDF4-EOS, daily surface reflectance): ``sur_refl_b0N_1`` at 500 m, reflectance x 1e-4, fill
  -28672, valid -100..16000. ``state_1km_1`` (1 km) as nodata: cloud state (bits 0-1) cloudy or mixed, cloud shadow
  (bit 2), cirrus (bits 8-9) average or high, internal cloud flag (bit 10), adjacent to cloud (bit 13); snow (bits
  12 and 15) only when asked.
* MCD43A4 (HDF4-EOS, daily nadir BRDF-adjusted reflectance, 16-day window): ``Nadir_Reflectance_BandN`` at 500 m,
  x 1e-4, fill 32767; ``BRDF_Albedo_Band_Mandatory_Quality_BandN`` 0 (full inversion) and 1 (magnitude inversion)
  kept, anything else nodata.
* VNP09GA / VJ109GA (HDF5, VIIRS daily surface reflectance): the M bands at 1 km ``SurfReflect_Mn_1``, x 1e-4,
  fill -28672, valid -100..16000; ``SurfReflect_QF1_1`` cloud confidence (bits 2-3) probably or confidently cloudy,
  ``SurfReflect_QF2_1`` cloud shadow (bit 3), thin cirrus (bits 6, 7) as nodata; snow/ice (QF2 bit 5) only when
  asked.
* VNP43MA4 / VNP43IA4 (HDF5, VIIRS nadir BRDF-adjusted reflectance): ``Nadir_Reflectance_Mn`` at 1 km (or
  ``Nadir_Reflectance_In`` at 500 m), x 1e-4, fill 32767; ``BRDF_Albedo_Band_Mandatory_Quality_*`` as MCD43A4.

Bands (common name <- band): MODIS blue 3, green 4, red 1, nir 2, swir1 6, swir2 7 (the Landsat / Sentinel-2
match of the STARFM literature); VIIRS M bands blue M3, green M4, red M5, nir M7, swir1 M10, swir2 M11 (one 1 km
grid for all six; VNP43IA4 has only red I1, nir I2, swir1 I3 at 500 m).

Layers are found by their names among the file's subdatasets, so the HDF4-EOS paths
(``HDF4_EOS:EOS_GRID:"f.hdf":MODIS_Grid_500m_2D:sur_refl_b01_1``) and the HDF5 paths
(``HDF5:"f.h5"://HDFEOS/GRIDS/VNP_Grid_1km_2D/Data_Fields/SurfReflect_M3_1``) are read the same way. Where GDAL
gives a layer no georeferencing (HDF5), the tile (hHHvVV in the file name) places it in the sinusoidal grid.
Date: AYYYYDDD of the file name.

The same products as the cloud archives serve them, one GeoTIFF (COG) per layer beside each other:
``<product id>_<layer>.tif`` with the layer's own name (``MOD09GA.A2021001.h10v05.061.2021003035845_sur_refl_b01_1.tif``,
``..._Nadir_Reflectance_Band1.tif``), or the MCD43A4 short form ``<product id>_B0N.TIF`` with ``_B0Nqa.TIF`` for
Nadir_Reflectance_BandN and its mandatory quality (``MCD43A4.A2017006.h21v11.006.2017018074804_B01.TIF``). Their
values are the stored ones of the HDF layers (same scale, fill and flags); they carry their georeferencing.
"""
from __future__ import annotations

import os
import re

import numpy as np

from ..errors import InputError
from .base import Layer, Product, Quality, bits, date_from_yyyyddd, file_name, find_subdataset, group_files

FILE = re.compile(r"^(MOD09GA|MYD09GA|MCD43A4|VNP09GA|VJ109GA|VNP43MA4|VNP43IA4|VJ143MA4|VJ143IA4)\.A(\d{7})"
                  r"\.h(\d\d)v(\d\d)\.\d{3}\.\d{13}\.(hdf|h5)$")
MODIS = {"blue": 3, "green": 4, "red": 1, "nir": 2, "swir1": 6, "swir2": 7}
VIIRS_M = {"blue": "M3", "green": "M4", "red": "M5", "nir": "M7", "swir1": "M10", "swir2": "M11"}
VIIRS_I = {"red": "I1", "nir": "I2", "swir1": "I3"}
SENSORS = {"MOD09GA": "MODIS Terra MOD09GA", "MYD09GA": "MODIS Aqua MYD09GA", "MCD43A4": "MODIS MCD43A4 (NBAR)",
           "VNP09GA": "VIIRS S-NPP VNP09GA", "VJ109GA": "VIIRS NOAA-20 VJ109GA",
           "VNP43MA4": "VIIRS S-NPP VNP43MA4 (NBAR)", "VNP43IA4": "VIIRS S-NPP VNP43IA4 (NBAR)",
           "VJ143MA4": "VIIRS NOAA-20 VJ143MA4 (NBAR)", "VJ143IA4": "VIIRS NOAA-20 VJ143IA4 (NBAR)"}


LAYER_FILE = re.compile(r"^((MOD09GA|MYD09GA|MCD43A4|VNP09GA|VJ109GA|VNP43MA4|VNP43IA4|VJ143MA4|VJ143IA4)\.A\d{7}"
                        r"\.h\d\dv\d\d\.\d{3}\.\d{13})_(\w+?)\.(tif|TIF|tiff|TIFF)$")


def matches(path: str) -> bool:
    return bool(FILE.match(os.path.basename(path)))


def group_layers(files: list[str]) -> dict[str, list[str]]:
    """The per-layer GeoTIFFs among ``files``, by product id."""
    return group_files(files, LAYER_FILE)


def _layer_name(suffix: str) -> str:
    """A per-layer GeoTIFF's layer: the MCD43A4 short form B0N / B0Nqa, else the layer's own name."""
    short = re.match(r"^B0?(\d)(qa)?$", suffix, flags=re.IGNORECASE)
    if short:
        n = short.group(1)
        return f"BRDF_Albedo_Band_Mandatory_Quality_Band{n}" if short.group(2) else f"Nadir_Reflectance_Band{n}"
    return suffix


def read_layers(product_id: str, files: list[str]) -> Product:
    """A product given as one GeoTIFF per layer (module docstring)."""
    by_layer = {_layer_name(LAYER_FILE.match(file_name(p)).group(3)): p for p in files}

    def find(name: str) -> str:
        if name not in by_layer:
            raise InputError(f"{product_id}: no GeoTIFF of the layer '{name}' beside the others (it has "
                             f"{', '.join(sorted(by_layer))}).")
        return by_layer[name]

    return _read(product_id, sorted(files), find, available=set(by_layer))


def read(path: str) -> Product:
    return _read(os.path.basename(path), [path], lambda name: find_subdataset(path, name))


def _read(product_id: str, files: list[str], find, available: set[str] | None = None) -> Product:
    """The product from ``find(layer name) -> GDAL source``; with ``available`` (the per-layer form) bands without
    a file are left out (a product may be downloaded with some bands only), quality layers are required."""
    m = FILE.match(product_id) or re.match(r"^(\w+)\.A(\d{7})\.h(\d\d)v(\d\d)", product_id)
    short, date, tile = m.group(1), date_from_yyyyddd(m.group(2)), (int(m.group(3)), int(m.group(4)))
    bands, ids, quality = {}, {}, []

    def layer(name: str, columns: int, fill: float, valid=None) -> Layer:
        return Layer(find(name), scale=1e-4, fill=(fill,), valid_range=valid, tile_columns=columns)

    def present(name: str) -> bool:
        return available is None or name in available

    if short in ("MOD09GA", "MYD09GA"):
        for common, n in MODIS.items():
            if present(f"sur_refl_b0{n}_1"):
                bands[common] = layer(f"sur_refl_b0{n}_1", 2400, -28672, (-100, 16000))
                ids[common] = f"sur_refl_b0{n}_1"
        quality.append(Quality(Layer(find("state_1km_1"), tile_columns=1200), _state_1km,
                               "state_1km: cloudy or mixed, cloud shadow, cirrus, internal cloud, adjacent to cloud "
                               "(snow if asked)"))
    elif short in ("VNP09GA", "VJ109GA"):
        for common, band in VIIRS_M.items():
            if present(f"SurfReflect_{band}_1"):
                bands[common] = layer(f"SurfReflect_{band}_1", 1200, -28672, (-100, 16000))
                ids[common] = f"SurfReflect_{band}_1"
        qf1 = Layer(find("SurfReflect_QF1_1"), tile_columns=1200)
        qf2 = Layer(find("SurfReflect_QF2_1"), tile_columns=1200)
        quality.append(Quality(qf1, _viirs_qf1, "QF1: probably or confidently cloudy"))
        quality.append(Quality(qf2, _viirs_qf2, "QF2: cloud shadow, thin cirrus (snow if asked)"))
    else:  # nadir BRDF-adjusted reflectance
        if short == "MCD43A4":
            table, columns = {c: f"Band{n}" for c, n in MODIS.items()}, 2400
        elif short.endswith("IA4"):
            table, columns = VIIRS_I, 2400
        else:
            table, columns = VIIRS_M, 1200
        for common, band in table.items():
            if not present(f"Nadir_Reflectance_{band}"):
                continue
            bands[common] = layer(f"Nadir_Reflectance_{band}", columns, 32767)
            ids[common] = f"Nadir_Reflectance_{band}"
            quality.append(Quality(Layer(find(f"BRDF_Albedo_Band_Mandatory_Quality_{band}"),
                                         tile_columns=columns), _nbar_quality,
                                   f"BRDF_Albedo_Band_Mandatory_Quality_{band}: not a full or magnitude inversion"))
    return Product("coarse", SENSORS[short], product_id, date, bands, quality, files, tile=tile, band_ids=ids)


def _state_1km(values: np.ndarray, mask_snow: bool) -> np.ndarray:
    state = bits(values, 0, 2)
    bad = (state == 1) | (state == 2) | bits(values, 2).astype(bool) | (bits(values, 8, 2) >= 2) \
        | bits(values, 10).astype(bool) | bits(values, 13).astype(bool)
    return bad | bits(values, 12).astype(bool) | bits(values, 15).astype(bool) if mask_snow else bad


def _viirs_qf1(values: np.ndarray, mask_snow: bool) -> np.ndarray:
    return bits(values, 2, 2) >= 2


def _viirs_qf2(values: np.ndarray, mask_snow: bool) -> np.ndarray:
    bad = (bits(values, 3) | bits(values, 6) | bits(values, 7)).astype(bool)
    return bad | bits(values, 5).astype(bool) if mask_snow else bad


def _nbar_quality(values: np.ndarray, mask_snow: bool) -> np.ndarray:
    return values > 1
