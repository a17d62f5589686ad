"""stf:evaluate - the metric table and the HTML report."""
from __future__ import annotations

from qgis.core import QgsProcessingParameterFileDestination

from ..core.evaluation import COLUMNS, evaluate_files, method_means, write_csv
from ..core.raster import OutputTransaction
from ..core.report import write_html
from .base import StfAlgorithm


class Evaluate(StfAlgorithm):
    ALG_ID = "evaluate"
    DISPLAY_NAME = "Evaluate predictions"
    GROUP = "evaluation"
    SHORT_HELP = (
        "Compares predicted fine images with reference (observed) fine images using one documented metric suite: "
        "CC, RMSE, MAE, AD (bias), rMAE, R2, PSNR, SSIM, Q (UIQI), SAM (degrees), ERGAS, KGE, DD, MAEC, Edge and "
        "LBP (the formulas are in the report and in <csv>.conventions.json). Predictions are matched with "
        "references by the date in their file names (or by order when names hold no dates); predictions of several "
        "methods can be compared in one run, the method being the file name without its date (starfm_2021-05-03.tif "
        "-> starfm). The CSV table has one row per prediction and band plus an 'all' row; the HTML report shows "
        "the means per method, metrics over time, a scatter plot and an error map per prediction."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_rasters("PREDICTIONS", "Predictions", "Predicted fine images (any methods, any dates).")
        self.add_rasters("REFERENCES", "References", "Observed fine images of the predicted dates.")
        self.add_rasters("BASELINE", "Baseline predictions",
                         "Predictions of a baseline, normally stf:fuse_naive, matched like the predictions; needed "
                         "for MAEC (change of MAE against the baseline).", optional=True)
        self.add_raster("MASK", "Mask", "Pixels where the mask is 0 or nodata are excluded.",
                        optional=True)
        self.add_scale(per_kind=False)
        self.add_float("DATA_RANGE", "Data range (reflectance)",
                       "L of PSNR and SSIM, in reflectance units (1.0 for reflectance 0-1).", 1.0, minimum=1e-9,
                       advanced=True)
        self.add_float("RATIO", "Fine / coarse pixel size (h/l)",
                       "h/l of ERGAS, e.g. 30 / 480 = 0.0625 for Landsat and MODIS 480 m. 0: from each "
                       "prediction (stf fusion records it when stf:resample_coarse resampled the coarse images); "
                       "where it is not known ERGAS is not computed, as the report says.", 0.0, minimum=0.0)
        self._add(QgsProcessingParameterFileDestination("OUTPUT_CSV", "Metric table", "CSV files (*.csv)"),
                  "One row per prediction x band plus an 'all' row; columns " + ", ".join(COLUMNS) + ".")
        self._add(QgsProcessingParameterFileDestination("OUTPUT_HTML", "Report", "HTML files (*.html)", None, True,
                                                        False),
                  "Self-contained HTML report with tables and plots.")

    def execute(self, parameters, context, feedback):
        csv_path = self.parameterAsFileOutput(parameters, "OUTPUT_CSV", context)
        html_path = self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context)
        evaluation = evaluate_files(
            self.raster_paths(parameters, "PREDICTIONS", context),
            self.raster_paths(parameters, "REFERENCES", context),
            self.raster_paths(parameters, "BASELINE", context) or None,
            self.raster_path(parameters, "MASK", context),
            scale=self.scale(parameters, context).fine.scale,
            data_range=self.parameterAsDouble(parameters, "DATA_RANGE", context),
            ratio=self.parameterAsDouble(parameters, "RATIO", context),
            feedback=feedback,
        )
        with OutputTransaction() as tx:
            write_csv(evaluation, csv_path, tx)
            if html_path:  # optional: the table alone is enough for scripts
                write_html(evaluation, html_path, tx)
        for method, values in method_means(evaluation.rows).items():
            feedback.info(f"{method}: RMSE {values['rmse']:.5f}, SSIM {values['ssim']:.4f}, SAM {values['sam']:.3f} "
                          f"deg, ERGAS {values['ergas']:.4g} (mean of {values['n_predictions']} prediction(s))")
        feedback.info("Conventions: " + "; ".join(f"{k}: {v}" for k, v in evaluation.conventions.items()))
        return {"OUTPUT_CSV": csv_path, "OUTPUT_HTML": html_path or None}
