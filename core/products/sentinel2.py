"""Sentinel-2 Level-2A (ESA, SAFE format): a folder (``S2X_MSIL2A_<datatake>_N<baseline>_R<orbit>_T<tile>_<time>.SAFE``
as ESA names it, or under any other name) or the ``.SAFE.zip`` a download gives, holding ``MTD_MSIL2A.xml`` and
``GRANULE/*/IMG_DATA/R20m/*_<band>_20m.jp2``. A product is recognised by its metadata file, not by its folder name.

* The series is read at 20 m, where all six bands and the scene classification exist: blue B02, green B03, red
  B04, nir B8A (narrow NIR, the closest to Landsat's B5 and MODIS band 2), swir1 B11, swir2 B12. The image files
  are those the metadata lists (``Product_Organisation/.../IMAGE_FILE``), else found by their names.
* Reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE from MTD_MSIL2A.xml (processing baseline 04.00
  and later: offset -1000; earlier: none); DN 0 (NODATA) is fill, and so is 65535 (SATURATED), the metadata's
  special values.
* Scene classification (SCL, 20 m) as nodata: 0 no data, 1 saturated or defective, 3 cloud shadow, 8 cloud
  (medium probability), 9 cloud (high probability), 10 thin cirrus; 11 snow only when asked.
* Date: PRODUCT_START_TIME of the metadata, else the datatake date of the SAFE name.
"""
from __future__ import annotations

import datetime as _dt
import os
import re

import numpy as np

from ..errors import InputError
from .base import Layer, Product, Quality
from .files import read_text, shown
from .metadata import elements

SAFE = re.compile(r"^(S2[ABCD])_MSIL2A_(\d{8})T\d{6}_N\d{4}_R\d{3}_T(\w{5})_\d{8}T\d{6}(\.SAFE)?$")
METADATA = "mtd_msil2a.xml"
TABLE = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B8A", "swir1": "B11", "swir2": "B12"}
BAND_INDEX = {b: i for i, b in enumerate(["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                                          "B10", "B11", "B12"])}
BAD_CLASSES = (0, 1, 3, 8, 9, 10)
SNOW = 11


def is_metadata(path: str) -> bool:
    """The product metadata file of a Level-2A SAFE (ESA writes MTD_MSIL2A.xml; some products MTD_MSIL2a.xml)."""
    return os.path.basename(path).lower() == METADATA


def group(files: list[str]) -> dict[str, list[str]]:
    """The files of each SAFE among ``files``, by its metadata file."""
    roots = {os.path.dirname(p): p for p in files if is_metadata(p)}
    found: dict[str, list[str]] = {m: [] for m in roots.values()}
    for path in files:
        parent = os.path.dirname(path)
        while parent and parent not in roots and parent != os.path.dirname(parent):
            parent = os.path.dirname(parent)
        if parent in roots:
            found[roots[parent]].append(path)
    return found


def read(metadata: str, files: list[str]) -> Product:
    """The product whose ``MTD_MSIL2A.xml`` is ``metadata``; ``files`` are those of its SAFE."""
    root = os.path.dirname(metadata)
    text = read_text(metadata)
    name = os.path.basename(root.rstrip("/"))
    for ext in (".zip", ".SAFE"):
        name = name[:-len(ext)] if name.endswith(ext) else name
    m = SAFE.match(name)
    start = re.search(r"<PRODUCT_START_TIME>(\d{4}-\d{2}-\d{2})", text)
    if start:
        date = _dt.date.fromisoformat(start.group(1))
    elif m:
        date = _dt.datetime.strptime(m.group(2), "%Y%m%d").date()
    else:
        raise InputError(f"{shown(metadata)}: no PRODUCT_START_TIME, and the folder name '{name}' holds no date.")
    found = elements(text, ("BOA_QUANTIFICATION_VALUE", "BOA_ADD_OFFSET", "IMAGE_FILE"), shown(metadata))
    quantification = [e.text for e in found["BOA_QUANTIFICATION_VALUE"]]
    q = float(quantification[0]) if quantification and quantification[0] else 10000.0
    offsets = {int(e.get("band_id")): float(e.text) for e in found["BOA_ADD_OFFSET"]
               if e.get("band_id") is not None and e.text}
    listed = {f"{root}/{e.text.strip()}.jp2".lower() for e in found["IMAGE_FILE"] if e.text}
    by_name = {p.lower(): p for p in files}
    images = [by_name[p] for p in sorted(listed) if p in by_name] or \
        [p for p in files if p.lower().endswith(".jp2") and "/r20m/" in p.replace(os.sep, "/").lower()]
    bands, ids, used = {}, {}, [metadata]
    for common, band in TABLE.items():
        found = [p for p in images if os.path.basename(p).upper().endswith(f"_{band}_20M.JP2")]
        if not found:
            continue
        offset = offsets.get(BAND_INDEX[band], 0.0)
        bands[common] = Layer(found[0], scale=1.0 / q, offset=offset / q, fill=(0, 65535))
        ids[common] = band
        used.append(found[0])
    if not bands:
        raise InputError(f"'{shown(root)}': a Sentinel-2 L2A product without its 20 m band images "
                         "(GRANULE/*/IMG_DATA/R20m/*_B02_20m.jp2 ...): incomplete download?")
    quality = []
    scl = [p for p in images if os.path.basename(p).upper().endswith("_SCL_20M.JP2")]
    if scl:
        quality.append(Quality(Layer(scl[0]), _scl, "SCL: no data, saturated, cloud shadow, cloud, thin cirrus "
                                                   "(snow if asked)"))
        used.append(scl[0])
    mission = m.group(1)[-1] if m else (re.search(r"<SPACECRAFT_NAME>Sentinel-2(\w)<", text) or [None, "?"])[1]
    pid = name if m else (re.search(r"<PRODUCT_URI>([^<]+?)(\.SAFE)?<", text) or [None, name])[1]
    return Product("fine", f"Sentinel-2{mission} MSI (L2A)", pid, date, bands, quality, used, band_ids=ids)


def _scl(values: np.ndarray, mask_snow: bool) -> np.ndarray:
    bad = np.isin(values, BAD_CLASSES)
    return bad | (values == SNOW) if mask_snow else bad
