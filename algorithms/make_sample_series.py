"""stf:make_sample_series - write a synthetic series with known truth."""
from __future__ import annotations

from ..core.synthetic import SampleSeriesConfig, make_sample_series
from .base import StfAlgorithm

_DEFAULT = SampleSeriesConfig()


class MakeSampleSeries(StfAlgorithm):
    ALG_ID = "make_sample_series"
    DISPLAY_NAME = "Make a synthetic sample series"
    GROUP = "data"
    SHORT_HELP = (
        "Writes a realistic synthetic scene series with known truth, to try the fusion methods and to check them: "
        "fields of several land-cover classes and sizes with per-class seasonal reflectance over 6 bands (blue, "
        "green, red, NIR, SWIR1, SWIR2), a river, and a flood on some dates between two pairs (abrupt change). "
        "Fine (Landsat-like, 30 m) images are written on the pair dates only, coarse (MODIS-like) images on every "
        "date on their own coarser grid, made from the truth by a Gaussian point spread function, aggregation, "
        "a per-band gain and bias and noise; the fine truth of every date is kept for evaluation. Files: "
        "fine/fine_<date>.tif, coarse/coarse_<date>.tif, truth/truth_<date>.tif (int16, reflectance x 10000, "
        "SCALE 0.0001, nodata -9999), landcover.tif and series.json. Deterministic given the seed."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_int("SIZE", "Scene size (fine pixels a side)",
                     "Rows and columns of the fine grid; a multiple of the coarse factor.", _DEFAULT.size, 32, 20000)
        self.add_int("FACTOR", "Coarse factor",
                     "Fine pixels per coarse pixel along each axis (16 turns 30 m into 480 m, MODIS-like).",
                     _DEFAULT.factor, 2, 64)
        self.add_int("N_DATES", "Number of dates", "Acquisition dates in the series.", _DEFAULT.n_dates, 2, 400)
        self.add_string("PAIRS", "Pair dates (indices)",
                        "0-based indices of the dates that get a fine image, separated by commas.",
                        ",".join(map(str, _DEFAULT.pair_indices)), optional=False)
        self.add_string("FLOOD", "Flood dates (indices)",
                        "0-based indices of the dates with the flood (abrupt change); empty for none.",
                        ",".join(map(str, _DEFAULT.flood_indices)), advanced=True)
        self.add_string("START_DATE", "First date", "Date of the first image (YYYY-MM-DD).", _DEFAULT.start,
                        optional=False, advanced=True)
        self.add_int("INTERVAL_DAYS", "Days between dates", "Days between consecutive images.",
                     _DEFAULT.interval_days, 1, 366, advanced=True)
        self.add_float("NOISE", "Coarse noise (reflectance)", "Standard deviation of the coarse sensor noise.",
                       _DEFAULT.coarse_noise, 0.0, 0.2, advanced=True)
        self.add_int("SEED", "Random seed", "Same seed, same series.", _DEFAULT.seed, 0, 2**31 - 1)
        self.add_output_folder("Folder the series is written to (created if needed).")
        self.add_output_layers("FINE", "Fine images", "The fine images of the pair dates.")
        self.add_output_layers("COARSE", "Coarse images", "The coarse images of every date, on the coarse grid.")
        self.add_output_layers("TRUTH", "Fine truth", "The fine truth of every date, for evaluation.")

    def execute(self, parameters, context, feedback):
        start = self.dates(parameters, "START_DATE", context)
        config = SampleSeriesConfig(
            size=self.parameterAsInt(parameters, "SIZE", context),
            factor=self.parameterAsInt(parameters, "FACTOR", context),
            n_dates=self.parameterAsInt(parameters, "N_DATES", context),
            pair_indices=tuple(self.int_list(parameters, "PAIRS", context)),
            flood_indices=tuple(self.int_list(parameters, "FLOOD", context)),
            start=start[0].isoformat() if start else _DEFAULT.start,
            interval_days=self.parameterAsInt(parameters, "INTERVAL_DAYS", context),
            coarse_noise=self.parameterAsDouble(parameters, "NOISE", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
        )
        folder = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
        series = make_sample_series(folder, config, feedback)
        return {"OUTPUT_FOLDER": folder, "FINE": series.fine, "COARSE": series.coarse, "TRUTH": series.truth}
