"""stf:train_stfdcnn."""
from __future__ import annotations

from ..core.deep.stfdcnn import METHOD, StfdcnnParams, train_stfdcnn
from .training_base import TrainingAlgorithm

_D = StfdcnnParams()


class TrainStfdcnn(TrainingAlgorithm):
    ALG_ID = "train_stfdcnn"
    DISPLAY_NAME = "Train STFDCNN"
    METHOD = METHOD
    PARAMS = StfdcnnParams
    SHORT_HELP = (
        "Trains STFDCNN (Song et al. 2018, IEEE JSTARS 11(3)): a nonlinear-mapping CNN per band (coarse -> "
        "low-spatial-resolution fine) and one super-resolution CNN (LSR fine -> fine), five-layer residual CNNs "
        "(n1 = 64, n2 = 32, k1 = 9, k2 = k3 = 5, ReLU) trained with MSE on 33 x 33 sub-images of the pairs. The LSR "
        "images are the fine images downsampled bicubically by FACTOR (paper: 10). Default optimiser: SGD with "
        "the paper's per-layer learning rates (1e-4, last layer 1e-5); Adam is an option. Predict with "
        "stf:predict. Coarse images must be on the fine grid (stf:resample_coarse)."
    )

    def add_method_parameters(self) -> None:
        self.add_int("EPOCHS", "Epochs", "Passes over the training sub-images (per network).", _D.epochs, 1, 100000)
        self.add_int("BATCH", "Batch size", "Sub-images per gradient step.", _D.batch, 1, 65536, advanced=True)
        self.add_enum("OPTIMIZER", "Optimiser", "sgd: the paper's per-layer learning rates with momentum 0.9; adam: "
                      "the same rates x 10, converges faster on small budgets.", ("sgd", "adam"), _D.optimizer)
        self.add_float("LR", "Learning rate (first two layers)", "Paper: 1e-4.", _D.lr, 1e-9, 1.0, advanced=True)
        self.add_float("LR_LAST", "Learning rate (last layer)", "Paper: 1e-5.", _D.lr_last, 1e-9, 1.0,
                       advanced=True)
        self.add_int("FACTOR", "LSR downsampling factor", "Fine -> low-spatial-resolution factor (paper: 10).",
                     _D.factor, 2, 100, advanced=True)
        self.add_int("PATCH", "Sub-image size", "Training sub-image side in pixels (paper: 33).", _D.patch, 3, 512,
                     advanced=True)
        self.add_int("STRIDE", "Sub-image stride", "Step between training sub-images at the fine level.",
                     _D.stride, 1, 512, advanced=True)
        self.add_int("WINDOW", "Weighting window", "Patch size of the change-based weights of the fusion model "
                     "(paper: 9).", _D.window, 1, 99, advanced=True)

    def train(self, series, train_dates, scale, params, device, feedback):
        return train_stfdcnn(series, train_dates, scale, params, device, feedback)
