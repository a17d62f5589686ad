"""The realistic scene: land cover, leaf area index over the year (one or two seasons), sub-coarse-pixel land-cover
change, and what the fine and coarse sensors record of it (:mod:`.sensors`, :mod:`.spectra`).

The layout (fields of very different sizes, a meandering river, a flood zone beside it) is drawn as the control
generator draws it (:mod:`..synthetic`), with one more class, a double-cropped field (two seasons a year). Each
vegetated pixel has a leaf area index L(doy) (a rise and a fall per season, logistic, with a per-field shift of the
season and a per-pixel density texture) over a background (soil, or stubble after a harvest), and its reflectance
in any sensor's bands comes from the canopy model (:mod:`.spectra`); the land covers differ in chlorophyll (red
edge position), background brightness and BRDF anisotropy.

Land-cover change smaller than a coarse pixel (``events`` per coarse pixel of the scene): a harvest (to stubble),
a burn (to char) or a new building (to built-up) of a patch a quarter to three quarters of a coarse pixel a side,
on a date that is not a pair date; it lasts for the rest of the series. Every random draw is made from ``seed``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError
from . import sensors, spectra

CLASSES = ("water", "forest", "grassland", "summer crop", "winter crop", "built-up", "double crop")

# red edge (nm), background brightness range, BRDF anisotropy c per class (index as CLASSES)
_RED_EDGE = {1: 722.0, 2: 712.0, 3: 718.0, 4: 716.0, 6: 714.0}
_ANISOTROPY = np.array([0.05, 0.35, 0.18, 0.25, 0.25, 0.12, 0.25], np.float32)
# leaf area index per class: seasons of (base, amplitude, start DOY, end DOY, rise days, fall days), harvest DOY
_SEASONS = {
    1: ((2.2, 2.6, 115, 290, 10, 15),),
    2: ((0.5, 1.8, 100, 230, 8, 20),),
    3: ((0.05, 4.8, 165, 255, 7, 8),),
    4: ((0.3, 3.8, 95, 185, 8, 6),),
    6: ((0.1, 3.0, 95, 160, 6, 6), (0.0, 3.6, 195, 262, 6, 7)),
}
_HARVEST = {4: 200}
_CLASS_PROBABILITIES = {1: 0.13, 2: 0.18, 3: 0.25, 4: 0.2, 5: 0.1, 6: 0.14}
EVENT_KINDS = ("harvest", "burn", "building")


@dataclass
class RealismConfig:
    """The effects of the realistic simulator, each a physical quantity (defaults: typical of MODIS daily surface
    reflectance against Landsat 8/9 Collection 2; set one to 0 to switch that effect off)."""

    max_view_zenith: float = 45.0     # degrees; each date's MODIS view zenith is uniform in [0, this]
    brdf: float = 1.0                 # scales the per-class anisotropy c (0: no BRDF effect)
    atmosphere: float = 0.05          # std of the coarse images' aerosol optical depth error per date
    fine_atmosphere: float = 0.015    # same for the fine images
    misregistration: float = 0.15     # std of the per-date geolocation error, coarse pixels per axis
    gridding: float = 0.25            # half-range of the per-pixel gridding offset, coarse pixels
    psf: bool = True                  # MODIS PSF (False: block mean of the coarse pixel, no view-angle growth)
    spectral: bool = True             # coarse bands from MODIS responses (False: the OLI bands)
    coarse_noise: float = 0.004       # reflectance
    fine_noise: float = 0.003         # reflectance
    striping: float = 0.004           # std of the fine images' column gains
    events: float = 0.05              # sub-coarse-pixel land-cover changes per coarse pixel of the scene
    cloud_cover: float = 0.0          # largest cloud share of a cloudy date (0: no clouds)
    cloud_probability: float = 0.5    # share of dates with clouds when cloud_cover > 0

    def validate(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool):
                continue
            if not np.isfinite(value) or value < 0:
                raise InputError(f"The realism setting {name} must be a finite number >= 0 (got {value}).")
        if self.max_view_zenith > 65:
            raise InputError(f"max_view_zenith must be at most 65 degrees (got {self.max_view_zenith}).")
        if self.cloud_cover >= 0.9 or self.cloud_probability > 1:
            raise InputError("cloud_cover must be below 0.9 and cloud_probability at most 1.")

    @classmethod
    def from_dict(cls, values: dict) -> "RealismConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"Unknown realism setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def parse(cls, text: str) -> dict:
        """``name=value`` settings separated by commas or spaces (``psf=false, misregistration=0.3``) -> a dict of
        overrides, each converted to its field's type; empty -> {}."""
        import re

        overrides = {}
        fields = cls.__dataclass_fields__
        for token in [t for t in re.split(r"[,;\s]+", (text or "").strip()) if t]:
            name, sep, value = token.partition("=")
            name = name.strip().lower()
            if not sep or name not in fields:
                raise InputError(f"Realism setting '{token}' is not name=value with a known name "
                                 f"({', '.join(sorted(fields))}).")
            default = getattr(cls(), name)
            if isinstance(default, bool):
                if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise InputError(f"Realism setting {name} takes true or false, got '{value}'.")
                overrides[name] = value.strip().lower() in ("true", "1", "yes", "on")
            else:
                try:
                    overrides[name] = float(value)
                except ValueError:
                    raise InputError(f"Realism setting {name} takes a number, got '{value}'.") from None
        return overrides


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Event:
    kind: str
    date_index: int
    rows: tuple[int, int]
    cols: tuple[int, int]


class RealisticScene:
    """Layout, per-pixel parameters and the per-date sensor states of one realistic series."""

    def __init__(self, config, realism: RealismConfig) -> None:
        from ..synthetic import draw_layout, smooth_noise

        config.validate()
        realism.validate()
        self.config, self.realism = config, realism
        rng = np.random.default_rng(config.seed)
        h, w = config.size, config.width or config.size
        self.field_id, self.landcover, self.flood_zone = draw_layout(h, w, _CLASS_PROBABILITIES, rng)
        n_fields = int(self.field_id.max()) + 1
        self.shift = rng.normal(0.0, 6.0, n_fields).astype(np.float32)[self.field_id]
        self.brightness = (rng.uniform(0.85, 1.15, n_fields).astype(np.float32)[self.field_id]
                           * (1.0 + 0.05 * smooth_noise((h, w), 2.0, rng)))
        self.density = rng.uniform(0.8, 1.1, n_fields).astype(np.float32)[self.field_id] * (
            1.0 + 0.08 * smooth_noise((h, w), 1.5, rng))
        self.urban_texture = 1.0 + 0.08 * smooth_noise((h, w), 1.0, rng)
        self.events = self._events(rng, h, w)
        # per date: view zenith, BRDF side, atmosphere errors, geolocation shift, noise seeds
        n = config.n_dates
        self.view_zenith = rng.uniform(0.0, realism.max_view_zenith, n)
        self.brdf_side = rng.choice([-1.0, 1.0], n)
        self.dtau = rng.normal(0.0, realism.atmosphere, n) if realism.atmosphere else np.zeros(n)
        self.dtau_fine = rng.normal(0.0, realism.fine_atmosphere, n) if realism.fine_atmosphere else np.zeros(n)
        self.geolocation = rng.normal(0.0, realism.misregistration, (n, 2)) if realism.misregistration \
            else np.zeros((n, 2))
        self.striping = sensors.column_striping(6, w, realism.striping, rng)
        self.cloudy = rng.random(n) < realism.cloud_probability if realism.cloud_cover > 0 else np.zeros(n, bool)
        self.noise_seed = int(rng.integers(0, 2**31 - 1))
        self._tables = {}

    # -- land cover and canopy --------------------------------------------------------------------------------
    def _events(self, rng: np.random.Generator, h: int, w: int) -> list[Event]:
        f = self.config.factor
        count = int(round(self.realism.events * (h // f) * (w // f)))
        candidates = [i for i in range(1, self.config.n_dates) if i not in self.config.pair_indices]
        events = []
        vegetated = np.isin(self.landcover, [1, 2, 3, 4, 6])
        for _ in range(count if candidates else 0):
            for _try in range(50):
                side_y = int(rng.integers(max(2, f // 4), max(3, 3 * f // 4 + 1)))
                side_x = int(rng.integers(max(2, f // 4), max(3, 3 * f // 4 + 1)))
                y, x = int(rng.integers(0, h - side_y)), int(rng.integers(0, w - side_x))
                if vegetated[y:y + side_y, x:x + side_x].mean() > 0.8:
                    events.append(Event(str(rng.choice(EVENT_KINDS)), int(rng.choice(candidates)),
                                        (y, y + side_y), (x, x + side_x)))
                    break
        return events

    def lai(self, doy: float) -> tuple[np.ndarray, np.ndarray]:
        """Leaf area index per pixel on ``doy`` and whether the field is harvested (stubble) by then."""
        lai = np.zeros(self.landcover.shape, np.float32)
        harvested = np.zeros(self.landcover.shape, bool)
        for cls, seasons in _SEASONS.items():
            sel = self.landcover == cls
            day = doy - self.shift[sel]
            curve = np.zeros(day.shape, np.float32)
            for base, amp, sos, eos, k1, k2 in seasons:
                curve += base + amp * (_logistic((day - sos) / k1) - _logistic((day - eos) / k2))
            if cls in _HARVEST:
                cut = day >= _HARVEST[cls]
                curve = np.where(cut, 0.1, curve)
                harvested[sel] = cut
            lai[sel] = np.clip(curve, 0.0, 8.0)
        return lai * self.density, harvested

    def _table(self, cls: int, background: str, coarse: bool):
        key = (cls, background, coarse)
        if key not in self._tables:
            bands = spectra.MODIS_BANDS if coarse and self.realism.spectral else spectra.OLI_BANDS
            self._tables[key] = spectra.band_tables(_RED_EDGE[cls], background, bands)
        return self._tables[key]

    def reflectance(self, date_index: int, flooded: bool, coarse: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Surface reflectance [6, H, W] in the fine (OLI) or the coarse (MODIS) sensor's bands at nadir on a date,
        and the land cover of that date (events applied)."""
        date = self.config.dates[date_index]
        lai, harvested = self.lai(date.timetuple().tm_yday)
        landcover = self.landcover.copy()
        burnt = np.zeros(landcover.shape, bool)
        for e in self.events:
            if date_index >= e.date_index:
                sl = (slice(*e.rows), slice(*e.cols))
                if e.kind == "harvest":
                    lai[sl], harvested[sl] = 0.1, True
                elif e.kind == "burn":
                    burnt[sl] = True
                else:
                    landcover[sl] = 5
        bands = spectra.MODIS_BANDS if coarse and self.realism.spectral else spectra.OLI_BANDS
        image = np.zeros((6,) + lai.shape, np.float32)
        for cls in _SEASONS:
            for background, where in (("soil", ~harvested), ("stubble", harvested)):
                sel = (landcover == cls) & where
                if not sel.any():
                    continue
                s, v = self._table(cls, background, coarse)
                image[:, sel] = self.brightness[sel] * spectra.lookup(s, lai[sel]) + spectra.lookup(v, lai[sel])
        urban = landcover == 5
        image[:, urban] = spectra.band_values(spectra.urban(), bands)[:, None] * self.urban_texture[urban]
        image[:, burnt] = (0.9 * spectra.band_values(spectra.char(), bands)[:, None] + 0.1 * image[:, burnt])
        image[:, landcover == 0] = spectra.band_values(spectra.water(), bands)[:, None]
        if flooded:
            turbid = spectra.band_values(spectra.water(turbid=True), bands)[:, None, None]
            image = np.where(self.flood_zone[None], 0.85 * turbid + 0.15 * image, image)
        return np.clip(image, 0.0, 1.0).astype(np.float32), landcover

    # -- what the sensors record -----------------------------------------------------------------------------
    def truth(self, date_index: int, flooded: bool) -> np.ndarray:
        """The fine truth: OLI band surface reflectance at nadir, no atmosphere residual, noise or cloud."""
        return self.reflectance(date_index, flooded)[0]

    def _clouds(self, date_index: int) -> tuple[np.ndarray, np.ndarray]:
        shape = self.landcover.shape
        if not self.cloudy[date_index]:
            return np.zeros(shape, bool), np.zeros(shape, bool)
        rng = np.random.default_rng(self.noise_seed + 7919 * (date_index + 1))
        cover = rng.uniform(0.3, 1.0) * self.realism.cloud_cover
        offset = max(2, self.config.factor // 2)
        return sensors.cloud_masks(shape, cover, (offset, offset), max(shape) / 30, rng)

    def fine_observation(self, truth: np.ndarray, date_index: int) -> tuple[np.ndarray, np.ndarray]:
        """A fine pair image: atmosphere residual, column striping, noise; and its validity (clouds, shadows)."""
        r = self.realism
        rng = np.random.default_rng(self.noise_seed + 2 * date_index + 1)
        image = sensors.atmosphere(truth, float(self.dtau_fine[date_index]), coarse=False) * self.striping
        if r.fine_noise:
            image = image + rng.normal(0.0, r.fine_noise, image.shape).astype(np.float32)
        cloud, shadow = self._clouds(date_index)
        return np.clip(image, 0.0, 1.0).astype(np.float32), ~(cloud | shadow)

    def coarse_observation(self, date_index: int, flooded: bool) -> tuple[np.ndarray, np.ndarray]:
        """The coarse image on its grid: MODIS bands, BRDF at the date's view angle, atmosphere residual, PSF,
        gridding and geolocation error, noise; and its validity (clouds, shadows)."""
        r, f = self.realism, self.config.factor
        image, landcover = self.reflectance(date_index, flooded, coarse=True)
        zenith = float(self.view_zenith[date_index])
        if r.brdf:
            image = image * sensors.brdf_factor(r.brdf * _ANISOTROPY[landcover], zenith,
                                                float(self.brdf_side[date_index]))[None]
        image = sensors.atmosphere(image, float(self.dtau[date_index]), coarse=True)
        rng = np.random.default_rng(self.noise_seed + 2 * date_index)
        if r.psf:
            low = sensors.coarse_sample(image, f, zenith, tuple(self.geolocation[date_index]), r.gridding, rng)
        else:
            b, h, w = image.shape
            low = image.reshape(b, h // f, f, w // f, f).mean(axis=(2, 4))
        if r.coarse_noise:
            low = low + rng.normal(0.0, r.coarse_noise, low.shape).astype(np.float32)
        cloud, shadow = self._clouds(date_index)
        valid = ~sensors.coarse_mask(cloud | shadow, f)
        return np.clip(low, 0.0, 1.0).astype(np.float32), valid

    def describe(self) -> dict:
        """What series.json records of the simulated sensors and events."""
        return {
            "realism": asdict(self.realism),
            "classes": list(CLASSES),
            "view_zenith_deg": np.round(self.view_zenith, 2).tolist(),
            "brdf_side": self.brdf_side.tolist(),
            "aot_error_coarse": np.round(self.dtau, 4).tolist(),
            "aot_error_fine": np.round(self.dtau_fine, 4).tolist(),
            "geolocation_shift_coarse_px": np.round(self.geolocation, 3).tolist(),
            "cloudy_dates": [self.config.dates[i].isoformat() for i in np.flatnonzero(self.cloudy)],
            "events": [{"kind": e.kind, "date": self.config.dates[e.date_index].isoformat(),
                        "rows": list(e.rows), "cols": list(e.cols)} for e in self.events],
        }
