"""stf:train_stfdcnn."""
from __future__ import annotations

from ..core.deep.stfdcnn import METHOD, StfdcnnParams, train_stfdcnn
from ..core.series import require_fine_grid
from .base import StfAlgorithm

_D = StfdcnnParams()


class TrainStfdcnn(StfAlgorithm):
    ALG_ID = "train_stfdcnn"
    DISPLAY_NAME = "Train STFDCNN"
    GROUP = "deep"
    SHORT_HELP = (
        "Trains STFDCNN (Song et al. 2018, IEEE JSTARS 11(3)): a nonlinear-mapping CNN per band (coarse -> "
        "low-spatial-resolution fine) and one super-resolution CNN (LSR fine -> fine), five-layer residual CNNs "
        "(n1 = 64, n2 = 32, k1 = 9, k2 = k3 = 5, ReLU) trained with MSE on 33 x 33 sub-images of the pairs. The LSR "
        "images are the fine images downsampled bicubically by FACTOR (paper: 10). Default optimiser: SGD with "
        "the paper's per-layer learning rates (1e-4, last layer 1e-5); Adam is an option. Predict with "
        "stf:predict. Coarse images must be on the fine grid (stf:resample_coarse)."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_series_inputs(predict_dates=False)
        self.add_string("TRAIN_DATES", "Training pair dates (optional)",
                        "The pair dates to train on, separated by commas. Empty: every pair.")
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
        self.add_int("SEED", "Random seed", "Same seed, data and device: same model.", _D.seed, 0, 2**31 - 1,
                     advanced=True)
        self.add_device()
        self.add_model_output()

    def execute(self, parameters, context, feedback):
        series = self.read_series(parameters, context)
        require_fine_grid(series)
        params = self.settings(parameters, context, StfdcnnParams)
        networks, metadata = train_stfdcnn(
            series, self.dates(parameters, "TRAIN_DATES", context),
            self.parameterAsDouble(parameters, "SCALE", context), params,
            self.enum_string(parameters, "DEVICE", context), feedback)
        return self.save_trained_model(parameters, context, METHOD, networks, metadata)
