"""stf:fuse_additive - the nearest fine image plus the coarse change: the second benchmark."""
from __future__ import annotations

from ..core.naive import fuse_additive
from .fuse_naive import FuseNaive


class FuseAdditive(FuseNaive):
    ALG_ID = "fuse_additive"
    DISPLAY_NAME = "Additive prediction (nearest fine image + coarse change)"
    FUSE = staticmethod(fuse_additive)
    SHORT_HELP = (
        "Predicts each date as the fine image of the nearest pair date plus the coarse change since that date: "
        "F^(t) = F(t_k) + C(t) - C(t_k), clamped into the data range. It is the simplest use of the coarse images "
        "and the untrained start of the deep methods: a fusion method that does not beat it adds nothing to the "
        "coarse images. Coarse images must be on the fine grid (stf:resample_coarse). Outputs are named "
        "additive_<YYYY-MM-DD>.tif, in the fine images' data type."
    )
