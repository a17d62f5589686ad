"""QGIS styles for the outputs, written as ``.qml`` side-car files (QGIS reads ``<name>.qml`` beside a raster as its
default style; colour-interpretation tags in the GeoTIFF are ignored by QGIS 3.22).

Every prediction of a series gets the SAME style: bands chosen from the band names (true colour red-green-blue
where the names say so, else false colour NIR-red-green, else bands 3-2-1, or one grey band), and one stretch
for the whole series from the 2nd and 98th percentiles of the pair images' stored values, so that the temporal
controller shows changes, not per-layer stretches. The one-band side layers get their own styles: a palette for
the quality of gap-aware fusion, a colour ramp from 0 for the error estimates. No QGIS import: plain XML text.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .raster import read_thumbnail, valid_mask
from .series import SceneSeries

PERCENTILES = (2.0, 98.0)


def display_bands(names: list[str] | tuple[str, ...], count: int) -> tuple[list[int], str]:
    """(1-based band indices to show as red, green, blue - or one band for grey, what they are)."""
    lower = [str(n).strip().lower() for n in names or []]

    def find(*keys):
        for key in keys:
            for i, name in enumerate(lower):
                if name == key or name.startswith(key + " ") or name.endswith(" " + key):
                    return i + 1
        return None

    red, green, blue, nir = find("red", "r"), find("green", "g"), find("blue", "b"), find("nir", "near infrared")
    if red and green and blue:
        return [red, green, blue], "true colour"
    if nir and red and green:
        return [nir, red, green], "false colour (NIR, red, green)"
    if count >= 3:
        return [3, 2, 1], "bands 3-2-1"
    return [1], "band 1 in grey"


def series_stretch(series: SceneSeries, bands: list[int]) -> list[tuple[float, float]]:
    """(min, max) of each displayed band in stored values: the 2nd and 98th percentiles over thumbnails of every
    pair image of the series (one stretch for every output)."""
    samples: list[list[np.ndarray]] = [[] for _ in bands]
    for item in series.fine:
        raw = read_thumbnail(item.path)
        ok = valid_mask(raw, item.info.nodata)
        for i, b in enumerate(bands):
            samples[i].append(raw[b - 1][ok].astype(np.float64))
    result = []
    for values in samples:
        data = np.concatenate(values) if values else np.zeros(0)
        if data.size == 0:
            result.append((0.0, 1.0))
            continue
        low, high = np.percentile(data, PERCENTILES)
        result.append((float(low), float(high if high > low else low + 1)))
    return result


# fixed limits: QGIS keeps the style's min and max instead of a per-layer stretch
_ORIGIN = ("<minMaxOrigin><limits>None</limits><extent>WholeRaster</extent><statAccuracy>Estimated</statAccuracy>"
           "<cumulativeCutLower>0.02</cumulativeCutLower><cumulativeCutUpper>0.98</cumulativeCutUpper>"
           "<stdDevFactor>2</stdDevFactor></minMaxOrigin>")


def _enhancement(tag: str, low: float, high: float) -> str:
    return (f"<{tag}><minValue>{low:.10g}</minValue><maxValue>{high:.10g}</maxValue>"
            f"<algorithm>StretchToMinimumMaximum</algorithm></{tag}>")


def qml(bands: list[int], stretch: list[tuple[float, float]]) -> str:
    """A QGIS 3 raster style: a multiband colour renderer (three bands) or a grey band, with fixed min/max (the
    ``None`` limits keep QGIS from recomputing a per-layer stretch)."""
    if len(bands) == 3:
        (r, g, b), ((r0, r1), (g0, g1), (b0, b1)) = bands, stretch
        renderer = (f'<rasterrenderer type="multibandcolor" redBand="{r}" greenBand="{g}" blueBand="{b}" '
                    f'opacity="1" alphaBand="-1" nodataColor=""><rasterTransparency/>{_ORIGIN}'
                    + _enhancement("redContrastEnhancement", r0, r1)
                    + _enhancement("greenContrastEnhancement", g0, g1)
                    + _enhancement("blueContrastEnhancement", b0, b1) + "</rasterrenderer>")
    else:
        low, high = stretch[0]
        renderer = (f'<rasterrenderer type="singlebandgray" grayBand="{bands[0]}" gradient="BlackToWhite" '
                    f'opacity="1" alphaBand="-1" nodataColor=""><rasterTransparency/>{_ORIGIN}'
                    + _enhancement("contrastEnhancement", low, high) + "</rasterrenderer>")
    return _document(renderer)


# ColorBrewer's YlOrRd (light = small error, dark red = large), from 0 to the series' 98th percentile
RAMP = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")


def _document(renderer: str) -> str:
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.22.0" styleCategories="Symbology">\n<pipe>\n' + renderer + "\n"
            '<brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
            '<huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeStrength="100" '
            'colorizeRed="255" colorizeGreen="128" colorizeBlue="128"/>\n'
            '<rasterresampler maxOversampling="2"/>\n</pipe>\n<blendMode>0</blendMode>\n</qgis>\n')


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def ramp_qml(high: float, band: int = 1) -> str:
    """A QGIS 3 single-band pseudocolour style: :data:`RAMP` interpolated from 0 to ``high`` (values above take
    the last colour), the same for every date of a series so that the temporal controller compares them."""
    high = float(high) if np.isfinite(high) and high > 0 else 1.0
    items = "".join(f'<item alpha="255" value="{high * i / (len(RAMP) - 1):.6g}" '
                    f'label="{high * i / (len(RAMP) - 1):.4g}" color="{colour}"/>' for i, colour in enumerate(RAMP))
    renderer = (f'<rasterrenderer type="singlebandpseudocolor" band="{band}" opacity="1" alphaBand="-1" '
                f'classificationMin="0" classificationMax="{high:.6g}" nodataColor=""><rasterTransparency/>{_ORIGIN}'
                f'<rastershader><colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" '
                f'minimumValue="0" maximumValue="{high:.6g}" labelPrecision="4">{items}</colorrampshader>'
                '</rastershader></rasterrenderer>')
    return _document(renderer)


def classes_qml(classes: "tuple[tuple[int, str, str], ...]", band: int = 1) -> str:
    """A QGIS 3 paletted style: one (value, label, colour) entry per class."""
    entries = "".join(f'<paletteEntry value="{value}" alpha="255" label="{_escape(label)}" color="{colour}"/>'
                      for value, label, colour in classes)
    renderer = (f'<rasterrenderer type="paletted" band="{band}" opacity="1" alphaBand="-1" nodataColor="">'
                f'<rasterTransparency/><colorPalette>{entries}</colorPalette></rasterrenderer>')
    return _document(renderer)


def side_qml(layer: Any, values: np.ndarray) -> str:
    """The style of a side layer (:class:`.fusion.SideLayer`): its classes, or its ramp up to the 98th percentile
    of ``values`` (a sample of the series' values); empty when it has neither."""
    if layer.classes:
        return classes_qml(layer.classes)
    if layer.ramp:
        return ramp_qml(float(np.percentile(values, 98.0)) if values.size else 1.0)
    return ""


def series_qml(series: SceneSeries) -> tuple[str, str]:
    """(the style every output of ``series`` shares, what it shows)."""
    grid = series.grid
    bands, what = display_bands(grid.descriptions, grid.bands)
    return qml(bands, series_stretch(series, bands)), what


def style_path(raster_path: str) -> str:
    """``<name>.qml`` beside ``<name>.tif``: the side-car QGIS loads as the layer's default style."""
    stem = raster_path[:-4] if raster_path.lower().endswith((".tif", ".img")) else raster_path
    return stem + ".qml"
