"""What every product reader gives: a :class:`Product` (one acquisition: its date, its bands by common name as GDAL
sources with their scale, offset and fill, its quality layers with a decoder), and reading it onto a target grid.

Common band names, the table every reader maps its own band ids to (SPEC "Products"):

    blue, green, red, nir, swir1, swir2

Quality decoders return True where a pixel must be nodata (cloud, shadow, cirrus, fill, saturation; snow only when
asked). Reading never modifies a product file.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from osgeo import gdal, osr

from ..errors import InputError
from ..raster import RasterInfo
from .files import redact, shown

COMMON_BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")

# MODIS / VIIRS land tiles: the sinusoidal grid of 36 x 18 tiles (MODIS Land grid, sphere of radius 6371007.181 m)
SINUSOIDAL = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
TILE_SIZE = 1111950.5197665233
GRID_LEFT, GRID_TOP = -20015109.355798, 10007554.677899


@dataclass
class Layer:
    """One band of a product as GDAL reads it: ``source`` (a file or a subdataset name), its 1-based ``band``, and
    reflectance = stored x ``scale`` + ``offset``; stored values equal to ``fill`` or outside ``valid_range`` are
    nodata."""

    source: str
    band: int = 1
    scale: float = 1.0
    offset: float = 0.0
    fill: tuple[float, ...] = ()
    valid_range: tuple[float, float] | None = None
    tile_columns: int = 0  # MODIS / VIIRS tiles: pixels per tile side of this layer's grid (2400: 500 m, 1200: 1 km)


@dataclass
class Quality:
    """A quality layer and its decoder: ``decode(stored values, mask_snow) -> True where the pixel is bad``."""

    layer: Layer
    decode: Callable[[np.ndarray, bool], np.ndarray]
    what: str  # e.g. "QA_PIXEL: fill, cloud, dilated cloud, cirrus, shadow"


@dataclass
class Product:
    """One acquisition of a fine or a coarse sensor."""

    kind: str  # "fine" or "coarse"
    sensor: str  # e.g. "Landsat 8 OLI (C2 L2)"
    product_id: str
    date: _dt.date
    bands: dict[str, Layer]  # common name (or the user's band id) -> layer
    quality: list[Quality] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    tile: tuple[int, int] | None = None  # MODIS / VIIRS (h, v): the georeferencing where GDAL finds none
    band_ids: dict[str, str] = field(default_factory=dict)  # common name -> the product's own band id

    def layer(self, name: str) -> Layer:
        try:
            return self.bands[name]
        except KeyError:
            if self.bands:
                has = f"it has {', '.join(self.bands)}"
            else:
                has = ("none of the bands this tool reads was found among its files: "
                       + (", ".join(os.path.basename(f) for f in self.files[:8]) or "no files")
                       + ("..." if len(self.files) > 8 else "") + "; incomplete download?")
            raise InputError(f"{self.sensor} product '{self.product_id}' has no band '{name}' ({has}).") from None


def open_source(layer: Layer, product: Product) -> tuple[gdal.Dataset, int]:
    """The layer's dataset, georeferenced (from ``product.georef`` when GDAL finds none), and its band."""
    try:
        ds = gdal.Open(layer.source)
    except RuntimeError as exc:
        raise InputError(f"Cannot read '{shown(layer.source)}' of {product.product_id}: {redact(str(exc))}") from None
    if ds is None:
        raise InputError(f"Cannot read '{shown(layer.source)}' of {product.product_id}.")
    if product.tile is not None and (not ds.GetProjection() or ds.GetGeoTransform() == (0, 1, 0, 0, 0, 1)):
        # HDF5 (VIIRS) and stand-ins: GDAL reads no grid; the tile's place in the sinusoidal grid gives it
        wkt, transform = sinusoidal_georef(*product.tile, layer.tile_columns)
        vrt = gdal.Translate("", ds, format="VRT", bandList=[layer.band])
        vrt.SetProjection(wkt)
        vrt.SetGeoTransform(transform)
        return vrt, 1
    return ds, layer.band


def sinusoidal_georef(h: int, v: int, columns: int) -> tuple[str, tuple]:
    """The CRS and geotransform of MODIS / VIIRS tile (h, v) with ``columns`` pixels per tile side."""
    srs = osr.SpatialReference()
    srs.ImportFromProj4(SINUSOIDAL)
    pixel = TILE_SIZE / columns
    return srs.ExportToWkt(), (GRID_LEFT + h * TILE_SIZE, pixel, 0.0, GRID_TOP - v * TILE_SIZE, 0.0, -pixel)


def native_grid(product: Product, name: str) -> tuple[str, tuple, int, int]:
    """(CRS WKT, geotransform, width, height) of a band as the product stores it."""
    ds, _ = open_source(product.layer(name), product)
    return ds.GetProjection(), ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize


def warp(layer: Layer, product: Product, grid: "Grid", algorithm: str) -> np.ndarray:
    """The layer's stored values on ``grid`` as float64, NaN where nodata (fill, outside the valid range, outside
    the image)."""
    src, band = open_source(layer, product)
    if src.RasterCount > 1:
        src = gdal.Translate("", src, format="VRT", bandList=[band])
    options = gdal.WarpOptions(format="MEM", outputBounds=grid.bounds, width=grid.width, height=grid.height,
                               dstSRS=grid.crs, resampleAlg=algorithm, outputType=gdal.GDT_Float64, dstNodata=math.nan,
                               srcNodata=layer.fill[0] if layer.fill else None, multithread=False)
    try:
        out = gdal.Warp("", src, options=options)
    except RuntimeError as exc:
        raise InputError(f"Reading '{shown(layer.source)}' onto the series grid failed: {redact(str(exc))}") from None
    values = out.GetRasterBand(1).ReadAsArray().astype(np.float64)
    for f in layer.fill:
        values[values == f] = np.nan
    if layer.valid_range is not None:
        lo, hi = layer.valid_range
        values[(values < lo) | (values > hi)] = np.nan
    return values


@dataclass(frozen=True)
class Grid:
    """A target grid: CRS (WKT), bounds (xmin, ymin, xmax, ymax), size."""

    crs: str
    bounds: tuple[float, float, float, float]
    width: int
    height: int

    @property
    def geotransform(self) -> tuple:
        xmin, ymin, xmax, ymax = self.bounds
        return (xmin, (xmax - xmin) / self.width, 0.0, ymax, 0.0, -(ymax - ymin) / self.height)

    @property
    def pixel(self) -> float:
        return (self.bounds[2] - self.bounds[0]) / self.width

    def info(self, names: list[str], what: str) -> RasterInfo:
        """The grid as the core's raster description (int16 x 1e-4 series images, nodata -9999, band names)."""
        return RasterInfo(path=what, width=self.width, height=self.height, bands=len(names), crs_wkt=self.crs,
                          geotransform=self.geotransform, nodata=(-9999,) * len(names), dtype="int16",
                          descriptions=tuple(names))


def read_on_grid(product: Product, names: list[str], grid: Grid, algorithm: str, mask_snow: bool,
                 ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Reflectance [B, H, W] (float32) and validity [H, W] of ``names`` on ``grid``: every band valid and no
    quality flag set; plus counts {"outside", "flagged"} of the pixels lost to each reason."""
    values = []
    valid = np.ones((grid.height, grid.width), bool)
    for name in names:
        layer = product.layer(name)
        stored = warp(layer, product, grid, algorithm)
        valid &= np.isfinite(stored)
        values.append(np.where(np.isfinite(stored), stored * layer.scale + layer.offset, 0.0))
    outside = int((~valid).sum())
    flagged = np.zeros_like(valid)
    for q in product.quality:
        stored = warp(q.layer, product, grid, "near")
        known = np.isfinite(stored)
        bad = np.zeros_like(valid)
        bad[known] = q.decode(stored[known].astype(np.int64), mask_snow)
        flagged |= bad
    counts = {"nodata": outside, "flagged": int((flagged & valid).sum())}
    valid &= ~flagged
    return np.stack(values).astype(np.float32), valid, counts


def group_files(files: list[str], pattern: "re.Pattern") -> dict[str, list[str]]:
    """The files whose names match ``pattern``, by the product id its first group captures."""
    found: dict[str, list[str]] = {}
    for path in files:
        m = pattern.match(file_name(path))
        if m:
            found.setdefault(m.group(1), []).append(path)
    return found


def file_name(path: str) -> str:
    """The file name of a path or a URL (a signed URL's query left out)."""
    return os.path.basename(path.split("?", 1)[0] if "://" in path else path)


def bits(values: np.ndarray, first: int, count: int = 1) -> np.ndarray:
    """The unsigned field of ``count`` bits starting at bit ``first``."""
    return (values >> first) & ((1 << count) - 1)


def date_from_yyyyddd(text: str) -> _dt.date:
    """A date from year and day of year (YYYYDDD)."""
    return _dt.date(int(text[:4]), 1, 1) + _dt.timedelta(days=int(text[4:7]) - 1)


def find_subdataset(path: str, name: str) -> str:
    """The subdataset of an HDF4 / HDF5 / netCDF file whose last path component is ``name`` (HDF4-EOS:
    ``...:MODIS_Grid_500m_2D:sur_refl_b01_1``; HDF5: ``...//HDFEOS/GRIDS/.../SurfReflect_M3_1``)."""
    try:
        ds = gdal.Open(path)
    except RuntimeError as exc:
        raise InputError(f"Cannot open '{path}': {exc}") from None
    names = [s for s, _ in (ds.GetSubDatasets() if ds is not None else [])]
    for sub in names:
        if sub.replace("/", ":").rsplit(":", 1)[-1] == name:
            return sub
    raise InputError(f"'{os.path.basename(path)}' has no layer '{name}' (it has "
                     f"{', '.join(s.replace('/', ':').rsplit(':', 1)[-1] for s in names) or 'no subdatasets'}).")
