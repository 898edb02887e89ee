"""Checks learners call after each exercise (``from helpers import checks``).

Each check prints one aligned line per output it verified and returns the
result(s); see ``_core`` for the rules every check follows.
"""

from ._core import CheckFailed, Report, Result, abs_error, rel_error, report
from .lesson00 import batch_stats

__all__ = [
    "CheckFailed",
    "Report",
    "Result",
    "abs_error",
    "batch_stats",
    "rel_error",
    "report",
]
