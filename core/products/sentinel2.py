"""Sentinel-2 Level-2A (ESA, SAFE format): ``S2X_MSIL2A_<datatake>_N<baseline>_R<orbit>_T<tile>_<time>.SAFE`` with
``MTD_MSIL2A.xml`` and ``GRANULE/*/IMG_DATA/R20m/*_<band>_20m.jp2``.

* The series is read at 20 m, where all six bands and the scene classification exist: blue B02, green B03, red
  B04, nir B8A (narrow NIR, the closest to Landsat's B5 and MODIS band 2), swir1 B11, swir2 B12.
* Reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE from MTD_MSIL2A.xml (processing baseline 04.00
  and later: offset -1000; earlier: none); DN 0 is fill.
* Scene classification (SCL, 20 m) as nodata: 0 no data, 1 saturated or defective, 3 cloud shadow, 8 cloud
  (medium probability), 9 cloud (high probability), 10 thin cirrus; 11 snow only when asked.
* Date: PRODUCT_START_TIME of the metadata, else the datatake date of the SAFE name.
"""
from __future__ import annotations

import datetime as _dt
import glob
import os
import re

import numpy as np

from ..errors import InputError
from .base import Layer, Product, Quality

SAFE = re.compile(r"^(S2[ABCD])_MSIL2A_(\d{8})T\d{6}_N\d{4}_R\d{3}_T(\w{5})_\d{8}T\d{6}(\.SAFE)?$")
TABLE = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B8A", "swir1": "B11", "swir2": "B12"}
BAND_INDEX = {b: i for i, b in enumerate(["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                                          "B10", "B11", "B12"])}
BAD_CLASSES = (0, 1, 3, 8, 9, 10)
SNOW = 11


def is_safe(path: str) -> bool:
    return os.path.isdir(path) and bool(SAFE.match(os.path.basename(path.rstrip(os.sep))))


def read(folder: str) -> Product:
    """The product of a ``.SAFE`` folder."""
    name = os.path.basename(folder.rstrip(os.sep))
    m = SAFE.match(name)
    metadata = os.path.join(folder, "MTD_MSIL2A.xml")
    text = ""
    if os.path.exists(metadata):
        with open(metadata, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    start = re.search(r"<PRODUCT_START_TIME>(\d{4}-\d{2}-\d{2})", text)
    date = _dt.date.fromisoformat(start.group(1)) if start else _dt.datetime.strptime(m.group(2), "%Y%m%d").date()
    quantification = re.search(r"<BOA_QUANTIFICATION_VALUE[^>]*>([\d.]+)<", text)
    q = float(quantification.group(1)) if quantification else 10000.0
    offsets = {int(i): float(v) for i, v in re.findall(r'<BOA_ADD_OFFSET band_id="(\d+)"[^>]*>(-?[\d.]+)<', text)}
    bands, ids, files = {}, {}, ([metadata] if text else [])
    for common, band in TABLE.items():
        found = glob.glob(os.path.join(folder, "GRANULE", "*", "IMG_DATA", "R20m", f"*_{band}_20m.jp2"))
        if not found:
            continue
        offset = offsets.get(BAND_INDEX[band], 0.0)
        bands[common] = Layer(found[0], scale=1.0 / q, offset=offset / q, fill=(0,))
        ids[common] = band
        files.append(found[0])
    if not bands:
        raise InputError(f"'{folder}' has no 20 m band images (GRANULE/*/IMG_DATA/R20m/*_B02_20m.jp2 ...).")
    quality = []
    scl = glob.glob(os.path.join(folder, "GRANULE", "*", "IMG_DATA", "R20m", "*_SCL_20m.jp2"))
    if scl:
        quality.append(Quality(Layer(scl[0]), _scl, "SCL: no data, saturated, cloud shadow, cloud, thin cirrus "
                                                   "(snow if asked)"))
        files.append(scl[0])
    return Product("fine", f"Sentinel-2{m.group(1)[-1]} MSI (L2A)", name.replace(".SAFE", ""), date, bands, quality,
                   files, band_ids=ids)


def _scl(values: np.ndarray, mask_snow: bool) -> np.ndarray:
    bad = np.isin(values, BAD_CLASSES)
    return bad | (values == SNOW) if mask_snow else bad
