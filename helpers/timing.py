"""Timing that is fair to both sides: warm-up, best of several repeats."""

from __future__ import annotations

import timeit
from collections.abc import Callable


def best_time(
    fn: Callable[[], object], repeat: int = 5, min_time: float = 0.05
) -> float:
    """Seconds per call of ``fn``: the best of ``repeat`` runs of an autoranged loop.

    The best (not the mean) is the least disturbed by other work on the
    machine; compare timings taken in the same session as ratios.
    """
    timer = timeit.Timer(fn)
    number = 1
    while True:  # grow the loop until one run takes at least min_time
        if timer.timeit(number) >= min_time or number >= 1 << 20:
            break
        number *= 2
    return min(timer.repeat(repeat=repeat, number=number)) / number


def format_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
