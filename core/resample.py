"""Resampling of coarse rasters onto the fine grid with GDAL warp (never done silently: callers report it)."""
from __future__ import annotations

import os

from osgeo import gdal, osr

from .errors import CancelledError, InputError, StfError
from .feedback import Feedback, SubFeedback, check_cancel
from .raster import COARSE_PIXEL_KEY, GTIFF_OPTIONS, OutputTransaction, RasterInfo, raster_info

RESAMPLING_METHODS = ("nearest", "bilinear", "bicubic")
_GDAL_ALG = {"nearest": "near", "bilinear": "bilinear", "bicubic": "cubic"}


def resample_to_grid(
    src_path: str, ref: RasterInfo, dst_path: str, method: str = "bicubic", feedback: Feedback | None = None,
) -> str:
    """Warp ``src_path`` onto the grid of ``ref`` (CRS, extent, pixel size) and write it to ``dst_path``.

    The data type and nodata of the source are kept. ``dst_path`` should be a temporary path of an
    :class:`~.raster.OutputTransaction`. Pixels of the fine grid outside the source become nodata.
    """
    if method not in RESAMPLING_METHODS:
        raise InputError(f"Unknown resampling method '{method}'; use one of {', '.join(RESAMPLING_METHODS)}.")
    src = raster_info(src_path, "coarse")
    if not src.crs_wkt or not ref.crs_wkt:
        missing = src.path if not src.crs_wkt else ref.path
        raise InputError(f"'{missing}' has no CRS; cannot resample between grids without one.")
    coarse_pixel = _check_overlap(src, ref)
    # each band keeps its own nodata (GDAL reads the source's per band when srcNodata is not forced); a source
    # without nodata gets a value it never takes for the pixels outside it (0 would turn real zeros into holes)
    free = None if all(v is not None for v in src.nodata) else _unused_value(src_path, src)
    nodata = " ".join(repr(float(v if v is not None else free)) for v in src.nodata)
    xmin, ymin, xmax, ymax = ref.bounds

    def progress(complete: float, _message, _data) -> int:
        if feedback is None:
            return 1
        feedback.set_progress(100.0 * complete)
        return 0 if feedback.is_canceled() else 1

    options = gdal.WarpOptions(
        format="GTiff",
        outputBounds=(xmin, ymin, xmax, ymax),
        width=ref.width,
        height=ref.height,
        dstSRS=ref.crs_wkt,
        resampleAlg=_GDAL_ALG[method],
        dstNodata=nodata,
        creationOptions=GTIFF_OPTIONS + ["PREDICTOR=2" if "int" in src.dtype else "PREDICTOR=3"],
        callback=progress,
    )
    try:
        result = gdal.Warp(dst_path, src_path, options=options)
    except RuntimeError as exc:
        if feedback is not None and feedback.is_canceled():
            raise CancelledError() from None
        raise StfError(f"Resampling '{src_path}' to the grid of '{ref.path}' failed: {exc}") from None
    if result is None:
        if feedback is not None and feedback.is_canceled():
            raise CancelledError()
        raise StfError(f"Resampling '{src_path}' to the grid of '{ref.path}' failed.")
    if coarse_pixel:  # the coarse resolution survives the resampling: ERGAS needs h/l (see fusion.write_predictions)
        result.SetMetadataItem(COARSE_PIXEL_KEY, f"{coarse_pixel:.10g}")
    result.FlushCache()
    result = None
    if not os.path.exists(dst_path):
        raise StfError(f"Resampling '{src_path}' wrote no file.")
    return dst_path


def _unused_value(path: str, info: RasterInfo) -> float:
    """A nodata value for a source that declares none: its type's usual one (raster.default_nodata) unless the data
    hold it, then the nearest value toward the middle of the type's range that they do not hold."""
    import numpy as np

    from .raster import default_nodata, read_raw
    from .tiles import plan_tiles

    def held(value: float) -> bool:
        return any(bool(np.any(read_raw(path, tile.inner) == value)) for tile in plan_tiles(info.width, info.height, 512))

    candidate = default_nodata(info.dtype)
    step = -1 if candidate > 0 else 1
    while held(candidate):
        candidate += step
    return candidate


def _check_overlap(src: RasterInfo, ref: RasterInfo) -> float | None:
    """Refuse a source whose extent (taken into the reference's CRS) does not meet the reference grid: its
    resampled image would be nodata everywhere. Returns the source's pixel size in the reference's units."""
    def srs(wkt: str) -> osr.SpatialReference:
        s = osr.SpatialReference()
        s.ImportFromWkt(wkt)
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        return s

    try:
        transform = osr.CoordinateTransformation(srs(src.crs_wkt), srs(ref.crs_wkt))
        x0, y0, x1, y1 = transform.TransformBounds(*src.bounds, 21)
        # the source's pixel in the reference's units: the side of the square of the same area as one pixel at the
        # source's centre (a sheared grid, e.g. MODIS sinusoidal taken into UTM, has a wider bounding box)
        gt = src.geotransform
        cx, cy = gt[0] + gt[1] * src.width / 2, gt[3] + gt[5] * src.height / 2
        (ax, ay, _), (bx, by, _), (dx, dy, _) = (transform.TransformPoint(x, y) for x, y in
                                                 ((cx, cy), (cx + gt[1], cy), (cx, cy + gt[5])))
        pixel = abs((bx - ax) * (dy - ay) - (by - ay) * (dx - ax)) ** 0.5
    except RuntimeError:  # not transformable (e.g. far outside the CRS's area): let the warp decide
        return None
    rx0, ry0, rx1, ry1 = ref.bounds
    if x0 >= rx1 or x1 <= rx0 or y0 >= ry1 or y1 <= ry0:
        raise InputError(
            f"The coarse image '{src.path}' does not overlap the fine grid of '{ref.path}': its extent in the fine "
            f"CRS is x {x0:.6g}..{x1:.6g}, y {y0:.6g}..{y1:.6g}, the fine grid's x {rx0:.6g}..{rx1:.6g}, "
            f"y {ry0:.6g}..{ry1:.6g}. Check that both cover the same area and carry the right CRS.")
    return pixel


def resample_many(
    jobs: list[tuple[str, str]], ref: RasterInfo, method: str, transaction: OutputTransaction,
    feedback: Feedback | None = None,
) -> list[str]:
    """Resample each ``(source, final destination)`` onto ``ref``'s grid inside ``transaction``.

    Returns the temporary paths written (renamed to the destinations when the transaction commits). A destination
    that is one of the sources is refused: inputs are never modified.
    """
    sources = {os.path.abspath(src) for src, _ in jobs}
    temps = []
    for i, (src, dst) in enumerate(jobs):
        if os.path.abspath(dst) in sources:
            raise InputError(f"The output '{dst}' would overwrite an input; choose another output folder.")
        check_cancel(feedback)
        sub = SubFeedback(feedback, 100.0 * i / len(jobs), 100.0 * (i + 1) / len(jobs)) if feedback else None
        temps.append(resample_to_grid(src, ref, transaction.add(dst), method, sub))
        if feedback is not None:
            feedback.info(f"Resampled {os.path.basename(src)} -> {os.path.basename(dst)} ({method}).")
    return temps
