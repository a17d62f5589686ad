"""How the two sensors see the scene in the realistic simulator: point spread function and gridding, geolocation
error, atmosphere and BRDF residuals, noise and striping, clouds and their shadows.

Coarse (MODIS-like), per date, from the coarse sensor's band reflectance at the fine resolution:

* BRDF: MODIS views the scene at up to 55 degrees off nadir (a different angle every day) and daily surface
  reflectance (MOD09GA) is not corrected for it; the reflectance of a land cover c at view zenith theta_v is
  rho (1 + s c_c (sec theta_v - 1)) with s = +1 (backscatter side) or -1 (forward) by date and c_c a per-class
  anisotropy (forest strongest, water weakest); Landsat is within 7.5 degrees of nadir and taken as nadir.
* Atmosphere: the residual of the atmospheric correction, an aerosol optical depth error dtau per date (normal,
  ``atmosphere``): rho_obs = rho (1 - a_b dtau) + p_b dtau, with a_b = 0.4 (lambda_b / 550)^-1.3 and
  p_b = 0.1 (lambda_b / 550)^-1.3 (Angstrom exponent 1.3: the blue is hit hardest). The fine images get the same
  form with a smaller error (``fine_atmosphere``).
* PSF: MODIS's along-scan response is triangular (full width at the base two sampling intervals) and its
  along-track response rectangular; both grow off nadir, along scan by about sec^2 theta_v, along track by
  sec theta_v (Wolfe et al. 1998). The image is convolved with the separable kernel at the fine resolution.
* Gridding and geolocation: a gridded (L2G) pixel is the observation nearest its centre, so each coarse pixel
  samples the blurred image at its centre plus a random offset (uniform, +-``gridding`` coarse pixels), and the
  whole date is shifted by a geolocation error (normal, ``misregistration`` coarse pixels per axis).
* Noise: Gaussian, ``coarse_noise``.

Fine (Landsat-like) pair images: the truth with the fine atmosphere residual, Gaussian noise (``fine_noise``)
and per-column detector gains (striping, ``striping``) of the push-broom OLI.

Clouds: per date with probability ``cloud_probability``, smooth random blobs covering up to ``cloud_cover`` of the
scene and their shadows (the blobs displaced by the sun's azimuth), written as nodata in the fine and coarse
images (a coarse pixel is masked when a quarter of it is), as the products' quality bits would mask them.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .spectra import MODIS_BANDS, OLI_BANDS

_CENTRES_OLI = np.array([(lo + hi) / 2 for lo, hi in OLI_BANDS], np.float32)
_CENTRES_MODIS = np.array([(lo + hi) / 2 for lo, hi in MODIS_BANDS], np.float32)


def atmosphere(image: np.ndarray, dtau: float, coarse: bool = True) -> np.ndarray:
    """rho (1 - a_b dtau) + p_b dtau over [bands, ...] (module docstring)."""
    centres = _CENTRES_MODIS if coarse else _CENTRES_OLI
    factor = (centres / 550.0) ** -1.3
    shape = (-1,) + (1,) * (image.ndim - 1)
    return image * (1.0 - 0.4 * factor * dtau).reshape(shape) + (0.1 * factor * dtau).reshape(shape)


def brdf_factor(anisotropy: np.ndarray, view_zenith_deg: float, side: float) -> np.ndarray:
    """1 + s c (sec theta_v - 1) per pixel (``anisotropy`` c per pixel)."""
    sec = 1.0 / np.cos(np.radians(view_zenith_deg))
    return 1.0 + side * anisotropy * (sec - 1.0)


def psf_kernels(factor: int, view_zenith_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(along-track kernel for the rows, along-scan kernel for the columns), each normalised, at the fine
    resolution: a rectangle of ``factor`` sec(theta) pixels and a triangle of half-width ``factor`` sec^2(theta)."""
    sec = 1.0 / np.cos(np.radians(view_zenith_deg))
    half_x = factor * sec * sec
    rx = int(np.ceil(half_x))
    x = np.arange(-rx, rx + 1, dtype=np.float64)
    along_scan = np.clip(1.0 - np.abs(x) / half_x, 0.0, None)
    width_y = factor * sec
    ry = int(np.ceil(width_y / 2))
    y = np.arange(-ry, ry + 1, dtype=np.float64)
    along_track = np.clip(width_y / 2 + 0.5 - np.abs(y), 0.0, 1.0)  # a box with partial end pixels
    return (along_track / along_track.sum()).astype(np.float32), (along_scan / along_scan.sum()).astype(np.float32)


def coarse_sample(image: np.ndarray, factor: int, view_zenith_deg: float, shift: tuple[float, float],
                  gridding: float, rng: np.random.Generator) -> np.ndarray:
    """Blur [bands, H, W] with the PSF and sample it at each coarse pixel's centre moved by ``shift`` (rows,
    columns; coarse pixels) and a per-pixel gridding offset -> [bands, H / factor, W / factor]."""
    ky, kx = psf_kernels(factor, view_zenith_deg)
    blurred = ndimage.convolve1d(image, ky, axis=1, mode="reflect")
    blurred = ndimage.convolve1d(blurred, kx, axis=2, mode="reflect")
    bands, h, w = image.shape
    hc, wc = h // factor, w // factor
    rows, cols = np.mgrid[0:hc, 0:wc].astype(np.float64)
    jitter = rng.uniform(-gridding, gridding, (2, hc, wc)) if gridding > 0 else np.zeros((2, hc, wc))
    # fine-pixel coordinates of the (moved) coarse centres; fine pixel i covers [i, i + 1), centre i + 0.5
    ys = (rows + 0.5 + shift[0] + jitter[0]) * factor - 0.5
    xs = (cols + 0.5 + shift[1] + jitter[1]) * factor - 0.5
    return np.stack([ndimage.map_coordinates(b, [ys, xs], order=1, mode="nearest") for b in blurred])


def column_striping(bands: int, width: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Per-band, per-column detector gains [bands, 1, width]: 1 + N(0, strength), constant over a detector
    module's columns with a small per-column part."""
    module = max(1, width // 14)  # OLI: 14 focal plane modules across the swath
    per_module = rng.normal(0.0, strength, (bands, -(-width // module)))
    gains = np.repeat(per_module, module, axis=1)[:, :width] + rng.normal(0.0, strength / 3, (bands, width))
    return (1.0 + gains[:, None, :]).astype(np.float32)


def cloud_masks(shape: tuple[int, int], cover: float, sun_shift: tuple[int, int], smoothness: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(cloud, shadow) boolean masks [H, W]: the top ``cover`` share of a smooth random field, and the clouds
    displaced by ``sun_shift`` pixels (outside the clouds)."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), smoothness, mode="wrap")
    cloud = noise > np.quantile(noise, 1.0 - cover) if cover > 0 else np.zeros(shape, bool)
    shadow = np.zeros(shape, bool)
    dy, dx = sun_shift
    h, w = shape
    shadow[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
        cloud[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    return cloud, shadow & ~cloud


def coarse_mask(mask: np.ndarray, factor: int, share: float = 0.25) -> np.ndarray:
    """A coarse pixel is masked when more than ``share`` of its fine pixels are."""
    h, w = mask.shape
    return mask[:h // factor * factor, :w // factor * factor].reshape(
        h // factor, factor, w // factor, factor).mean(axis=(1, 3)) > share
