"""The provider's algorithms: one :class:`~.base.StfAlgorithm` subclass per entry of :mod:`..core.catalog` (the
parameters, help and run of each live there, shared with the command line). ``ALGORITHMS`` is what the provider
registers."""
from ..core.catalog import specs
from .base import StfAlgorithm

ALGORITHMS = [type("Stf_" + s.id, (StfAlgorithm,), {"ALG_ID": s.id, "__doc__": f"stf:{s.id}: {s.name}."})
              for s in specs()]
