"""stf:train_dcnn."""
from __future__ import annotations

from ..core.deep.dcnn import METHOD, DcnnParams, train_dcnn
from .training_base import TrainingAlgorithm

_D = DcnnParams()


class TrainDcnn(TrainingAlgorithm):
    ALG_ID = "train_dcnn"
    DISPLAY_NAME = "Train patch DCNN"
    METHOD = METHOD
    PARAMS = DcnnParams
    TRAIN_DATES_HELP = "The pair dates to train on (at least two), separated by commas. Empty: every pair."
    SHORT_HELP = (
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
        "images must be on the fine grid (stf:resample_coarse, bicubic)."
    )

    def add_method_parameters(self) -> None:
        self.add_int("EPOCHS", "Epochs (at most)", "Passes over the training patches (paper: 50); 0 saves the "
                     "untrained model (the additive baseline).", _D.epochs, 0, 100000)
        self.add_int("PATIENCE", "Early stopping patience", "Stop after this many epochs without a better held-out "
                     "RMSE (0: never early).", _D.patience, 0, 100000, advanced=True)
        self.add_int("MAX_PATCHES", "Training patches", "At most this many 3 x 3 patches, drawn once.",
                     _D.max_patches, 1, 100_000_000)
        self.add_bool("AUGMENT", "Temporal augmentation", "Move each sample to a random point between its two "
                      "dates (pairs are far apart; predictions are usually near a pair).", _D.augment,
                      advanced=True)
        self.add_int("BATCH", "Batch size", "Patches per gradient step (paper: 64).", _D.batch, 1, 65536,
                     advanced=True)
        self.add_float("LR", "Learning rate", "Initial learning rate of SGD (paper: 0.01).", _D.lr, 1e-9, 10.0,
                       advanced=True)
        self.add_float("WEIGHT_DECAY", "Weight decay", "Paper: 1e-4.", _D.weight_decay, 0.0, 1.0, advanced=True)
        self.add_bool("TWO_REFERENCES", "Blend both neighbouring pairs",
                      "At prediction, blend the predictions from the pairs before and after each date, weighted by "
                      "the coarse change in 9 x 9 windows; off: the nearest pair only.", _D.two_references)

    def train(self, series, train_dates, scale, params, device, feedback):
        return train_dcnn(series, train_dates, scale, params, device, feedback)
