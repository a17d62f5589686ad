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
import os
import re
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

_NUMPY_TO_GDAL = {
    "uint8": gdal.GDT_Byte,
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


def _open(path: str, what: str = "raster") -> gdal.Dataset:
    path = os.fspath(path) if path else path
    if not path:
        raise InputError(f"No {what} file given.")
    if not is_gdal_source(path) and not os.path.exists(path):
        raise InputError(f"The {what} file '{path}' does not exist.")
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise InputError(f"The {what} file '{path}' cannot be read as a raster: {exc}") from None
    if ds is None or ds.RasterCount == 0:
        raise InputError(f"The {what} file '{path}' holds no raster band.")
    return ds


def raster_info(path: str, what: str = "raster") -> RasterInfo:
    """Describe the raster at ``path``; a missing or unreadable file is an :class:`InputError` naming it."""
    path = os.fspath(path)
    ds = _open(path, what)
    band = ds.GetRasterBand(1)
    dtype = gdal.GetDataTypeName(band.DataType)
    np_dtype = next((k for k, v in _NUMPY_TO_GDAL.items() if v == band.DataType), None)
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


def read_raw(path: str, window: Window | None = None) -> np.ndarray:
    """Stored values of all bands as ``[bands, rows, cols]`` in the file's data type."""
    ds = _open(path)
    if window is None:
        window = Window(0, 0, ds.RasterXSize, ds.RasterYSize)
    if window.x < 0 or window.y < 0 or window.x + window.width > ds.RasterXSize or \
            window.y + window.height > ds.RasterYSize:
        raise InputError(f"Window {window} lies outside '{path}' ({ds.RasterXSize} x {ds.RasterYSize}).")
    try:
        data = ds.ReadAsArray(window.x, window.y, window.width, window.height)
    except RuntimeError as exc:
        raise InputError(f"Reading '{path}' failed: {exc}") from None
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
    return {"uint8": 255, "uint16": 65535, "uint32": 4294967295}.get(dtype, -9999)


class RasterWriter:
    """A GeoTIFF on the grid of ``like``, filled window by window with float reflectance.

    ``path`` should be a temporary path of an :class:`OutputTransaction`. Values are encoded with ``scale`` (a
    factor or an :class:`Encoding`) and converted to ``dtype``; pixels where ``valid`` is False become ``nodata``.
    A non-finite value in a valid pixel is an error: predictions are never written silently with holes.
    """

    def __init__(
        self, path: str, like: RasterInfo, bands: int | None = None, dtype: str | None = None,
        scale: "float | Encoding" = 1.0, nodata: float | None = None, descriptions: Sequence[str] | None = None,
        metadata: dict | None = None,
    ) -> None:
        self.path = path
        self.like = like
        self.bands = bands or like.bands
        self.dtype = dtype or like.dtype
        self.scale = as_encoding(scale)
        self.nodata = nodata if nodata is not None else default_nodata(self.dtype)
        options = GTIFF_OPTIONS + ["PREDICTOR=3" if self.dtype.startswith("float") else "PREDICTOR=2"]
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
        """Flush and close the file."""
        if self.ds is not None:
            self.ds.FlushCache()
            self.ds = None

    def __enter__(self) -> "RasterWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
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


@contextlib.contextmanager
def protect_inputs(paths: Sequence[str]) -> Iterator[None]:
    """While active, :meth:`OutputTransaction.add` refuses any output that is one of ``paths`` (compared by real
    path and by file identity, so a link to an input or to its folder is caught too)."""
    entries = tuple((p, os.path.realpath(p), _identity(p)) for p in paths if p)
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


# Temporaries carry the id of the process that made them: ".<name>.<kind>-<pid>-<8 characters>[ext]" (hex from
# scratch_name, [a-z0-9_] from mkdtemp after scratch_prefix), so that a later
# run recognises what a killed run (SIGKILL, power loss) left behind and cleans it.
_SCRATCH = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|replaced|scratch)-(?P<pid>\d+)-[0-9a-z_]{8}(?P<ext>\.[^.]*)?$")


def scratch_name(name: str, kind: str) -> str:
    """A hidden temporary name for ``name`` (kind: partial or replaced) owned by this process."""
    stem, ext = os.path.splitext(name) if kind == "partial" else (name, "")
    return f".{stem}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}{ext}"


def final_name(path: str) -> str:
    """The output a temporary path of an :class:`OutputTransaction` stands for (``path`` itself otherwise), for
    messages."""
    folder, name = os.path.split(path)
    match = _SCRATCH.match(name)
    if match is None or match["kind"] != "partial":
        return path
    return os.path.join(folder, match["name"] + (match["ext"] or ""))


def scratch_prefix(name: str) -> str:
    """The prefix of a scratch folder of this process, for :func:`tempfile.mkdtemp` (which adds 8 characters)."""
    return f".{name}.scratch-{os.getpid()}-"


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
    for entry in names:
        match = _SCRATCH.match(entry)
        if not match or _alive(int(match["pid"])):
            continue
        path = os.path.join(folder, entry)
        try:
            if match["kind"] == "replaced" and not os.path.lexists(os.path.join(folder, match["name"])):
                os.replace(path, os.path.join(folder, match["name"]))
            elif os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            done.append(path)
        except OSError:
            pass
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
        self._cleaned: set[str] = set()

    def add(self, final_path: str) -> str:
        """Register ``final_path`` and return the temporary path to write instead."""
        final_path = os.path.abspath(final_path)
        folder, name = os.path.split(final_path)
        if any(os.path.realpath(final) == os.path.realpath(final_path) for _, final in self._pending):
            raise InputError(f"The output '{final_path}' would be written twice in one run.")
        check_not_input(final_path)
        if os.path.isdir(final_path):
            raise InputError(f"The output '{final_path}' is a folder; choose another output name.")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise InputError(f"Cannot create the output folder '{folder}': {exc}") from None
        if folder not in self._cleaned:  # what a killed earlier run left here
            clean_stale(folder)
            self._cleaned.add(folder)
        temp = os.path.join(folder, scratch_name(name, "partial"))
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
            sidecar = final + ".aux.xml"  # statistics of the replaced file are stale
            if os.path.exists(temp + ".aux.xml"):
                os.replace(temp + ".aux.xml", sidecar)
            elif os.path.exists(sidecar):
                os.remove(sidecar)
            self.committed.append(final)
        self._pending = []
        return list(self.committed)

    def rollback(self) -> None:
        """Delete every temporary file written so far."""
        for temp, _ in self._pending:
            _remove(temp)
        self._pending = []

    def __enter__(self) -> "OutputTransaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        return False
