"""stf:fuse_additive - the nearest fine image plus the coarse change: the second benchmark."""
from __future__ import annotations

from ..core.naive import fuse_additive
from .base import StfAlgorithm


class FuseAdditive(StfAlgorithm):
    ALG_ID = "fuse_additive"
    DISPLAY_NAME = "Additive prediction (nearest fine image + coarse change)"
    GROUP = "classic"
    SHORT_HELP = (
        "Predicts each date as the fine image of the nearest pair date plus the coarse change since that date: "
        "F^(t) = F(t_k) + C(t) - C(t_k), clamped into the data range. It is the simplest use of the coarse images "
        "and the untrained start of the deep methods: a fusion method that does not beat it adds nothing to the "
        "coarse images. Coarse images must be on the fine grid (stf:resample_coarse). Outputs are named "
        "additive_<YYYY-MM-DD>.tif, in the fine images' data type."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_series_inputs()
        self.add_output_folder("Folder for the predictions (created if needed).")
        self.add_output_layers("OUTPUT_FILES", "Predictions", "One prediction per date, in date order.")

    def execute(self, parameters, context, feedback):
        series, dates, folder, scale = self.prediction_inputs(parameters, context)
        files = fuse_additive(series, dates, folder, scale, feedback)
        return {"OUTPUT_FOLDER": folder, "OUTPUT_FILES": files}
