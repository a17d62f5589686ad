"""STAC Items and ItemCollections (the JSON a catalogue search returns: the USGS Landsat Collection 2 STAC, Earth
Search, Microsoft Planetary Computer, NASA's CMR-STAC for HLS and MODIS), one product per item.

* Assets: a relative ``href`` is taken from the item file's folder, ``file://`` is a local path, ``http(s)://`` is
  read in place through ``/vsicurl/`` (``s3://`` through ``/vsis3/``, ``gs://`` through ``/vsigs/``). A URL's query
  (signed tokens) is used for reading only: it never reaches a message, a log or the manifest.
* Where the assets are a product's own files (Landsat ``..._SR_B4.TIF`` with its MTL, HLS ``HLS.L30....B04.tif``,
  MODIS / VIIRS per-layer GeoTIFFs), that product's reader reads them: the item gives the same product as the
  files themselves. Otherwise (e.g. Sentinel-2 L2A COGs, ``B04.tif``) the bands are the assets whose
  ``eo:bands`` common name (else the asset key) is blue, green, red, nir08 (else nir), swir16, swir22, and the
  quality layer is the asset ``scl`` (Sentinel-2), ``qa_pixel`` / ``qa_radsat`` (Landsat), ``fmask`` (HLS) or
  ``state_1km`` (MODIS), decoded as the product readers do.
* Reflectance = stored x ``raster:bands`` scale + offset, nodata = its ``nodata``, where the item gives them (they
  win over a reader's own table); else the sensor's documented values (Sentinel-2 L2A: 1e-4, offset -0.1 from
  processing baseline 04.00 on, read from ``s2:processing_baseline``).
* Date: ``datetime`` (else ``start_datetime``) of the item, as a UTC date.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from urllib.parse import urlsplit

from ..errors import InputError
from . import hls, landsat, modis, sentinel2
from .base import Layer, Product, Quality
from .files import read_text, redact, shown
from .metadata import parse_json
from .readers import GROUPED

COMMON = {"blue": ("blue",), "green": ("green",), "red": ("red",), "nir": ("nir08", "nir"),
          "swir1": ("swir16",), "swir2": ("swir22",)}
MAX_BYTES = 50_000_000


def is_stac(path: str) -> bool:
    """A JSON file holding a STAC Item or ItemCollection (a Landsat ``_MTL.json`` is not one)."""
    if not path.lower().endswith(".json") or "_MTL." in os.path.basename(path):
        return False
    try:
        if not path.startswith("/vsi") and os.path.getsize(path) > MAX_BYTES:
            return False
        head = read_text(path)[:4000]
    except (InputError, OSError):
        return False
    return bool(re.search(r'"type"\s*:\s*"(Feature|FeatureCollection)"', head)) and \
        ('"assets"' in head or '"features"' in head or '"stac_version"' in head)


def source(href: str, folder: str) -> str:
    """The GDAL source of an asset href (module docstring)."""
    scheme = urlsplit(href).scheme.lower()
    if scheme in ("http", "https"):
        return "/vsicurl/" + href
    if scheme == "s3":
        return "/vsis3/" + href[5:]
    if scheme == "gs":
        return "/vsigs/" + href[5:]
    if scheme == "file":
        return urlsplit(href).path
    if os.path.isabs(href) or href.startswith("/vsi"):
        return href
    return os.path.normpath(os.path.join(folder, href)) if not folder.startswith("/vsi") else f"{folder}/{href}"


def read(path: str, skip: frozenset | set = frozenset()) -> list[Product]:
    """The products of a STAC Item or ItemCollection file, less the items whose id is in ``skip`` (products
    already read from their own files)."""
    tree = parse_json(read_text(path), shown(path))
    items = tree.get("features") if tree.get("type") == "FeatureCollection" else [tree]
    if not isinstance(items, list) or not items:
        raise InputError(f"'{shown(path)}': a STAC ItemCollection without items.")
    folder = os.path.dirname(path)
    return [_item(item, folder, path) for item in items if not (isinstance(item, dict) and item.get("id") in skip)]


def _item(item: dict, folder: str, path: str) -> Product:
    what = f"STAC item '{item.get('id', '?')}' of '{shown(path)}'"
    assets = item.get("assets")
    if not isinstance(assets, dict) or not assets:
        raise InputError(f"{what}: no assets.")
    props = item.get("properties") or {}
    stamp = props.get("datetime") or props.get("start_datetime")
    try:
        date = _dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")[:32]).date() if len(str(stamp)) > 10 \
            else _dt.date.fromisoformat(str(stamp))
    except ValueError:
        raise InputError(f"{what}: no date (properties.datetime is '{stamp}').") from None
    hrefs = {}
    for key, asset in assets.items():
        href = asset.get("href") if isinstance(asset, dict) else None
        if href:
            hrefs[key] = source(href, folder)
    product = _by_reader(list(hrefs.values())) or _generic(item, hrefs, date, what)
    product.date = date
    _apply_raster_bands(product, assets, hrefs)
    product.files = [redact(f) for f in product.files]
    return product


def _by_reader(files: list[str]) -> Product | None:
    """The product when the assets are one product's own files (module docstring)."""
    for group_of, read in GROUPED:
        for key, group in group_of(files).items():
            return read(key, group)
    return None


def _generic(item: dict, hrefs: dict, date: _dt.date, what: str) -> Product:
    props = item.get("properties") or {}
    assets = item["assets"]
    text = " ".join(str(v) for v in (item.get("collection"), item.get("id"), props.get("platform"),
                                     props.get("constellation"), props.get("instruments"))).lower()
    if "sentinel-2" in text or "sentinel2" in text or "s2a" in text or "s2b" in text:
        sensor, kind = "Sentinel-2 MSI (L2A, STAC)", "fine"
        baseline = str(props.get("s2:processing_baseline") or props.get("processing:version") or "")
        offset = -0.1 if baseline and baseline >= "04.00" else 0.0
        default = (1e-4, offset, (0, 65535))
    elif "landsat" in text:
        sensor, kind, default = "Landsat (Collection 2 Level-2, STAC)", "fine", (landsat.MULT, landsat.ADD, (0,))
    elif "modis" in text or "viirs" in text:
        sensor, kind, default = "MODIS / VIIRS (STAC)", "coarse", (1e-4, 0.0, (32767, -28672))
    else:
        raise InputError(f"{what}: not a product this tool reads (collection '{item.get('collection')}', platform "
                         f"'{props.get('platform')}'); Landsat, Sentinel-2, HLS, MODIS and VIIRS items are read.")
    by_common: dict[str, str] = {}
    for key, asset in assets.items():
        if key not in hrefs or "data" not in (asset.get("roles") or ["data"]):
            continue
        names = [b.get("common_name") for b in asset.get("eo:bands") or [] if isinstance(b, dict)]
        for name in (names if len(names) == 1 else []) + [key.lower()]:
            if name and name not in by_common:
                by_common[name] = key
    bands, ids = {}, {}
    for common, candidates in COMMON.items():
        key = next((by_common[c] for c in candidates if c in by_common), None)
        if key is None:
            continue
        scale, offset, fill = default
        bands[common] = Layer(hrefs[key], scale=scale, offset=offset, fill=fill)
        ids[common] = key
    lower = {k.lower(): k for k in hrefs}
    quality = []
    if "scl" in lower:
        quality.append(Quality(Layer(hrefs[lower["scl"]]), sentinel2._scl, "SCL: no data, saturated, cloud shadow, "
                                                                            "cloud, thin cirrus (snow if asked)"))
    if "qa_pixel" in lower:
        quality.append(Quality(Layer(hrefs[lower["qa_pixel"]]), landsat._qa_pixel, "QA_PIXEL: fill, dilated cloud, "
                                                                                  "cirrus, cloud, cloud shadow"))
    if "fmask" in lower:
        quality.append(Quality(Layer(hrefs[lower["fmask"]], fill=(255,)), hls._fmask, "Fmask: cirrus, cloud, "
                                                                                     "adjacent, cloud shadow"))
    for key in ("state_1km", "state_1km_1"):
        if key in lower:
            quality.append(Quality(Layer(hrefs[lower[key]]), modis._state_1km, "state_1km: clouds, shadow, cirrus"))
    files = [hrefs[k] for k in ids.values()] + [q.layer.source for q in quality]
    return Product(kind, sensor, str(item.get("id", "")), date, bands, quality, files, band_ids=ids)


def _apply_raster_bands(product: Product, assets: dict, hrefs: dict) -> None:
    """The item's own ``raster:bands`` scale / offset / nodata win over a reader's table."""
    by_source = {v: assets[k] for k, v in hrefs.items()}
    for layer in product.bands.values():
        asset = by_source.get(layer.source)
        bands = asset.get("raster:bands") if isinstance(asset, dict) else None
        if not bands or not isinstance(bands[0], dict):
            continue
        first = bands[0]
        if first.get("scale") is not None:
            layer.scale = float(first["scale"])
            layer.offset = float(first.get("offset") or 0.0)
        if first.get("nodata") is not None:
            layer.fill = (float(first["nodata"]),)
