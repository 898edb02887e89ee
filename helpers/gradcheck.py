"""Numerical gradients by centred differences (the reference for backward passes).

The same idea as CS231n's ``gradient_check.py``: nudge one input element by
``+h`` and ``-h``, evaluate the function, and take the slope.  In float64 with
``h = 1e-5`` a correct analytic gradient usually agrees to a relative error
below 1e-7; see ``BANDS``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# How to read a relative error between an analytic and a numerical gradient
# (float64, smooth function, h = 1e-5), after CS231n's notes.
BANDS = (
    (1e-7, "agreement: the analytic gradient is almost certainly right"),
    (1e-4, "suspicious: fine only near a kink (ReLU, max); BN has none"),
    (1e-2, "probably wrong"),
    (np.inf, "wrong"),
)


def band(error: float) -> str:
    for bound, meaning in BANDS:
        if error < bound:
            return meaning
    return BANDS[-1][1]


def numerical_gradient(
    f: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    dout: np.ndarray,
    h: float = 1e-5,
) -> np.ndarray:
    """d/dx of sum(f(x) * dout), one element at a time; ``x`` is restored."""
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        index = it.multi_index
        old = x[index]
        x[index] = old + h
        plus = np.sum(np.asarray(f(x), dtype=np.float64) * dout)
        x[index] = old - h
        minus = np.sum(np.asarray(f(x), dtype=np.float64) * dout)
        x[index] = old
        grad[index] = (plus - minus) / (2 * h)
        it.iternext()
    return grad
