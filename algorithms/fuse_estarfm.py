"""stf:fuse_estarfm."""
from __future__ import annotations

from ..core.classic.estarfm import EstarfmParams, fuse_estarfm
from .classic_base import ClassicFusion


class FuseEstarfm(ClassicFusion):
    ALG_ID = "fuse_estarfm"
    DISPLAY_NAME = "ESTARFM"
    SHORT_HELP = (
        "Enhanced STARFM (Zhu et al. 2010, Remote Sensing of Environment 114). Needs two pairs, before and after each "
        "date. Similar pixels are selected in both fine images; a conversion coefficient from the regression of fine "
        "on coarse reflectance of the similar pixels scales the coarse change (falling back to 1 when the "
        "regression is not significant); weights combine spectral correlation and distance; the predictions from "
        "both pairs are blended by the coarse change in the window. Defaults: window 51 pixels, 4 classes."
    )
    _DEFAULT = EstarfmParams()

    def add_method_parameters(self) -> None:
        d = self._DEFAULT
        self.add_int("WINDOW", "Window size (pixels)", "Side of the moving window in fine pixels (odd).",
                     d.window, 3, 501)
        self.add_int("CLASSES", "Number of classes", "m of the similarity threshold 2 sigma / m.", d.classes, 1, 100,
                     advanced=True)

    def fuse(self, series, dates, folder, scale, device, parameters, context, feedback):
        params = self.settings(parameters, context, EstarfmParams)
        return fuse_estarfm(series, dates, folder, scale, params, device, feedback)
