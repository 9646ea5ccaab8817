"""Wall-clock timing, peak memory and machine load of benchmark runs."""

from __future__ import annotations

import os
import resource
import sys
import time


class Stopwatch:
    """Wall-clock seconds (``time.perf_counter``) since the start and between laps.

    Also a context manager: ``with Stopwatch() as watch: ...`` leaves the block's seconds in
    ``watch.seconds``.

    Examples
    --------
    >>> watch = Stopwatch()
    >>> fit_s = watch.lap()      # seconds since the start
    >>> attribution_s = watch.lap()  # seconds since the previous lap
    """

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.seconds = float("nan")

    def lap(self) -> float:
        """Seconds since the previous lap (or the start); starts the next lap."""
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        return seconds

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.start

    def __enter__(self) -> Stopwatch:
        self.start = self.last = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = self.elapsed()


def peak_rss_mib() -> float:
    """Process high-water mark of the resident set size (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def load_average() -> float:
    """The 1-minute load average of the machine (NaN where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
