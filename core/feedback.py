"""Progress, cancel and message hooks used by every long-running core function.

The core never sees ``QgsProcessingFeedback``; the algorithms wrap it in an object with this interface.
"""
from __future__ import annotations

from typing import Protocol

from .errors import CancelledError


class Feedback(Protocol):
    """What core functions need from their caller."""

    def set_progress(self, percent: float) -> None:
        """Report progress in percent (0-100) of the current task."""

    def is_canceled(self) -> bool:
        """True once the user has asked to stop."""

    def info(self, message: str) -> None:
        """Report a line of information (device chosen, timings, files written)."""


class NullFeedback:
    """Feedback that records nothing and never cancels."""

    def set_progress(self, percent: float) -> None:
        pass

    def is_canceled(self) -> bool:
        return False

    def info(self, message: str) -> None:
        pass


class RecordingFeedback(NullFeedback):
    """Feedback that keeps every info line (``lines``) and when it came (``times``, ``time.perf_counter``); never
    cancels. For scripts, benchmarks and tests that read what a run reported."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.times: list[float] = []

    def info(self, message: str) -> None:
        import time

        self.lines.append(message)
        self.times.append(time.perf_counter())


class SubFeedback:
    """Maps 0-100 % of a sub-task onto the range [start, end] of a parent feedback."""

    def __init__(self, parent: Feedback, start: float, end: float) -> None:
        self.parent = parent
        self.start = start
        self.end = end

    def set_progress(self, percent: float) -> None:
        self.parent.set_progress(self.start + (self.end - self.start) * max(0.0, min(100.0, percent)) / 100.0)

    def is_canceled(self) -> bool:
        return self.parent.is_canceled()

    def info(self, message: str) -> None:
        self.parent.info(message)


def check_cancel(feedback: Feedback | None) -> None:
    """Raise :class:`CancelledError` if the user has cancelled."""
    if feedback is not None and feedback.is_canceled():
        raise CancelledError()
