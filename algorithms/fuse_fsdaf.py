"""stf:fuse_fsdaf."""
from __future__ import annotations

from ..core.classic.fsdaf import FsdafParams, fuse_fsdaf
from .classic_base import ClassicFusion


class FuseFsdaf(ClassicFusion):
    ALG_ID = "fuse_fsdaf"
    DISPLAY_NAME = "FSDAF"
    SHORT_HELP = (
        "Flexible Spatiotemporal DAta Fusion (Zhu et al. 2016, Remote Sensing of Environment 172), with the rules of "
        "Xiaolin Zhu's reference code. One pair (the nearest). The fine image is classified (k-means; the code uses "
        "ISODATA with 4-6 classes), class changes are estimated from the 100 purest coarse pixels of each class "
        "(changes outside their 10-90 % range left out), the spatial prediction is a multiquadric interpolation of "
        "the coarse image per block of 30 coarse pixels, the residuals are distributed with a homogeneity index "
        "between the two predictions (the spatial change counts only where it agrees in sign with the residual), "
        "the change is clamped to the range seen at both dates, and a final filter averages it over the most "
        "similar pixels. The coarse factor (coarse / fine pixel size) rebuilds the coarse pixels from the coarse "
        "images on the fine grid. Defaults: 5 classes, window 41 (half window 20), 20 similar pixels, data range "
        "0-1 reflectance."
    )
    PARAMS = FsdafParams  # the method's settings (the dialog's Advanced section reads them too)
    _DEFAULT = FsdafParams()

    def add_method_parameters(self) -> None:
        d = self._DEFAULT
        self.add_int("FACTOR", "Coarse factor", "Coarse pixel size / fine pixel size, e.g. 16 for 480 m / 30 m.",
                     d.factor, 2, 200)
        self.add_int("CLASSES", "Number of classes", "Classes of the unsupervised classification of the fine image.",
                     d.classes, 2, 50)
        self.add_int("WINDOW", "Window size (pixels)", "Side of the window of the final similar-pixel filter.",
                     d.window, 3, 501, advanced=True)
        self.add_int("SIMILAR", "Similar pixels", "Similar pixels used by the final filter.", d.similar, 1, 1000,
                     advanced=True)
        self.add_int("NUM_PURE", "Purest coarse pixels per class", "Coarse pixels with the largest fraction of a "
                     "class used to estimate its change (reference code: 100).", d.num_pure, 1, 100000, advanced=True)
        self.add_float("DATA_MIN", "Data range: minimum", "The code's DN_min, as reflectance (after SCALE).",
                       d.data_min, -1e6, 1e6, advanced=True)
        self.add_float("DATA_MAX", "Data range: maximum", "The code's DN_max, as reflectance (after SCALE).",
                       d.data_max, -1e6, 1e6, advanced=True)

    def fuse(self, series, dates, folder, scale, device, parameters, context, feedback):
        params = self.settings(parameters, context, self.PARAMS)
        return fuse_fsdaf(series, dates, folder, scale, params, device, feedback)
