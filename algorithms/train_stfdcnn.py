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
    TRAIN_DATES_HELP = ("The pair dates to train the networks on, separated by commas; the other interior pairs are "
                        "then the validation dates. Empty: at most MAX_PAIRS pairs spread over the series (the "
                        "paper trains on 3 of 17), leaving at least one interior pair out for validation when the "
                        "series has three pairs or more.")
    SHORT_HELP = (
        "Trains STFDCNN (Song et al. 2018, IEEE JSTARS 11(3)): a nonlinear-mapping CNN per band (coarse -> "
        "low-spatial-resolution fine) and one super-resolution CNN (LSR fine -> fine), five-layer residual CNNs "
        "(n1 = 64, n2 = 32, k1 = 9, k2 = k3 = 5, ReLU) trained with MSE on 33 x 33 sub-images of the pairs. The LSR "
        "images are the fine images downsampled bicubically by FACTOR (paper: 10). Each CNN starts as the identity "
        "(last layer zero), so EPOCHS = 0 saves the untrained model: the paper's fusion model (high-pass modulation "
        "+ change weights) on bicubic images. Validation predicts held-out pair dates through the real prediction "
        "path; every network keeps its best epoch (possibly 0) and stops after PATIENCE epochs without improvement. "
        "The model file records its held-out RMSE beside its untrained start's and the naive and additive "
        "baselines'. Defaults train in about 10 s on the bundled sample on a CPU (at most 5 epochs per network: "
        "longer training sharpens the NLM CNNs' output, which helps large changes but adds noise to dates close to a "
        "pair); on a real scene (e.g. CIA, 17 pairs) keep 3 training pairs and raise MAX_SUBIMAGES (e.g. 20000) on a "
        "GPU; watch the held-out RMSE per epoch in the loss CSV before raising EPOCHS. "
        "Predict with stf:predict. Coarse images must be on the fine grid (stf:resample_coarse)."
    )

    def add_method_parameters(self) -> None:
        self.add_int("EPOCHS", "Epochs (at most)", "Passes over the training sub-images per network; 0 saves the "
                     "untrained model (a baseline).", _D.epochs, 0, 100000)
        self.add_int("PATIENCE", "Early stopping patience", "Stop a network after this many epochs without a "
                     "better held-out RMSE (0: never early).", _D.patience, 0, 100000, advanced=True)
        self.add_int("MAX_PAIRS", "Training pairs (at most)", "Pairs spread over the series the networks learn "
                     "from when TRAIN_DATES is empty (paper: 3).", _D.max_pairs, 1, 1000, advanced=True)
        self.add_int("MAX_SUBIMAGES", "Sub-images per network (at most)", "Drawn at random among the valid "
                     "sub-images; bounds memory and epoch time whatever the scene size.", _D.max_subimages, 1,
                     10_000_000, advanced=True)
        self.add_int("BATCH", "Batch size", "Sub-images per gradient step.", _D.batch, 1, 65536, advanced=True)
        self.add_enum("OPTIMIZER", "Optimiser", "adam: the paper's per-layer learning rates x 10, converges in a "
                      "few epochs; sgd: the paper's rates with momentum 0.9 (needs thousands of epochs).",
                      ("sgd", "adam"), _D.optimizer)
        self.add_float("LR", "Learning rate (first two layers)", "Paper: 1e-4 (x 10 with adam).", _D.lr, 1e-9, 1.0,
                       advanced=True)
        self.add_float("LR_LAST", "Learning rate (last layer)", "Paper: 1e-5 (x 10 with adam).", _D.lr_last, 1e-9,
                       1.0, advanced=True)
        self.add_int("FACTOR", "LSR downsampling factor", "Fine -> low-spatial-resolution factor (paper: 10).",
                     _D.factor, 2, 100, advanced=True)
        self.add_int("PATCH", "Sub-image size", "Training sub-image side in pixels (paper: 33; at the LSR level at "
                     "most half the LSR image).", _D.patch, 3, 512, advanced=True)
        self.add_int("STRIDE", "Sub-image stride", "Step between training sub-images at the fine level.",
                     _D.stride, 1, 512, advanced=True)
        self.add_int("LSR_STRIDE", "LSR sub-image stride", "Step between training sub-images at the LSR level.",
                     _D.lsr_stride, 1, 512, advanced=True)
        self.add_int("WINDOW", "Weighting window", "Patch size of the change-based weights of the fusion model "
                     "(paper: 9).", _D.window, 1, 99, advanced=True)
        self.add_float("HPM_MAX", "High-pass modulation bound", "The ratio T2 / T1 is used within [1 / bound, "
                       "bound] and where T1 >= 0.01; elsewhere the modulation is additive.", _D.hpm_max, 1.01,
                       1000.0, advanced=True)

    def train(self, series, train_dates, scale, params, device, feedback):
        return train_stfdcnn(series, train_dates, scale, params, device, feedback)
