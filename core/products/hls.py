"""Harmonized Landsat Sentinel-2 (NASA HLS v2.0): cloud-optimised GeoTIFFs
``HLS.<L30|S30>.T<tile>.<YYYYDDD>T<HHMMSS>.v2.0.<band>.tif`` with ``...Fmask.tif``, 30 m, reflectance x 1e-4, fill
-9999.

* Bands: L30 (Landsat 8/9) blue B02, green B03, red B04, nir B05, swir1 B06, swir2 B07; S30 (Sentinel-2) blue B02,
  green B03, red B04, nir B8A, swir1 B11, swir2 B12.
* Fmask bits (HLS v2.0 user guide): 0 cirrus (reserved), 1 cloud, 2 adjacent to cloud or shadow, 3 cloud shadow,
  4 snow/ice (masked only when asked), 5 water, 6-7 aerosol level. Nodata: bits 1, 2, 3 (and 0 if set).
* Date: the day of year of the granule name.
"""
from __future__ import annotations

import re

import numpy as np

from .base import Layer, Product, Quality, bits, date_from_yyyyddd, file_name, group_files

FILE = re.compile(r"^(HLS\.(L30|S30)\.T\w{5}\.(\d{7})T\d{6}\.v\d\.\d)\.(B\w\w|Fmask)\.tif$", re.IGNORECASE)
TABLES = {"L30": {"blue": "B02", "green": "B03", "red": "B04", "nir": "B05", "swir1": "B06", "swir2": "B07"},
          "S30": {"blue": "B02", "green": "B03", "red": "B04", "nir": "B8A", "swir1": "B11", "swir2": "B12"}}


def group(files: list[str]) -> dict[str, list[str]]:
    """Files of HLS granules, by granule id."""
    return group_files(files, FILE)


def read(granule: str, files: list[str]) -> Product:
    m = FILE.match(file_name(files[0]))
    kind = m.group(2).upper()
    by_band = {FILE.match(file_name(p)).group(4): p for p in files}
    bands, ids = {}, {}
    for common, band in TABLES[kind].items():
        if band in by_band:
            bands[common] = Layer(by_band[band], scale=1e-4, fill=(-9999,))
            ids[common] = band
    quality = []
    if "Fmask" in by_band:
        quality.append(Quality(Layer(by_band["Fmask"], fill=(255,)), _fmask,
                               "Fmask: cirrus, cloud, adjacent to cloud/shadow, cloud shadow (snow if asked)"))
    sensor = "HLS L30 (Landsat 8/9)" if kind == "L30" else "HLS S30 (Sentinel-2)"
    return Product("fine", sensor, granule, date_from_yyyyddd(m.group(3)), bands, quality, sorted(files),
                   band_ids=ids)


def _fmask(values: np.ndarray, mask_snow: bool) -> np.ndarray:
    bad = (bits(values, 0) | bits(values, 1) | bits(values, 2) | bits(values, 3)).astype(bool)
    return bad | bits(values, 4).astype(bool) if mask_snow else bad
