"""The product readers that recognise a product among files by its file names or its content, in the order they
are tried: each is (group: files -> {product key: its files}, read: (key, files) -> Product). Shared by
stf:prepare_series (files, folders, archives) and the STAC reader (an item's assets)."""
from __future__ import annotations

from . import hls, landsat, modis, sentinel2

GROUPED = (
    (landsat.group, landsat.read),  # Landsat Collection 2 Level-2: <ID>_SR_B*.TIF, QA, MTL
    (hls.group, hls.read),  # HLS v2.0 granules
    (modis.group_layers, modis.read_layers),  # MODIS / VIIRS per-layer GeoTIFFs
    (sentinel2.group, sentinel2.read),  # Sentinel-2 L2A: a SAFE by its MTD_MSIL2A.xml
)
