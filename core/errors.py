"""Exceptions raised by the core. Their messages are meant for the end user: they name the file and the problem."""


class StfError(Exception):
    """Base class of every error the core raises on purpose (bad input, cancel, missing package)."""


class InputError(StfError):
    """An input file or parameter is unusable (unreadable, wrong values, inconsistent with the others)."""


class GridMismatchError(InputError):
    """Two rasters that must share a grid differ in CRS, geotransform, size or band count."""


class CancelledError(StfError):
    """The user cancelled the run. Partial outputs have been removed."""

    def __init__(self, message: str = "Cancelled by the user; no output was written.") -> None:
        super().__init__(message)


class MissingDependencyError(StfError):
    """A Python package needed for this operation is not installed."""
