"""A realistic synthetic scene series with known truth, for demos, tests and benchmarks.

The scene (fine grid, 30 m, UTM) is a patchwork of rectangular fields of very different sizes (recursive
splitting, as cadastral parcels), crossed by a meandering river. Each field has a land-cover class:

====  ============  ==================================================================
 id   class         seasonal behaviour (vegetation fraction ``fv`` over day of year)
====  ============  ==================================================================
 0    water         permanent river, no change
 1    forest        high ``fv``, gentle green-up in spring
 2    grassland     moderate green-up, early decline
 3    summer crop   late green-up (June), senescence in September
 4    winter crop   green in spring, abrupt harvest in July (bare stubble after)
 5    built-up      constant
====  ============  ==================================================================

Reflectance over the six Landsat-like bands (blue, green, red, NIR, SWIR1, SWIR2) is a linear mixture
``fv * vegetation + (1 - fv) * background`` with per-field phenology dates and brightness, and a fixed
within-field texture. A flood (abrupt change) covers low ground beside the river on some dates between two
pairs, the case the papers find hardest.

Coarse (MODIS-like) images are made from the fine truth as a sensor sees it: a Gaussian point spread function
(sigma = half a coarse pixel), aggregation by ``factor`` (block mean), a per-band gain and bias (sensor
differences) and Gaussian noise, on their own coarser grid. Fine images exist on the pair dates only; the
truth is kept on every date for evaluation. Everything is deterministic given ``seed``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from .errors import InputError
from .feedback import Feedback, check_cancel
from .raster import OutputTransaction, grid_info, write_raster

BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")
CLASSES = ("water", "forest", "grassland", "summer crop", "winter crop", "built-up")
REALISM = ("control", "realistic")

# Typical surface reflectance of the end-members, bands as in BANDS.
_VEGETATION = np.array([0.03, 0.07, 0.04, 0.45, 0.22, 0.10], np.float32)
_SOIL = np.array([0.09, 0.13, 0.17, 0.24, 0.32, 0.27], np.float32)
_STUBBLE = np.array([0.10, 0.14, 0.18, 0.30, 0.36, 0.28], np.float32)
_WATER = np.array([0.04, 0.05, 0.03, 0.02, 0.01, 0.005], np.float32)
_FLOOD = np.array([0.07, 0.09, 0.08, 0.05, 0.025, 0.012], np.float32)
_URBAN = np.array([0.10, 0.12, 0.14, 0.20, 0.24, 0.21], np.float32)

# Per class: base fv, amplitude, start of season (DOY), end of season (DOY), slopes (days), harvest DOY or 0.
_PHENOLOGY = {
    1: (0.55, 0.35, 120, 290, 10, 15, 0),
    2: (0.30, 0.45, 100, 230, 8, 20, 0),
    3: (0.02, 0.88, 165, 255, 7, 8, 0),
    4: (0.25, 0.65, 95, 185, 8, 6, 200),
}
_CLASS_PROBABILITIES = {1: 0.15, 2: 0.20, 3: 0.30, 4: 0.25, 5: 0.10}


@dataclass
class SampleSeriesConfig:
    """Parameters of :func:`make_sample_series` (all have defaults giving a small, quick series)."""

    size: int = 192
    factor: int = 16
    n_dates: int = 10
    pair_indices: tuple[int, ...] = (0, 4, 9)
    flood_indices: tuple[int, ...] = (6, 7)
    start: str = "2021-04-01"
    interval_days: int = 16
    pixel_size: float = 30.0
    epsg: int = 32633
    origin: tuple[float, float] = (600000.0, 5800020.0)
    coarse_noise: float = 0.003
    seed: int = 42
    width: int = 0  # 0: same as size (square scene)
    realism: str = "control"  # "control": this module's linear model; "realistic": core/simulator
    effects: dict = field(default_factory=dict)  # realistic only: overrides of simulator.RealismConfig
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`InputError` for an inconsistent configuration."""
        width = self.width or self.size
        if self.factor < 2:
            raise InputError(f"The coarse factor must be at least 2 (got {self.factor}).")
        if self.size % self.factor or width % self.factor:
            raise InputError(
                f"The scene size ({width} x {self.size}) must be a multiple of the coarse factor {self.factor}."
            )
        if self.size < 2 * self.factor or width < 2 * self.factor:
            raise InputError(f"The scene must span at least two coarse pixels ({2 * self.factor} fine pixels).")
        if self.n_dates < 2:
            raise InputError("A series needs at least two dates.")
        for name, indices in (("pair", self.pair_indices), ("flood", self.flood_indices)):
            bad = [i for i in indices if not 0 <= i < self.n_dates]
            if bad:
                raise InputError(f"{name} date indices {bad} are outside 0..{self.n_dates - 1}.")
        if not self.pair_indices:
            raise InputError("At least one date must have a fine image (a pair).")
        if self.realism not in REALISM:
            raise InputError(f"Unknown realism '{self.realism}'; use one of {', '.join(REALISM)}.")
        if self.effects and self.realism != "realistic":
            raise InputError("Effects are settings of the realistic simulator: set realism to 'realistic'.")
        try:
            dates = self.dates
        except (ValueError, OverflowError):
            raise InputError(f"The start date '{self.start}' is not a date (YYYY-MM-DD), or the series runs past the "
                             "year 9999.") from None
        if not (1950 <= dates[0].year and dates[-1].year <= 2100):
            raise InputError(f"The series would run from {dates[0].isoformat()} to {dates[-1].isoformat()}; its "
                             "dates must lie in 1950-2100, the years read from file names (names outside them would "
                             "be refused by every algorithm).")

    @property
    def dates(self) -> list[_dt.date]:
        """The acquisition dates."""
        first = _dt.date.fromisoformat(self.start)
        return [first + _dt.timedelta(days=self.interval_days * i) for i in range(self.n_dates)]


def field_layout(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Field id per pixel from recursive splitting of rectangles (fields of very different sizes)."""
    ids = np.zeros((height, width), np.int32)
    todo = [(0, 0, height, width, 0)]
    done = []
    min_side = max(4, min(height, width) // 40)
    while todo:
        y0, x0, y1, x1, depth = todo.pop()
        h, w = y1 - y0, x1 - x0
        stop = depth >= 4 and rng.random() < 0.12 * (depth - 3)
        if stop or max(h, w) < 2 * min_side + 2:
            done.append((y0, x0, y1, x1))
            continue
        if h >= w:
            cut = y0 + int(h * rng.uniform(0.3, 0.7))
            todo += [(y0, x0, cut, x1, depth + 1), (cut, x0, y1, x1, depth + 1)]
        else:
            cut = x0 + int(w * rng.uniform(0.3, 0.7))
            todo += [(y0, x0, y1, cut, depth + 1), (y0, cut, y1, x1, depth + 1)]
    for i, (y0, x0, y1, x1) in enumerate(done):
        ids[y0:y1, x0:x1] = i
    return ids


def smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-deviation Gaussian random field with correlation length ``sigma`` pixels."""
    field_ = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return (field_ - field_.mean()) / (field_.std() + 1e-12)


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def draw_layout(h: int, w: int, class_probabilities: dict[int, float], rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(field id, land cover, flood zone) [h, w]: fields of very different sizes with a class each (drawn with
    ``class_probabilities``), a meandering river (class 0, 3-6 pixels wide) and the low ground beside it that floods
    (distance to the river plus smooth terrain noise). Shared by the control generator and the realistic
    simulator (:mod:`.simulator`)."""
    field_id = field_layout(h, w, rng)
    n_fields = int(field_id.max()) + 1
    classes = np.array(list(class_probabilities))
    probabilities = np.array(list(class_probabilities.values()))
    field_class = rng.choice(classes, size=n_fields, p=probabilities / probabilities.sum())
    landcover = field_class[field_id].astype(np.uint8)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    centre = w * 0.35 + w * 0.08 * np.sin(2 * np.pi * rows / (h * 0.8)) + w * 0.03 * np.sin(
        2 * np.pi * rows / (h * 0.23) + 1.0)
    half_width = 1.5 + 1.5 * (0.5 + 0.5 * np.sin(rows / h * 5.0))
    distance = np.abs(cols - centre)
    landcover[distance <= half_width] = 0
    terrain = distance / w + 0.05 * smooth_noise((h, w), max(h, w) / 25, rng)
    return field_id, landcover, (terrain < 0.09) & (landcover != 0)


class SyntheticScene:
    """The land-cover layout and the per-field parameters; :meth:`truth` renders any date."""

    def __init__(self, config: SampleSeriesConfig) -> None:
        config.validate()
        self.config = config
        rng = np.random.default_rng(config.seed)
        h, w = config.size, config.width or config.size
        self.field_id, self.landcover, self.flood_zone = draw_layout(h, w, _CLASS_PROBABILITIES, rng)
        n_fields = int(self.field_id.max()) + 1
        # Per-field phenology jitter and brightness; per-pixel texture (soil moisture, crop density).
        self.shift = rng.normal(0.0, 6.0, n_fields).astype(np.float32)[self.field_id]
        self.brightness = rng.uniform(0.92, 1.08, n_fields).astype(np.float32)[self.field_id]
        self.texture = 1.0 + 0.04 * smooth_noise((h, w), 1.5, rng)
        self.sensor_gain = rng.uniform(0.95, 1.05, len(BANDS)).astype(np.float32)
        self.sensor_bias = rng.uniform(-0.01, 0.01, len(BANDS)).astype(np.float32)
        self.noise_rng_seed = int(rng.integers(0, 2**31 - 1))

    def vegetation_fraction(self, doy: float) -> tuple[np.ndarray, np.ndarray]:
        """``fv`` per pixel on day-of-year ``doy``, and whether the field is harvested by then."""
        fv = np.zeros(self.landcover.shape, np.float32)
        harvested = np.zeros(self.landcover.shape, bool)
        for cls, (base, amp, sos, eos, k1, k2, harvest) in _PHENOLOGY.items():
            sel = self.landcover == cls
            day = doy - self.shift[sel]
            curve = base + amp * (_logistic((day - sos) / k1) - _logistic((day - eos) / k2))
            if harvest:
                cut = day >= harvest
                curve = np.where(cut, 0.03, curve)
                harvested[sel] = cut
            fv[sel] = np.clip(curve, 0.0, 1.0)
        return fv, harvested

    def truth(self, date: _dt.date, flooded: bool = False) -> np.ndarray:
        """Fine reflectance ``[6, rows, cols]`` on ``date`` (float32, 0-1)."""
        fv, harvested = self.vegetation_fraction(date.timetuple().tm_yday)
        background = np.where(harvested[None], _STUBBLE[:, None, None], _SOIL[:, None, None])
        image = fv[None] * _VEGETATION[:, None, None] + (1.0 - fv[None]) * background
        image *= (self.brightness * self.texture)[None]
        image = np.where((self.landcover == 5)[None], _URBAN[:, None, None] * self.texture[None], image)
        image = np.where((self.landcover == 0)[None], _WATER[:, None, None], image)
        if flooded:
            image = np.where(self.flood_zone[None], 0.85 * _FLOOD[:, None, None] + 0.15 * image, image)
        return np.clip(image, 0.0, 1.0).astype(np.float32)

    def coarse(self, truth: np.ndarray, date_index: int) -> np.ndarray:
        """Coarse reflectance ``[6, rows/f, cols/f]``: PSF, block mean, gain/bias, noise."""
        f = self.config.factor
        blurred = np.stack([ndimage.gaussian_filter(b, sigma=0.5 * f, mode="reflect") for b in truth])
        bands, h, w = blurred.shape
        blocks = blurred.reshape(bands, h // f, f, w // f, f).mean(axis=(2, 4))
        rng = np.random.default_rng(self.noise_rng_seed + date_index)
        noisy = blocks * self.sensor_gain[:, None, None] + self.sensor_bias[:, None, None]
        noisy += rng.normal(0.0, self.config.coarse_noise, noisy.shape).astype(np.float32)
        return np.clip(noisy, 0.0, 1.0).astype(np.float32)


@dataclass
class SampleSeries:
    """Files written by :func:`make_sample_series`."""

    fine: list[str]
    coarse: list[str]
    truth: list[str]
    landcover: str
    manifest: str
    dates: list[str]
    pair_dates: list[str]
    flood_dates: list[str]


def _srs_wkt(epsg: int) -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def make_sample_series(
    folder: str, config: SampleSeriesConfig | None = None, feedback: Feedback | None = None,
) -> SampleSeries:
    """Write a synthetic series into ``folder``: ``fine/``, ``coarse/``, ``truth/``, ``landcover.tif``, ``series.json``.

    Rasters are int16 GeoTIFFs holding reflectance x 10000 (SCALE 0.0001), nodata -9999; coarse images are on
    their own grid (``factor`` times coarser). All files appear together or not at all.
    """
    config = config or SampleSeriesConfig()
    config.validate()
    realistic = config.realism == "realistic"
    if realistic:
        from .simulator import CLASSES as SIMULATED_CLASSES
        from .simulator import RealismConfig, RealisticScene

        scene = RealisticScene(config, RealismConfig.from_dict(config.effects))
        scene_classes = list(SIMULATED_CLASSES)
    else:
        scene = SyntheticScene(config)
        scene_classes = list(CLASSES)
    h, w = scene.landcover.shape
    x0, y0 = config.origin
    wkt = _srs_wkt(config.epsg)
    fine_gt = (x0, config.pixel_size, 0.0, y0, 0.0, -config.pixel_size)
    cp = config.pixel_size * config.factor
    coarse_gt = (x0, cp, 0.0, y0, 0.0, -cp)
    fine_grid = grid_info("", w, h, len(BANDS), fine_gt, wkt, "int16")
    coarse_grid = grid_info("", w // config.factor, h // config.factor, len(BANDS), coarse_gt, wkt, "int16")
    dates = config.dates
    result = SampleSeries([], [], [], "", "", [d.isoformat() for d in dates],
                          [dates[i].isoformat() for i in sorted(set(config.pair_indices))],
                          [dates[i].isoformat() for i in sorted(set(config.flood_indices))])
    write = dict(scale=1e-4, dtype="int16", nodata=-9999, descriptions=BANDS)
    with OutputTransaction() as tx:
        for i, date in enumerate(dates):
            check_cancel(feedback)
            iso = date.isoformat()
            flooded = i in config.flood_indices
            if realistic:
                truth = scene.truth(i, flooded)
                coarse, coarse_ok = scene.coarse_observation(i, flooded)
                outputs = [("truth", truth, None, fine_grid, result.truth),
                           ("coarse", coarse, coarse_ok, coarse_grid, result.coarse)]
                if i in config.pair_indices:
                    fine, fine_ok = scene.fine_observation(truth, i)
                    outputs.append(("fine", fine, fine_ok, fine_grid, result.fine))
            else:
                truth = scene.truth(date, flooded=flooded)
                outputs = [("truth", truth, None, fine_grid, result.truth),
                           ("coarse", scene.coarse(truth, i), None, coarse_grid, result.coarse)]
                if i in config.pair_indices:
                    outputs.append(("fine", truth, None, fine_grid, result.fine))
            for kind, image, valid, grid, listing in outputs:
                final = os.path.join(folder, kind, f"{kind}_{iso}.tif")
                write_raster(tx.add(final), image, grid, valid=valid, **write)
                listing.append(os.path.abspath(final))
            if feedback is not None:
                feedback.set_progress(100.0 * (i + 1) / len(dates))
        result.landcover = os.path.abspath(os.path.join(folder, "landcover.tif"))
        write_raster(tx.add(result.landcover), scene.landcover[None].astype(np.float32), fine_grid,
                     dtype="uint8", nodata=255, descriptions=["land cover class"])
        result.manifest = os.path.abspath(os.path.join(folder, "series.json"))
        manifest = {
            "description": ("Synthetic spatiotemporal fusion series (stf plugin, "
                            + ("core/simulator: realistic sensors)" if realistic else "core/synthetic.py)")),
            "scale": 1e-4, "nodata": -9999, "bands": list(BANDS), "classes": scene_classes,
            "dates": result.dates, "pair_dates": result.pair_dates, "flood_dates": result.flood_dates,
            "fine": [os.path.relpath(p, folder) for p in result.fine],
            "coarse": [os.path.relpath(p, folder) for p in result.coarse],
            "truth": [os.path.relpath(p, folder) for p in result.truth],
            "config": {k: v for k, v in asdict(config).items() if k not in ("extra", "effects", "realism")},
        }
        if realistic:
            manifest["simulator"] = scene.describe()
        temp = tx.add(result.manifest)
        with open(temp, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2)
    if feedback is not None:
        feedback.info(f"Wrote {len(dates)} dates ({len(result.fine)} pairs) to {folder}.")
    return result
