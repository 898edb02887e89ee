"""Timing that is fair to both sides, and cells that say how long they will take.

* :func:`best_time`: warm-up, then the best of several repeats (compare
  timings taken in one session, as ratios).
* :func:`load_warning`: a line to print when other work is competing for the
  cores (load average above the core count), so a slow timing is not blamed
  on the code.
* :class:`long_cell`: ``with timing.long_cell("05-pair", "trains both nets"):``
  prints, before the work starts, what the cell does and how long it took on
  the reference machine in this mode (``data/reference/timings.json``, written
  by ``tools/make_reference.py --timings``), scaled by how fast this machine
  ran a small calibration workload; afterwards it records the time it took, so
  the next reference run ships it.
"""

from __future__ import annotations

import json
import os
import time
import timeit
from collections.abc import Callable

TIMINGS_FILE = "timings.json"


def best_time(
    fn: Callable[[], object], repeat: int = 5, min_time: float = 0.05
) -> float:
    """Seconds per call of ``fn``: the best of ``repeat`` runs of an autoranged loop.

    The first call warms up caches and lazy initialisation and is not counted.
    The best (not the mean) is the least disturbed by other work on the
    machine; compare timings taken in the same session as ratios.
    """
    fn()  # warm-up
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
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def load_warning() -> str | None:
    """A warning when the machine is busy (1-minute load average > cores)."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # Windows has no load average
        return None
    cores = os.cpu_count() or 1
    if load <= cores:
        return None
    return (
        f"warning: this machine is busy (load average {load:.1f} on {cores} cores): "
        "other work competes for the CPU, so timings are slower and noisier than "
        "usual; compare the ratios, or rerun when it is idle"
    )


# --------------------------------------------------------------------------
# expected times of long cells
# --------------------------------------------------------------------------

_CALIBRATION: list[float] = []


def calibration_seconds() -> float:
    """Seconds this machine takes for a fixed small workload (best of 3, cached).

    A small MLP's forward and backward passes in float32 on one thread (the
    same on every machine and in every lesson, whatever its thread setting):
    the kind of work the lessons' long cells do.
    """
    if _CALIBRATION:
        return _CALIBRATION[0]
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 256, generator=gen)
    layers = [
        torch.randn(256, 256, generator=gen, requires_grad=True) for _ in range(4)
    ]

    def work():
        for _ in range(20):
            h = x
            for w in layers:
                h = torch.relu(h @ w)
            h.sum().backward()

    try:
        work()  # warm-up
        best = min(timeit.repeat(work, repeat=3, number=1))
    finally:
        torch.set_num_threads(threads)
    _CALIBRATION.append(best)
    return best


def reference_timings() -> dict:
    """The shipped record (``data/reference/timings.json``), or {} if absent."""
    from . import config

    path = config.data_dir() / "reference" / TIMINGS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def provenance(key: str) -> dict:
    """Where and when ``key`` (a lesson's stem or a cell's key, both starting
    with the lesson's number) was timed in this mode: the lesson's own record
    if it was re-timed (``measured``), else the record's first run."""
    from . import config

    record = reference_timings()
    for stem, modes in record.get("measured", {}).items():
        if stem[:2] == key[:2] and config.mode() in modes:
            return {**record.get("provenance", {}), **modes[config.mode()]}
    return record.get("provenance", {})


def expectation(key: str) -> str:
    """What to tell the learner about how long the cell ``key`` will take."""
    from . import config

    seconds = reference_timings().get("cells", {}).get(key, {}).get(config.mode())
    if seconds is None:
        return "no reference timing for this cell yet"
    return _scaled(seconds, key)


def lesson_expectation(stem: str) -> str:
    """How long the whole notebook ``stem`` should take in this mode, printed
    before its long runs start."""
    from . import config

    seconds = reference_timings().get("lessons", {}).get(stem, {}).get(config.mode())
    if seconds is None:
        return f"no reference timing for {stem} in {config.mode()} mode yet"
    return f"the whole notebook in {config.mode()} mode: {_scaled(seconds, stem)}"


def _scaled(seconds: float, key: str) -> str:
    """``seconds`` on the reference machine, scaled to this one by the calibration."""
    from . import config

    made = provenance(key)
    machine, date = made.get("machine", "?"), made.get("date", "?")
    where = f"{format_seconds(seconds)} on the reference machine ({machine}, {date})"
    if config.device() == "cuda":
        return f"{where}, which has no GPU: expect much less here"
    ref_cal = made.get("calibration_seconds")
    if not ref_cal:
        return where
    factor = calibration_seconds() / ref_cal
    estimate = format_seconds(seconds * factor)
    speed = f"this machine ran the calibration {1 / factor:.1f}x as fast"
    return f"about {estimate} here ({where}; {speed})"


class long_cell:
    """Say what a long cell does and how long it should take; record its time."""

    def __init__(self, key: str, what: str):
        self.key, self.what = key, what
        self.start = 0.0
        self.seconds: float | None = None

    def __enter__(self):
        from . import config

        print(f"[{config.mode()} mode] {self.what}: {expectation(self.key)}")
        warning = load_warning()
        if warning:
            print(warning)
        self.start = time.monotonic()
        return self

    def __exit__(self, kind, value, traceback):
        self.seconds = time.monotonic() - self.start
        if kind is None:
            _record(self.key, self.seconds)
            print(f"[{self.key}] took {format_seconds(self.seconds)}")
        return False


def _timings_dir():
    from . import config

    return config.cache_dir() / "timings"


def _record(key: str, seconds: float) -> None:
    from . import config, contract

    path = _timings_dir() / f"{key}-{config.mode()}.json"
    contract.write_json_atomic(
        path, {"key": key, "mode": config.mode(), "seconds": round(seconds, 2)}
    )


def recorded(mode: str) -> dict[str, float]:
    """Times of the long cells run in ``mode`` with this cache: key -> seconds."""
    found = {}
    for path in sorted(_timings_dir().glob(f"*-{mode}.json")):
        try:
            item = json.loads(path.read_text())
            found[item["key"]] = float(item["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found
