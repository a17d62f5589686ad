"""stf:train_stf3dcnn."""
from __future__ import annotations

from ..core.deep.stf3dcnn import METHOD, TIME_WEIGHTS, Stf3dcnnParams, train_stf3dcnn
from .training_base import TrainingAlgorithm

_D = Stf3dcnnParams()


class TrainStf3dcnn(TrainingAlgorithm):
    ALG_ID = "train_stf3dcnn"
    DISPLAY_NAME = "Train STF3DCNN"
    METHOD = METHOD
    PARAMS = Stf3dcnnParams
    TRAIN_DATES = False
    SHORT_HELP = (
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
        "raise WINDOWS (e.g. 1024) and EPOCHS."
    )

    def add_method_parameters(self) -> None:
        self.add_int("EPOCHS", "Epochs (at most)", "Passes over the training sub-cubes; 0 saves the untrained "
                     "model (a baseline).", _D.epochs, 0, 100000)
        self.add_int("PATIENCE", "Early stopping patience", "Stop after this many epochs without a better held-out "
                     "RMSE (0: never early).", _D.patience, 0, 100000, advanced=True)
        self.add_int("DEPTH", "Depth (convolution layers)", "Number of Conv3d layers (ablation of the paper).",
                     _D.depth, 2, 64)
        self.add_int("WIDTH", "Width (filters)", "Filters per hidden layer (a multiple of the band count with "
                     "BAND_GROUPS).", _D.width, 1, 1024, advanced=True)
        self.add_bool("BAND_GROUPS", "Separate filters per band", "Grouped convolutions: the network cannot learn a "
                      "coupling between the bands' changes on the pair dates (e.g. phenology) that does not hold "
                      "for other changes (e.g. a flood).", _D.band_groups, advanced=True)
        self.add_int("RESIDUAL_BLOCKS", "Residual blocks", "Extra conv-LeakyReLU-conv blocks with a skip "
                     "connection (ablation of the paper).", _D.residual_blocks, 0, 64)
        self.add_int("KERNEL_TIME", "Kernel size in time", "Odd.", _D.kernel_time, 1, 31, advanced=True)
        self.add_int("KERNEL_SPACE", "Kernel size in space", "Odd.", _D.kernel_space, 1, 31, advanced=True)
        self.add_enum("TIME_WEIGHTING", "Time weighting", "How stf:predict blends the pairs before and after a "
                      "date by default: off (nearest pair only), distance (days), change (mean absolute coarse "
                      "change).", TIME_WEIGHTS, _D.time_weighting)
        self.add_int("PATCH", "Sub-cube size (pixels)", "Side of the training sub-cubes; every date is used.",
                     _D.patch, 4, 1024, advanced=True)
        self.add_int("WINDOWS", "Training sub-cubes", "Sub-cubes read at random positions (memory is bounded by "
                     "this number, whatever the scene size); each epoch draws a reference pair and a sub-sequence "
                     "of dates for each.", _D.windows, 1, 10_000_000, advanced=True)
        self.add_int("BATCH", "Batch size", "Sub-cubes per gradient step.", _D.batch, 1, 4096, advanced=True)
        self.add_float("LR", "Learning rate", "Adam learning rate.", _D.lr, 1e-9, 1.0, advanced=True)

    def train(self, series, train_dates, scale, params, device, feedback):
        return train_stf3dcnn(series, scale, params, device, feedback)
