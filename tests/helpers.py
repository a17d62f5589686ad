"""Small raster factories for the tests."""
from __future__ import annotations

import numpy as np
from osgeo import gdal, osr

from stf_fusion.core.feedback import RecordingFeedback as LogFeedback  # noqa: F401  keeps the info lines

UTM33 = 32633


def wkt(epsg: int = UTM33) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def make_raster(path, data, geotransform=(600000.0, 30.0, 0.0, 5800020.0, 0.0, -30.0), epsg=UTM33,
                nodata=None, dtype=gdal.GDT_Int16):
    """Write ``data`` ([bands, rows, cols] or [rows, cols]) as it is, with the given georeferencing."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    ds = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0], dtype)
    ds.SetGeoTransform(geotransform)
    if epsg:
        ds.SetProjection(wkt(epsg))
    for i, band in enumerate(data):
        if nodata is not None:
            ds.GetRasterBand(i + 1).SetNoDataValue(nodata)
        ds.GetRasterBand(i + 1).WriteArray(band)
    ds = None
    return str(path)


def read(path) -> np.ndarray:
    ds = gdal.Open(str(path))
    data = ds.ReadAsArray()
    return data.reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)


def series_in(folder):
    """The series of a folder holding ``fine/*.tif`` and ``coarse/*.tif`` (the shared reference inputs)."""
    import glob
    import os

    from stf_fusion.core.series import build_series

    return build_series(sorted(glob.glob(os.path.join(folder, "fine", "*.tif"))),
                        sorted(glob.glob(os.path.join(folder, "coarse", "*.tif"))))


KERNEL_PATHS = ["compiled", "tensor"]


class kernel_path:  # noqa: N801  a context manager, used like a function
    """Run the classic methods on one CPU path: ``compiled`` (numba kernels) or ``torch`` (tensor passes); skips
    the compiled path where numba is not installed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        import os

        import pytest

        from stf_fusion.core.classic import kernels

        if self.name == "compiled" and not kernels.enabled("cpu"):
            pytest.skip("numba is not installed")
        self.previous = os.environ.get("STF_COMPILED_KERNELS")
        os.environ["STF_COMPILED_KERNELS"] = "1" if self.name == "compiled" else "0"

    def __exit__(self, *exc) -> bool:
        import os

        os.environ.pop("STF_COMPILED_KERNELS")
        if self.previous is not None:
            os.environ["STF_COMPILED_KERNELS"] = self.previous
        return False




def crop_series(series, folder, size: int) -> dict[str, list[str]]:
    """The north-west ``size`` x ``size`` pixels of every fine and coarse image of ``series`` (coarse on the fine
    grid), written under ``folder``/fine and ``folder``/coarse with their names: {"fine": paths, "coarse": paths}."""
    import os

    crop = {}
    for kind, items in (("fine", series.fine), ("coarse", series.coarse)):
        os.makedirs(os.path.join(folder, kind))
        crop[kind] = [os.path.join(folder, kind, os.path.basename(i.path)) for i in items]
        for item, path in zip(items, crop[kind]):
            gdal.Translate(path, item.path, srcWin=[0, 0, size, size])
    return crop


def assert_one_pass_equals_each_date(fuse, sample, folder, size: int, hole: tuple[slice, slice], dates: tuple,
                                     params) -> None:
    """Issue 28's check for a method that computes the dates of a tile together: on the north-west ``size``
    pixels of ``sample``, with a hole (nodata in every band at ``hole``) in the coarse image of 2021-05-03 so that
    its validity makes a group of its own, ``fuse(series, dates, folder, device=, params=)`` on ``dates`` (ISO
    strings) writes exactly what it writes for each date alone, on both CPU paths."""
    import os
    import shutil

    import numpy as np

    from stf_fusion.core.raster import read_raw
    from stf_fusion.core.series import build_series

    crop = crop_series(sample, folder, size)
    cloudy = [p for p in crop["coarse"] if "2021-05-03" in p][0]
    ds = gdal.Open(cloudy, gdal.GA_Update)
    for b in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(b)
        values = band.ReadAsArray()
        values[hole] = band.GetNoDataValue()
        band.WriteArray(values)
    ds = None
    series = build_series(crop["fine"], crop["coarse"])
    chosen = [d for d in series.predict_dates if d.isoformat() in dates]
    out = os.path.join(folder, "out")
    for path in KERNEL_PATHS:
        with kernel_path(path):
            shutil.rmtree(out, ignore_errors=True)
            together = fuse(series, chosen, os.path.join(out, "series"), device="cpu", params=params)
            alone = [fuse(series, [d], os.path.join(out, d.isoformat()), device="cpu", params=params)[0]
                     for d in chosen]
        for a, b in zip(together, alone):
            np.testing.assert_array_equal(read_raw(a), read_raw(b))


def on_fine_grid(coarse: str, fine: str, out: str, algorithm: str) -> str:
    """A coarse image warped onto the fine grid by GDAL alone: no native pixel size recorded."""
    ds = gdal.Open(fine)
    gdal.Warp(out, coarse, width=ds.RasterXSize, height=ds.RasterYSize, resampleAlg=algorithm)
    return out


def unrecorded_series(tmp_path, algorithm):
    """The bundled sample with its coarse images warped onto the fine grid by GDAL (``algorithm``): the coarse
    factor is not recorded (cubic: a resampling period shows; lanczos: none does)."""
    import glob
    import os

    from conftest import SAMPLE
    from stf_fusion.core.series import build_series

    fine = sorted(glob.glob(os.path.join(SAMPLE, "fine", "*.tif")))
    coarse = sorted(glob.glob(os.path.join(SAMPLE, "coarse", "*.tif")))
    os.makedirs(tmp_path / algorithm, exist_ok=True)
    warped = [on_fine_grid(c, fine[0], str(tmp_path / algorithm / os.path.basename(c)), algorithm) for c in coarse]
    return build_series(fine, warped)
