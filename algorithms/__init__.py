"""One Processing algorithm per module; ``ALGORITHMS`` is what the provider registers."""
from .evaluate import Evaluate
from .fuse_naive import FuseNaive
from .make_sample_series import MakeSampleSeries
from .resample_coarse import ResampleCoarse

ALGORITHMS = [MakeSampleSeries, ResampleCoarse, FuseNaive, Evaluate]
