"""Shared base of the training algorithms (stf:train_stfdcnn, stf:train_dcnn, stf:train_stf3dcnn)."""
from __future__ import annotations

from ..core.series import require_fine_grid
from .base import StfAlgorithm


class TrainingAlgorithm(StfAlgorithm):
    """Series inputs (+ TRAIN_DATES when the method chooses its pairs), method settings, SEED, DEVICE -> MODEL.

    Subclasses set METHOD and PARAMS (the settings dataclass, read with :meth:`settings`), declare their own
    parameters in :meth:`add_method_parameters` and call the core trainer in :meth:`train`."""

    GROUP = "deep"
    NEEDS_TORCH = True
    METHOD = ""
    PARAMS: type = object
    TRAIN_DATES = True
    TRAIN_DATES_HELP = "The pair dates to train on, separated by commas. Empty: every pair."

    def add_method_parameters(self) -> None:
        raise NotImplementedError

    def train(self, series, train_dates, scale, params, device, feedback) -> tuple[dict, dict]:
        raise NotImplementedError

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_series_inputs(predict_dates=False)
        if self.TRAIN_DATES:
            self.add_string("TRAIN_DATES", "Training pair dates", self.TRAIN_DATES_HELP)
        self.add_method_parameters()
        self.add_int("SEED", "Random seed", "Same seed, data and device: same model.", self.PARAMS().seed, 0,
                     2**31 - 1, advanced=True)
        self.add_device()
        self.add_model_output()

    def execute(self, parameters, context, feedback):
        series = self.read_series(parameters, context)
        require_fine_grid(series)
        train_dates = self.dates(parameters, "TRAIN_DATES", context) if self.TRAIN_DATES else None
        networks, metadata = self.train(series, train_dates, self.scale(parameters, context),
                                        self.settings(parameters, context, self.PARAMS),
                                        self.enum_string(parameters, "DEVICE", context), feedback)
        return self.save_trained_model(parameters, context, self.METHOD, networks, metadata)
