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


def os_error_message(exc: OSError, doing: str = "") -> str:
    """A user message for an operating-system error (full disk, read-only file system, permission, file too large):
    the problem and the path, never a traceback. ``doing`` says what was being done ("writing the outputs")."""
    problem = exc.strerror or str(exc) or type(exc).__name__
    path = exc.filename or ""
    where = f" '{path}'" if path else ""
    hint = {28: " Free some space or choose another output folder.",  # ENOSPC
            27: " The file system does not allow a file this large.",  # EFBIG
            30: " Choose an output folder on a writable disk.",  # EROFS
            13: " Choose an output folder you may write to."}.get(exc.errno or 0, "")  # EACCES
    return f"{problem}{' while ' + doing if doing else ''}{where}.{hint} No output was written."
