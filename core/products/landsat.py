"""Landsat Collection 2 Level-2 surface reflectance (USGS): one GeoTIFF per band, named
``<ID>_SR_B<n>.TIF``, with ``<ID>_QA_PIXEL.TIF``, ``<ID>_QA_RADSAT.TIF`` and ``<ID>_MTL.txt`` (or ``.json``/``.xml``)
beside them; ``<ID>`` = ``LXSS_L2SP_PPPRRR_YYYYMMDD_yyyymmdd_CC_TX`` (sensor, satellite, path/row, acquisition and
processing dates, collection, tier).

* Reflectance = DN x REFLECTANCE_MULT_BAND_n + REFLECTANCE_ADD_BAND_n from the MTL file (Collection 2: 2.75e-5 and
  -0.2, used when the MTL file is absent); DN 0 is fill.
* Bands (common name <- band): Landsat 8/9 OLI blue B2, green B3, red B4, nir B5, swir1 B6, swir2 B7; Landsat 4/5
  TM and 7 ETM+ blue B1, green B2, red B3, nir B4, swir1 B5, swir2 B7.
* QA_PIXEL bits (Collection 2): 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow (masked only
  when asked), 6 clear, 7 water. QA_RADSAT: bit n-1 set = band n saturated (a pixel saturated in any band read is
  nodata); bit 11 terrain occlusion.
* Date: DATE_ACQUIRED of the MTL file, else the acquisition date of the product id.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re

import numpy as np

from .base import Layer, Product, Quality, bits, group_files

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


def _mtl(files: list[str]) -> dict[str, str]:
    """KEY = value pairs of the MTL file (text or JSON; the XML form is read for the same keys)."""
    values: dict[str, str] = {}
    for path in files:
        name = os.path.basename(path)
        if "_MTL." not in name:
            continue
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        if name.lower().endswith(".json"):
            def walk(node):
                if isinstance(node, dict):
                    for k, v in node.items():
                        if isinstance(v, (dict, list)):
                            walk(v)
                        else:
                            values[k] = str(v)
                elif isinstance(node, list):
                    for v in node:
                        walk(v)
            walk(json.loads(text))
        elif name.lower().endswith(".xml"):
            values.update(re.findall(r"<(\w+)>([^<]*)</\1>", text))
        else:
            for key, value in re.findall(r"^\s*(\w+)\s*=\s*(.+?)\s*$", text, flags=re.M):
                values[key] = value.strip('"')
    return values


def read(product_id: str, files: list[str]) -> Product:
    """The product ``product_id`` from its files."""
    m = ID.match(product_id)
    sensor_code, acquired = m.group(1), m.group(2)
    meta = _mtl(files)
    date = _dt.date.fromisoformat(meta["DATE_ACQUIRED"]) if "DATE_ACQUIRED" in meta else \
        _dt.datetime.strptime(acquired, "%Y%m%d").date()
    table = OLI if sensor_code[1] in "CO" else TM
    by_suffix = {FILE.match(os.path.basename(p)).group(2): p for p in files if not p.endswith(("txt", "json", "xml"))}
    bands = {}
    ids = {}
    for name, n in table.items():
        path = by_suffix.get(f"SR_B{n}")
        if path is None:
            continue
        scale = float(meta.get(f"REFLECTANCE_MULT_BAND_{n}", MULT))
        offset = float(meta.get(f"REFLECTANCE_ADD_BAND_{n}", ADD))
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
    spacecraft = meta.get("SPACECRAFT_ID", "").replace("_", " ").title() or SENSORS.get(sensor_code, sensor_code)
    return Product("fine", f"{SENSORS.get(sensor_code, spacecraft)} (Collection 2 Level-2)", product_id, date, bands,
                   quality, sorted(files), band_ids=ids)


def _qa_pixel(values: np.ndarray, mask_snow: bool) -> np.ndarray:
    bad = (bits(values, 0) | bits(values, 1) | bits(values, 2) | bits(values, 3) | bits(values, 4)).astype(bool)
    return bad | bits(values, 5).astype(bool) if mask_snow else bad


def _radsat(values: np.ndarray, numbers: list[int]) -> np.ndarray:
    bad = bits(values, 11).astype(bool)
    for n in numbers:
        bad |= bits(values, n - 1).astype(bool)
    return bad
