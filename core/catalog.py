"""Every ``stf`` algorithm as data: its id, name, help, parameters, outputs and the function that runs it.

This is the one source of truth for parameter names, kinds, defaults, ranges and help. The QGIS Processing
algorithms (``algorithms/``) build their ``QgsProcessingParameter*`` definitions from it and the command line
(``core/cli.py``, no QGIS) builds its options from it; both turn what the user gave into the same plain values
(:data:`Values`) and call the same :func:`execute`. Nothing here imports QGIS.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import InputError
from .executor import SCHEDULER_HELP
from .feedback import Feedback

Values = dict  # parameter name -> plain Python value (see Param.kind)

# kinds: rasters (list of paths), raster (path or None), file (path or None), files (list of paths of any files),
# folder (an input folder or None), extent ("xmin,xmax,ymin,ymax [CRS]" or ""), int, float (None when optional and
# empty), bool, enum (the option's text), string, folder_out / file_out / raster_out (destination path)
INPUT_KINDS = ("rasters", "raster", "file", "files", "folder")
DESTINATION_KINDS = ("folder_out", "file_out", "raster_out")


@dataclass(frozen=True)
class Param:
    """One parameter of an algorithm."""

    name: str
    kind: str
    label: str
    help: str = ""
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[str, ...] = ()
    advanced: bool = False
    optional: bool = False
    extension: str = ""  # file: the expected extension; file_out: the file filter ("CSV files (*.csv)")

    @property
    def full_help(self) -> str:
        """The help with the options of an enum."""
        return self.help + (" Options: " + ", ".join(self.options) + "." if self.kind == "enum" else "")


@dataclass(frozen=True)
class Output:
    """An output that is not a destination parameter: ``layers`` (a list of files), ``file`` or ``string``."""

    name: str
    kind: str
    label: str
    help: str


@dataclass(frozen=True)
class Spec:
    """An algorithm: what the toolbox, the modeler, qgis_process and the command line show and run."""

    id: str
    name: str
    group: str  # data, classic, deep, evaluation
    help: str
    params: tuple[Param, ...]
    run: Callable[[Values, Feedback], dict]
    outputs: tuple[Output, ...] = ()
    needs_torch: bool | Callable[[Values], bool] = False  # a function: decided from the values (METHODS)
    settings: type | None = None  # the method's settings dataclass (fields named after parameters)
    layers: str = ""  # the output whose files a desktop run adds to the map

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


# --- reading plain values -----------------------------------------------------------------------------------------
def dates_of(values: Values, name: str) -> list[_dt.date]:
    """A list of dates (YYYY-MM-DD, YYYYMMDD or YYYYDDD, separated by commas or spaces); empty -> []."""
    from .dates import parse_date_list

    return parse_date_list(values.get(name) or "")


def int_list(values: Values, name: str) -> list[int]:
    """A list of integers separated by commas or spaces; empty -> []."""
    text = str(values.get(name) or "")
    tokens = [t for t in re.split(r"[,;\s]+", text.strip()) if t]
    try:
        return [int(t) for t in tokens]
    except ValueError:
        raise InputError(f"{name} must be a list of whole numbers, got '{text}'.") from None


def scales_of(values: Values):
    """The encodings of the inputs (:class:`~.series.Scales`): SCALE and, where given, FINE_SCALE/FINE_OFFSET and
    COARSE_SCALE/COARSE_OFFSET (an empty FINE_SCALE or COARSE_SCALE means SCALE)."""
    from .raster import Encoding
    from .series import Scales

    common = Encoding(float(values["SCALE"]), name="SCALE")
    if "FINE_SCALE" not in values:
        return Scales(common, common)
    kinds = []
    for kind in ("FINE", "COARSE"):
        given = values.get(f"{kind}_SCALE") not in (None, "")
        kinds.append(Encoding(float(values[f"{kind}_SCALE"]) if given else common.scale,
                              float(values.get(f"{kind}_OFFSET") or 0.0),
                              name=f"{kind}_SCALE" if given else "SCALE"))
    return Scales(*kinds)


def settings_of(values: Values, cls: type) -> Any:
    """An instance of the dataclass ``cls`` whose fields are read from the values named after them (field
    ``max_patches`` <- ``MAX_PATCHES``); fields without a value keep their default."""
    given = {f.name: values[f.name.upper()] for f in dataclasses.fields(cls) if f.name.upper() in values}
    return cls(**given)


def read_series(values: Values):
    """The validated scene series of FINE, COARSE and DATES."""
    from .series import build_series

    return build_series(values["FINE"], values["COARSE"], dates_of(values, "DATES"))


def prediction_inputs(values: Values):
    """(series with the coarse images on the fine grid, dates to predict, OUTPUT_FOLDER, scales)."""
    from .series import require_fine_grid

    series = read_series(values)
    require_fine_grid(series)
    dates = series.check_predict_dates(dates_of(values, "PREDICT_DATES"))
    return series, dates, values["OUTPUT_FOLDER"], scales_of(values)


def input_paths(spec: Spec, values: Values) -> list[str]:
    """Every input file of the run: no output may replace one."""
    paths: list[str] = []
    for p in spec.params:
        value = values.get(p.name)
        if p.kind in ("rasters", "files"):
            paths += [v for v in (value or []) if not os.path.isdir(v)]
        elif p.kind in ("raster", "file") and value:
            paths.append(value)
    return [p for p in paths if p]


def execute(spec: Spec, values: Values, feedback: Feedback) -> dict:
    """Run an algorithm on plain values: the torch check first, inputs protected from being replaced, MAX_NODATA
    and SCHEDULER in force. Raises :class:`~.errors.StfError` for anything the user must fix."""
    from .executor import scheduler_scope
    from .fusion import nodata_limit
    from .raster import protect_inputs

    needs_torch = spec.needs_torch(values) if callable(spec.needs_torch) else spec.needs_torch
    if needs_torch:  # before any input is read or resampled: the install instructions, not a late failure
        from .device import install_hint, torch_available

        if not torch_available():
            raise InputError(install_hint())
    for p in spec.params:  # values no algorithm can use, refused before any work (exit 1, not a traceback)
        value = values.get(p.name)
        if p.kind == "float" and value is not None and not math.isfinite(float(value)):
            positive = p.minimum is not None and p.minimum > 0
            raise InputError(f"{p.name} must be a finite {'positive ' if positive else ''}number (got {value}).")
        if p.kind in DESTINATION_KINDS and not p.optional and isinstance(value, str) and not value.strip():
            raise InputError(f"{p.name} is empty: give the {'folder' if p.kind == 'folder_out' else 'file'} to "
                             "write to (an empty destination would write into the current folder).")
    limit = float(values.get("MAX_NODATA", 0.5))
    _warn_date_conflicts(values, feedback)
    with protect_inputs(input_paths(spec, values)), nodata_limit(limit), \
            scheduler_scope(values.get("SCHEDULER") or ""):
        return spec.run(values, feedback)


def _warn_date_conflicts(values: Values, feedback: Feedback | None) -> None:
    """DATES comes first, but a date that contradicts the one in the file's name is said (a list given in another
    order than the files would otherwise be used silently)."""
    from .dates import date_from_name

    if not values.get("DATES") or feedback is None:
        return
    paths = list(values.get("FINE") or []) + list(values.get("COARSE") or [])
    dates = dates_of(values, "DATES")
    if len(dates) != len(paths):
        return  # build_series says what is wrong
    for path, date in zip(paths, dates):
        named = date_from_name(os.path.basename(str(path)))
        if named is not None and named != date:
            feedback.info(f"Warning: DATES gives {date.isoformat()} for '{path}', whose name says "
                          f"{named.isoformat()}; DATES is used (check its order: the fine files' dates first, then "
                          "the coarse files', in the order of the files).")


# --- shared parameter groups --------------------------------------------------------------------------------------
def _scale_params(per_kind: bool = True) -> tuple[Param, ...]:
    """SCALE and, with ``per_kind``, the advanced FINE_SCALE, FINE_OFFSET, COARSE_SCALE, COARSE_OFFSET."""
    params = [Param("SCALE", "float", "Reflectance scale factor",
                    "Reflectance = stored value x SCALE: 0.0001 for surface reflectance stored as 0-10000 integers "
                    "(Landsat, MODIS), 1 for rasters already in 0-1.", 0.0001, minimum=1e-12)]
    if per_kind:
        for kind, example in (("FINE", "2.75e-5 with offset -0.2 for Landsat Collection 2 Level-2"),
                              ("COARSE", "0.0001 for MODIS MOD09")):
            params.append(Param(f"{kind}_SCALE", "float", f"{kind.title()} images' scale factor",
                                f"Reflectance = stored value x {kind}_SCALE + {kind}_OFFSET for the {kind.lower()} "
                                f"images, when they are encoded differently from the other kind (e.g. {example}). "
                                "Empty: SCALE.", None, minimum=1e-12, advanced=True, optional=True))
            params.append(Param(f"{kind}_OFFSET", "float", f"{kind.title()} images' offset",
                                f"Added after {kind}_SCALE (reflectance units).", 0.0, advanced=True))
    return tuple(params)


def _series_params(predict_dates: bool = True) -> tuple[Param, ...]:
    """FINE, COARSE, DATES (and PREDICT_DATES), the scales: the scene series every fusion algorithm takes."""
    params = [
        Param("FINE", "rasters", "Fine images (pairs)", "The fine (Landsat-like) images of the pair dates."),
        Param("COARSE", "rasters", "Coarse images",
              "The coarse (MODIS-like) images: one on every pair date and on every date to predict, on the fine grid "
              "(see stf:resample_coarse)."),
        Param("DATES", "string", "Dates",
              "One date per file, the FINE files' first, then the COARSE files' (YYYY-MM-DD, YYYYMMDD or YYYYDDD, "
              "separated by commas). Empty: dates are read from the file names.", "", optional=True),
    ]
    if predict_dates:
        params.append(Param("PREDICT_DATES", "string", "Dates to predict",
                            "The dates to predict, separated by commas. Empty: every coarse date without a fine "
                            "image.", "", optional=True))
    return tuple(params) + _scale_params()


def _device() -> Param:
    from .device import DEVICES

    return Param("DEVICE", "enum", "Device", "Where the method computes: auto picks a CUDA GPU when one is usable, "
                 "else the CPU (FSDAF and Fit-FC stay on their compiled CPU kernels, measured faster; without "
                 "PyTorch the classic methods run on NumPy, CPU only); mps = an Apple GPU, for the deep-learning "
                 "methods (not measured here).", "auto", options=tuple(DEVICES), advanced=True)


FACTOR_HELP = ("Coarse pixel size / fine pixel size (16 for MODIS 480 m over Landsat 30 m, 10 for 500 m over 50 m). "
               "0: from the coarse images: the native pixel size stf:resample_coarse records, else estimated from "
               "the resampling period of a coarse image on the fine grid, else the run stops and asks for it.")
_MEMBER_FACTOR = Param("FACTOR", "int", "Coarse factor",
                       FACTOR_HELP.replace("else the run stops and asks for it", "else the methods that need it are "
                                           "left out with a warning") + " Used by FSDAF, Fit-FC and DCSTFN.", 0, 0, 200)
_MAX_NODATA = Param("MAX_NODATA", "float", "Largest nodata share",
                    "A prediction with more nodata than this share of the values (where its nearest fine image is "
                    "valid) fails the run with the reason (an empty input, rejected pixels) instead of writing a "
                    "silent hole; 1 accepts anything.", 0.5, 0.0, 1.0, advanced=True)
_SCHEDULER = Param("SCHEDULER", "string", "Scheduler (distributed tiles)", SCHEDULER_HELP, "", optional=True,
                   advanced=True)
_OUTPUT_FILES = Output("OUTPUT_FILES", "layers", "Predictions", "One prediction per date, in date order.")
_OUTPUT_QUALITY = Output("OUTPUT_QUALITY", "layers", "Quality",
                         "Per date (REFERENCE_RULES=fill): quality/<method>_<date>_quality.tif, 0 where the method "
                         "predicted, 1 where a fallback filled (the method from one pair, then the additive "
                         "prediction), 2 where no input exists.")
_RULES = Param("REFERENCE_RULES", "enum", "Gaps (clouds, fill)",
               "fill: where the method leaves a pixel empty although a valid pair and a valid coarse value exist "
               "(a cloud in one of its pairs, STARFM's fill rule, a window without similar pixels), the same method "
               "from one pair fills it, else the additive prediction; a quality raster per date says where. strict: "
               "the reference program's own holes, no quality raster (side-by-side checks).", "fill",
               options=("fill", "strict"), advanced=True)


def quality_outputs(values: Values, method: str, dates: list) -> list[str]:
    """The quality rasters a fill run wrote (none with REFERENCE_RULES=strict)."""
    from .gaps import quality_path

    paths = [quality_path(values["OUTPUT_FOLDER"], method, d) for d in dates]
    return [p for p in paths if os.path.exists(p)] if values.get("REFERENCE_RULES", "fill") == "fill" else []


def _output_folder(help_text: str) -> Param:
    return Param("OUTPUT_FOLDER", "folder_out", "Output folder", help_text)


# --- data preparation ---------------------------------------------------------------------------------------------
def _run_make_sample(values: Values, feedback: Feedback) -> dict:
    from .synthetic import SampleSeriesConfig, make_sample_series

    default = SampleSeriesConfig()
    start = dates_of(values, "START_DATE")
    config = SampleSeriesConfig(
        size=int(values["SIZE"]), factor=int(values["FACTOR"]), n_dates=int(values["N_DATES"]),
        pair_indices=tuple(int_list(values, "PAIRS")), flood_indices=tuple(int_list(values, "FLOOD")),
        start=start[0].isoformat() if start else default.start, interval_days=int(values["INTERVAL_DAYS"]),
        coarse_noise=float(values["NOISE"]), seed=int(values["SEED"]),
        realism=str(values.get("REALISM") or "control"))
    if config.realism == "realistic":
        from .simulator import RealismConfig

        config.effects = RealismConfig.parse(values.get("EFFECTS") or "")
    elif values.get("EFFECTS"):
        raise InputError("EFFECTS are settings of the realistic simulator: choose REALISM=realistic.")
    folder = values["OUTPUT_FOLDER"]
    series = make_sample_series(folder, config, feedback)
    return {"OUTPUT_FOLDER": folder, "FINE": series.fine, "COARSE": series.coarse, "TRUTH": series.truth}


def _make_sample_spec() -> Spec:
    from .synthetic import REALISM as REALISM_OPTIONS
    from .synthetic import SampleSeriesConfig

    d = SampleSeriesConfig()
    return Spec(
        "make_sample_series", "Make a synthetic sample series", "data",
        "Writes a synthetic scene series with known truth, to try the fusion methods and to check them: "
        "fields of several land-cover classes and sizes with per-class seasonal reflectance over 6 bands (blue, "
        "green, red, NIR, SWIR1, SWIR2), a river, and a flood on some dates between two pairs (abrupt change). "
        "Fine (Landsat-like, 30 m) images are written on the pair dates only, coarse (MODIS-like) images on every "
        "date on their own coarser grid, made from the truth by a Gaussian point spread function, aggregation, "
        "a per-band gain and bias and noise; the fine truth of every date is kept for evaluation. Files: "
        "fine/fine_<date>.tif, coarse/coarse_<date>.tif, truth/truth_<date>.tif (int16, reflectance x 10000, "
        "SCALE 0.0001, nodata -9999), landcover.tif and series.json. Deterministic given the seed. REALISM "
        "realistic replaces the linear sensor model with the sensors' physics (see its help).",
        (
            Param("SIZE", "int", "Scene size (fine pixels a side)",
                  "Rows and columns of the fine grid; a multiple of the coarse factor.", d.size, 32, 20000),
            Param("FACTOR", "int", "Coarse factor",
                  "Fine pixels per coarse pixel along each axis (16 turns 30 m into 480 m, MODIS-like).", d.factor, 2,
                  64),
            Param("N_DATES", "int", "Number of dates", "Acquisition dates in the series.", d.n_dates, 2, 400),
            Param("PAIRS", "string", "Pair dates (indices)",
                  "0-based indices of the dates that get a fine image, separated by commas.",
                  ",".join(map(str, d.pair_indices))),
            Param("FLOOD", "string", "Flood dates (indices)",
                  "0-based indices of the dates with the flood (abrupt change); empty for none.",
                  ",".join(map(str, d.flood_indices)), advanced=True, optional=True),
            Param("START_DATE", "string", "First date", "Date of the first image (YYYY-MM-DD).", d.start,
                  advanced=True),
            Param("INTERVAL_DAYS", "int", "Days between dates", "Days between consecutive images.", d.interval_days,
                  1, 366, advanced=True),
            Param("NOISE", "float", "Coarse noise (reflectance)", "Standard deviation of the coarse sensor noise.",
                  d.coarse_noise, 0.0, 0.2, advanced=True),
            Param("SEED", "int", "Random seed", "Same seed, same series.", d.seed, 0, 2**31 - 1),
            Param("REALISM", "enum", "Realism",
                  "control: the linear model above (coarse = blurred block mean x gain + bias + noise), exactly what "
                  "the classic methods assume. realistic: the two sensors' physics (core/simulator): reflectance "
                  "from a canopy model and a spectral library convolved with the Landsat 8/9 OLI and the MODIS band "
                  "responses, MODIS's triangular along-scan PSF growing with the view angle, gridding and per-date "
                  "geolocation error, per-date view angle BRDF by land cover and atmospheric residuals, noise and "
                  "column striping on the fine images, sub-coarse-pixel harvests, burns and new buildings between "
                  "pairs, double-cropped fields, and optional clouds and shadows (nodata). NOISE is ignored there "
                  "(see EFFECTS).", d.realism, options=REALISM_OPTIONS),
            Param("EFFECTS", "string", "Realistic effects",
                  "Settings of the realistic simulator as name=value separated by commas (0 switches an effect "
                  "off): max_view_zenith (degrees, 45), brdf (scale of the anisotropy, 1), atmosphere (AOT error "
                  "std of the coarse images, 0.05), fine_atmosphere (0.015), misregistration (std, coarse pixels, "
                  "0.15), gridding (half-range, coarse pixels, 0.25), psf (true/false), spectral (true/false), "
                  "coarse_noise (0.004), fine_noise (0.003), striping (0.004), events (land-cover changes per "
                  "coarse pixel, 0.05), cloud_cover (largest cloud share of a cloudy date, 0), cloud_probability "
                  "(0.5).", "", optional=True, advanced=True),
            _output_folder("Folder the series is written to (created if needed)."),
        ),
        _run_make_sample,
        outputs=(Output("FINE", "layers", "Fine images", "The fine images of the pair dates."),
                 Output("COARSE", "layers", "Coarse images", "The coarse images of every date, on the coarse grid."),
                 Output("TRUTH", "layers", "Fine truth", "The fine truth of every date, for evaluation.")),
    )


def _run_resample(values: Values, feedback: Feedback) -> dict:
    from .dates import date_from_name
    from .raster import OutputTransaction, raster_info
    from .resample import resample_many

    reference = raster_info(values["REFERENCE"], "fine grid reference")
    method, folder = values["METHOD"], values["OUTPUT_FOLDER"]
    jobs = []
    for src in values["COARSE"]:
        date = date_from_name(src)
        stem = os.path.splitext(os.path.basename(src))[0]
        name = f"coarse_{date.isoformat()}.tif" if date else f"{stem}_resampled.tif"
        jobs.append((src, os.path.join(folder, name)))
    feedback.info(f"Resampling {len(jobs)} coarse images onto the grid of {reference.name} "
                  f"({reference.width} x {reference.height}, {reference.pixel_size[0]:g} m) with {method}.")
    with OutputTransaction() as tx:
        resample_many(jobs, reference, method, tx, feedback)
    return {"OUTPUT_FOLDER": folder, "OUTPUT_FILES": tx.committed}


def _run_prepare(values: Values, feedback: Feedback) -> dict:
    from .products.prepare import PrepareConfig, prepare_series

    inputs = list(values.get("INPUTS") or []) + ([values["INPUT_FOLDER"]] if values.get("INPUT_FOLDER") else [])
    bands = tuple(b.strip() for b in (values.get("BANDS") or "").split(",") if b.strip())
    config = PrepareConfig(bands=bands, extent=values.get("EXTENT") or "", mask_snow=bool(values["MASK_SNOW"]),
                           resampling=values["RESAMPLING"], min_valid=float(values["MIN_VALID"]),
                           scale=float(values["SCALE"]))
    result = prepare_series(inputs, list(values.get("FINE_GEOTIFFS") or []),
                            list(values.get("COARSE_GEOTIFFS") or []), values["OUTPUT_FOLDER"], config, feedback)
    feedback.info(f"{len(result.fine)} fine and {len(result.coarse)} coarse images; manifest {result.manifest}. "
                  "Fuse them with SCALE 0.0001.")
    return {"OUTPUT_FOLDER": values["OUTPUT_FOLDER"], "OUTPUT_FINE": result.fine, "OUTPUT_COARSE": result.coarse,
            "OUTPUT_MANIFEST": result.manifest}


def _prepare_spec() -> Spec:
    from .products.base import COMMON_BANDS
    from .resample import RESAMPLING_METHODS

    return Spec(
        "prepare_series", "Prepare a series from downloaded products", "data",
        "Turns downloaded products into the series every fusion algorithm takes: one multi-band GeoTIFF per date, "
        "fine/fine_<date>.tif and coarse/coarse_<date>.tif, with matched bands, reflectance from each product's own "
        "scale and offset, clouds, shadows, cirrus, fill and saturation (and snow if asked) from the quality layers "
        "as nodata, dates from the metadata, clipped to the extent, the coarse images resampled onto the fine grid "
        "with their native pixel size recorded (so FACTOR is known), and manifest.json saying what was read and "
        "each date's valid share. Fine: Landsat Collection 2 Level-2 (SR_B*, QA_PIXEL, QA_RADSAT, MTL; the files "
        "or the .tar / .tar.gz USGS delivers), Sentinel-2 L2A (a SAFE folder or the .SAFE.zip of a download, 20 m "
        "bands and SCL), HLS v2.0 L30/S30 (with Fmask). Coarse: MOD09GA / MYD09GA (state_1km), MCD43A4 (.hdf or "
        "per-layer GeoTIFFs), VNP09GA / VJ109GA (QF1, QF2), VNP43MA4 / VNP43IA4. STAC Items or ItemCollections "
        "(a catalogue search's JSON) with local or URL assets are read too; archives are read in place. Band table (blue, green, red, nir, "
        "swir1, swir2): Landsat 8/9 B2-B7, Landsat 4-7 B1-B5, B7; Sentinel-2 B02, B03, B04, B8A, B11, B12; MODIS "
        "3, 4, 1, 2, 6, 7; VIIRS M3, M4, M5, M7, M10, M11. Already prepared GeoTIFFs (a date in the name, bands in "
        "the order of BANDS) can be given as fine or coarse images.",
        (
            Param("INPUTS", "files", "Product files",
                  "Downloaded product files: Landsat band, QA and MTL files or the scene's .tar / .tar.gz; HLS band and "
                  "Fmask files; MODIS .hdf and VIIRS .h5 files or per-layer GeoTIFFs; a Sentinel-2 .SAFE.zip or a "
                  "SAFE's MTD_MSIL2A.xml (or the .SAFE folder on the command line); STAC Item / ItemCollection "
                  ".json files.",
                  optional=True),
            Param("INPUT_FOLDER", "folder", "Product folder", "A folder searched (with its sub-folders) for "
                  "products; other files in it are passed over.", optional=True),
            Param("FINE_GEOTIFFS", "rasters", "Prepared fine GeoTIFFs",
                  "Fine images already prepared (a date in the file name, the bands in the order of BANDS).",
                  optional=True),
            Param("COARSE_GEOTIFFS", "rasters", "Prepared coarse GeoTIFFs",
                  "Coarse images already prepared (a date in the file name, the bands in the order of BANDS), on "
                  "their own grid.", optional=True),
            Param("BANDS", "string", "Bands", "The common band names to write, in order, separated by commas; "
                  "from " + ", ".join(COMMON_BANDS) + ".", ",".join(COMMON_BANDS)),
            Param("EXTENT", "extent", "Extent", "The area to keep (a layer's extent or drawn on the map). Empty: the "
                  "first fine product's whole scene.", optional=True),
            Param("MASK_SNOW", "bool", "Mask snow and ice", "Snow and ice from the quality layers as nodata too.",
                  False),
            Param("RESAMPLING", "enum", "Coarse resampling", "Interpolation of the coarse images onto the fine grid.",
                  "bicubic", options=tuple(RESAMPLING_METHODS)),
            Param("MIN_VALID", "float", "Least valid share of a fine date",
                  "A fine date with fewer valid pixels (clouds) is left out (its coarse image stays).", 0.05, 0.0,
                  1.0, advanced=True),
            Param("SCALE", "float", "Prepared GeoTIFFs' scale",
                  "Reflectance = stored value x SCALE for the prepared GeoTIFFs given.", 0.0001, 1e-12,
                  advanced=True),
            _output_folder("Folder for the series (fine/, coarse/, manifest.json; created if needed)."),
        ),
        _run_prepare,
        outputs=(Output("OUTPUT_FINE", "layers", "Fine images", "The fine images of the pair dates."),
                 Output("OUTPUT_COARSE", "layers", "Coarse images", "The coarse images on the fine grid."),
                 Output("OUTPUT_MANIFEST", "file", "Manifest", "manifest.json: what was read, valid shares.")),
        layers="OUTPUT_FINE",
    )


def _resample_spec() -> Spec:
    from .resample import RESAMPLING_METHODS

    return Spec(
        "resample_coarse", "Resample coarse images to the fine grid", "data",
        "Warps coarse (MODIS-like) images onto the grid of a fine (Landsat-like) image: same CRS, extent and "
        "pixel size, with GDAL warp. Every fusion method needs its coarse images on the fine grid. Data type, "
        "nodata and band order are kept; fine pixels outside a coarse image become nodata. Outputs are named "
        "coarse_<YYYY-MM-DD>.tif when the input name holds a date, else <name>_resampled.tif; they are written "
        "all together or not at all.",
        (
            Param("COARSE", "rasters", "Coarse images", "The coarse images to resample (one per date)."),
            Param("REFERENCE", "raster", "Fine grid reference",
                  "A fine image whose grid (CRS, extent, pixel size) the outputs take."),
            Param("METHOD", "enum", "Resampling method",
                  "Interpolation: bicubic is what the deep-learning papers use to upsample MODIS.", "bicubic",
                  options=tuple(RESAMPLING_METHODS)),
            _output_folder("Folder for the resampled images (created if needed). It must not be the folder of the "
                           "inputs when that would overwrite them."),
        ),
        _run_resample,
        outputs=(Output("OUTPUT_FILES", "layers", "Resampled images", "The resampled images, in the input order."),),
    )


# --- benchmarks and classic methods ------------------------------------------------------------------------------
def _benchmark_run(name: str) -> Callable[[Values, Feedback], dict]:
    def run(values: Values, feedback: Feedback) -> dict:
        from .fusion import fuse_method

        series, dates, folder, scale = prediction_inputs(values)
        files = fuse_method(name, series, dates, folder, scale, feedback=feedback, rules=values["REFERENCE_RULES"])
        return {"OUTPUT_FOLDER": folder, "OUTPUT_FILES": files,
                "OUTPUT_QUALITY": quality_outputs(values, name, dates)}

    return run


def _benchmark_spec(name: str, display: str, help_text: str) -> Spec:
    return Spec(f"fuse_{name}", display, "classic", help_text,
                _series_params() + (_MAX_NODATA, _RULES, _SCHEDULER,
                                    _output_folder("Folder for the predictions (created if needed).")),
                _benchmark_run(name), outputs=(_OUTPUT_FILES, _OUTPUT_QUALITY), layers="OUTPUT_FILES")


def _classic_run(method: str, settings: type) -> Callable[[Values, Feedback], dict]:
    def run(values: Values, feedback: Feedback) -> dict:
        from .fusion import fuse_method

        series, dates, folder, scale = prediction_inputs(values)
        start = time.perf_counter()
        files = fuse_method(method, series, dates, folder, scale, settings_of(values, settings), values["DEVICE"],
                            feedback, rules=values["REFERENCE_RULES"])
        feedback.info(f"{len(files)} prediction(s) in {time.perf_counter() - start:.1f} s.")
        return {"OUTPUT_FOLDER": folder, "OUTPUT_FILES": files,
                "OUTPUT_QUALITY": quality_outputs(values, method, dates)}

    return run


def _classic_spec(alg_id: str, display: str, help_text: str, method_params: tuple[Param, ...],
                  settings: type) -> Spec:
    method = alg_id.replace("fuse_", "")
    return Spec(alg_id, display, "classic", help_text,
                _series_params() + method_params + (_device(), _MAX_NODATA, _RULES, _SCHEDULER, _output_folder(
                    "Folder for the predictions (created if needed), one GeoTIFF per date named "
                    f"{method}_<YYYY-MM-DD>.tif.")),
                _classic_run(method, settings), outputs=(_OUTPUT_FILES, _OUTPUT_QUALITY),
                settings=settings, layers="OUTPUT_FILES")


def _starfm_spec() -> Spec:
    from .classic.starfm import StarfmParams

    d = StarfmParams()
    return _classic_spec(
        "fuse_starfm", "STARFM",
        "Spatial and Temporal Adaptive Reflectance Fusion Model (Gao et al. 2006, IEEE TGRS 44(8)), reproducing by "
        "default the program the literature used, USDA STARFM v1.2.1 (VARIANT = usda; paper = our reading of the "
        "paper). Each fine pixel is predicted from the spectrally similar pixels of a moving window: the coarse "
        "change since a pair date is added to their fine reflectance, weighted by the inverse of (temporal "
        "difference + 1) x (spectral difference + 1) x relative distance in 1e-4 reflectance units; a candidate is "
        "rejected only when both differences exceed the centre's plus the uncertainties. One pair (the nearest) or "
        "two (before and after the date). Defaults as the program's example: window 31 pixels (max search distance "
        "465 m at 30 m), 4 slices for the similarity threshold (2 sd / slices), uncertainties 0.002 (fine) and "
        "0.005 (coarse). Predictions outside 0-1 reflectance (the program's 0-10000) are written as nodata. Coarse "
        "images must be on the fine grid (stf:resample_coarse).",
        (
            Param("WINDOW", "int", "Window size (pixels)", "Side of the moving window in fine pixels (odd).",
                  d.window, 3, 501),
            Param("PAIRS", "int", "Pairs used per date",
                  "1: the nearest pair; 2: the pairs before and after the date.", d.pairs, 1, 2),
            Param("VARIANT", "enum", "Rules", "usda: USDA STARFM v1.2.1 (the program the literature used); paper: "
                  "our reading of the paper's equations (reflectance, AND of the candidate tests).", d.variant,
                  options=("usda", "paper"), advanced=True),
            Param("CLASSES", "int", "Number of classes (slices)", "m of the similarity threshold 2 sd / m (the "
                  "program's NUM_SLICE_PURE_TEST; some wrappers use 40).", d.classes, 1, 100, advanced=True),
            Param("FINE_UNCERTAINTY", "float", "Fine uncertainty", "sigma_l, reflectance.", d.fine_uncertainty,
                  0.0, 1.0, advanced=True),
            Param("COARSE_UNCERTAINTY", "float", "Coarse uncertainty", "sigma_m, reflectance.",
                  d.coarse_uncertainty, 0.0, 1.0, advanced=True),
            Param("LOG_WEIGHTS", "bool", "Logarithmic weights",
                  "paper variant only: C = ln(S B + 1) ln(T B + 1) D (paper eq. 11), less sensitive to the spectral "
                  "and temporal differences, instead of C = S T D.", d.log_weights, advanced=True),
        ),
        StarfmParams)


def _estarfm_spec() -> Spec:
    from .classic.estarfm import EstarfmParams

    d = EstarfmParams()
    return _classic_spec(
        "fuse_estarfm", "ESTARFM",
        "Enhanced STARFM (Zhu et al. 2010, Remote Sensing of Environment 114), reproducing Xiaolin Zhu's ESTARFM "
        "program (IDL, 2018 revision). Needs two pairs, before and after each date. Similar pixels are selected in "
        "both fine images (every band); with more than 5 of them, a conversion coefficient from the regression of "
        "fine on coarse values of the similar pixels scales the coarse change (only where the coarse images changed "
        "by at least 0.02 x DATA_MAX, and falling back to 1 when the regression is not significant or outside "
        "(0, 5]); weights combine spectral similarity (correlation; for one band, e.g. NDVI, the program's "
        "fine/coarse agreement) and distance; the predictions from both pairs are blended by the coarse change in "
        "the window; a prediction outside the data range becomes the weighted mean of the similar pixels' fine "
        "values; with 5 similar pixels or fewer the window's mean coarse change is used. Defaults: window 51 pixels "
        "(half window 25), 4 classes, data range 0-1 reflectance (set -1 to 1 for an index such as NDVI).",
        (
            Param("WINDOW", "int", "Window size (pixels)", "Side of the moving window in fine pixels (odd).",
                  d.window, 3, 501),
            Param("CLASSES", "int", "Number of classes", "m of the similarity threshold 2 sigma / m.", d.classes, 1,
                  100, advanced=True),
            Param("DATA_MIN", "float", "Data range: minimum", "The program's DN_min, as reflectance (after SCALE): a "
                  "prediction at or below it is replaced.", d.data_min, -1e6, 1e6, advanced=True),
            Param("DATA_MAX", "float", "Data range: maximum", "The program's DN_max, as reflectance (after SCALE): a "
                  "prediction at or above it is replaced; 0.02 x DATA_MAX is the least coarse change for a "
                  "conversion coefficient.", d.data_max, -1e6, 1e6, advanced=True),
        ),
        EstarfmParams)


def _fsdaf_spec() -> Spec:
    from .classic.fsdaf import FsdafParams

    d = FsdafParams()
    return _classic_spec(
        "fuse_fsdaf", "FSDAF",
        "Flexible Spatiotemporal DAta Fusion (Zhu et al. 2016, Remote Sensing of Environment 172), with the rules of "
        "Xiaolin Zhu's reference code. One pair (the nearest). The fine image is classified (k-means; the code uses "
        "ISODATA with 4-6 classes), class changes are estimated from the 100 purest coarse pixels of each class "
        "(changes outside their 10-90 % range left out), the spatial prediction is a multiquadric interpolation of "
        "the coarse image per block of 30 coarse pixels, the residuals are distributed with a homogeneity index "
        "between the two predictions (the spatial change counts only where it agrees in sign with the residual), "
        "the change is clamped to the range seen at both dates, and a final filter averages it over the most "
        "similar pixels. The coarse factor (coarse / fine pixel size) rebuilds the coarse pixels from the coarse "
        "images on the fine grid. Defaults: 5 classes, window 41 (half window 20), 20 similar pixels, data range "
        "0-1 reflectance.",
        (
            Param("FACTOR", "int", "Coarse factor", FACTOR_HELP, d.factor, 0, 200),
            Param("CLASSES", "int", "Number of classes",
                  "Classes of the unsupervised classification of the fine image.", d.classes, 2, 50),
            Param("WINDOW", "int", "Window size (pixels)", "Side of the window of the final similar-pixel filter.",
                  d.window, 3, 501, advanced=True),
            Param("SIMILAR", "int", "Similar pixels", "Similar pixels used by the final filter.", d.similar, 1,
                  1000, advanced=True),
            Param("NUM_PURE", "int", "Purest coarse pixels per class", "Coarse pixels with the largest fraction of a "
                  "class used to estimate its change (reference code: 100).", d.num_pure, 1, 100000, advanced=True),
            Param("DATA_MIN", "float", "Data range: minimum", "The code's DN_min, as reflectance (after SCALE).",
                  d.data_min, -1e6, 1e6, advanced=True),
            Param("DATA_MAX", "float", "Data range: maximum", "The code's DN_max, as reflectance (after SCALE).",
                  d.data_max, -1e6, 1e6, advanced=True),
        ),
        FsdafParams)


def _fitfc_spec() -> Spec:
    from .classic.fitfc import FitfcParams

    d = FitfcParams()
    return _classic_spec(
        "fuse_fitfc", "Fit-FC",
        "Regression model Fitting, spatial Filtering and residual Compensation (Wang & Atkinson 2018, Remote Sensing "
        "of Environment 204), in the order of the authors' program. One pair (the nearest). Per band, a linear "
        "regression of the coarse image of the date on the coarse image of the pair in a moving window of coarse "
        "pixels gives a slope and an intercept per coarse pixel, applied to the fine image of the pair; the "
        "regression's residuals, interpolated bicubically, are added; a filter then averages the result over the "
        "pixels of the window most similar in the fine image of the pair (weights 1 / (1 + d / A)). Suited to strong "
        "changes between the dates (seasons) with a single pair; land-cover change inside a regression window is "
        "smoothed. The coarse factor (coarse / fine pixel size) rebuilds the coarse pixels from the coarse images "
        "on the fine grid. Defaults: regression window radius 5 coarse pixels (the paper's experiments), filter "
        "window 41 pixels and 20 similar pixels (the authors' MODIS-Landsat program).",
        (
            Param("FACTOR", "int", "Coarse factor", FACTOR_HELP, d.factor, 0, 200),
            Param("REGRESSION_RADIUS", "int", "Regression window radius (coarse pixels)",
                  "W: the regression is fitted over (2 W + 1)^2 coarse pixels around each coarse pixel.",
                  d.regression_radius, 1, 50),
            Param("WINDOW", "int", "Filter window size (pixels)", "Side of the similar-pixel filter's window (odd).",
                  d.window, 3, 501, advanced=True),
            Param("SIMILAR", "int", "Similar pixels", "Pixels of the window the filter averages.", d.similar, 1,
                  1000, advanced=True),
        ),
        FitfcParams)


# --- deep learning ------------------------------------------------------------------------------------------------
_TRAIN_DATES_HELP = "The pair dates to train on, separated by commas. Empty: every pair."
COARSE_NOISE_HELP = (
    "With temporal augmentation, add to each sample moved towards its reference the coarse error a change that "
    "short really carries (differences of the coarse series' own date-to-date errors, estimated from every coarse "
    "date), and validate on the held-out pairs moved the same way (a quarter, half and the whole way). Without "
    "it a network learns to trust a small coarse change as much as a large one. Needs four coarse dates or more; "
    "otherwise off.")


def _training_run(method: str, settings: type, train_dates: bool) -> Callable[[Values, Feedback], dict]:
    def run(values: Values, feedback: Feedback) -> dict:
        from .deep.api import train_method, write_model
        from .raster import OutputTransaction
        from .series import require_fine_grid

        series = read_series(values)
        require_fine_grid(series)
        params, scale = settings_of(values, settings), scales_of(values)
        networks, metadata = train_method(method, series, scale, params, values["DEVICE"], feedback,
                                          dates_of(values, "TRAIN_DATES") if train_dates else None)
        with OutputTransaction() as tx:
            model, loss_csv, loss_png = write_model(values["MODEL"], method, networks, metadata, tx)
        return {"MODEL": model, "LOSS_CSV": loss_csv, "LOSS_PNG": loss_png}

    return run


def _training_spec(alg_id: str, display: str, help_text: str, method_params: tuple[Param, ...], settings: type,
                   train_dates_help: str | None = _TRAIN_DATES_HELP) -> Spec:
    method = alg_id.replace("train_", "")
    params = _series_params(predict_dates=False)
    if train_dates_help:
        params += (Param("TRAIN_DATES", "string", "Training pair dates", train_dates_help, "", optional=True),)
    params += method_params + (
        Param("SEED", "int", "Random seed", "Same seed, data and device: same model.", settings().seed, 0,
              2**31 - 1, advanced=True),
        _device(),
        Param("MODEL", "file_out", "Trained model",
              "The model file (.stfmodel): weights and everything stf:predict needs (method, bands, scale, training "
              "dates, loss history, hyper-parameters).", extension="STF model (*.stfmodel)"),
    )
    return Spec(alg_id, display, "deep", help_text, params, _training_run(method, settings, bool(train_dates_help)),
                outputs=(Output("LOSS_CSV", "file", "Loss history (CSV)",
                                "Training and validation loss per epoch of every network (<model>.loss.csv)."),
                         Output("LOSS_PNG", "file", "Loss curves (PNG)", "The same as a plot (<model>.loss.png).")),
                needs_torch=True, settings=settings)


def _stfdcnn_spec() -> Spec:
    from .deep.stfdcnn import StfdcnnParams

    d = StfdcnnParams()
    return _training_spec(
        "train_stfdcnn", "Train STFDCNN",
        "Trains STFDCNN (Song et al. 2018, IEEE JSTARS 11(3)): a nonlinear-mapping CNN per band (coarse -> "
        "low-spatial-resolution fine) and one super-resolution CNN (LSR fine -> fine), five-layer residual CNNs "
        "(n1 = 64, n2 = 32, k1 = 9, k2 = k3 = 5, ReLU) trained with MSE on 33 x 33 sub-images of the pairs. The LSR "
        "images are the fine images downsampled bicubically by FACTOR (paper: 10). Each CNN starts as the identity "
        "(last layer zero), so EPOCHS = 0 saves the untrained model: the paper's fusion model (high-pass modulation "
        "+ change weights) on bicubic images. Validation predicts held-out pair dates through the real prediction "
        "path; every network keeps its best epoch (possibly 0) and stops after PATIENCE epochs without improvement; "
        "the trained networks replace the fusion model only when they beat it there by MIN_GAIN (5 %) and beyond "
        "noise (a smaller gain on one held-out date was measured to carry no information on the other dates). "
        "The model file records its held-out RMSE beside its untrained start's and the naive and additive "
        "baselines'. Defaults train in about 10 s on the bundled sample on a CPU (at most 5 epochs per network: "
        "longer training sharpens the NLM CNNs' output, which helps large changes but adds noise to dates close to a "
        "pair); on a real scene (e.g. CIA, 17 pairs) keep 3 training pairs and raise MAX_SUBIMAGES (e.g. 20000) on a "
        "GPU; watch the held-out RMSE per epoch in the loss CSV before raising EPOCHS. "
        "Predict with stf:predict. Coarse images must be on the fine grid (stf:resample_coarse).",
        (
            Param("EPOCHS", "int", "Epochs (at most)", "Passes over the training sub-images per network; 0 saves the "
                  "untrained model (a baseline).", d.epochs, 0, 100000),
            Param("PATIENCE", "int", "Early stopping patience", "Stop a network after this many epochs without a "
                  "better held-out RMSE (0: never early).", d.patience, 0, 100000, advanced=True),
            Param("MAX_PAIRS", "int", "Training pairs (at most)", "Pairs spread over the series the networks learn "
                  "from when TRAIN_DATES is empty (paper: 3).", d.max_pairs, 1, 1000, advanced=True),
            Param("MAX_SUBIMAGES", "int", "Sub-images per network (at most)", "Drawn at random among the valid "
                  "sub-images; bounds memory and epoch time whatever the scene size.", d.max_subimages, 1,
                  10_000_000, advanced=True),
            Param("BATCH", "int", "Batch size", "Sub-images per gradient step.", d.batch, 1, 65536, advanced=True),
            Param("OPTIMIZER", "enum", "Optimiser", "adam: the paper's per-layer learning rates x 10, converges in a "
                  "few epochs; sgd: the paper's rates with momentum 0.9 (needs thousands of epochs).", d.optimizer,
                  options=("sgd", "adam")),
            Param("LR", "float", "Learning rate (first two layers)", "Paper: 1e-4 (x 10 with adam).", d.lr, 1e-9,
                  1.0, advanced=True),
            Param("LR_LAST", "float", "Learning rate (last layer)", "Paper: 1e-5 (x 10 with adam).", d.lr_last, 1e-9,
                  1.0, advanced=True),
            Param("FACTOR", "int", "LSR downsampling factor", "Fine -> low-spatial-resolution factor (paper: 10).",
                  d.factor, 2, 100, advanced=True),
            Param("PATCH", "int", "Sub-image size", "Training sub-image side in pixels (paper: 33; at the LSR level "
                  "at most half the LSR image).", d.patch, 3, 512, advanced=True),
            Param("STRIDE", "int", "Sub-image stride", "Step between training sub-images at the fine level.",
                  d.stride, 1, 512, advanced=True),
            Param("LSR_STRIDE", "int", "LSR sub-image stride", "Step between training sub-images at the LSR level.",
                  d.lsr_stride, 1, 512, advanced=True),
            Param("WINDOW", "int", "Weighting window", "Patch size of the change-based weights of the fusion model "
                  "(paper: 9).", d.window, 1, 99, advanced=True),
            Param("HPM_MAX", "float", "High-pass modulation bound", "The ratio T2 / T1 is used within [1 / bound, "
                  "bound] and where T1 >= 0.01; elsewhere the modulation is additive.", d.hpm_max, 1.01, 1000.0,
                  advanced=True),
            Param("MIN_GAIN", "float", "Minimum held-out gain", "The trained networks replace the fusion model only "
                  "when they beat it on the held-out dates by this share (0.05: 5 %) and beyond the score's noise; "
                  "0: whenever they beat the noise.", d.min_gain, 0.0, 0.99, advanced=True),
        ),
        StfdcnnParams,
        "The pair dates to train the networks on, separated by commas; the other interior pairs are then the "
        "validation dates. Empty: at most MAX_PAIRS pairs spread over the series (the paper trains on 3 of 17), "
        "leaving at least one interior pair out for validation when the series has three pairs or more.")


def _dcnn_spec() -> Spec:
    from .deep.dcnn import DcnnParams

    d = DcnnParams()
    return _training_spec(
        "train_dcnn", "Train patch DCNN",
        "Trains the 3 x 3 patch regression DCNN (the DCNN spatiotemporal fusion paper of the project's references; "
        "its text carries no bibliographic data) as its equivalent fully convolutional network: per band, "
        "the coarse image of the prediction date, the coarse and the fine image of a reference pair date -> the "
        "fine image of the prediction date. The regression outputs a 3 x 3 filter applied to the coarse change "
        "around the pixel, added to the additive prediction (fine reference + coarse change); its last layer starts "
        "at zero, so EPOCHS = 0 saves the additive baseline. Samples come from every ordered pair of training pair "
        "dates, moved to random points between the two dates (AUGMENT) so that small changes are seen too. "
        "Validation predicts every pair date of a held-out block from the other pairs; the best epoch is kept and "
        "training stops after PATIENCE epochs without improvement. Defaults are the paper's Table 1 (MSE, SGD "
        "momentum 0.9, learning rate 0.01, weight decay 1e-4, batch 64, at most 50 epochs); about 10 s on the "
        "bundled sample on a CPU; on a real scene raise MAX_PATCHES (e.g. 500000). Predict with stf:predict. Coarse "
        "images must be on the fine grid (stf:resample_coarse, bicubic).",
        (
            Param("EPOCHS", "int", "Epochs (at most)", "Passes over the training patches (paper: 50); 0 saves the "
                  "untrained model (the additive baseline).", d.epochs, 0, 100000),
            Param("PATIENCE", "int", "Early stopping patience", "Stop after this many epochs without a better "
                  "held-out RMSE (0: never early).", d.patience, 0, 100000, advanced=True),
            Param("MAX_PATCHES", "int", "Training patches", "At most this many 3 x 3 patches, drawn once.",
                  d.max_patches, 1, 100_000_000),
            Param("AUGMENT", "bool", "Temporal augmentation", "Move each sample to a random point between its two "
                  "dates (pairs are far apart; predictions are usually near a pair).", d.augment, advanced=True),
            Param("COARSE_NOISE", "bool", "Short-gap coarse error", COARSE_NOISE_HELP, d.coarse_noise,
                  advanced=True),
            Param("BATCH", "int", "Batch size", "Patches per gradient step (paper: 64).", d.batch, 1, 65536,
                  advanced=True),
            Param("LR", "float", "Learning rate", "Initial learning rate of SGD (paper: 0.01).", d.lr, 1e-9, 10.0,
                  advanced=True),
            Param("WEIGHT_DECAY", "float", "Weight decay", "Paper: 1e-4.", d.weight_decay, 0.0, 1.0, advanced=True),
            Param("TWO_REFERENCES", "bool", "Blend both neighbouring pairs",
                  "At prediction, blend the predictions from the pairs before and after each date, weighted by the "
                  "coarse change in 9 x 9 windows; off: the nearest pair only.", d.two_references),
        ),
        DcnnParams,
        "The pair dates to train on (at least two), separated by commas. Empty: every pair.")


def _dcstfn_spec() -> Spec:
    from .deep.dcstfn import DcstfnParams

    d = DcstfnParams()
    return _training_spec(
        "train_dcstfn", "Train DCSTFN",
        "Trains DCSTFN (Tan et al. 2018, Remote Sensing 10(7) 1066), the deep baseline of STF3DCNN's paper: per "
        "band, a coarse stream (the coarse pixels -> convolutions and transposed convolutions up to half the fine "
        "resolution, shared by the two coarse dates), a fine stream (the fine image of the reference pair -> "
        "convolutions and max pooling to half resolution), fusion in feature space (fine(F1) - coarse(C1) + "
        "coarse(C2)) and a reconstruction (transposed convolution, then per-pixel layers) to the fine image of the "
        "date. Channels 64 / 96 / 128, Adam with a learning rate of 5e-3 decayed by 0.75 per epoch, MSE, training "
        "patches of 160 fine pixels (smaller on a small scene). Output in residual form (fine reference + coarse "
        "change + the reconstruction of the fused features minus that of the reference's own features, starting at "
        "zero: an unchanged coarse pair predicts the reference), so EPOCHS = 0 saves the additive "
        "baseline. Validation predicts held-out pair dates in a held-out block; the best epoch is kept and "
        "training stops after PATIENCE epochs without improvement; the kept epoch replaces the untrained start "
        "only when it beats it there by MIN_GAIN (5 %: smaller held-out gains were measured to say nothing about "
        "the other dates, one scene ending 3 % worse than its start). About a minute on the bundled sample on a CPU. "
        "The coarse factor must be a power of two (16 for MODIS 480 m / Landsat 30 m). Predict with stf:predict. "
        "Coarse images must be on the fine grid (stf:resample_coarse, bicubic).",
        (
            Param("EPOCHS", "int", "Epochs (at most)", "Epochs of PATCHES_PER_EPOCH patches (authors: 30); 0 saves "
                  "the untrained model (the additive baseline).", d.epochs, 0, 100000),
            Param("PATIENCE", "int", "Early stopping patience", "Stop after this many epochs without a better "
                  "held-out RMSE (0: never early).", d.patience, 0, 100000, advanced=True),
            Param("PATCHES_PER_EPOCH", "int", "Patches per epoch", "Training patches (one band each) per epoch, "
                  "drawn from a set four times larger.", d.patches_per_epoch, 1, 10_000_000),
            Param("PATCH", "int", "Patch size (pixels)", "Side of the training patches in fine pixels (authors: "
                  "160, 10 coarse pixels); a multiple of FACTOR.", d.patch, 8, 4096, advanced=True),
            Param("FACTOR", "int", "Coarse factor", FACTOR_HELP + " DCSTFN needs a power of two (4, 8, 16 ...).",
                  d.factor, 0, 256),
            Param("BATCH", "int", "Batch size", "Patches per gradient step.", d.batch, 1, 65536, advanced=True),
            Param("LR", "float", "Learning rate", "Initial learning rate of Adam.", d.lr, 1e-9, 10.0,
                  advanced=True),
            Param("AUGMENT", "bool", "Temporal augmentation", "Move each sample to a random point between its two "
                  "dates (pairs are far apart; predictions are usually near a pair).", d.augment, advanced=True),
            Param("COARSE_NOISE", "bool", "Short-gap coarse error", COARSE_NOISE_HELP, d.coarse_noise,
                  advanced=True),
            Param("MIN_GAIN", "float", "Minimum held-out gain", "The kept epoch replaces the untrained start (the "
                  "additive baseline) only when it beats it on the held-out dates by this share (0.05: 5 %) and "
                  "beyond the score's noise; 0: whenever it beats the noise.", d.min_gain, 0.0, 0.99, advanced=True),
        ),
        DcstfnParams,
        "The pair dates to train on (at least two), separated by commas. Empty: every pair.")


def _refine_spec() -> Spec:
    from .deep.refine import BASES, RefineParams

    d = RefineParams()
    return _training_spec(
        "train_refine", "Train refinement (residual network on a base method)",
        "Trains this product's own refinement (not from a paper): a network that learns the error of a base method "
        "on the scene's own pairs and adds its correction to the base prediction, F = P + g([P, F_r, C - C_r]) "
        "(P the base prediction, F_r the nearest pair's fine image, C - C_r the coarse change since it, every band "
        "together; dilated 3 x 3 convolutions over DILATIONS, a field of view of 1 + their sum pixels either side). "
        "Examples: each pair the base method can predict from the other pairs (ESTARFM: the interior ones), "
        "predicted without it, against its real fine image. The last layer starts at zero, so EPOCHS = 0 saves the "
        "base method itself; example dates are held out in time (their fine images training targets nowhere; "
        "two pairs needed, four with ESTARFM) and an epoch replaces the base method only when it beats it there by "
        "MIN_GAIN and more than the score's noise. The inputs are clamped into the range of the examples. The "
        "model file records the held-out RMSE beside the base method's and the naive and additive baselines'. "
        "Predict with stf:predict (the base method runs with its default settings first). Coarse images must be "
        "on the fine grid (stf:resample_coarse).",
        (
            Param("BASE", "enum", "Base method", "The method whose predictions are refined (default settings): "
                  "auto (ESTARFM with four pairs or more, else FSDAF), a classic method, the additive baseline, or "
                  "stfdcnn, STFDCNN's fusion model without its CNNs, or blend, stf:fuse_auto's default "
                  "prediction (cross-validated on the other pairs for each example: three pairs needed).", d.base,
                  options=BASES),
            Param("EPOCHS", "int", "Epochs (at most)", "Passes over the training windows; 0 saves the base method "
                  "as the model.", d.epochs, 0, 100000),
            Param("PATIENCE", "int", "Early stopping patience", "Stop after this many epochs without a better "
                  "held-out RMSE (0: never early).", d.patience, 0, 100000, advanced=True),
            Param("WIDTH", "int", "Feature maps", "Channels of every hidden layer.", d.width, 1, 1024,
                  advanced=True),
            Param("DILATIONS", "string", "Dilations", "Dilations of the hidden 3 x 3 layers, comma-separated; the "
                  "field of view is 1 + their sum pixels either side.", d.dilations, advanced=True),
            Param("CROP", "int", "Training window (pixels)", "Side of the training windows.", d.crop, 8, 4096,
                  advanced=True),
            Param("MAX_CROPS", "int", "Training windows (at most)", "Drawn once at random among the valid windows "
                  "of the examples; bounds memory and epoch time whatever the scene size.", d.max_crops, 1,
                  1_000_000, advanced=True),
            Param("MAX_EXAMPLES", "int", "Base predictions to learn from (at most)",
                  "1: each example date from its nearest other pair; more: a one-pair base also predicts each "
                  "example date from the next nearest pairs alone (more gaps and directions; measured to overfit "
                  "on some scenes, see the help).", d.max_examples, 1, 1000, advanced=True),
            Param("MIN_GAIN", "float", "Minimum held-out gain", "A trained epoch replaces the base method only when "
                  "it beats it on the held-out dates by this share (0.05: 5 %) and beyond the score's noise.",
                  d.min_gain, 0.0, 0.99, advanced=True),
            Param("BATCH", "int", "Batch size", "Windows per gradient step.", d.batch, 1, 65536, advanced=True),
            Param("LR", "float", "Learning rate", "Learning rate of Adam.", d.lr, 1e-9, 10.0, advanced=True),
        ),
        RefineParams, None)


def _stfsr_spec() -> Spec:
    from .deep.stfsr import StfsrParams

    d = StfsrParams()
    return _training_spec(
        "train_stfsr", "Train STFSR (sparse representation)",
        "Learns STFSR (Song & Huang 2013, IEEE TGRS 51(4)), the sparse-representation baseline STFDCNN's paper "
        "compares with, in STFDCNN's fusion framework (transitional images, high-pass modulation, change weights; "
        "one pair or the pairs before and after each date): layer 1 super-resolves the coarse images to the "
        "low-spatial-resolution (LSR, FACTOR) level with a dictionary pair per band, in place of STFDCNN's NLM CNN; "
        "layer 2 is high-pass modulation of the pairs' fine images (STFDCNN's SR CNN has no counterpart). Each "
        "dictionary pair is learned (scikit-learn) on the high-pass features of the training pairs: first- and "
        "second-order derivatives of the LSR coarse image and the detail to the LSR fine image; prediction codes "
        "each patch with Orthogonal Matching Pursuit and averages the overlapping details. No epochs: the model "
        "file holds the "
        "dictionaries and records their held-out RMSE beside the fusion model on bicubic images and the naive and "
        "additive baselines. Predict with stf:predict. Coarse images must be on the fine grid "
        "(stf:resample_coarse).",
        (
            Param("ATOMS", "int", "Dictionary atoms", "Atoms of each dictionary pair.", d.atoms, 2, 4096),
            Param("PATCH", "int", "Patch size", "Side of the patches in pixels (Yang et al.: 5).", d.patch, 3, 15,
                  advanced=True),
            Param("ALPHA", "float", "Sparsity weight (lambda)", "The L1 weight of dictionary learning.", d.alpha,
                  1e-6, 10.0, advanced=True),
            Param("SPARSITY", "int", "Atoms per patch", "Non-zero coefficients of each patch's code (OMP).",
                  d.sparsity, 1, 64, advanced=True),
            Param("MAX_PATCHES", "int", "Training patches per dictionary", "At most this many, drawn at random.",
                  d.max_patches, 2, 10_000_000, advanced=True),
            Param("MAX_PAIRS", "int", "Training pairs (at most)", "Pairs spread over the series the dictionaries "
                  "learn from when TRAIN_DATES is empty (as STFDCNN: 3).", d.max_pairs, 1, 1000, advanced=True),
            Param("FACTOR", "int", "LSR downsampling factor", "Fine -> low-spatial-resolution factor (as STFDCNN: "
                  "10).", d.factor, 2, 100, advanced=True),
        ),
        StfsrParams,
        "The pair dates to learn from, separated by commas; the other interior pairs validate. Empty: at most "
        "MAX_PAIRS pairs spread over the series.")


def _stf3dcnn_spec() -> Spec:
    from .deep.stf3dcnn import TIME_WEIGHTS, Stf3dcnnParams

    d = Stf3dcnnParams()
    return _training_spec(
        "train_stf3dcnn", "Train STF3DCNN",
        "Trains STF3DCNN (Remote Sens. 2020, 12(23), 3888, doi:10.3390/rs12233888): a 3D fully convolutional "
        "network (Conv3d over time x rows x columns, bands as "
        "channels, LeakyReLU) that maps the coarse residual sequence dC_k(t) = C(t) - C(k) against a reference "
        "pair date k to the fine residual sequence dF_k(t) = F(t) - F(k), as dF = dC + net(dC), with a loss on the "
        "dates with a known fine image only. The last layer starts at zero (EPOCHS = 0 saves the untrained model: "
        "the coarse change added to the pairs), the convolutions have no bias (no coarse change, no fine change) "
        "and, with BAND_GROUPS, each band has its own filters. Training samples are random sub-sequences of the "
        "dates, so the pairs appear at every time offset. Validation predicts every pair date of a held-out block "
        "through the whole-series pass; the best epoch is kept, training stops after PATIENCE epochs without "
        "improvement. stf:predict then predicts every date without a fine image in one pass: F(t) = F(k) + dF_k(t), "
        "blended between the pairs before and after t (TIME_WEIGHTING). The paper's ablations are parameters: "
        "DEPTH, RESIDUAL_BLOCKS, TIME_WEIGHTING (off = nearest pair only; the paper found time weighting hurts on "
        "abrupt changes and fewer layers more accurate). About 15 s on the bundled sample on a CPU; on a real scene "
        "raise WINDOWS (e.g. 1024) and EPOCHS.",
        (
            Param("EPOCHS", "int", "Epochs (at most)", "Passes over the training sub-cubes; 0 saves the untrained "
                  "model (a baseline).", d.epochs, 0, 100000),
            Param("PATIENCE", "int", "Early stopping patience", "Stop after this many epochs without a better "
                  "held-out RMSE (0: never early).", d.patience, 0, 100000, advanced=True),
            Param("MIN_GAIN", "float", "Minimum held-out gain", "The kept epoch replaces the untrained start only "
                  "when it beats it on the held-out dates by this share (0.05: 5 %) and beyond the score's noise; "
                  "0: whenever it beats the noise.", d.min_gain, 0.0, 0.99, advanced=True),
            Param("DEPTH", "int", "Depth (convolution layers)", "Number of Conv3d layers (ablation of the paper).",
                  d.depth, 2, 64),
            Param("WIDTH", "int", "Width (filters)", "Filters per hidden layer (a multiple of the band count with "
                  "BAND_GROUPS).", d.width, 1, 1024, advanced=True),
            Param("BAND_GROUPS", "bool", "Separate filters per band", "Grouped convolutions: the network cannot "
                  "learn a coupling between the bands' changes on the pair dates (e.g. phenology) that does not hold "
                  "for other changes (e.g. a flood).", d.band_groups, advanced=True),
            Param("RESIDUAL_BLOCKS", "int", "Residual blocks", "Extra conv-LeakyReLU-conv blocks with a skip "
                  "connection (ablation of the paper).", d.residual_blocks, 0, 64),
            Param("KERNEL_TIME", "int", "Kernel size in time", "Odd.", d.kernel_time, 1, 31, advanced=True),
            Param("KERNEL_SPACE", "int", "Kernel size in space", "Odd.", d.kernel_space, 1, 31, advanced=True),
            Param("TIME_WEIGHTING", "enum", "Time weighting", "How stf:predict blends the pairs before and after a "
                  "date by default: off (nearest pair only), distance (days), change (mean absolute coarse "
                  "change).", d.time_weighting, options=tuple(TIME_WEIGHTS)),
            Param("PATCH", "int", "Sub-cube size (pixels)", "Side of the training sub-cubes; every date is used.",
                  d.patch, 4, 1024, advanced=True),
            Param("WINDOWS", "int", "Training sub-cubes", "Sub-cubes read at random positions (memory is bounded by "
                  "this number, whatever the scene size); each epoch draws a reference pair and a sub-sequence of "
                  "dates for each.", d.windows, 1, 10_000_000, advanced=True),
            Param("BATCH", "int", "Batch size", "Sub-cubes per gradient step.", d.batch, 1, 4096, advanced=True),
            Param("LR", "float", "Learning rate", "Adam learning rate.", d.lr, 1e-9, 1.0, advanced=True),
            Param("COARSE_NOISE", "bool", "Short-gap coarse error",
                  "Train also on one date per batch moved next to the reference with the coarse error a gap that "
                  "short carries (estimated from the coarse series), and validate on the held-out dates moved a "
                  "quarter, half and the whole way. Off by default: measured, it helps the dates near a pair and "
                  "hurts abrupt changes no pair shows (a flood), which this network cannot tell from noise.",
                  d.coarse_noise, advanced=True),
        ),
        Stf3dcnnParams, None)


def _run_arrange(values: Values, feedback: Feedback) -> dict:
    from .deep.arrangement import write_series_geotiff
    from .raster import OutputTransaction
    from .series import require_fine_grid

    series = read_series(values)
    require_fine_grid(series)
    order, scale = values["ORDER"], scales_of(values)
    coarse, fine = values["OUTPUT_COARSE"], values["OUTPUT_FINE"]
    with OutputTransaction() as tx:
        write_series_geotiff(list(series.coarse), tx.add(coarse), scale, order)
        feedback.set_progress(50)
        write_series_geotiff(list(series.fine), tx.add(fine), scale, order)
    feedback.info(f"{len(series.coarse)} coarse and {len(series.fine)} fine dates x {series.grid.bands} bands in "
                  f"{order} order.")
    return {"OUTPUT_COARSE": coarse, "OUTPUT_FINE": fine}


def _arrange_spec() -> Spec:
    return Spec(
        "arrange_series", "Arrange a series in 4D (SPATS)", "deep",
        "Writes the scene series as the 4D spatio-temporal-spectral arrangement STF3DCNN works on (STF3DCNN paper, "
        "Remote Sens. 2020, 12(23), 3888, doi:10.3390/rs12233888, the "
        "multidimensional data set of Zhang et al. 2017): one multi-band GeoTIFF for the coarse images of every "
        "date and one for the fine images of the pair dates. TSB order (time sequence in band): all dates of band "
        "1, then all dates of band 2, ...; TIB order (time interleaved by band): all bands of date 1, then date 2. "
        "Each layer is described by its date and band name. (TSP and TIS, the pixel-interleaved orders, are "
        "available from Python: core.deep.arrangement.convert.)",
        _series_params(predict_dates=False) + (
            Param("ORDER", "enum", "Layer order", "TSB: band-major; TIB: date-major.", "TSB", options=("TSB", "TIB")),
            Param("OUTPUT_COARSE", "raster_out", "Coarse series (4D)", "Every coarse date, on the fine grid."),
            Param("OUTPUT_FINE", "raster_out", "Fine series (4D)", "The fine images of the pair dates."),
        ),
        _run_arrange)


def _run_predict(values: Values, feedback: Feedback) -> dict:
    from .deep.api import predict_with_model

    series, dates, folder, scale = prediction_inputs(values)
    weighting = values["TIME_WEIGHTING"]
    files = predict_with_model(values["MODEL"], series, dates, folder, scale, values["DEVICE"], feedback,
                               time_weighting=None if weighting == "model" else weighting,
                               rules=values["REFERENCE_RULES"])
    method = os.path.basename(files[0]).rsplit("_", 1)[0] if files else ""
    from .uncertainty import ERROR

    errors = [p for p in (ERROR.beside(f) for f in files) if os.path.exists(p)]  # the refinement's estimates
    return {"OUTPUT_FOLDER": folder, "OUTPUT_FILES": files, "OUTPUT_QUALITY": quality_outputs(values, method, dates),
            "OUTPUT_ERRORS": errors}


def _predict_spec() -> Spec:
    return Spec(
        "predict", "Predict with a trained model", "deep",
        "Predicts fine images with a model trained by one of the stf:train_* algorithms; the method (STFDCNN, "
        "STF3DCNN, DCNN, DCSTFN, STFSR, refinement) and its settings are read from the model file. The bands must "
        "be those the model was "
        "trained on, in the same order. Outputs are named <method>_<YYYY-MM-DD>.tif; a refinement also writes its "
        "error estimate (uncertainty/refine_<date>_error.tif).",
        (Param("MODEL", "file", "Trained model",
               "A .stfmodel file written by stf:train_stfdcnn, stf:train_stf3dcnn, stf:train_dcnn, stf:train_dcstfn, "
               "stf:train_stfsr or stf:train_refine.",
               extension="stfmodel"),)
        + _series_params() + (
            Param("TIME_WEIGHTING", "enum", "Time weighting (STF3DCNN)",
                  "STF3DCNN only: model = the setting saved in the model; off = the nearest pair only; distance / "
                  "change = blend the pairs before and after each date by days / by coarse change.", "model",
                  options=("model", "off", "distance", "change"), advanced=True),
            _device(), _MAX_NODATA, _RULES, _SCHEDULER,
            _output_folder("Folder for the predictions (created if needed)."),
        ),
        _run_predict, outputs=(_OUTPUT_FILES, _OUTPUT_QUALITY,
                               Output("OUTPUT_ERRORS", "layers", "Error estimates",
                                      "Per date, where the model writes one (stf:train_refine): the estimated RMS "
                                      "error over the bands (reflectance), uncertainty/<method>_<date>_error.tif.")),
        needs_torch=True, layers="OUTPUT_FILES")


# --- evaluation ---------------------------------------------------------------------------------------------------
def _run_evaluate(values: Values, feedback: Feedback) -> dict:
    from .evaluation import evaluate_files, method_means, write_csv
    from .raster import OutputTransaction
    from .report import write_html

    csv_path, html_path = values["OUTPUT_CSV"], values.get("OUTPUT_HTML")
    evaluation = evaluate_files(values["PREDICTIONS"], values["REFERENCES"], values.get("BASELINE") or None,
                                values.get("MASK"), scale=scales_of(values).fine.scale,
                                data_range=float(values["DATA_RANGE"]), ratio=float(values["RATIO"]),
                                feedback=feedback)
    with OutputTransaction() as tx:
        write_csv(evaluation, csv_path, tx)
        if html_path:  # optional: the table alone is enough for scripts
            write_html(evaluation, html_path, tx)
    for method, means in method_means(evaluation.rows).items():
        feedback.info(f"{method}: RMSE {means['rmse']:.5f}, SSIM {means['ssim']:.4f}, SAM {means['sam']:.3f} deg, "
                      f"ERGAS {means['ergas']:.4g} (mean of {means['n_predictions']} prediction(s))")
    feedback.info("Conventions: " + "; ".join(f"{k}: {v}" for k, v in evaluation.conventions.items()))
    return {"OUTPUT_CSV": csv_path, "OUTPUT_HTML": html_path or None}


def _evaluate_spec() -> Spec:
    from .evaluation import COLUMNS

    return Spec(
        "evaluate", "Evaluate predictions", "evaluation",
        "Compares predicted fine images with reference (observed) fine images using one documented metric suite: "
        "CC, RMSE, MAE, AD (bias), rMAE, R2, PSNR, SSIM, Q (UIQI), SAM (degrees), ERGAS, KGE, DD, MAEC, Edge and "
        "LBP (the formulas are in the report and in <csv>.conventions.json). Predictions are matched with "
        "references by the date in their file names (or by order when names hold no dates); predictions of several "
        "methods can be compared in one run, the method being the file name without its date (starfm_2021-05-03.tif "
        "-> starfm). The CSV table has one row per prediction and band plus an 'all' row; the HTML report shows "
        "the means per method, metrics over time, a scatter plot and an error map per prediction.",
        (
            Param("PREDICTIONS", "rasters", "Predictions", "Predicted fine images (any methods, any dates)."),
            Param("REFERENCES", "rasters", "References", "Observed fine images of the predicted dates."),
            Param("BASELINE", "rasters", "Baseline predictions",
                  "Predictions of a baseline, normally stf:fuse_naive, matched like the predictions; needed for MAEC "
                  "(change of MAE against the baseline).", optional=True),
            Param("MASK", "raster", "Mask", "Pixels where the mask is 0 or nodata are excluded.", optional=True),
        ) + _scale_params(per_kind=False) + (
            Param("DATA_RANGE", "float", "Data range (reflectance)",
                  "L of PSNR and SSIM, in reflectance units (1.0 for reflectance 0-1).", 1.0, minimum=1e-9,
                  advanced=True),
            Param("RATIO", "float", "Fine / coarse pixel size (h/l)",
                  "h/l of ERGAS, e.g. 30 / 480 = 0.0625 for Landsat and MODIS 480 m. 0: from each prediction (stf "
                  "fusion records it when stf:resample_coarse resampled the coarse images); where it is not known "
                  "ERGAS is not computed, as the report says.", 0.0, minimum=0.0),
            Param("OUTPUT_CSV", "file_out", "Metric table",
                  "One row per prediction x band plus an 'all' row; columns " + ", ".join(COLUMNS) + ".",
                  extension="CSV files (*.csv)"),
            Param("OUTPUT_HTML", "file_out", "Report", "Self-contained HTML report with tables and plots.",
                  optional=True, extension="HTML files (*.html)"),
        ),
        _run_evaluate)


def _methods(values: Values) -> list[str]:
    """METHODS as a list (separated by commas, semicolons or spaces), lower case."""
    return [m for m in re.split(r"[,;\s]+", str(values.get("METHODS") or "").strip().lower()) if m]


def _learned_methods_asked(values: Values) -> bool:
    """Cross-validation and fuse_auto need torch only when METHODS names a learned method or STFDCNN's fusion
    model (fuse_auto's default members include the fusion model only where torch is installed)."""
    from .crossval import NEEDS_TORCH

    return any(m in NEEDS_TORCH for m in _methods(values))


def _run_cross_validate(values: Values, feedback: Feedback) -> dict:
    from .crossval import cross_validate, explanation, write_csv, write_html
    from .raster import OutputTransaction

    series = read_series(values)
    methods = _methods(values)
    csv_path, html_path = values["OUTPUT_CSV"], values.get("OUTPUT_HTML")
    folder = os.path.dirname(os.path.abspath(csv_path))
    result = cross_validate(series, methods, folder, scales_of(values), values["DEVICE"], feedback,
                            factor=int(values.get("FACTOR") or 0))
    with OutputTransaction() as tx:
        write_csv(result, csv_path, tx)
        if html_path:
            write_html(result, html_path, tx)
    for line in explanation(result):
        feedback.info(line)
    return {"OUTPUT_CSV": csv_path, "OUTPUT_HTML": html_path or None, "BEST": next(iter(result.mean_rmse()))}


def _cross_validate_spec() -> Spec:
    from .crossval import DEFAULT_METHODS, FUSION_MODEL, LEARNED, METHODS

    return Spec(
        "cross_validate", "Which method suits this scene? (cross-validation)", "evaluation",
        "Leave-one-pair-out cross-validation: each interior pair date (one with a pair before and after it) is "
        "held out in turn, predicted by every chosen method with its default settings from the other pairs and the "
        "coarse images, and compared with its fine image. The methods are ranked by RMSE per held-out date and "
        "overall by their mean RMSE; the report says which method is best, by how much it beats the naive and "
        "additive predictions, and shows the spatial / temporal variance of the pairs' fine images beside the "
        "ranking (Emelyanova et al. 2013, Remote Sensing of Environment 133, found ESTARFM better where spatial "
        "variance dominates and STARFM where temporal variance dominates). With two pairs only, each is held out "
        "and the two-pair methods are left out. A method that cannot run on the series (e.g. FSDAF when the coarse "
        "factor is neither recorded nor visible and FACTOR is 0) is left out with a warning saying why. Coarse "
        "images must be on the fine grid (stf:resample_coarse).",
        _series_params(predict_dates=False) + (
            Param("METHODS", "string", "Methods", "The methods to compare, separated by commas, among "
                  + ", ".join(METHODS) + "; " + FUSION_MODEL + " is STFDCNN's fusion model without its CNNs (no "
                  "training); the learned ones (" + ", ".join(LEARNED) + ") are trained on each fold's pairs "
                  "first, with their default settings (slower). The last two need PyTorch.", ",".join(DEFAULT_METHODS)),
            _MEMBER_FACTOR,
            _device(), _SCHEDULER,
            Param("OUTPUT_CSV", "file_out", "Cross-validation table", "One row per held-out date and method (RMSE, "
                  "MAE, SSIM, CC, SAM, ERGAS, rank), then the mean RMSE and mean rank of each method.",
                  extension="CSV files (*.csv)"),
            Param("OUTPUT_HTML", "file_out", "Report", "The ranking and why, as HTML.", optional=True,
                  extension="HTML files (*.html)"),
        ),
        _run_cross_validate, outputs=(Output("BEST", "string", "Best method",
                                             "The method with the lowest mean held-out RMSE."),),
        needs_torch=_learned_methods_asked)


def _run_fuse_auto(values: Values, feedback: Feedback) -> dict:
    from .auto import fuse_auto

    series, dates, folder, scale = prediction_inputs(values)
    methods = tuple(_methods(values)) or None  # empty: the default members
    result = fuse_auto(series, dates, folder, scale, methods, values["CHOICE"], bool(values["UNCERTAINTY"]),
                       values["DEVICE"], feedback, factor=int(values.get("FACTOR") or 0))
    return {"OUTPUT_FOLDER": folder, "OUTPUT_FILES": result.files, "OUTPUT_ERRORS": result.errors,
            "OUTPUT_CSV": result.csv, "CHOSEN": result.used}


def _fuse_auto_spec() -> Spec:
    from .auto import CHOICES, MEMBERS, POOL_RATIO
    from .crossval import METHODS
    from .fusion import FUSION_MODEL

    return Spec(
        "fuse_auto", "Best prediction (cross-validated choice or blend)", "classic",
        "This product's own method: the scene's leave-one-pair-out cross-validation turned into the prediction. "
        "Each interior pair (with two pairs: each pair) is held out and predicted by every member method; then "
        "CHOICE=auto (default) predicts, with fewer than three held-out dates, with the trimmed mean of the members "
        f"whose held-out RMSE is within {POOL_RATIO:g}x of the best, and with three or more with whichever of that "
        "trimmed mean, the fitted blend and the best member scored lowest on them (chosen on real series and the "
        "simulator, bench/results/real.md) (trimmed mean: per pixel and band the lowest and the highest member value are left out, "
        "then the others averaged; measured better than fitted weights, the best member by cross-validation and "
        "the plain mean on the control and the realistic simulator: with few held-out pairs, predicted across the "
        "widest gap of the series, the held-out pairs do not rank the members as the dates a user predicts do), "
        "CHOICE=blend with a per-band blend of the members, w >= 0 and "
        "sum w = 1, fitted on the held-out pairs (never worse than its best member there), CHOICE=best with the "
        "member of the lowest held-out RMSE. Writes auto_<date>.tif, an estimated error per pixel "
        "(uncertainty/auto_<date>_error.tif: the members' spread and the coarse change, calibrated on the held-out "
        "pairs) and auto_members.csv (each member's held-out RMSE and weights). A member that cannot run on the "
        "series is left out with a warning saying why. With two pairs ESTARFM (no fold of its own) joins the trimmed "
        "mean; with one pair the members that predict from one pair are combined by their trimmed mean, without "
        "an error estimate.",
        _series_params() + (
            Param("METHODS", "string", "Members", "The methods to choose among or blend, separated by commas (among "
                  + ", ".join(METHODS) + "; learned ones are trained per fold, slower). Empty (default): "
                  + ", ".join(MEMBERS) + ", and " + FUSION_MODEL + " (STFDCNN's fusion model without its CNNs, no "
                  "training) where PyTorch is installed.", "", optional=True),
            Param("CHOICE", "enum", "Choice", f"auto: the trimmed mean of the members within {POOL_RATIO:g}x of the "
                  "best held-out RMSE, or with three held-out dates or more whichever of it, the blend and the best "
                  "member scored lowest on them; blend: weights fitted on the held-out pairs; best: the best member.",
                  "auto",
                  options=CHOICES),
            Param("UNCERTAINTY", "bool", "Estimate the error", "Write the per-pixel error estimate.", True),
            _MEMBER_FACTOR,
            _device(), _MAX_NODATA, _SCHEDULER,
            _output_folder("Folder for the predictions (created if needed)."),
        ),
        _run_fuse_auto,
        outputs=(_OUTPUT_FILES,
                 Output("OUTPUT_ERRORS", "layers", "Error estimates", "Per date: the estimated error (reflectance)."),
                 Output("OUTPUT_CSV", "file", "Members", "auto_members.csv: held-out RMSE and weights."),
                 Output("CHOSEN", "string", "Chosen", "What predicts: 'trimmed mean of <members>', 'blend', or the "
                        "member used (CHOICE=best, or CHOICE=auto where the held-out dates chose it).")),
        needs_torch=_learned_methods_asked, layers="OUTPUT_FILES")


def _benchmarks() -> list[Spec]:
    return [
        _benchmark_spec(
            "naive", "Naive prediction (nearest fine image)",
            "Predicts each date by copying the fine image of the nearest pair date (on a tie the earlier one): "
            "F^(t) = F(t_k). This is the benchmark every fusion method must beat, since it is the error made by "
            "ignoring the coarse images; evaluate fusion results against it (stf:evaluate, BASELINE). Outputs are "
            "named naive_<YYYY-MM-DD>.tif, in the fine images' data type."),
        _benchmark_spec(
            "additive", "Additive prediction (nearest fine image + coarse change)",
            "Predicts each date as the fine image of the nearest pair date plus the coarse change since that date: "
            "F^(t) = F(t_k) + C(t) - C(t_k), clamped into the data range. It is the simplest use of the coarse "
            "images and the untrained start of the deep methods: a fusion method that does not beat it adds nothing "
            "to the coarse images. Coarse images must be on the fine grid (stf:resample_coarse). Outputs are named "
            "additive_<YYYY-MM-DD>.tif, in the fine images' data type."),
    ]


@dataclass
class _Registry:
    specs: dict[str, Spec] = field(default_factory=dict)


_REGISTRY = _Registry()


def specs() -> list[Spec]:
    """Every algorithm, in the toolbox's order."""
    if not _REGISTRY.specs:
        for spec in [_make_sample_spec(), _prepare_spec(), _resample_spec(), *_benchmarks(), _starfm_spec(),
                     _estarfm_spec(), _fsdaf_spec(), _fitfc_spec(), _fuse_auto_spec(), _stfdcnn_spec(), _dcnn_spec(),
                     _dcstfn_spec(), _stfsr_spec(), _arrange_spec(), _stf3dcnn_spec(), _refine_spec(),
                     _predict_spec(), _evaluate_spec(), _cross_validate_spec()]:
            _REGISTRY.specs[spec.id] = spec
    return list(_REGISTRY.specs.values())


def spec(alg_id: str) -> Spec:
    """The algorithm ``alg_id`` (without the ``stf:`` prefix)."""
    specs()
    return _REGISTRY.specs[alg_id]
