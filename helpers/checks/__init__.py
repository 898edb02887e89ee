"""Checks learners call after each exercise (``from helpers import checks``).

Each check prints one aligned line per output it verified and returns the
result(s); see ``_core`` for the rules every check follows.
"""

from ._core import (
    CheckFailed,
    Report,
    Result,
    abs_error,
    mine_or_reference,
    rel_error,
    report,
)
from .lesson00 import batch_stats
from .lesson01 import activation_percentiles, layer_gradient_norms, standardize_columns
from .lesson02 import (
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)
from .lesson03 import fold_batchnorm, scratch_batchnorm
from .lesson04 import batch_renorm, batch_renorm_backward, renorm_schedule
from .lesson05 import active_fraction, count_parameters, time_to_accuracy

__all__ = [
    "active_fraction",
    "activation_percentiles",
    "CheckFailed",
    "Report",
    "Result",
    "abs_error",
    "batch_renorm",
    "batch_renorm_backward",
    "batch_stats",
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "batchnorm_forward",
    "count_parameters",
    "layer_gradient_norms",
    "layernorm_backward",
    "layernorm_forward",
    "fold_batchnorm",
    "mine_or_reference",
    "scratch_batchnorm",
    "spatial_batchnorm_backward",
    "spatial_batchnorm_forward",
    "standardize_columns",
    "time_to_accuracy",
    "rel_error",
    "renorm_schedule",
    "report",
]
