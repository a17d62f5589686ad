"""The realistic simulator (core/simulator): every effect is present, measurable, and switchable, and the series it
writes is what the fusion algorithms read. Each effect is isolated by switching the others off."""
import dataclasses
import json
import os

import numpy as np
import pytest
from scipy import ndimage

from stf_fusion.core.errors import InputError
from stf_fusion.core.raster import raster_info, read_block
from stf_fusion.core.simulator import RealismConfig, RealisticScene
from stf_fusion.core.simulator import sensors, spectra
from stf_fusion.core.synthetic import SampleSeriesConfig, make_sample_series

QUIET = dict(max_view_zenith=0.0, brdf=0.0, atmosphere=0.0, fine_atmosphere=0.0, misregistration=0.0, gridding=0.0,
             psf=False, spectral=False, coarse_noise=0.0, fine_noise=0.0, striping=0.0, events=0.0)


def scene(size=128, seed=3, **effects) -> RealisticScene:
    config = SampleSeriesConfig(size=size, seed=seed, realism="realistic")
    return RealisticScene(config, RealismConfig(**{**QUIET, **effects}))


def block_mean(image: np.ndarray, f: int) -> np.ndarray:
    b, h, w = image.shape
    return image.reshape(b, h // f, f, w // f, f).mean(axis=(2, 4))


def test_quiet_sensors_give_the_block_mean_of_the_truth():
    s = scene()
    truth = s.truth(3, False)
    coarse, valid = s.coarse_observation(3, False)
    np.testing.assert_allclose(coarse, block_mean(truth, 16), atol=1e-6)
    assert valid.all()
    fine, ok = s.fine_observation(truth, 3)
    np.testing.assert_allclose(fine, truth, atol=1e-7)


def test_reflectance_is_plausible_and_the_canopy_is_non_linear():
    s = scene()
    april, july = s.truth(0, False), s.truth(6, False)
    crop = s.landcover == 3
    red, nir = 2, 3
    assert july[nir][crop].mean() > april[nir][crop].mean() + 0.1  # summer crop greens up
    assert july[red][crop].mean() < april[red][crop].mean()
    water = s.landcover == 0
    assert july[nir][water].max() < 0.02 and 0 <= july.min() and july.max() <= 1
    # red saturates at a lower LAI than the NIR (k 0.9 vs 0.32): reflectance is not linear in the LAI
    s_tab, v_tab = spectra.band_tables(718.0, "soil", spectra.OLI_BANDS)
    lai = np.array([0.0, 1.0, 2.0, 4.0])
    values = spectra.lookup(s_tab, lai) + spectra.lookup(v_tab, lai)
    red_steps, nir_steps = np.diff(values[red]), np.diff(values[nir])
    assert abs(red_steps[2]) < 0.25 * abs(red_steps[0])  # red nearly saturated beyond LAI 2
    assert nir_steps[2] > 0.25 * nir_steps[0]  # the NIR still rises


def test_coarse_bands_differ_from_the_fine_bands_by_land_cover():
    """MODIS and OLI band responses: the coarse / fine ratio of the same surface depends on the land cover and the
    canopy's state (not one gain per band)."""
    ratios = []
    for red_edge, lai in ((722.0, 4.0), (712.0, 0.5), (718.0, 2.0)):
        s_oli, v_oli = spectra.band_tables(red_edge, "soil", spectra.OLI_BANDS)
        s_mod, v_mod = spectra.band_tables(red_edge, "soil", spectra.MODIS_BANDS)
        lai_ = np.array([lai])
        oli = spectra.lookup(s_oli, lai_) + spectra.lookup(v_oli, lai_)
        mod = spectra.lookup(s_mod, lai_) + spectra.lookup(v_mod, lai_)
        ratios.append((mod / oli)[:, 0])
    ratios = np.array(ratios)
    assert (ratios.max(axis=0) - ratios.min(axis=0))[:4].max() > 0.02  # > 2 % spread between surfaces
    s1, s2 = scene(spectral=False), scene(spectral=True)
    assert not np.allclose(s1.coarse_observation(5, False)[0], s2.coarse_observation(5, False)[0], atol=1e-3)


def _high_frequency_share(image: np.ndarray) -> float:
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(image.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(image.shape[1]))[None, :]
    return float(power[(fy > 0.25) | (fx > 0.25)].sum() / power.sum())


def test_the_psf_is_wider_than_the_pixel_and_grows_with_the_view_angle():
    ky0, kx0 = sensors.psf_kernels(16, 0.0)
    ky1, kx1 = sensors.psf_kernels(16, 45.0)
    assert len(kx0) == 33 and kx0.argmax() == 16 and np.isclose(kx0.sum(), 1.0)  # triangle, two pixels at the base
    np.testing.assert_allclose(kx0[16 - 8], 0.5 * kx0[16], rtol=1e-6)
    assert len(kx1) > 1.9 * len(kx0) and len(ky1) > len(ky0)  # sec^2 along scan, sec along track at 45 degrees
    # the coarse image's spectrum: less high-frequency energy than the block mean of the same reflectance
    sharp, blurred = scene(size=256, psf=False), scene(size=256, psf=True, max_view_zenith=30.0)
    a, b = sharp.coarse_observation(4, False)[0], blurred.coarse_observation(4, False)[0]
    assert _high_frequency_share(b[3]) < 0.8 * _high_frequency_share(a[3])


def test_the_geolocation_error_is_found_by_cross_correlation():
    s = scene(size=192, psf=True, misregistration=0.4)
    date = 5
    truth = s.reflectance(date, False, coarse=True)[0]
    observed, _ = s.coarse_observation(date, False)
    # search the shift that best explains the coarse image (normalised cross-correlation over a grid of shifts)
    best, found = -2.0, None
    for dy in np.arange(-1.0, 1.01, 0.1):
        for dx in np.arange(-1.0, 1.01, 0.1):
            model = sensors.coarse_sample(truth, 16, float(s.view_zenith[date]), (dy, dx), 0.0,
                                          np.random.default_rng(0))
            c = np.corrcoef(model[3].ravel(), observed[3].ravel())[0, 1]
            if c > best:
                best, found = c, (dy, dx)
    np.testing.assert_allclose(found, s.geolocation[date], atol=0.11)
    assert np.abs(s.geolocation[date]).max() > 0.05  # a real shift was drawn


def test_atmosphere_and_brdf_by_hand():
    image = np.full((6, 1, 1), 0.2, np.float32)
    out = sensors.atmosphere(image, 0.1, coarse=True)
    blue = (469.0 / 550.0) ** -1.3
    np.testing.assert_allclose(out[0, 0, 0], 0.2 * (1 - 0.4 * blue * 0.1) + 0.1 * blue * 0.1, rtol=1e-5)
    assert out[0, 0, 0] - 0.2 > out[5, 0, 0] - 0.2  # the blue is hit harder than the SWIR
    factor = sensors.brdf_factor(np.array([0.35, 0.05]), 45.0, 1.0)
    np.testing.assert_allclose(factor, 1 + np.array([0.35, 0.05]) * (np.sqrt(2) - 1), rtol=1e-6)
    s = scene(brdf=1.0, max_view_zenith=45.0)
    date = int(np.argmax(s.view_zenith))
    plain = scene().coarse_observation(date, False)[0]
    with_brdf = s.coarse_observation(date, False)[0]
    assert np.abs(with_brdf - plain).max() > 0.005
    s_atm = scene(atmosphere=0.05)
    assert np.abs(s_atm.dtau).max() > 0
    assert not np.allclose(s_atm.coarse_observation(2, False)[0], scene().coarse_observation(2, False)[0])


def test_fine_noise_and_column_striping():
    s = scene(size=192, fine_noise=0.003, striping=0.01)
    truth = s.truth(4, False)
    fine, ok = s.fine_observation(truth, 4)
    residual = fine - truth
    assert 0.002 < residual.std() < 0.02 and ok.all()
    ratio = fine / np.maximum(truth, 1e-3)
    column_gain = np.median(ratio[3], axis=0)  # NIR: per-column gain, the same on every row
    assert column_gain.std() > 0.004
    assert np.corrcoef(column_gain, s.striping[3, 0])[0, 1] > 0.9


def test_sub_coarse_pixel_land_cover_changes_between_pairs():
    s = scene(size=192, events=0.2)
    config = s.config
    assert len(s.events) >= 10
    kinds = {e.kind for e in s.events}
    assert kinds == {"harvest", "burn", "building"}
    for e in s.events:
        assert e.date_index not in config.pair_indices and 0 < e.date_index < config.n_dates
        assert e.rows[1] - e.rows[0] < config.factor and e.cols[1] - e.cols[0] < config.factor
    # a burn darkens its patch in the NIR from its date on, and not before
    burn = next(e for e in s.events if e.kind == "burn")
    sl = (3, slice(*burn.rows), slice(*burn.cols))
    before = s.truth(burn.date_index - 1, False)[sl].mean()
    after = s.truth(burn.date_index, False)[sl].mean()
    assert after < 0.5 * before and after < 0.1


def test_double_cropped_fields_have_two_seasons():
    s = scene(size=192)
    double = s.landcover == 6
    assert double.any()
    curve = np.array([s.lai(doy)[0][double].mean() for doy in range(60, 320, 5)])
    peaks = [i for i in range(1, len(curve) - 1) if curve[i] > curve[i - 1] and curve[i] >= curve[i + 1]]
    assert len(peaks) == 2 and curve[peaks].min() > 2 * curve.min()


def test_clouds_and_shadows_are_nodata_in_fine_and_coarse(tmp_path):
    config = SampleSeriesConfig(size=128, n_dates=6, pair_indices=(0, 5), flood_indices=(), seed=9,
                                realism="realistic", effects={"cloud_cover": 0.3, "cloud_probability": 1.0})
    series = make_sample_series(str(tmp_path), config)
    for path in series.fine + series.coarse:
        _, valid = read_block(path, scale=1e-4)
        share = 1 - valid.mean()
        assert 0.02 < share < 0.7, (path, share)
    _, truth_ok = read_block(series.truth[0], scale=1e-4)
    assert truth_ok.all()  # the truth has no cloud


def test_make_sample_series_realistic_files_manifest_and_determinism(tmp_path):
    config = SampleSeriesConfig(size=64, n_dates=4, pair_indices=(0, 3), flood_indices=(2,), seed=5,
                                realism="realistic")
    a = make_sample_series(str(tmp_path / "a"), config)
    b = make_sample_series(str(tmp_path / "b"), dataclasses.replace(config))
    assert len(a.fine) == 2 and len(a.coarse) == 4 and len(a.truth) == 4
    info = raster_info(a.coarse[0])
    assert (info.width, info.height, info.bands) == (4, 4, 6)
    for p, q in zip(a.coarse + a.fine, b.coarse + b.fine):
        np.testing.assert_array_equal(read_block(p)[0], read_block(q)[0])
    manifest = json.load(open(a.manifest))
    sim = manifest["simulator"]
    assert sim["realism"]["psf"] is True and len(sim["view_zenith_deg"]) == 4
    assert "double crop" in manifest["classes"]
    # the pair images are observations (noise, striping, atmosphere), not the truth
    assert not np.array_equal(read_block(a.fine[0])[0], read_block(a.truth[0])[0])


def test_bad_realism_settings_are_refused():
    with pytest.raises(InputError, match="Unknown realism setting"):
        RealismConfig.from_dict({"fog": 1})
    with pytest.raises(InputError, match="finite number"):
        RealismConfig.from_dict({"atmosphere": float("nan")})
    with pytest.raises(InputError, match="realistic"):
        SampleSeriesConfig(effects={"psf": False}).validate()
    assert RealismConfig.parse("psf=false, misregistration=0.3") == {"psf": False, "misregistration": 0.3}
    with pytest.raises(InputError, match="true or false"):
        RealismConfig.parse("psf=maybe")


def test_make_sample_series_realistic_from_the_catalog(tmp_path):
    from stf_fusion.core.catalog import execute, spec

    result = execute(spec("make_sample_series"), {
        "SIZE": 64, "FACTOR": 16, "N_DATES": 3, "PAIRS": "0,2", "FLOOD": "", "SEED": 1, "REALISM": "realistic",
        "EFFECTS": "psf=false, events=0", "INTERVAL_DAYS": 16, "NOISE": 0.003, "START_DATE": "2021-04-01",
        "OUTPUT_FOLDER": str(tmp_path)}, None)
    manifest = json.load(open(os.path.join(str(tmp_path), "series.json")))
    assert manifest["simulator"]["realism"]["psf"] is False and manifest["simulator"]["events"] == []
    assert len(result["COARSE"]) == 3
