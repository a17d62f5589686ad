"""stf:train_stf3dcnn."""
from __future__ import annotations

from ..core.deep.stf3dcnn import METHOD, TIME_WEIGHTS, Stf3dcnnParams, train_stf3dcnn
from ..core.series import require_fine_grid
from .base import StfAlgorithm

_D = Stf3dcnnParams()


class TrainStf3dcnn(StfAlgorithm):
    ALG_ID = "train_stf3dcnn"
    DISPLAY_NAME = "Train STF3DCNN"
    GROUP = "deep"
    SHORT_HELP = (
        "Trains STF3DCNN (seed 000): a 3D fully convolutional network (Conv3d over time x rows x columns, bands as "
        "channels, LeakyReLU) that maps the coarse residual sequence dC_k(t) = C(t) - C(k) against a reference "
        "pair date k to the fine residual sequence dF_k(t) = F(t) - F(k), trained with a loss on the dates with a "
        "known fine image only. stf:predict then predicts every date without a fine image in one pass: "
        "F(t) = F(k) + dF_k(t), blended between the pairs before and after t (TIME_WEIGHTING). The paper's "
        "ablations are parameters: DEPTH, RESIDUAL_BLOCKS, TIME_WEIGHTING (off = nearest pair only; the paper found "
        "time weighting hurts on abrupt changes)."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_series_inputs(predict_dates=False)
        self.add_int("EPOCHS", "Epochs", "Passes over the training sub-cubes.", _D.epochs, 1, 100000)
        self.add_int("DEPTH", "Depth (convolution layers)", "Number of Conv3d layers (ablation of the paper).",
                     _D.depth, 2, 64)
        self.add_int("WIDTH", "Width (filters)", "Filters per hidden layer.", _D.width, 1, 1024, advanced=True)
        self.add_int("RESIDUAL_BLOCKS", "Residual blocks", "Extra conv-LeakyReLU-conv blocks with a skip "
                     "connection (ablation of the paper).", _D.residual_blocks, 0, 64)
        self.add_int("KERNEL_TIME", "Kernel size in time", "Odd.", _D.kernel_time, 1, 31, advanced=True)
        self.add_int("KERNEL_SPACE", "Kernel size in space", "Odd.", _D.kernel_space, 1, 31, advanced=True)
        self.add_enum("TIME_WEIGHTING", "Time weighting", "How stf:predict blends the pairs before and after a "
                      "date by default: off (nearest pair only), distance (days), change (coarse change).",
                      TIME_WEIGHTS, _D.time_weighting)
        self.add_int("PATCH", "Sub-cube size (pixels)", "Side of the training sub-cubes; every date is used.",
                     _D.patch, 4, 1024, advanced=True)
        self.add_int("MAX_SAMPLES", "Training sub-cubes", "At most this many (position, reference pair) samples.",
                     _D.max_samples, 1, 10_000_000, advanced=True)
        self.add_int("BATCH", "Batch size", "Sub-cubes per gradient step.", _D.batch, 1, 4096, advanced=True)
        self.add_float("LR", "Learning rate", "Adam learning rate.", _D.lr, 1e-9, 1.0, advanced=True)
        self.add_int("SEED", "Random seed", "Same seed, data and device: same model.", _D.seed, 0, 2**31 - 1,
                     advanced=True)
        self.add_device()
        self.add_model_output()

    def execute(self, parameters, context, feedback):
        series = self.read_series(parameters, context)
        require_fine_grid(series)
        params = self.settings(parameters, context, Stf3dcnnParams)
        networks, metadata = train_stf3dcnn(series, self.parameterAsDouble(parameters, "SCALE", context), params,
                                            self.enum_string(parameters, "DEVICE", context), feedback)
        return self.save_trained_model(parameters, context, METHOD, networks, metadata)
