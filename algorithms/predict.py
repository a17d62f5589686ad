"""stf:predict - prediction with any trained deep model."""
from __future__ import annotations

from qgis.core import QgsProcessingParameterFile

from ..core.deep.api import predict_with_model
from .base import StfAlgorithm
from .layers import load_on_completion


class Predict(StfAlgorithm):
    ALG_ID = "predict"
    DISPLAY_NAME = "Predict with a trained model"
    GROUP = "deep"
    NEEDS_TORCH = True
    SHORT_HELP = (
        "Predicts fine images with a model trained by one of the stf:train_* algorithms; the method (STFDCNN, "
        "STF3DCNN, DCNN) and its settings are read from the model file. The bands must be those the model was "
        "trained on, in the same order. Outputs are named <method>_<YYYY-MM-DD>.tif."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self._add(QgsProcessingParameterFile("MODEL", "Trained model", QgsProcessingParameterFile.File, "stfmodel"),
                  "A .stfmodel file written by stf:train_stfdcnn, stf:train_stf3dcnn or stf:train_dcnn.")
        self.add_series_inputs()
        self.add_enum("TIME_WEIGHTING", "Time weighting (STF3DCNN)",
                      "STF3DCNN only: model = the setting saved in the model; off = the nearest pair only; distance "
                      "/ change = blend the pairs before and after each date by days / by coarse change.",
                      ("model", "off", "distance", "change"), "model", advanced=True)
        self.add_device()
        self.add_max_nodata()
        self.add_output_folder("Folder for the predictions (created if needed).")
        self.add_output_layers("OUTPUT_FILES", "Predictions", "One prediction per date, in date order.")

    def execute(self, parameters, context, feedback):
        series, dates, folder, scale = self.prediction_inputs(parameters, context)
        weighting = self.enum_string(parameters, "TIME_WEIGHTING", context)
        files = predict_with_model(self.parameterAsFile(parameters, "MODEL", context), series, dates, folder,
                                   scale, self.enum_string(parameters, "DEVICE", context), feedback,
                                   time_weighting=None if weighting == "model" else weighting)
        load_on_completion(context, files, "OUTPUT_FILES")  # dated, styled layers in the map
        return {"OUTPUT_FOLDER": folder, "OUTPUT_FILES": files}
