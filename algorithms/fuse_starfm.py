"""stf:fuse_starfm."""
from __future__ import annotations

from ..core.classic.starfm import StarfmParams, fuse_starfm
from .classic_base import ClassicFusion


class FuseStarfm(ClassicFusion):
    ALG_ID = "fuse_starfm"
    DISPLAY_NAME = "STARFM"
    SHORT_HELP = (
        "Spatial and Temporal Adaptive Reflectance Fusion Model (Gao et al. 2006, IEEE TGRS 44(8)), reproducing by "
        "default the program the literature used, USDA STARFM v1.2.1 (VARIANT = usda; paper = our reading of the "
        "paper). Each fine pixel is predicted from the spectrally similar pixels of a moving window: the coarse "
        "change since a pair date is added to their fine reflectance, weighted by the inverse of (temporal "
        "difference + 1) x (spectral difference + 1) x relative distance in 1e-4 reflectance units; a candidate is "
        "rejected only when both differences exceed the centre's plus the uncertainties. One pair (the nearest) or "
        "two (before and after the date). Defaults as the program's example: window 31 pixels (max search distance "
        "465 m at 30 m), 4 slices for the similarity threshold (2 sd / slices), uncertainties 0.002 (fine) and "
        "0.005 (coarse). Predictions outside 0-1 reflectance (the program's 0-10000) are written as nodata. Coarse "
        "images must be on the fine grid (stf:resample_coarse)."
    )
    PARAMS = StarfmParams  # the method's settings (the dialog's Advanced section reads them too)
    _DEFAULT = StarfmParams()

    def add_method_parameters(self) -> None:
        d = self._DEFAULT
        self.add_int("WINDOW", "Window size (pixels)", "Side of the moving window in fine pixels (odd).",
                     d.window, 3, 501)
        self.add_int("PAIRS", "Pairs used per date", "1: the nearest pair; 2: the pairs before and after the date.",
                     d.pairs, 1, 2)
        self.add_enum("VARIANT", "Rules", "usda: USDA STARFM v1.2.1 (the program the literature used); paper: our "
                      "reading of the paper's equations (reflectance, AND of the candidate tests).",
                      ("usda", "paper"), d.variant, advanced=True)
        self.add_int("CLASSES", "Number of classes (slices)", "m of the similarity threshold 2 sd / m (the program's "
                     "NUM_SLICE_PURE_TEST; some wrappers use 40).", d.classes, 1, 100, advanced=True)
        self.add_float("FINE_UNCERTAINTY", "Fine uncertainty", "sigma_l, reflectance.", d.fine_uncertainty, 0.0,
                       1.0, advanced=True)
        self.add_float("COARSE_UNCERTAINTY", "Coarse uncertainty", "sigma_m, reflectance.", d.coarse_uncertainty,
                       0.0, 1.0, advanced=True)
        self.add_bool("LOG_WEIGHTS", "Logarithmic weights",
                      "paper variant only: C = ln(S B + 1) ln(T B + 1) D (paper eq. 11), less sensitive to the spectral "
                      "and temporal differences, instead of C = S T D.", d.log_weights, advanced=True)

    def fuse(self, series, dates, folder, scale, device, parameters, context, feedback):
        params = self.settings(parameters, context, self.PARAMS)
        return fuse_starfm(series, dates, folder, scale, params, device, feedback)
