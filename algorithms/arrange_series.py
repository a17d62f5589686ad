"""stf:arrange_series - the 4D (band, time, row, col) arrangement of a series as multi-band GeoTIFFs."""
from __future__ import annotations

from qgis.core import QgsProcessingParameterRasterDestination

from ..core.deep.arrangement import write_series_geotiff
from ..core.raster import OutputTransaction
from ..core.series import require_fine_grid
from .base import StfAlgorithm


class ArrangeSeries(StfAlgorithm):
    ALG_ID = "arrange_series"
    DISPLAY_NAME = "Arrange a series in 4D (SPATS)"
    GROUP = "deep"
    SHORT_HELP = (
        "Writes the scene series as the 4D spatio-temporal-spectral arrangement STF3DCNN works on (STF3DCNN paper, "
        "Remote Sens. 2020, 12(23), 3888, doi:10.3390/rs12233888, the "
        "multidimensional data set of Zhang et al. 2017): one multi-band GeoTIFF for the coarse images of every "
        "date and one for the fine images of the pair dates. TSB order (time sequence in band): all dates of band "
        "1, then all dates of band 2, ...; TIB order (time interleaved by band): all bands of date 1, then date 2. "
        "Each layer is described by its date and band name. (TSP and TIS, the pixel-interleaved orders, are "
        "available from Python: core.deep.arrangement.convert.)"
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_series_inputs(predict_dates=False)
        self.add_enum("ORDER", "Layer order", "TSB: band-major; TIB: date-major.", ("TSB", "TIB"), "TSB")
        self._add(QgsProcessingParameterRasterDestination("OUTPUT_COARSE", "Coarse series (4D)"),
                  "Every coarse date, on the fine grid.")
        self._add(QgsProcessingParameterRasterDestination("OUTPUT_FINE", "Fine series (4D)"),
                  "The fine images of the pair dates.")

    def execute(self, parameters, context, feedback):
        series = self.read_series(parameters, context)
        require_fine_grid(series)
        order = self.enum_string(parameters, "ORDER", context)
        scale = self.scale(parameters, context)
        coarse = self.parameterAsOutputLayer(parameters, "OUTPUT_COARSE", context)
        fine = self.parameterAsOutputLayer(parameters, "OUTPUT_FINE", context)
        with OutputTransaction() as tx:
            write_series_geotiff(list(series.coarse), tx.add(coarse), scale, order)
            feedback.set_progress(50)
            write_series_geotiff(list(series.fine), tx.add(fine), scale, order)
        feedback.info(f"{len(series.coarse)} coarse and {len(series.fine)} fine dates x {series.grid.bands} bands "
                      f"in {order} order.")
        return {"OUTPUT_COARSE": coarse, "OUTPUT_FINE": fine}
