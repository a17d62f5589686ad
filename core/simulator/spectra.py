"""Spectra of the realistic simulator: a small spectral library, a canopy reflectance model and the band responses
of the fine (Landsat 8/9 OLI) and coarse (Terra/Aqua MODIS) sensors.

Reflectance is built per wavelength (400-2500 nm, 5 nm) and convolved with each sensor's relative spectral
response, so the fine-coarse relation is whatever the spectra and the two band sets make of it: non-linear in the
state of the canopy and different for each land cover, not a gain chosen by us.

Canopy (a two-stream, Beer-law approximation of a canopy over a background, as used by SAIL-type models in their
limit of an infinite canopy; Verhoef 1984, Jacquemoud & Baret's PROSPECT for the leaf spectra's shape):

    R(lambda, L) = R_inf(lambda) + (R_s(lambda) - R_inf(lambda)) exp(-2 k(lambda) L)

with L the leaf area index, R_s the background (soil, stubble) and R_inf the reflectance of an infinitely dense
canopy. k is large where leaves absorb (visible: the canopy saturates at L ~ 2) and small in the near infrared
(it saturates slowly, L ~ 6); the red edge (the switch between the two) sits at 700-725 nm and moves to longer
wavelengths with chlorophyll content, which differs by land cover. The band reflectance of a pixel is

    rho_b = integral r_b(lambda) R(lambda, L) dlambda / integral r_b(lambda) dlambda
          = brightness * S_b(L) + V_b(L)

with S_b the background's and V_b the canopy's share, tabulated against L for each land cover and sensor band
(:func:`band_tables`). Band responses are flat-topped with 5 nm logistic edges between the published band edges
(OLI: Barsi et al. 2014; MODIS: the MCST relative spectral responses' 50 % points).
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

WAVELENGTHS = np.arange(400.0, 2501.0, 5.0)

# (lower, upper) 50 % response edges in nm, bands in the order blue, green, red, NIR, SWIR1, SWIR2.
OLI_BANDS = ((452, 512), (533, 590), (636, 673), (851, 879), (1567, 1651), (2107, 2294))
MODIS_BANDS = ((459, 479), (545, 565), (620, 670), (841, 876), (1628, 1652), (2105, 2155))  # MODIS 3, 4, 1, 2, 6, 7

LAI_GRID = np.linspace(0.0, 8.0, 161)


def _gauss(centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((WAVELENGTHS - centre) / width) ** 2)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return expit(x)


def soil(kind: str = "soil") -> np.ndarray:
    """Bare background: reflectance rising from the blue to the SWIR, clay absorption at 2200 nm and water
    absorption at 1450 and 1940 nm; ``stubble`` adds dry straw (brighter, flatter in the NIR)."""
    lam = WAVELENGTHS
    base = 0.04 + 0.30 * (1.0 - np.exp(-(lam - 380.0) / 450.0))
    base -= 0.05 * _gauss(2200, 60) + 0.08 * _gauss(1450, 40) + 0.10 * _gauss(1940, 50)
    if kind == "stubble":
        base = 1.04 * base + 0.04 * _sigmoid((lam - 700.0) / 30.0) * np.exp(-(lam - 700.0).clip(0) / 2500.0)
    return base


def dense_canopy(red_edge: float) -> np.ndarray:
    """R_inf: green peak, chlorophyll absorption at 670 nm, red edge at ``red_edge`` nm, NIR plateau, SWIR falling
    with leaf water (absorption at 1450 and 1940 nm)."""
    lam = WAVELENGTHS
    visible = 0.028 + 0.05 * _gauss(550, 30) - 0.008 * _gauss(670, 20)
    nir = 0.47 * np.where(lam < 1100, 1.0, np.exp(-(lam - 1100.0) / 900.0))
    nir = nir - 0.12 * _gauss(1450, 45) - 0.15 * _gauss(1940, 55)
    edge = _sigmoid((lam - red_edge) / 11.0)
    return visible * (1 - edge) + nir * edge


def extinction(red_edge: float) -> np.ndarray:
    """k(lambda): 0.9 where leaves absorb (visible), 0.32 in the NIR, 0.55 in the SWIR (water absorption)."""
    lam = WAVELENGTHS
    edge = _sigmoid((lam - red_edge) / 11.0)
    k = 0.9 * (1 - edge) + 0.32 * edge
    return np.where(lam > 1300, 0.55, k)


def water(turbid: bool = False) -> np.ndarray:
    """Clear (river) or turbid (flood) water: bright in the blue, near 0 beyond 900 nm; turbid water scatters more
    and longer into the red and NIR."""
    lam = WAVELENGTHS
    if turbid:
        return 0.01 + 0.08 * np.exp(-(lam - 450.0) / 380.0)
    return 0.004 + 0.06 * np.exp(-(lam - 400.0) / 200.0)


def urban() -> np.ndarray:
    """Built-up: concrete, asphalt and roofs, a bright, nearly flat spectrum."""
    lam = WAVELENGTHS
    return 0.10 + 0.12 * (1.0 - np.exp(-(lam - 400.0) / 800.0)) - 0.02 * _gauss(1940, 60)


def char() -> np.ndarray:
    """A fresh burn scar: black carbon and ash, dark and flat, rising slightly into the SWIR."""
    return 0.035 + 0.05 * (WAVELENGTHS - 400.0) / 2100.0


def response(bands: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Relative spectral responses [bands, wavelengths]: flat between the edges, 5 nm logistic roll-off,
    normalised to unit integral."""
    lam = WAVELENGTHS
    rows = [_sigmoid((lam - lo) / 2.5) * _sigmoid((hi - lam) / 2.5) for lo, hi in bands]
    r = np.array(rows)
    return r / r.sum(axis=1, keepdims=True)


def band_values(spectrum: np.ndarray, bands: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Band reflectance [bands] of one spectrum."""
    return response(bands) @ spectrum


def band_tables(red_edge: float, background: str, bands: tuple[tuple[float, float], ...]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(S [bands, L], V [bands, L]) on :data:`LAI_GRID`: the background's share
    r_b . (R_s exp(-2 k L)) and the canopy's share r_b . (R_inf (1 - exp(-2 k L)))."""
    r = response(bands)
    k = extinction(red_edge)
    transmission = np.exp(-2.0 * k[None, :] * LAI_GRID[:, None])  # [L, lambda]
    s = (transmission * soil(background)[None]) @ r.T
    v = ((1.0 - transmission) * dense_canopy(red_edge)[None]) @ r.T
    return s.T.astype(np.float32), v.T.astype(np.float32)


def lookup(table: np.ndarray, lai: np.ndarray) -> np.ndarray:
    """Linear interpolation of a [bands, L] table at the LAI values ``lai`` [n] -> [bands, n]."""
    pos = np.clip(lai, LAI_GRID[0], LAI_GRID[-1]) / (LAI_GRID[1] - LAI_GRID[0])
    i = np.minimum(pos.astype(np.int64), len(LAI_GRID) - 2)
    w = (pos - i).astype(np.float32)
    return table[:, i] * (1 - w) + table[:, i + 1] * w
