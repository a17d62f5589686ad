"""Landsat Collection 2 Level-2 surface reflectance (USGS): one GeoTIFF per band, named
``<ID>_SR_B<n>.TIF``, with ``<ID>_QA_PIXEL.TIF``, ``<ID>_QA_RADSAT.TIF`` and ``<ID>_MTL.txt`` (or ``.json``/``.xml``)
beside them; ``<ID>`` = ``LXSS_L2SP_PPPRRR_YYYYMMDD_yyyymmdd_CC_TX`` (sensor, satellite, path/row, acquisition and
processing dates, collection, tier).

* Reflectance = DN x REFLECTANCE_MULT_BAND_n + REFLECTANCE_ADD_BAND_n of the MTL file's group
  LEVEL2_SURFACE_REFLECTANCE_PARAMETERS (Collection 2: 2.75e-5 and -0.2, used when the MTL file is absent). The MTL
  (text, XML and JSON alike) repeats both keys in LEVEL1_RADIOMETRIC_RESCALING with the top-of-atmosphere
  constants (e.g. 2.0e-5 / -0.1 for OLI, ~1e-3 for TM): those are never read. DN 0 is fill.
* Bands (common name <- band): Landsat 8/9 OLI blue B2, green B3, red B4, nir B5, swir1 B6, swir2 B7; Landsat 4/5
  TM and 7 ETM+ blue B1, green B2, red B3, nir B4, swir1 B5, swir2 B7.
* QA_PIXEL bits (Collection 2): 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow (masked only
  when asked), 6 clear, 7 water. QA_RADSAT: bit n-1 set = band n saturated (a pixel saturated in any band read is
  nodata); bit 11 terrain occlusion.
* Date: DATE_ACQUIRED of the MTL file, else the acquisition date of the product id.
"""
from __future__ import annotations

import datetime as _dt
import os
import re

import numpy as np

from ..errors import InputError
from .base import Layer, Product, Quality, bits, file_name, group_files
from .files import read_text, shown
from .metadata import find_group, leaf, parse

ID = re.compile(r"^(L[CTEO]0[4-9])_L2S[PR]_\d{6}_(\d{8})_\d{8}_\d{2}_(T1|T2|RT)$")
FILE = re.compile(r"^(L[CTEO]0[4-9]_L2S[PR]_\d{6}_\d{8}_\d{8}_\d{2}_(?:T1|T2|RT))_(SR_B\d|QA_PIXEL|QA_RADSAT|MTL)"
                  r"\.(TIF|tif|TIFF|tiff|txt|json|xml)$")
OLI = {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir1": 6, "swir2": 7}
TM = {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 7}
SENSORS = {"LC08": "Landsat 8 OLI", "LC09": "Landsat 9 OLI-2", "LE07": "Landsat 7 ETM+", "LT05": "Landsat 5 TM",
           "LT04": "Landsat 4 TM", "LO08": "Landsat 8 OLI", "LO09": "Landsat 9 OLI-2"}
MULT, ADD = 2.75e-5, -0.2


def group(files: list[str]) -> dict[str, list[str]]:
    """Files of Collection 2 Level-2 products, by product id."""
    return group_files(files, FILE)


def _metadata(files: list[str]) -> tuple[dict, dict, str]:
    """(IMAGE_ATTRIBUTES, LEVEL2_SURFACE_REFLECTANCE_PARAMETERS, the MTL file read) of the product's MTL file, read
    by its structure (text, XML or JSON: the same groups). Never a value of the LEVEL1 groups: the MTL repeats
    REFLECTANCE_MULT_BAND_n / REFLECTANCE_ADD_BAND_n there with the top-of-atmosphere constants."""
    mtl = sorted((p for p in files if "_MTL." in file_name(p)),
                 key=lambda p: [".txt", ".xml", ".json"].index(os.path.splitext(file_name(p))[1].lower()))
    if not mtl:
        return {}, {}, ""
    tree = parse(read_text(mtl[0]), file_name(mtl[0]))
    return (find_group(tree, "IMAGE_ATTRIBUTES") or {}, find_group(tree, "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")
            or {}, mtl[0])


def read(product_id: str, files: list[str]) -> Product:
    """The product ``product_id`` from its files."""
    m = ID.match(product_id)
    sensor_code, acquired = m.group(1), m.group(2)
    image, level2, mtl = _metadata(files)
    acquired_text = leaf(image, "DATE_ACQUIRED")
    try:
        date = _dt.date.fromisoformat(acquired_text) if acquired_text else \
            _dt.datetime.strptime(acquired, "%Y%m%d").date()
    except ValueError:
        raise InputError(f"{shown(mtl)}: DATE_ACQUIRED '{acquired_text}' is not a date (YYYY-MM-DD).") from None
    table = OLI if sensor_code[1] in "CO" else TM
    by_suffix = {FILE.match(file_name(p)).group(2): p for p in files
                 if not file_name(p).lower().endswith(("txt", "json", "xml"))}
    bands = {}
    ids = {}
    for name, n in table.items():
        path = by_suffix.get(f"SR_B{n}")
        if path is None:
            continue
        scale = _number(level2, f"REFLECTANCE_MULT_BAND_{n}", MULT, mtl)
        offset = _number(level2, f"REFLECTANCE_ADD_BAND_{n}", ADD, mtl)
        bands[name] = Layer(path, scale=scale, offset=offset, fill=(0,))
        ids[name] = f"SR_B{n}"
    quality = []
    if "QA_PIXEL" in by_suffix:
        quality.append(Quality(Layer(by_suffix["QA_PIXEL"]), _qa_pixel,
                               "QA_PIXEL: fill, dilated cloud, cirrus, cloud, cloud shadow (snow if asked)"))
    if "QA_RADSAT" in by_suffix:
        numbers = [table[n] for n in bands]
        quality.append(Quality(Layer(by_suffix["QA_RADSAT"]), lambda v, _snow, numbers=numbers: _radsat(v, numbers),
                               "QA_RADSAT: saturation in a band read, terrain occlusion"))
    spacecraft = (leaf(image, "SPACECRAFT_ID") or "").replace("_", " ").title() or SENSORS.get(sensor_code, sensor_code)
    return Product("fine", f"{SENSORS.get(sensor_code, spacecraft)} (Collection 2 Level-2)", product_id, date, bands,
                   quality, sorted(files), band_ids=ids)


def _number(group: dict, key: str, default: float, mtl: str) -> float:
    """A number of the MTL's Level-2 group; the Collection 2 constant where the file or the key is absent."""
    text = leaf(group, key)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{shown(mtl)}: {key} '{text}' is not a number.") from None


def _qa_pixel(values: np.ndarray, mask_snow: bool) -> np.ndarray:
    bad = (bits(values, 0) | bits(values, 1) | bits(values, 2) | bits(values, 3) | bits(values, 4)).astype(bool)
    return bad | bits(values, 5).astype(bool) if mask_snow else bad


def _radsat(values: np.ndarray, numbers: list[int]) -> np.ndarray:
    bad = bits(values, 11).astype(bool)
    for n in numbers:
        bad |= bits(values, n - 1).astype(bool)
    return bad
