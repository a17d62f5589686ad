"""stf:fuse_fsdaf."""
from __future__ import annotations

from ..core.classic.fsdaf import FsdafParams, fuse_fsdaf
from .classic_base import ClassicFusion


class FuseFsdaf(ClassicFusion):
    ALG_ID = "fuse_fsdaf"
    DISPLAY_NAME = "FSDAF"
    SHORT_HELP = (
        "Flexible Spatiotemporal DAta Fusion (Zhu et al. 2016, Remote Sensing of Environment 172). One pair (the "
        "nearest). The fine image is classified (k-means), class changes are unmixed from the coarse changes, the "
        "residuals are distributed with a homogeneity index between the temporal prediction and a spatial "
        "(interpolated) prediction, and a final filter averages the change over the most similar pixels. The coarse "
        "factor (coarse / fine pixel size) rebuilds the coarse pixels from the coarse images on the fine grid. "
        "Defaults: 5 classes, window 41, 20 similar pixels."
    )
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

    def fuse(self, series, dates, folder, scale, device, parameters, context, feedback):
        params = self.settings(parameters, context, FsdafParams)
        return fuse_fsdaf(series, dates, folder, scale, params, device, feedback)
