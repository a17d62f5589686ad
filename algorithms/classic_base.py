"""Shared base of the classic fusion algorithms (stf:fuse_starfm, stf:fuse_estarfm, stf:fuse_fsdaf)."""
from __future__ import annotations

import time

from .base import StfAlgorithm
from .layers import load_on_completion


class ClassicFusion(StfAlgorithm):
    """Series inputs, method parameters, DEVICE, OUTPUT_FOLDER -> OUTPUT_FILES."""

    GROUP = "classic"
    NEEDS_TORCH = True

    def add_method_parameters(self) -> None:
        raise NotImplementedError

    def fuse(self, series, dates, folder, scale, device, parameters, context, feedback) -> list[str]:
        raise NotImplementedError

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_series_inputs()
        self.add_method_parameters()
        self.add_device()
        self.add_max_nodata()
        self.add_output_folder("Folder for the predictions (created if needed), one GeoTIFF per date named "
                               f"{self.ALG_ID.replace('fuse_', '')}_<YYYY-MM-DD>.tif.")
        self.add_output_layers("OUTPUT_FILES", "Predictions", "One prediction per date, in date order.")

    def execute(self, parameters, context, feedback):
        series, dates, folder, scale = self.prediction_inputs(parameters, context)
        device = self.enum_string(parameters, "DEVICE", context)
        start = time.perf_counter()
        files = self.fuse(series, dates, folder, scale, device, parameters, context, feedback)
        feedback.info(f"{len(files)} prediction(s) in {time.perf_counter() - start:.1f} s.")
        load_on_completion(context, files, "OUTPUT_FILES")  # dated, styled layers in the map
        return {"OUTPUT_FOLDER": folder, "OUTPUT_FILES": files}
