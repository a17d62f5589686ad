"""stf:fuse_estarfm."""
from __future__ import annotations

from ..core.classic.estarfm import EstarfmParams, fuse_estarfm
from .classic_base import ClassicFusion


class FuseEstarfm(ClassicFusion):
    ALG_ID = "fuse_estarfm"
    DISPLAY_NAME = "ESTARFM"
    SHORT_HELP = (
        "Enhanced STARFM (Zhu et al. 2010, Remote Sensing of Environment 114), reproducing Xiaolin Zhu's ESTARFM "
        "program (IDL, 2018 revision). Needs two pairs, before and after each date. Similar pixels are selected in "
        "both fine images (every band); with more than 5 of them, a conversion coefficient from the regression of "
        "fine on coarse values of the similar pixels scales the coarse change (only where the coarse images changed "
        "by at least 0.02 x DATA_MAX, and falling back to 1 when the regression is not significant or outside "
        "(0, 5]); weights combine spectral similarity (correlation; for one band, e.g. NDVI, the program's "
        "fine/coarse agreement) and distance; the predictions from both pairs are blended by the coarse change in "
        "the window; a prediction outside the data range becomes the weighted mean of the similar pixels' fine "
        "values; with 5 similar pixels or fewer the window's mean coarse change is used. Defaults: window 51 pixels "
        "(half window 25), 4 classes, data range 0-1 reflectance (set -1 to 1 for an index such as NDVI)."
    )
    PARAMS = EstarfmParams  # the method's settings (the dialog's Advanced section reads them too)
    _DEFAULT = EstarfmParams()

    def add_method_parameters(self) -> None:
        d = self._DEFAULT
        self.add_int("WINDOW", "Window size (pixels)", "Side of the moving window in fine pixels (odd).",
                     d.window, 3, 501)
        self.add_int("CLASSES", "Number of classes", "m of the similarity threshold 2 sigma / m.", d.classes, 1, 100,
                     advanced=True)
        self.add_float("DATA_MIN", "Data range: minimum", "The program's DN_min, as reflectance (after SCALE): a "
                       "prediction at or below it is replaced.", d.data_min, -1e6, 1e6, advanced=True)
        self.add_float("DATA_MAX", "Data range: maximum", "The program's DN_max, as reflectance (after SCALE): a "
                       "prediction at or above it is replaced; 0.02 x DATA_MAX is the least coarse change for a "
                       "conversion coefficient.", d.data_max, -1e6, 1e6, advanced=True)

    def fuse(self, series, dates, folder, scale, device, parameters, context, feedback):
        params = self.settings(parameters, context, self.PARAMS)
        return fuse_estarfm(series, dates, folder, scale, params, device, feedback)
