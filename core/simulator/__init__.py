"""The realistic scene simulator (``stf:make_sample_series`` with ``REALISM=realistic``): the physics of two sensors
looking at one landscape, for judging whether a method learns what the linear control generator
(:mod:`..synthetic`) cannot show. See :mod:`.scene`, :mod:`.sensors` and :mod:`.spectra`."""
from .scene import CLASSES, EVENT_KINDS, RealismConfig, RealisticScene

__all__ = ["CLASSES", "EVENT_KINDS", "RealismConfig", "RealisticScene"]
