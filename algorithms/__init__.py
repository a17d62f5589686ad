"""One Processing algorithm per module; ``ALGORITHMS`` is what the provider registers."""
from .arrange_series import ArrangeSeries
from .evaluate import Evaluate
from .fuse_additive import FuseAdditive
from .fuse_estarfm import FuseEstarfm
from .fuse_fsdaf import FuseFsdaf
from .fuse_naive import FuseNaive
from .fuse_starfm import FuseStarfm
from .make_sample_series import MakeSampleSeries
from .predict import Predict
from .resample_coarse import ResampleCoarse
from .train_dcnn import TrainDcnn
from .train_stf3dcnn import TrainStf3dcnn
from .train_stfdcnn import TrainStfdcnn

ALGORITHMS = [MakeSampleSeries, ResampleCoarse, FuseNaive, FuseAdditive, FuseStarfm, FuseEstarfm, FuseFsdaf,
              TrainStfdcnn, TrainDcnn, ArrangeSeries, TrainStf3dcnn, Predict, Evaluate]
