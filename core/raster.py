"""Raster I/O on GDAL: grid description, checks, windowed reads with a validity mask, scaled writes.

Conventions (see SPEC.md "Data model"):

* reflectance in the core is float32, ``reflectance = stored value x scale + offset`` (an :class:`Encoding`:
  scale 0.0001 for Landsat/MODIS surface reflectance stored as 0-10000 integers; 2.75e-5 and offset -0.2 for
  Landsat Collection 2; 1 for rasters already in 0-1);
* a pixel is *valid* when every band is finite and differs from that band's nodata value, and the optional mask
  raster is non-zero (and not its own nodata) there. Invalid pixels are written back as nodata;
* outputs are tiled, compressed GeoTIFFs on the grid of a reference raster, written through
  :class:`OutputTransaction`, so they appear complete or not at all.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import re
import stat
import threading
import uuid
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
from osgeo import gdal, osr

from .errors import GridMismatchError, InputError, StfError
from .tiles import Window, plan_tiles

gdal.UseExceptions()
osr.UseExceptions()

# GeoTIFF metadata the plugin writes: a resampled coarse image's original pixel size (resample_coarse), and a
# prediction's h/l, fine over coarse pixel size (ERGAS needs it; evaluate reads it)
COARSE_PIXEL_KEY = "STF_COARSE_PIXEL_SIZE"
RATIO_KEY = "STF_RATIO"
PAIRS_KEY = "STF_PAIR_DATES"  # the pair dates of the series a prediction came from (the report marks them)

GTIFF_OPTIONS = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"]
# predictions are written with DEFLATE level 1 (the default is 6): 2.5 times faster to write, files 7 % larger
# (measured on a CIA-size ESTARFM prediction, 6 bands int16); an ESTARFM series spent 14 % of its time compressing
FAST_DEFLATE = ["ZLEVEL=1"]
READ_THREADS = min(4, os.cpu_count() or 1)  # threads that decode the blocks of one window read

_NUMPY_TO_GDAL = {
    "uint8": gdal.GDT_Byte,
    # signed bytes (an NDVI x 100): GDAL 3.7+ has Int8; before, a Byte band marked PIXELTYPE=SIGNEDBYTE
    "int8": getattr(gdal, "GDT_Int8", gdal.GDT_Byte),
    "int16": gdal.GDT_Int16,
    "uint16": gdal.GDT_UInt16,
    "int32": gdal.GDT_Int32,
    "uint32": gdal.GDT_UInt32,
    "float32": gdal.GDT_Float32,
    "float64": gdal.GDT_Float64,
}


@dataclass(frozen=True)
class RasterInfo:
    """What the core needs to know of a raster file without reading its pixels."""

    path: str
    width: int
    height: int
    bands: int
    crs_wkt: str
    geotransform: tuple[float, float, float, float, float, float]
    nodata: tuple[float | None, ...]
    dtype: str
    descriptions: tuple[str, ...] = ()
    metadata: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def name(self) -> str:
        """File name without folder, for messages."""
        return os.path.basename(self.path)

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Pixel width and height in map units (both positive)."""
        return abs(self.geotransform[1]), abs(self.geotransform[5])

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """xmin, ymin, xmax, ymax of a north-up raster."""
        gt = self.geotransform
        xs = (gt[0], gt[0] + gt[1] * self.width)
        ys = (gt[3], gt[3] + gt[5] * self.height)
        return min(xs), min(ys), max(xs), max(ys)


def is_gdal_source(path: str) -> bool:
    """True for what GDAL opens that is not a local file: virtual file systems (/vsicurl/, /vsizip/, /vsis3/ ...),
    a VRT given as XML text, a driver-prefixed source (``HDF5:"f.h5"://...``, ``NETCDF:"f.nc":var``)."""
    text = path.lstrip()
    return text.startswith(("/vsi", "<VRTDataset")) or bool(re.match(r"^[A-Z][A-Z0-9_]+:", text))


def require_regular_file(path: str, what: str) -> None:
    """An input must be a regular file: a FIFO would block the run forever, a device read without end."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing: the caller's own message
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise InputError(f"The {what} file '{path}' is not a regular file (a pipe, socket or device); give a file.")


def _open(path: str, what: str = "raster") -> gdal.Dataset:
    path = os.fspath(path) if path else path
    if not path:
        raise InputError(f"No {what} file given.")
    if not is_gdal_source(path) and not os.path.exists(path):
        raise InputError(f"The {what} file '{path}' does not exist.")
    if not is_gdal_source(path):
        require_regular_file(path, what)
    # GeoTIFF blocks a window read spans are decoded on READ_THREADS threads (GDAL >= 3.6; read when the dataset is
    # opened): measured 1.75 times faster on a CIA-size DEFLATE file read in 306-pixel windows, 2 cores (issue 28).
    # Only where the user or QGIS set nothing, and thread-local, so no other setting changes.
    own = gdal.GetConfigOption("GDAL_NUM_THREADS") is None
    if own:
        gdal.SetThreadLocalConfigOption("GDAL_NUM_THREADS", str(READ_THREADS))
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise InputError(f"The {what} file '{path}' cannot be read as a raster: {exc}") from None
    finally:
        if own:
            gdal.SetThreadLocalConfigOption("GDAL_NUM_THREADS", None)
    if ds is None or ds.RasterCount == 0:
        raise InputError(f"The {what} file '{path}' holds no raster band.")
    return ds


def raster_info(path: str, what: str = "raster") -> RasterInfo:
    """Describe the raster at ``path``; a missing or unreadable file is an :class:`InputError` naming it."""
    path = os.fspath(path)
    ds = _open(path, what)
    band = ds.GetRasterBand(1)
    dtype = gdal.GetDataTypeName(band.DataType)
    np_dtype = "int8" if _signed_byte(band) else next((k for k, v in _NUMPY_TO_GDAL.items() if v == band.DataType),
                                                       None)
    if np_dtype is None:
        raise InputError(f"The {what} file '{path}' has the unsupported data type {dtype}.")
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise InputError(f"The {what} file '{path}' has no georeferencing (geotransform).")
    if gt[2] != 0 or gt[4] != 0:
        raise InputError(f"The {what} file '{path}' is rotated; only north-up rasters are supported.")
    info = RasterInfo(
        path=path,
        width=ds.RasterXSize,
        height=ds.RasterYSize,
        bands=ds.RasterCount,
        crs_wkt=ds.GetProjection() or "",
        geotransform=tuple(gt),
        nodata=tuple(ds.GetRasterBand(i + 1).GetNoDataValue() for i in range(ds.RasterCount)),
        dtype=np_dtype,
        descriptions=tuple(ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)),
        metadata=dict(ds.GetMetadata() or {}),
    )
    ds = None
    return info


def crs_label(wkt: str) -> str:
    """Short human name of a CRS: ``EPSG:32633`` where an authority code exists, else its name."""
    if not wkt:
        return "no CRS"
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    if srs.GetAuthorityCode(None) is None:
        try:
            srs.AutoIdentifyEPSG()
        except RuntimeError:
            pass
    code = srs.GetAuthorityCode(None)
    name = srs.GetAuthorityName(None)
    return f"{name}:{code}" if code and name else srs.GetName() or "unnamed CRS"


def same_crs(a: str, b: str) -> bool:
    """True if two WKT strings describe the same CRS (both empty counts as the same)."""
    if not a or not b:
        return not a and not b
    sa, sb = osr.SpatialReference(), osr.SpatialReference()
    sa.ImportFromWkt(a)
    sb.ImportFromWkt(b)
    return bool(sa.IsSame(sb))


def grid_differences(ref: RasterInfo, other: RasterInfo, check_bands: bool = True) -> list[str]:
    """Properties in which ``other`` differs from ``ref``: each as 'property: other vs ref'."""
    diffs = []
    if not same_crs(ref.crs_wkt, other.crs_wkt):
        diffs.append(f"CRS: {crs_label(other.crs_wkt)} vs {crs_label(ref.crs_wkt)}")
    px = min(ref.pixel_size)
    gt_r, gt_o = ref.geotransform, other.geotransform
    if abs(gt_r[1] - gt_o[1]) > 1e-6 * px or abs(gt_r[5] - gt_o[5]) > 1e-6 * px:
        diffs.append(f"pixel size: {other.pixel_size} vs {ref.pixel_size}")
    elif abs(gt_r[0] - gt_o[0]) > 1e-3 * px or abs(gt_r[3] - gt_o[3]) > 1e-3 * px:
        diffs.append(f"geotransform origin: ({gt_o[0]}, {gt_o[3]}) vs ({gt_r[0]}, {gt_r[3]})")
    if (ref.width, ref.height) != (other.width, other.height):
        diffs.append(f"size: {other.width} x {other.height} vs {ref.width} x {ref.height} pixels")
    if check_bands and ref.bands != other.bands:
        diffs.append(f"band count: {other.bands} vs {ref.bands}")
    return diffs


def check_band_order(ref: RasterInfo, other: RasterInfo) -> None:
    """Refuse two images whose band names are the same set in another order (they would be combined band by band,
    silently wrong); names that differ otherwise (another product's naming, no names) are not judged."""
    a = [str(d).strip().lower() for d in ref.descriptions or ()]
    b = [str(d).strip().lower() for d in other.descriptions or ()]
    if len(a) == len(b) and all(a) and all(b) and a != b and sorted(a) == sorted(b):
        raise InputError(f"The bands of '{other.path}' ({', '.join(other.descriptions)}) are those of '{ref.path}' "
                         f"in another order ({', '.join(ref.descriptions)}); they would be combined band by band. "
                         "Reorder the bands (e.g. gdal_translate -b) so that every image has the same order.")


def check_same_grid(ref: RasterInfo, other: RasterInfo, check_bands: bool = True) -> None:
    """Raise :class:`GridMismatchError` naming both files and every differing property."""
    diffs = grid_differences(ref, other, check_bands)
    if diffs:
        raise GridMismatchError(
            f"'{other.name}' is not on the grid of '{ref.name}': " + "; ".join(diffs)
            + f" (files: {other.path} and {ref.path})."
        )


def read_thumbnail(path: str, size: int = 256) -> np.ndarray:
    """Stored values of all bands on a grid of at most ``size`` x ``size`` (every n-th pixel), ``[bands, rows,
    cols]``: a cheap sample of a whole scene for plausibility checks."""
    ds = _open(path)
    width, height = min(ds.RasterXSize, size), min(ds.RasterYSize, size)
    try:
        data = ds.ReadAsArray(buf_xsize=width, buf_ysize=height, resample_alg=gdal.GRIORA_NearestNeighbour)
    except RuntimeError as exc:
        raise InputError(f"Reading '{path}' failed: {exc}") from None
    return data.reshape(ds.RasterCount, height, width)


def _signed_byte(band: gdal.Band) -> bool:
    """A band of signed bytes: Int8, or (GDAL < 3.7) Byte with PIXELTYPE=SIGNEDBYTE."""
    if band.DataType == getattr(gdal, "GDT_Int8", -1):
        return True
    return band.DataType == gdal.GDT_Byte and band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE"


_KEPT_OPEN: contextvars.ContextVar = contextvars.ContextVar("stf_kept_open", default=None)


@contextlib.contextmanager
def keep_open() -> Iterator[None]:
    """Within this block :func:`read_raw` keeps every file it opens open, so GDAL's block cache keeps its decoded
    tiles between reads: for many small windows of the same files (STF3DCNN's training sub-cubes, each one
    window of every image of the series; 3.5 of its 12 s on the sample were spent opening files and decoding the
    same tiles again)."""
    token = _KEPT_OPEN.set({})
    try:
        yield
    finally:
        _KEPT_OPEN.reset(token)


def read_raw(path: str, window: Window | None = None) -> np.ndarray:
    """Stored values of all bands as ``[bands, rows, cols]`` in the file's data type."""
    kept = _KEPT_OPEN.get()
    ds = kept.get(path) if kept is not None else None
    if ds is None:
        ds = _open(path)
        if kept is not None:
            kept[path] = ds
    if window is None:
        window = Window(0, 0, ds.RasterXSize, ds.RasterYSize)
    if window.x < 0 or window.y < 0 or window.x + window.width > ds.RasterXSize or \
            window.y + window.height > ds.RasterYSize:
        raise InputError(f"Window {window} lies outside '{path}' ({ds.RasterXSize} x {ds.RasterYSize}).")
    try:
        data = ds.ReadAsArray(window.x, window.y, window.width, window.height)
    except RuntimeError as exc:
        raise InputError(f"Reading '{path}' failed: {exc}") from None
    if data.dtype == np.uint8 and _signed_byte(ds.GetRasterBand(1)):
        data = data.view(np.int8)  # GDAL < 3.7 hands signed bytes over as unsigned
    return data.reshape(ds.RasterCount, window.height, window.width)


def valid_share(path: str, info: "RasterInfo | None" = None) -> float:
    """Share of the pixels of a raster that are valid (read in tiles)."""
    info = info or raster_info(path)
    total = valid = 0
    for tile in plan_tiles(info.width, info.height, 512):
        ok = valid_mask(read_raw(path, tile.inner), info.nodata)
        total += ok.size
        valid += int(ok.sum())
    return valid / max(total, 1)


def valid_mask(raw: np.ndarray, nodata: Sequence[float | None]) -> np.ndarray:
    """Per-pixel validity ``[rows, cols]``: every band finite and different from its nodata value."""
    valid = np.ones(raw.shape[-2:], dtype=bool)
    for band, nd in zip(raw, nodata):
        if np.issubdtype(band.dtype, np.floating):
            valid &= np.isfinite(band)
            if nd is not None and np.isnan(nd):
                continue
        if nd is not None:
            valid &= band != nd
    return valid


def read_mask_raster(mask_path: str, ref: RasterInfo, window: Window | None = None) -> np.ndarray:
    """Validity from a mask raster on the grid of ``ref``: non-zero and not nodata means valid."""
    info = raster_info(mask_path, "mask")
    check_same_grid(ref, info, check_bands=False)
    raw = read_raw(mask_path, window)[0]
    valid = raw != 0
    return valid & valid_mask(raw[None], info.nodata[:1])


@dataclass(frozen=True)
class Encoding:
    """How a raster stores reflectance: ``reflectance = stored value x scale + offset``.

    Fine and coarse products often differ (Landsat Collection 2: x 2.75e-5 - 0.2; MODIS MOD09: x 1e-4; some
    products 0-1 floats): the series keeps one encoding per kind (see ``series.Scales``).
    """

    scale: float = 1.0
    offset: float = 0.0
    name: str = "SCALE"  # the parameter the scale came from, for messages

    def __post_init__(self) -> None:
        import math

        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            raise InputError(f"{self.name} must be a finite positive number (reflectance = stored value x "
                             f"{self.name}), not {self.scale!r}.")
        if not (isinstance(self.offset, (int, float)) and math.isfinite(self.offset)):
            raise InputError(f"The offset of {self.name} must be a finite number, not {self.offset!r}.")

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Stored values to float32 reflectance."""
        data = raw.astype(np.float32) * np.float32(self.scale)
        if self.offset:
            data += np.float32(self.offset)
        return data

    def describe(self) -> str:
        """``x 0.0001`` or ``x 2.75e-05 - 0.2``, for messages and metadata."""
        text = f"x {self.scale:g}"
        return text + (f" {'+' if self.offset > 0 else '-'} {abs(self.offset):g}" if self.offset else "")


def as_encoding(scale: "float | Encoding") -> Encoding:
    """An :class:`Encoding` from a plain scale factor (offset 0) or an encoding."""
    if isinstance(scale, Encoding):
        return scale
    if isinstance(scale, (int, float)):
        return Encoding(float(scale))
    raise TypeError(f"a scale factor or an Encoding is needed, not {type(scale).__name__} (read series images "
                    "with series.read_item, which picks the fine or the coarse encoding)")


def to_reflectance(raw: np.ndarray, scale: "float | Encoding") -> np.ndarray:
    """Stored values to float32 reflectance: ``raw * scale + offset``."""
    return as_encoding(scale).decode(raw)


def read_block(
    path: str, window: Window | None = None, scale: "float | Encoding" = 1.0, mask_path: str | None = None,
    info: RasterInfo | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` (default: whole raster) as float32 reflectance ``[bands, rows, cols]`` and validity.

    Invalid pixels (nodata in any band, non-finite, or masked by ``mask_path``) are set to 0 in the data and False
    in the returned ``[rows, cols]`` mask, so they cannot leak into neighbours through arithmetic.
    """
    info = info or raster_info(path)
    raw = read_raw(path, window)
    valid = valid_mask(raw, info.nodata)
    if mask_path:
        valid &= read_mask_raster(mask_path, info, window)
    data = to_reflectance(raw, scale)
    data[:, ~valid] = 0.0
    return data, valid


def from_reflectance(values: np.ndarray, scale: "float | Encoding", dtype: str) -> np.ndarray:
    """Float reflectance back to stored values: ``(values - offset) / scale``, rounded and clipped for integer
    types."""
    enc = as_encoding(scale)
    stored = values - np.float32(enc.offset) if enc.offset else values
    stored = stored / np.float32(enc.scale) if enc.scale != 1 else stored
    np_type = np.dtype(dtype)
    if np.issubdtype(np_type, np.integer):
        limits = np.iinfo(np_type)
        stored = np.clip(np.rint(stored), limits.min, limits.max)
    return stored.astype(np_type)


def _avoid_nodata(stored: np.ndarray, nodata: float) -> np.ndarray:
    """A valid value equal to the nodata value (0 in uint16 Landsat data, after rounding a tiny reflectance) would
    silently become a hole: move it one stored unit away, toward the data (up from the type's minimum or from 0,
    down from the type's maximum)."""
    hit = stored == nodata
    if not hit.any():
        return stored
    if np.issubdtype(stored.dtype, np.integer):
        limits = np.iinfo(stored.dtype)
        step = -1 if nodata == limits.max else 1
    else:
        step = max(abs(float(nodata)) * 1e-6, 1e-6) * (-1 if nodata > 0 else 1)
    stored[hit] = np.asarray(nodata + step).astype(stored.dtype)
    return stored


def default_nodata(dtype: str) -> float:
    """A nodata value for ``dtype`` that reflectance never takes."""
    return {"uint8": 255, "int8": -128, "uint16": 65535, "uint32": 4294967295}.get(dtype, -9999)


class RasterWriter:
    """A GeoTIFF on the grid of ``like``, filled window by window with float reflectance.

    ``path`` should be a temporary path of an :class:`OutputTransaction`. Values are encoded with ``scale`` (a
    factor or an :class:`Encoding`) and converted to ``dtype``; pixels where ``valid`` is False become ``nodata``.
    A non-finite value in a valid pixel is an error: predictions are never written silently with holes.
    ``compress=False`` writes uncompressed blocks (scratch rasters of float intermediates, which DEFLATE shrinks by
    about 10 % at 20 times the write time).
    """

    def __init__(
        self, path: str, like: RasterInfo, bands: int | None = None, dtype: str | None = None,
        scale: "float | Encoding" = 1.0, nodata: float | None = None, descriptions: Sequence[str] | None = None,
        metadata: dict | None = None, compress: bool = True,
    ) -> None:
        self.path = path
        self.like = like
        self.bands = bands or like.bands
        self.dtype = dtype or like.dtype
        self.scale = as_encoding(scale)
        self.nodata = nodata if nodata is not None else default_nodata(self.dtype)
        options = GTIFF_OPTIONS + FAST_DEFLATE + ["PREDICTOR=3" if self.dtype.startswith("float") else "PREDICTOR=2"]
        if not compress:
            options = [o for o in GTIFF_OPTIONS if not o.startswith("COMPRESS=")] + ["COMPRESS=NONE"]
        self._signed_bytes = self.dtype == "int8" and not hasattr(gdal, "GDT_Int8")
        if self._signed_bytes:  # GDAL < 3.7: signed bytes are a Byte band marked so (written as their bit patterns)
            options.append("PIXELTYPE=SIGNEDBYTE")
        driver = gdal.GetDriverByName("GTiff")
        try:
            self.ds = driver.Create(path, like.width, like.height, self.bands, _NUMPY_TO_GDAL[self.dtype], options)
        except RuntimeError as exc:
            raise StfError(f"Cannot create the output raster '{path}': {exc}") from None
        self.ds.SetGeoTransform(like.geotransform)
        if metadata:
            self.ds.SetMetadata({str(k): str(v) for k, v in metadata.items()})
        if like.crs_wkt:
            self.ds.SetProjection(like.crs_wkt)
        for i in range(self.bands):
            band = self.ds.GetRasterBand(i + 1)
            band.SetNoDataValue(self.nodata)
            if descriptions is not None and i < len(descriptions):
                band.SetDescription(descriptions[i])

    def write(self, values: np.ndarray, window: Window | None = None, valid: np.ndarray | None = None) -> None:
        """Write reflectance ``[bands, rows, cols]`` at ``window`` (default: whole raster); ``valid`` is per pixel
        ``[rows, cols]`` or per value ``[bands, rows, cols]`` (False: nodata)."""
        if window is None:
            window = Window(0, 0, self.like.width, self.like.height)
        values = np.asarray(values, dtype=np.float32).reshape(self.bands, window.height, window.width)
        finite = np.isfinite(values)
        if valid is not None and valid.ndim == 2:
            valid = np.broadcast_to(valid, values.shape)
        bad = (~finite if valid is None else (~finite & valid)).any(axis=0)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise StfError(
                f"{int(bad.sum())} non-finite values in valid pixels of '{os.path.basename(self.path)}' "
                f"(first at row {window.y + row}, column {window.x + col}); nothing was written."
            )
        stored = _avoid_nodata(from_reflectance(np.where(finite, values, 0), self.scale, self.dtype), self.nodata)
        if valid is not None:
            stored[~valid] = self.nodata
        # Hand finished blocks to the file now: otherwise GDAL's block cache (5 % of RAM by default) grows with the
        # scene, and memory would not be bounded by the tile size.
        self._store([(i, stored[i], window.x, window.y) for i in range(self.bands)])

    def _store(self, blocks: list) -> None:
        """Write (band index, array, x, y) blocks and flush them; a write error (full disk, file too large) is a
        message naming the output folder and the problem."""
        try:
            for index, array, x, y in blocks:
                if self._signed_bytes:
                    array = np.ascontiguousarray(array, dtype=np.int8).view(np.uint8)
                self.ds.GetRasterBand(index + 1).WriteArray(array, x, y)
            self.ds.FlushCache()
        except RuntimeError as exc:
            raise StfError(f"Writing '{final_name(self.path)}' failed: {exc} (is the disk full?). No output was "
                           "written.") from None

    def write_band(self, index: int, values: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Write one whole band (0-based ``index``) of reflectance [rows, cols]."""
        values = np.asarray(values, dtype=np.float32)
        if not np.isfinite(values[valid] if valid is not None else values).all():
            raise StfError(f"Non-finite values in valid pixels of band {index + 1} of '{self.path}'.")
        stored = _avoid_nodata(from_reflectance(np.nan_to_num(values), self.scale, self.dtype), self.nodata)
        if valid is not None:
            stored[~valid] = self.nodata
        self._store([(index, stored, 0, 0)])

    def close(self) -> None:
        """Flush and close the file; a write error then (a full disk) is the same message as while writing."""
        if self.ds is not None:
            ds, self.ds = self.ds, None
            try:
                ds.FlushCache()
            except RuntimeError as exc:
                raise StfError(f"Writing '{final_name(self.path)}' failed: {exc} (is the disk full?). No output was "
                               "written.") from None
            finally:
                del ds

    def __enter__(self) -> "RasterWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
            return False
        try:  # closing after an error: the first error is the one the user needs (a full disk fails both)
            self.close()
        except (StfError, RuntimeError):
            pass
        return False


def write_raster(
    path: str, values: np.ndarray, like: RasterInfo, valid: np.ndarray | None = None,
    scale: "float | Encoding" = 1.0, dtype: str | None = None, nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
) -> None:
    """Write a whole ``[bands, rows, cols]`` reflectance array to ``path`` on the grid of ``like``."""
    with RasterWriter(path, like, values.shape[0], dtype, scale, nodata, descriptions) as writer:
        writer.write(values, valid=valid)


def grid_info(
    path: str, width: int, height: int, bands: int, geotransform: Sequence[float], crs_wkt: str,
    dtype: str = "float32",
) -> RasterInfo:
    """A :class:`RasterInfo` for a grid that has no file yet (synthetic data, resampling targets)."""
    return RasterInfo(path, width, height, bands, crs_wkt, tuple(geotransform), (None,) * bands, dtype)


def _remove(path: str) -> None:
    """Best effort: a temporary that cannot be removed now (read-only file system) carries a dead process id
    afterwards, and the next run into the folder removes it (:func:`clean_stale`)."""
    for candidate in (path, path + ".aux.xml", path + ".msk"):
        try:
            os.remove(candidate)
        except OSError:
            pass


# The inputs of the run in progress (per thread / task: QGIS runs algorithms in parallel worker threads): no
# output may be one of them, whatever path leads to it (symbolic links, hard links, relative paths).
_PROTECTED: contextvars.ContextVar = contextvars.ContextVar("stf_protected_inputs", default=())


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _raw_band(path: str) -> bool:
    """True when ``path`` is a VRT (a file or XML text) with a raw raster band."""
    try:
        driver = gdal.IdentifyDriver(path) if not path.lstrip().startswith("<VRTDataset") else gdal.GetDriverByName("VRT")
        if driver is None or driver.ShortName != "VRT":
            return False
        xml = (gdal.Open(path).GetMetadata("xml:VRT") or [""])[0]
    except RuntimeError:
        return False
    return "VRTRawRasterBand" in xml


def _files_behind(path: str) -> list[str]:
    """The files GDAL reads for ``path`` besides itself: a VRT's sources (nested VRTs included), side-cars. A VRT
    with a raw raster band, itself or nested, is refused: it can map any file the user can read into the data
    (GDAL 3.6 has no run-time switch for them; GDAL_VRT_ENABLE_RAWRASTERBAND=NO is set too where it has)."""
    if not path or not (os.path.isfile(path) or path.lstrip().startswith("<VRTDataset")):
        return []  # (os.path.isfile: a pipe or device is refused when it is opened, with its own message)
    previous = gdal.GetThreadLocalConfigOption("GDAL_VRT_ENABLE_RAWRASTERBAND", None)
    gdal.SetThreadLocalConfigOption("GDAL_VRT_ENABLE_RAWRASTERBAND", "NO")
    try:
        ds = gdal.OpenEx(path, gdal.OF_RASTER)
    except RuntimeError as exc:
        if "RawRasterBand" not in str(exc):
            return []
        ds = None
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_VRT_ENABLE_RAWRASTERBAND", previous)
    files = [f for f in (ds.GetFileList() or []) if f and not f.startswith("/vsi")] if ds is not None else []
    if ds is None or any(_raw_band(f) for f in [path] + files):
        raise InputError(f"The input '{path if os.path.isfile(path) else 'VRT'}' is a VRT with a raw raster band, "
                         "which can map any file of this computer into the data; such VRTs are refused (use one "
                         "with sources).")
    return [f for f in files if not os.path.isfile(path) or os.path.realpath(f) != os.path.realpath(path)]


@contextlib.contextmanager
def protect_inputs(paths: Sequence[str]) -> Iterator[None]:
    """While active, :meth:`OutputTransaction.add` refuses any output that is one of ``paths`` (compared by real
    path and by file identity, so a link to an input or to its folder is caught too), or a file GDAL reads for one
    of them (a VRT's source files, side-cars)."""
    behind = [(f"{f} (read through {p})", f) for p in paths for f in _files_behind(p)]
    entries = tuple((name, os.path.realpath(p), _identity(p)) for name, p in [(p, p) for p in paths if p] + behind)
    token = _PROTECTED.set(_PROTECTED.get() + entries)
    try:
        yield
    finally:
        _PROTECTED.reset(token)


def check_not_input(path: str) -> None:
    """Raise :class:`InputError` if ``path`` is (or leads to) an input of the run in progress."""
    real = os.path.realpath(path)
    identity = _identity(real)
    for original, input_real, input_identity in _PROTECTED.get():
        if real == input_real or (identity is not None and identity == input_identity):
            raise InputError(f"The output '{path}' is the input '{original}'"
                             + (f" (both lead to '{real}')" if os.path.abspath(path) != os.path.abspath(original)
                                else "") + ": writing it would destroy the input. Choose another output name or "
                             "folder; nothing was written.")


# Temporaries carry their owner: ".<name>.<kind>-<owner>-<8 characters>[ext]", owner = "<pid>x<10 hex>" (unique per
# process, also across hosts and PID namespaces: containers where every run is pid 1, NFS folders shared by
# cluster nodes; legacy names carry the pid alone). While a process has temporaries in a folder it holds an
# exclusive lock (flock) on ".stf-lock-<owner>" there, so that a later run recognises what a killed run (SIGKILL,
# power loss) left behind, the lock being free, and cleans it, and never deletes what a live run's lock holds.
# Where there is no flock (Windows) the owner's pid decides, on this machine.
_SCRATCH = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|replaced|scratch)-(?P<pid>\d+)(?:x(?P<tag>[0-9a-f]{10}))?"
                      r"-[0-9a-z_]{8}(?P<ext>\.[^.]*)?(?P<sidecar>(\.[^.]+)*)$")  # side-car: .aux.xml, .msk
_LOCK = re.compile(r"^\.stf-lock-(?P<owner>\d+x[0-9a-f]{10})$")
_NAME_MAX = 255  # bytes of one file name (ext4, NTFS, APFS)
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
_owner_state: dict = {}
_claims: dict[str, list] = {}  # real folder -> [count, lock file descriptor or None]
_claims_lock = threading.Lock()
_finals: dict[str, str] = {}  # shortened temporary name -> the output it stands for (messages)


def _owner() -> str:
    """This process's owner tag (recomputed in a forked child)."""
    if _owner_state.get("pid") != os.getpid():
        _owner_state.update(pid=os.getpid(), tag=f"{os.getpid()}x{uuid.uuid4().hex[:10]}")
        _claims.clear()
    return _owner_state["tag"]


def claim(folder: str) -> None:
    """Hold this process's lock in ``folder`` while it has temporaries there (counted: call :func:`release` as
    often)."""
    key = os.path.realpath(folder)
    with _claims_lock:
        owner = _owner()
        if key in _claims:
            _claims[key][0] += 1
            return
        fd = None
        path = os.path.join(folder, f".stf-lock-{owner}")
        for _ in range(3) if fcntl is not None else ():
            try:
                fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break  # (a cleaner may have removed the file between its creation and the lock: again)
            except OSError:  # a read-only folder holds no temporaries either
                pass
            if fd is not None:
                os.close(fd)
            fd = None
        _claims[key] = [1, fd]


def release(folder: str) -> None:
    """The end of a :func:`claim`: the last one removes the lock file, then frees the lock."""
    key = os.path.realpath(folder)
    with _claims_lock:
        entry = _claims.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] > 0:
            return
        del _claims[key]
        if entry[1] is not None:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(key, f".stf-lock-{_owner()}"))
            os.close(entry[1])


@contextlib.contextmanager
def scratch_dir(name: str, folder: str) -> Iterator[str]:
    """A hidden scratch folder of this run inside ``folder`` (what killed runs left there cleaned first), removed
    at the end; the folder's lock is held meanwhile."""
    import shutil
    import tempfile

    os.makedirs(folder, exist_ok=True)
    clean_stale(folder)
    claim(folder)
    try:
        path = tempfile.mkdtemp(prefix=scratch_prefix(name), dir=folder)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    finally:
        release(folder)


def _short(stem: str, room: int) -> str:
    """``stem`` cut to ``room`` bytes (UTF-8) with a hash of the whole, for temporaries of long output names."""
    digest = hashlib.sha1(stem.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    cut = stem.encode("utf-8", "surrogateescape")[:max(room - 9, 1)].decode("utf-8", "ignore")
    return f"{cut}~{digest}"


def scratch_name(name: str, kind: str) -> str:
    """A hidden temporary name for ``name`` (kind: partial or replaced) owned by this process; a name too long for
    the file system with the suffix is shortened (a replaced file then goes into a folder of that name, under its
    own name)."""
    stem, ext = os.path.splitext(name) if kind == "partial" else (name, "")
    tail = f".{kind}-{_owner()}-{uuid.uuid4().hex[:8]}{ext}"
    if len(f".{stem}{tail}".encode("utf-8", "surrogateescape")) > _NAME_MAX:
        stem = _short(stem, _NAME_MAX - len(tail.encode()) - 1)
    return f".{stem}{tail}"


def final_name(path: str) -> str:
    """The output a temporary path of an :class:`OutputTransaction` stands for (``path`` itself otherwise), for
    messages."""
    if path in _finals:
        return _finals[path]
    folder, name = os.path.split(path)
    match = _SCRATCH.match(name)
    if match is None or match["kind"] != "partial":
        return path
    return os.path.join(folder, match["name"] + (match["ext"] or ""))


def scratch_prefix(name: str) -> str:
    """The prefix of a scratch folder of this process, for :func:`tempfile.mkdtemp` (which adds 8 characters)."""
    return f".{name}.scratch-{_owner()}-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _lock_free(folder: str, owner: str) -> bool | None:
    """True when ``owner``'s lock in ``folder`` is free or gone (the owner is dead), False while it is held, None
    where locks cannot tell (no flock)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(os.path.join(folder, f".stf-lock-{owner}"), os.O_RDWR)
    except FileNotFoundError:
        return True  # a live owner creates its lock before any temporary and removes it after the last
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # (closing frees the lock taken here)
    return True


def _owner_dead(folder: str, match: re.Match) -> bool:
    pid = int(match["pid"])
    if match["tag"] is None:  # a legacy name: the pid on this machine
        return not _alive(pid)
    owner = f"{pid}x{match['tag']}"
    if owner == _owner():
        return False
    free = _lock_free(folder, owner)
    return (not _alive(pid)) if free is None else free


def clean_stale(folder: str) -> list[str]:
    """Remove the temporaries that a dead process left in ``folder`` (partial outputs, scratch folders); a
    backup of a replaced file whose original is missing is put back (a run killed while committing). Returns
    what was removed or restored."""
    import shutil

    done = []
    try:
        names = os.listdir(folder)
    except OSError:
        return done
    dead = {}
    for entry in names:
        match = _SCRATCH.match(entry)
        if not match:
            continue
        owner = f"{match['pid']}x{match['tag']}" if match["tag"] else match["pid"]
        if owner not in dead:
            dead[owner] = _owner_dead(folder, match)
        if not dead[owner]:
            continue
        path = os.path.join(folder, entry)
        try:
            if match["kind"] == "replaced" and (match["ext"] or match["sidecar"]):
                os.remove(path)  # a side-car of a backup, never a backup itself
            elif match["kind"] == "replaced" and os.path.isdir(path) and not os.path.islink(path):
                for inner in os.listdir(path):  # a long name's backup: the file under its own name
                    if not os.path.lexists(os.path.join(folder, inner)):
                        os.replace(os.path.join(path, inner), os.path.join(folder, inner))
                shutil.rmtree(path)
            elif match["kind"] == "replaced" and not os.path.lexists(os.path.join(folder, match["name"])):
                os.replace(path, os.path.join(folder, match["name"]))
            elif os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            done.append(path)
        except OSError:
            pass
    for entry in names:  # the locks of dead owners
        match = _LOCK.match(entry)
        if match and match["owner"] != _owner() and _lock_free(folder, match["owner"]):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, entry))
    return done


class OutputTransaction:
    """All-or-nothing outputs: files are written under temporary names and renamed when every one is complete.

    ::

        with OutputTransaction() as tx:
            tmp = tx.add("out/prediction_2021-05-01.tif")
            write_raster(tmp, ...)
        # here every added file exists under its final name; after an exception or a cancel none does

    The temporary file lives in the destination folder (so the rename is atomic) under a hidden name.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[str, str]] = []
        self.committed: list[str] = []
        self._cleaned: set[str] = set()  # the folders this transaction claimed (raster.claim)

    def add(self, final_path: str) -> str:
        """Register ``final_path`` and return the temporary path to write instead."""
        final_path = os.path.abspath(final_path)
        folder, name = os.path.split(final_path)
        if any(os.path.realpath(final) == os.path.realpath(final_path) for _, final in self._pending):
            raise InputError(f"The output '{final_path}' would be written twice in one run.")
        check_not_input(final_path)
        try:  # the side-car GDAL would read with the output, and the commit replaces, must not be an input
            check_not_input(final_path + ".aux.xml")
        except InputError:
            raise InputError(f"The input '{final_path}.aux.xml' is named like the side-car of the output "
                             f"'{final_path}', which the output would replace; rename that input or choose another "
                             "output folder. Nothing was written.") from None
        if os.path.isdir(final_path):
            raise InputError(f"The output '{final_path}' is a folder; choose another output name.")
        if os.path.exists(final_path) and not stat.S_ISREG(os.stat(final_path).st_mode):
            raise InputError(f"The output '{final_path}' exists and is not a regular file (a device, pipe or "
                             "socket); choose another output name. Nothing was written.")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise InputError(f"Cannot create the output folder '{folder}': {exc}") from None
        if folder not in self._cleaned:  # what a killed earlier run left here, then this run's lock
            clean_stale(folder)
            claim(folder)
            self._cleaned.add(folder)
        temp = os.path.join(folder, scratch_name(name, "partial"))
        if final_name(temp) != final_path:  # a shortened long name: its messages still name the output
            _finals[temp] = final_path
        self._pending.append((temp, final_path))
        return temp

    def commit(self) -> list[str]:
        """Rename every temporary file to its final name; returns the final paths. Two phases: every destination is
        checked first; then an existing file is moved aside before it is replaced, and if any rename fails the
        outputs already moved are taken back and the replaced files restored, so the folder is as before."""
        for temp, final in self._pending:
            if not os.path.exists(temp):
                self.rollback()
                raise StfError(f"Internal error: the output '{temp}' was never written.")
            if os.path.isdir(final):
                self.rollback()
                raise InputError(f"The output '{final}' is a folder; nothing was written.")
        done: list[tuple[str, str, str | None]] = []  # (temp, final, backup of the file it replaced)
        try:
            for temp, final in self._pending:
                backup = None
                if os.path.lexists(final):
                    folder, name = os.path.split(final)
                    backup = os.path.join(folder, scratch_name(name, "replaced"))
                    if _SCRATCH.match(os.path.basename(backup))["name"] != name:  # a long name, shortened: the
                        # backup keeps it inside a folder of the shortened name
                        os.mkdir(backup)
                        backup = os.path.join(backup, name)
                    os.replace(final, backup)
                done.append((temp, final, backup))
                os.replace(temp, final)
        except OSError as exc:
            lost = []  # replaced files that could not be put back (the file system refuses every change)
            for temp, final, backup in reversed(done):
                try:
                    if os.path.lexists(final) and not os.path.lexists(temp):
                        os.replace(final, temp)  # take the new output back
                    if backup is not None:
                        os.replace(backup, final)  # and restore what was there
                except OSError:
                    if backup is not None:
                        lost.append(f"'{final}' is kept as '{backup}'")
            self.rollback()
            if lost:
                raise StfError(f"Cannot write the output '{exc.filename or ''}': {exc.strerror or exc}; and the "
                               f"folder could not be restored: {'; '.join(lost)}.") from None
            raise StfError(f"Cannot write the output '{exc.filename or ''}': {exc.strerror or exc}; nothing was "
                           "written and the folder is as before.") from None
        for temp, final, backup in done:
            if backup is not None:
                _remove(backup)
                if os.path.basename(backup) == os.path.basename(final):  # the folder of a long name's backup
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.dirname(backup))
            sidecar = final + ".aux.xml"  # statistics of the replaced file are stale
            if os.path.exists(temp + ".aux.xml"):
                os.replace(temp + ".aux.xml", sidecar)
            elif os.path.exists(sidecar):
                os.remove(sidecar)
            self.committed.append(final)
            _finals.pop(temp, None)
        self._pending = []
        self._release()
        return list(self.committed)

    def rollback(self) -> None:
        """Delete every temporary file written so far."""
        for temp, _ in self._pending:
            _remove(temp)
            _finals.pop(temp, None)
        self._pending = []
        self._release()

    def _release(self) -> None:
        for folder in self._cleaned:
            release(folder)
        self._cleaned = set()

    def __enter__(self) -> "OutputTransaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        return False
