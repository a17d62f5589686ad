"""stf:prepare_series: downloaded products (and already prepared GeoTIFFs) -> the series every fusion algorithm
takes: ``fine/fine_<date>.tif`` and ``coarse/coarse_<date>.tif``, one multi-band GeoTIFF per date, plus
``manifest.json``.

1. Products are recognised by their file names (landsat, hls, modis) or their content (sentinel2: a folder
   holding MTD_MSIL2A.xml; stac: a STAC Item / ItemCollection JSON); a folder is searched recursively; archives
   (.tar, .tar.gz, .zip) are read in place (files.py); fine sensors are Landsat, Sentinel-2 and HLS, coarse ones
   MODIS and VIIRS; prepared GeoTIFFs are given as fine or coarse with a date in their names and the bands in the
   order of BANDS.
2. The fine grid is the native grid of the earliest fine product (Sentinel-2: 20 m), clipped to the extent when one
   is given (snapped to its pixels). Every fine product is read onto it (same grid: pixel for pixel; finer: block
   average; coarser: bilinear), reflectance from the product's own scale and offset, its quality flags (clouds,
   shadows, cirrus, fill, saturation; snow if asked) as nodata. Products of one date are mosaicked (first valid).
3. Every coarse product is read on its own native grid over the extent (plus a margin of two coarse pixels),
   with its quality flags as nodata, then resampled onto the fine grid (stf:resample_coarse's warp, bicubic by
   default), recording its native pixel size (``STF_COARSE_PIXEL_SIZE``) so that FACTOR is known downstream.
4. Output encoding: int16, reflectance x 10000 (SCALE 0.0001 for the fusion algorithms), nodata -9999, band
   descriptions the common band names. A fine date without a coarse image on the same date, or with less than
   MIN_VALID of its pixels valid, is left out (the manifest says why); a coarse date without a fine image is a date
   to predict.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal, osr

from ..dates import date_from_name
from ..errors import InputError
from ..feedback import Feedback, SubFeedback, check_cancel
from ..raster import OutputTransaction, RasterWriter, raster_info, scratch_dir, valid_share
from ..resample import RESAMPLING_METHODS, resample_to_grid
from . import modis, sentinel2, stac
from .base import COMMON_BANDS, Grid, Layer, Product, native_grid, read_on_grid
from .files import expand
from .readers import GROUPED

NODATA = -9999
SCALE = 1e-4


@dataclass
class PrepareConfig:
    """Settings of stf:prepare_series (defaults in the module docstring)."""

    bands: tuple[str, ...] = COMMON_BANDS
    extent: str = ""  # "xmin,xmax,ymin,ymax [CRS]" (QGIS's extent text); CRS default: the fine grid's
    mask_snow: bool = False
    resampling: str = "bicubic"
    min_valid: float = 0.05
    scale: float = SCALE  # of the prepared GeoTIFFs given as input


@dataclass
class Prepared:
    fine: list[str] = field(default_factory=list)
    coarse: list[str] = field(default_factory=list)
    manifest: str = ""


def find_products(inputs: list[str], fine_geotiffs: list[str], coarse_geotiffs: list[str],
                  config: PrepareConfig) -> list[Product]:
    """Every product among ``inputs`` (files, folders, archives as downloaded, STAC Item / ItemCollection JSON) and
    the prepared GeoTIFFs; an input given by itself that holds no known product is an error naming it (inside a
    folder, other files are passed over)."""
    files: list[str] = []
    given: dict[str, list[str]] = {}  # an input given by itself (a file or an archive) -> its files
    for path in inputs:
        if not os.path.exists(path):
            raise InputError(f"'{path}' does not exist.")
        if sentinel2.is_metadata(path):  # a SAFE's MTD_MSIL2A.xml stands for its folder
            members = expand(os.path.dirname(path))
        else:
            members = expand(path)
        files += members
        if not os.path.isdir(path):
            given[path] = members
    products: list[Product] = []
    used: set[str] = set()
    for group_of, read in GROUPED:
        for key, group in group_of(files).items():
            products.append(read(key, group))
            used.update(group)
    for path in files:  # MODIS / VIIRS HDF: one file, one product
        if modis.matches(path):
            products.append(modis.read(path))
            used.add(path)
    ids = {p.product_id for p in products}
    for path in files:
        if path in used or not stac.is_stac(path):
            continue
        # a STAC item beside the product's own files (USGS ships <id>_SR_stac.json in its .tar) is the same
        # product: the files are read, the item is not read twice
        for product in stac.read(path, skip=set() if path in given else ids):
            products.append(product)
            ids.add(product.product_id)
        used.add(path)
    unknown = sorted(p for p, members in given.items() if not used.intersection(members))
    if unknown:
        raise InputError("Not a product this tool reads (Landsat Collection 2 Level-2 files or .tar, Sentinel-2 "
                         "L2A SAFE folder or .zip, HLS v2.0, MOD09GA / MYD09GA / MCD43A4 (.hdf or per-layer "
                         "GeoTIFFs), VNP09GA / VJ109GA / VNP43MA4 / VNP43IA4, a STAC Item or ItemCollection): "
                         + ", ".join(f"'{u}'" for u in unknown)
                         + ". Give already prepared GeoTIFFs as fine or coarse GeoTIFFs instead.")
    for kind, paths in (("fine", fine_geotiffs), ("coarse", coarse_geotiffs)):
        products += [_geotiff(p, kind, config) for p in paths]
    return products


def _geotiff(path: str, kind: str, config: PrepareConfig) -> Product:
    """A prepared GeoTIFF: a date in its name, bands in the order of BANDS, reflectance = value x SCALE."""
    date = date_from_name(path)
    if date is None:
        raise InputError(f"'{path}': no date (YYYY-MM-DD, YYYYMMDD or YYYYDDD) in the file name.")
    info = raster_info(path, kind)
    if info.bands < len(config.bands):
        raise InputError(f"'{path}' has {info.bands} band(s); BANDS asks for {len(config.bands)} "
                         f"({', '.join(config.bands)}).")
    fill = tuple(v for v in info.nodata[:1] if v is not None)
    bands = {name: Layer(path, band=i + 1, scale=config.scale, fill=fill) for i, name in enumerate(config.bands)}
    return Product(kind, "prepared GeoTIFF", os.path.basename(path), date, bands, [], [path],
                   band_ids={n: f"band {i + 1}" for i, n in enumerate(config.bands)})


def parse_extent(text: str, crs: str) -> tuple[float, float, float, float] | None:
    """(xmin, ymin, xmax, ymax) in ``crs`` from QGIS's extent text 'xmin,xmax,ymin,ymax [CRS]'."""
    text = (text or "").strip()
    if not text:
        return None
    m = re.match(r"^\s*([-+\d.eE]+)\s*,\s*([-+\d.eE]+)\s*,\s*([-+\d.eE]+)\s*,\s*([-+\d.eE]+)\s*(?:\[(.+)\])?\s*$",
                 text)
    if not m:
        raise InputError(f"EXTENT '{text}': expected 'xmin,xmax,ymin,ymax' with an optional '[EPSG:code]'.")
    xmin, xmax, ymin, ymax = (float(m.group(i)) for i in range(1, 5))
    if not (xmin < xmax and ymin < ymax):
        raise InputError(f"EXTENT '{text}' is empty (xmin must be below xmax and ymin below ymax).")
    if m.group(5):
        src = osr.SpatialReference()
        if src.SetFromUserInput(m.group(5).strip()) != 0:
            raise InputError(f"EXTENT '{text}': unknown CRS '{m.group(5)}'.")
        dst = osr.SpatialReference()
        dst.ImportFromWkt(crs)
        for s in (src, dst):
            s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        xmin, ymin, xmax, ymax = osr.CoordinateTransformation(src, dst).TransformBounds(xmin, ymin, xmax, ymax, 21)
    return xmin, ymin, xmax, ymax


def fine_grid(product: Product, name: str, extent: str) -> Grid:
    """The fine grid: the product's native grid of band ``name``, clipped to ``extent`` on its pixel edges."""
    crs, gt, width, height = native_grid(product, name)
    if not crs:
        raise InputError(f"{product.product_id}: the band '{name}' has no CRS.")
    px, py = gt[1], -gt[5]
    x0, y1 = gt[0], gt[3]
    bounds = (x0, y1 - height * py, x0 + width * px, y1)
    clip = parse_extent(extent, crs)
    if clip is not None:
        xmin = max(bounds[0], x0 + np.floor((clip[0] - x0) / px) * px)
        xmax = min(bounds[2], x0 + np.ceil((clip[2] - x0) / px) * px)
        ymax = min(bounds[3], y1 - np.floor((y1 - clip[3]) / py) * py)
        ymin = max(bounds[1], y1 - np.ceil((y1 - clip[1]) / py) * py)
        if xmin >= xmax or ymin >= ymax:
            raise InputError(f"EXTENT '{extent}' does not overlap {product.product_id} ({product.sensor}).")
        bounds = (float(xmin), float(ymin), float(xmax), float(ymax))
    return Grid(crs, bounds, int(round((bounds[2] - bounds[0]) / px)), int(round((bounds[3] - bounds[1]) / py)))


def coarse_native_grid(product: Product, name: str, fine: Grid, margin: int = 2) -> Grid:
    """The coarse product's own grid over the fine grid's extent plus ``margin`` coarse pixels."""
    crs, gt, width, height = native_grid(product, name)
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromWkt(fine.crs)
    dst.ImportFromWkt(crs)
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    x0, y0, x1, y1 = osr.CoordinateTransformation(src, dst).TransformBounds(*fine.bounds, 21)
    px, py = gt[1], -gt[5]
    c0 = int(np.floor((x0 - gt[0]) / px)) - margin
    c1 = int(np.ceil((x1 - gt[0]) / px)) + margin
    r0 = int(np.floor((gt[3] - y1) / py)) - margin
    r1 = int(np.ceil((gt[3] - y0) / py)) + margin
    if c1 <= 0 or r1 <= 0 or c0 >= width or r0 >= height:
        raise InputError(f"The coarse product {product.product_id} does not cover the fine grid's area.")
    return Grid(crs, (gt[0] + c0 * px, gt[3] - r1 * py, gt[0] + c1 * px, gt[3] - r0 * py), c1 - c0, r1 - r0)


def _algorithm(product: Product, name: str, grid: Grid) -> str:
    """Pixel for pixel on the same grid, block average onto a coarser one, bilinear onto a finer one."""
    _, gt, _, _ = native_grid(product, name)
    ratio = abs(gt[1]) / grid.pixel if product.tile is None else 1.0
    return "near" if 0.99 < ratio < 1.01 else ("average" if ratio < 1 else "bilinear")


def _mosaic(products: list[Product], names: list[str], grid: Grid, mask_snow: bool, algorithm=None):
    """The first valid value of the products of one date on ``grid``; and per product what was read."""
    values, valid, notes = None, None, []
    for product in products:
        alg = algorithm or _algorithm(product, names[0], grid)
        v, ok, counts = read_on_grid(product, names, grid, alg, mask_snow)
        notes.append({"product": product.product_id, "sensor": product.sensor, "files": product.files,
                      "bands": {n: product.band_ids.get(n, n) for n in names},
                      "quality": [q.what for q in product.quality],
                      "flagged_share": counts["flagged"] / ok.size, "nodata_share": counts["nodata"] / ok.size})
        if values is None:
            values, valid = v, ok
        else:
            take = ok & ~valid
            values[:, take] = v[:, take]
            valid |= take
    return values, valid, notes


def _write(path: str, grid: Grid, values: np.ndarray, valid: np.ndarray, names: list[str], metadata: dict) -> None:
    """int16 reflectance x 10000, nodata -9999, band descriptions (the core's writer: a valid value never takes
    the nodata value)."""
    writer = RasterWriter(path, grid.info(names, path), dtype="int16", scale=SCALE, nodata=NODATA,
                          descriptions=names, metadata=metadata)
    try:
        writer.write(values, None, valid)
    finally:
        writer.close()


def prepare_series(inputs: list[str], fine_geotiffs: list[str], coarse_geotiffs: list[str], folder: str,
                   config: PrepareConfig | None = None, feedback: Feedback | None = None) -> Prepared:
    """Write the series (module docstring); returns the fine and coarse files and the manifest."""
    config = config or PrepareConfig()
    names = list(config.bands)
    unknown = [n for n in names if n not in COMMON_BANDS]
    if not names or unknown:
        raise InputError(f"BANDS: unknown band name(s) {', '.join(unknown) or '(none)'}; use names among "
                         f"{', '.join(COMMON_BANDS)}.")
    if config.resampling not in RESAMPLING_METHODS:
        raise InputError(f"RESAMPLING must be one of {', '.join(RESAMPLING_METHODS)}.")
    if not 0 <= config.min_valid <= 1:
        raise InputError(f"MIN_VALID must be a share between 0 and 1 (got {config.min_valid}).")
    products = find_products(inputs, fine_geotiffs, coarse_geotiffs, config)
    fine = sorted((p for p in products if p.kind == "fine"), key=lambda p: (p.date, p.product_id))
    coarse = sorted((p for p in products if p.kind == "coarse"), key=lambda p: (p.date, p.product_id))
    if not fine or not coarse:
        raise InputError(f"No {'fine' if not fine else 'coarse'} product found among the inputs: a series needs "
                         "fine images (Landsat, Sentinel-2, HLS) and coarse ones (MODIS, VIIRS).")
    for p in products:
        for n in names:
            p.layer(n)  # every product has every band asked for, before any work
    grid = fine_grid(fine[0], names[0], config.extent)
    if feedback is not None:
        feedback.info(f"Fine grid: {grid.width} x {grid.height} pixels of {grid.pixel:g} from {fine[0].product_id} "
                      f"({fine[0].sensor}); bands {', '.join(names)}.")
    by_date = {}
    for p in fine:
        by_date.setdefault(("fine", p.date), []).append(p)
    for p in coarse:
        by_date.setdefault(("coarse", p.date), []).append(p)
    coarse_dates = {d for k, d in by_date if k == "coarse"}
    if not any(k == "fine" and d in coarse_dates for k, d in by_date):
        raise InputError("No pair: no fine date has a coarse image on the same date (fine: "
                         + ", ".join(sorted({p.date.isoformat() for p in fine})) + "; coarse: "
                         + ", ".join(sorted(d.isoformat() for d in coarse_dates)) + "); nothing was written.")
    manifest = {"bands": names, "scale": SCALE, "nodata": NODATA, "mask_snow": config.mask_snow,
                "resampling": config.resampling, "grid": {"crs": grid.crs, "geotransform": grid.geotransform,
                                                          "width": grid.width, "height": grid.height},
                "dates": [], "left_out": []}
    result = Prepared()
    os.makedirs(folder, exist_ok=True)
    created = [d for d in (os.path.join(folder, "fine"), os.path.join(folder, "coarse")) if not os.path.exists(d)]
    try:
        _prepare(folder, config, names, grid, fine, by_date, coarse_dates, manifest, result, feedback)
    except BaseException:
        for d in created:  # nothing half-written: the folders this run made go with its files
            if os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)
        raise
    return result


def _prepare(folder, config, names, grid, fine, by_date, coarse_dates, manifest, result, feedback) -> None:
    with scratch_dir("prepare", folder) as tmp, \
            OutputTransaction() as tx:
        keys = sorted(by_date, key=lambda k: (k[1], k[0] != "fine"))
        for i, (kind, date) in enumerate(keys):
            check_cancel(feedback)
            sub = SubFeedback(feedback, 100.0 * i / len(keys), 100.0 * (i + 1) / len(keys)) if feedback else None
            group = by_date[(kind, date)]
            if kind == "fine" and date not in coarse_dates:
                manifest["left_out"].append({"date": date.isoformat(), "kind": kind,
                                             "reason": "no coarse image on this date (a pair needs both)",
                                             "products": [p.product_id for p in group]})
                continue
            if kind == "fine":
                values, valid, notes = _mosaic(group, names, grid, config.mask_snow)
                native = abs(native_grid(group[0], names[0])[1][1])
            else:
                native_grid_ = coarse_native_grid(group[0], names[0], grid)
                values, valid, notes = _mosaic(group, names, native_grid_, config.mask_snow, "near")
                native = native_grid_.pixel
            share = float(valid.mean())
            entry = {"date": date.isoformat(), "kind": kind, "valid_share": share, "native_pixel": native,
                     "reads": notes}
            if kind == "fine" and share < config.min_valid:
                manifest["left_out"].append({**entry, "reason": f"{share:.1%} valid, below MIN_VALID "
                                                                f"{config.min_valid:.0%}"})
                continue
            final = os.path.join(folder, kind, f"{kind}_{date.isoformat()}.tif")
            meta = {"STF_SENSOR": "; ".join(sorted({p.sensor for p in group})),
                    "STF_PRODUCTS": "; ".join(p.product_id for p in group), "STF_DATE": date.isoformat()}
            if kind == "fine":
                _write(tx.add(final), grid, values, valid, names, meta)
            else:
                native_path = os.path.join(tmp, f"native_{date.isoformat()}.tif")
                _write(native_path, native_grid_, values, valid, names, meta)
                ref = grid.info(names, f"the fine grid of {fine[0].product_id}")
                out = resample_to_grid(native_path, ref, tx.add(final), config.resampling, sub)
                ds = gdal.Open(out, gdal.GA_Update)
                for b, name in enumerate(names):
                    ds.GetRasterBand(b + 1).SetDescription(name)
                ds.SetMetadata({**ds.GetMetadata(), **meta})
                ds = None
                entry["valid_share_on_fine_grid"] = valid_share(out)
            entry["output"] = final
            manifest["dates"].append(entry)
            (result.fine if kind == "fine" else result.coarse).append(final)
            if feedback is not None:
                feedback.info(f"{kind} {date.isoformat()}: {', '.join(p.product_id for p in group)}: "
                              f"{share:.1%} valid.")
        pairs = {os.path.basename(p)[5:15] for p in result.fine}
        if not pairs:
            reasons = "; ".join(f"fine {left['date']}: {left['reason']}" for left in manifest["left_out"]
                                if left["kind"] == "fine")
            raise InputError(f"No pair left: every fine date was left out ({reasons}); nothing was written. "
                             "Lower MIN_VALID, or add clearer fine images.")
        manifest["pairs"] = sorted(pairs)
        manifest["predict_dates"] = sorted(d.isoformat() for d in coarse_dates if d.isoformat() not in pairs)
        manifest_path = os.path.join(folder, "manifest.json")
        with open(tx.add(manifest_path), "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1, default=str)
        result.manifest = manifest_path
        for left in manifest["left_out"]:
            if feedback is not None:
                feedback.info(f"Left out: {left['kind']} {left['date']}: {left['reason']}.")
