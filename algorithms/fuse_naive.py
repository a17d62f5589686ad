"""stf:fuse_naive - the nearest-fine-image benchmark prediction."""
from __future__ import annotations

from ..core.naive import fuse_naive
from .base import StfAlgorithm
from .layers import load_on_completion


class FuseNaive(StfAlgorithm):
    ALG_ID = "fuse_naive"
    DISPLAY_NAME = "Naive prediction (nearest fine image)"
    GROUP = "classic"
    FUSE = staticmethod(fuse_naive)
    SHORT_HELP = (
        "Predicts each date by copying the fine image of the nearest pair date (on a tie the earlier one): "
        "F^(t) = F(t_k). This is the benchmark every fusion method must beat, since it is the error made by "
        "ignoring the coarse images; evaluate fusion results against it (stf:evaluate, BASELINE). Outputs are "
        "named naive_<YYYY-MM-DD>.tif, in the fine images' data type."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_series_inputs()
        self.add_max_nodata()
        self.add_output_folder("Folder for the predictions (created if needed).")
        self.add_output_layers("OUTPUT_FILES", "Predictions", "One prediction per date, in date order.")

    def execute(self, parameters, context, feedback):
        series, dates, folder, scale = self.prediction_inputs(parameters, context)
        files = self.FUSE(series, dates, folder, scale, feedback)
        load_on_completion(context, files, "OUTPUT_FILES")  # dated, styled layers in the map
        return {"OUTPUT_FOLDER": folder, "OUTPUT_FILES": files}
