"""stf:resample_coarse - put coarse images onto the fine grid."""
from __future__ import annotations

import os

from ..core.dates import date_from_name
from ..core.raster import OutputTransaction, raster_info
from ..core.resample import RESAMPLING_METHODS, resample_many
from .base import StfAlgorithm


class ResampleCoarse(StfAlgorithm):
    ALG_ID = "resample_coarse"
    DISPLAY_NAME = "Resample coarse images to the fine grid"
    GROUP = "data"
    SHORT_HELP = (
        "Warps coarse (MODIS-like) images onto the grid of a fine (Landsat-like) image: same CRS, extent and "
        "pixel size, with GDAL warp. Every fusion method needs its coarse images on the fine grid. Data type, "
        "nodata and band order are kept; fine pixels outside a coarse image become nodata. Outputs are named "
        "coarse_<YYYY-MM-DD>.tif when the input name holds a date, else <name>_resampled.tif; they are written "
        "all together or not at all."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_rasters("COARSE", "Coarse images", "The coarse images to resample (one per date).")
        self.add_raster("REFERENCE", "Fine grid reference",
                        "A fine image whose grid (CRS, extent, pixel size) the outputs take.")
        self.add_enum("METHOD", "Resampling method",
                      "Interpolation: bicubic is what the deep-learning papers use to upsample MODIS.",
                      RESAMPLING_METHODS, "bicubic")
        self.add_output_folder("Folder for the resampled images (created if needed). It must not be the folder "
                               "of the inputs when that would overwrite them.")
        self.add_output_layers("OUTPUT_FILES", "Resampled images", "The resampled images, in the input order.")

    def execute(self, parameters, context, feedback):
        sources = self.raster_paths(parameters, "COARSE", context)
        reference = raster_info(self.raster_path(parameters, "REFERENCE", context), "fine grid reference")
        method = self.enum_string(parameters, "METHOD", context)
        folder = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
        jobs = []
        for src in sources:
            date = date_from_name(src)
            stem = os.path.splitext(os.path.basename(src))[0]
            name = f"coarse_{date.isoformat()}.tif" if date else f"{stem}_resampled.tif"
            jobs.append((src, os.path.join(folder, name)))
        feedback.info(f"Resampling {len(jobs)} coarse images onto the grid of {reference.name} "
                      f"({reference.width} x {reference.height}, {reference.pixel_size[0]:g} m) with {method}.")
        with OutputTransaction() as tx:
            resample_many(jobs, reference, method, tx, feedback)
        return {"OUTPUT_FOLDER": folder, "OUTPUT_FILES": tx.committed}
