"""Guided change allocation: a network branch, shared by the learned methods whose untrained start is the additive
prediction (STF3DCNN, the DCNN), that learns what the additive model F_k + dC misses. Our design (issue "Learning
that pays", item 3), not from a paper.

Why. The coarse change dC = C_t - C_k, brought onto the fine grid, is the change of a whole coarse pixel, blurred by
the coarse sensor's PSF (wider than a pixel, misregistered by a fraction of one) and seen through the coarse
sensor's bands. What a field does inside a coarse pixel depends on what it is: in a pixel half crop and half forest
the crop takes the green-up and the forest none; a canopy near saturation changes less in the red than a sparse one.
That needs the fine reference's structure over at least a coarse pixel, across bands (the 3 x 3 or +-3 pixel
single-band fields of view of the papers' networks cannot see it).

The branch adds to the prediction (per band b, S the mean over a (f + 1) x (f + 1) window, f the coarse factor)

    G(F_k, dC) = S(dC) * (g - S(g)) [+ Z * dC] [+ W dC],      g = N([F_k, F_k - S(F_k), d], all bands)

* optionally (``deblur``) Z * dC: a coarse-scale deconvolution of the change, 5 x 5 taps one coarse pixel apart, per
  band, whose taps sum to zero (it sharpens the change between coarse pixels, blurred by the coarse PSF, without
  changing its level: a level, i.e. a gain, learned from two pair dates is the BRDF and atmosphere of those two
  dates). Off by default: it made the dates near a pair worse (below);
* S(dC) * (g - S(g)): moves the coarse pixel's change between its fine pixels, in proportion to how each differs
  from its neighbourhood in g, a per-band "change propensity" that N, a small CNN (3 x 3, ``width`` channels, 3 x 3,
  1 x 1), reads from the fine reference's spectrum and local contrast and from d = S(dC) / |S(dC)|, the
  spectral direction of the coarse change (which kind of change: green-up, harvest, flood). g - S(g) has a zero mean
  over the window, so the branch reallocates the coarse change rather than inventing one;
* optionally (``mix``) W dC, a 1 x 1 convolution across bands: the coarse bands' change as the fine bands see it.
  Off by default: from two pair dates it learns their date-specific radiometry and made held-out dates worse;
* G is positively homogeneous of degree 1 in dC (d does not depend on the magnitude): no coarse change gives no
  correction, and a change half as large gives half the correction.

Its learned parts start at zero: the untrained branch adds nothing. Field of view: two coarse pixels each side.

Measured on the realistic simulator (192 px, seed 42, 3 pairs, the middle one held out in time; mean RMSE over
the 7 predicted dates against the untrained start), never enough to be a default:

* STF3DCNN + branch trained together: the held-out RMSE rose from 0.0284 to 0.033-0.042 after one epoch (the 3D FCN
  learns the gain of the one training pair difference); branch alone (FCN frozen): held-out -1.8 %, all dates
  -0.2 %; with ``deblur``: held-out -2.6 % but all dates +2.0 % (worse): deconvolution sharpens the coarse images'
  date-specific BRDF / atmosphere differences and gridding noise, which dominate the change near a pair;
* the patch DCNN + branch on crops of 48 pixels (all bands): held-out -6 %, all dates +1.6 % with ``deblur``,
  -0.9 % without; adding the magnitude of the change or noise-consistent temporal augmentation did not change that.

The held-out pair date lies mid-way between pairs (a large change); the dates near a pair have small changes where
the coarse observation error dominates, so a correction that wins mid-gap can lose near the pairs. Off by default
until it pays on every date (issue "Learning that pays").
"""
from __future__ import annotations

from typing import Any

from ..device import import_torch
from .training import zero_last_layer

EPS = 1e-6  # reflectance: a coarse change smaller than this has no direction (0)


def window_mean(x: Any, size: int) -> Any:
    """S: mean over a centred ``size`` x ``size`` window (odd), stride 1, edges averaged over what exists."""
    torch = import_torch()
    return torch.nn.functional.avg_pool2d(x, size, stride=1, padding=size // 2, count_include_pad=False)


def guided_radius(factor: int) -> int:
    """Pixels the branch reads on each side of an output pixel (tiling halo): S(g) over g's 3 x 3 layers over S."""
    return max(2 * factor, 2 * (window_size(factor) // 2) + 2)


def window_size(factor: int) -> int:
    """S's window: the coarse pixel, odd (f + 1 for an even f, so it is centred)."""
    return factor + 1 if factor % 2 == 0 else factor


def build_branch(bands: int, factor: int, width: int = 32, mix: bool = False, deblur: bool = False) -> Any:
    """The guided allocation branch for ``bands`` bands and coarse factor ``factor``: ``branch(fine_ref, change)``
    on [N, B, H, W] tensors returns the correction [N, B, H, W] (zero while untrained)."""
    torch = import_torch()
    nn = torch.nn
    size = window_size(factor)

    class GuidedBranch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mix = nn.Conv2d(bands, bands, 1, bias=False) if mix else None
            self.propensity = nn.Sequential(
                nn.Conv2d(3 * bands, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, bands, 1))
            if mix:
                zero_last_layer(self.mix)
            zero_last_layer(self.propensity[-1])
            # coarse-scale deconvolution of the change: 5 x 5 taps one coarse pixel apart, per band, zero-sum
            self.deblur = nn.Parameter(torch.zeros(bands, 1, 5, 5)) if deblur else None

        def forward(self, fine_ref, change):
            smooth_change = window_mean(change, size)
            norm = smooth_change.abs().sum(1, keepdim=True) / bands
            direction = smooth_change / norm.clamp_min(EPS)
            g = self.propensity(torch.cat([fine_ref, fine_ref - window_mean(fine_ref, size), direction], 1))
            out = smooth_change * (g - window_mean(g, size))
            if self.deblur is not None:
                kernel = self.deblur - self.deblur.mean(dim=(2, 3), keepdim=True)
                padded = torch.nn.functional.pad(change, (2 * factor,) * 4, mode="replicate")
                out = out + torch.nn.functional.conv2d(padded, kernel, dilation=factor, groups=bands)
            return out if self.mix is None else out + self.mix(change)

    return GuidedBranch()
