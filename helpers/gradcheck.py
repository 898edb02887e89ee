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


def numerical_gradients(
    evaluate: Callable[[list[dict]], list],
    inputs: dict[str, np.ndarray],
    dout: np.ndarray,
    h: float = 1e-5,
) -> dict[str, np.ndarray]:
    """d/d(each input) of sum(f(**inputs) * dout), every evaluation in one batch.

    ``evaluate`` takes a list of input dicts (each with one element nudged by
    +h or -h) and returns the list of outputs.  One batch instead of one call
    per element: the grader runs the learner's function in another process,
    where each round trip costs milliseconds.
    """
    base = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    variants, where = [], []
    for key, value in base.items():
        for index in np.ndindex(value.shape):
            for sign in (1.0, -1.0):
                nudged = dict(base)
                nudged[key] = value.copy()
                nudged[key][index] += sign * h
                variants.append(nudged)
                where.append((key, index, sign))
    outputs = evaluate(variants)
    grads = {k: np.zeros_like(v) for k, v in base.items()}
    for (key, index, sign), out in zip(where, outputs, strict=True):
        grads[key][index] += sign * np.sum(np.asarray(out, dtype=np.float64) * dout)
    return {k: g / (2 * h) for k, g in grads.items()}


def evaluator(fn: Callable, order: tuple[str, ...], pick=None, **fixed):
    """An ``evaluate`` for :func:`numerical_gradients` from a plain function.

    Calls ``fn(*[inputs[k] for k in order], **fixed)`` for each input dict, in
    one batch through ``fn.many`` when ``fn`` offers it (the grader's remote
    functions do), and keeps ``pick(result)`` (default: the result itself).
    """
    pick = pick or (lambda result: result)

    def evaluate(variants):
        calls = [(tuple(v[k] for k in order), dict(fixed)) for v in variants]
        many = getattr(fn, "many", None)
        results = many(calls) if many else [fn(*a, **k) for a, k in calls]
        return [pick(r) for r in results]

    return evaluate
