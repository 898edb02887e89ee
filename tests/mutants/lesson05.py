"""Lesson 05: wrong parameter counts, time to accuracy and active fractions."""

from __future__ import annotations

import math

import numpy as np

from . import Mutant


def _phi(z):
    z = np.asarray(z, dtype=np.float64)
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


def active_fraction(gamma, beta, *, absolute=True, below=False, power=1, shift=True):
    scale = np.abs(gamma) if absolute else gamma
    z = (beta if shift else 0.0 * beta) / scale**power
    p = _phi(z)
    return 1.0 - p if below else p


def count_parameters(model, *, buffers=False, frozen=False, tensors=False):
    params = [p for p in model.parameters() if frozen or p.requires_grad]
    total = len(params) if tensors else sum(p.numel() for p in params)
    if buffers:
        total += sum(b.numel() for b in model.buffers())
    return total


def time_to_accuracy(
    history, target, *, strict=False, index=False, last=False, per_epoch=False
):
    hits = [
        i
        for i, acc in enumerate(history["test_accuracy"])
        if (acc > target if strict else acc >= target)
    ]
    if not hits:
        return None
    i = hits[-1] if last else hits[0]
    seconds = history["seconds"][i]
    if per_epoch and i > 0:
        seconds -= history["seconds"][i - 1]
    return (i if index else history["epoch"][i]), seconds


def _m(check, name, fn, message):
    return Mutant(check, name, {check: fn}, message, check)


MUTANTS = [
    _m(
        "count_parameters",
        "counts the BN buffers",
        lambda m: count_parameters(m, buffers=True),
        "counts the BN buffers",
    ),
    _m(
        "count_parameters",
        "counts frozen parameters",
        lambda m: count_parameters(m, frozen=True),
        "counts frozen parameters",
    ),
    _m(
        "count_parameters",
        "counts tensors",
        lambda m: count_parameters(m, tensors=True),
        "counts tensors",
    ),
    _m(
        "count_parameters",
        "returns a float",
        lambda m: float(count_parameters(m)),
        "return an int",
    ),
    _m(
        "time_to_accuracy",
        "epochs from 0",
        lambda h, t: time_to_accuracy(h, t, index=True),
        "epochs count from 1",
    ),
    _m(
        "time_to_accuracy",
        "strict comparison",
        lambda h, t: time_to_accuracy(h, t, strict=True),
        "use >=, not >",
    ),
    _m(
        "time_to_accuracy",
        "last epoch that reaches it",
        lambda h, t: time_to_accuracy(h, t, last=True),
        "return the first",
    ),
    _m(
        "time_to_accuracy",
        "seconds of that epoch alone",
        lambda h, t: time_to_accuracy(h, t, per_epoch=True),
        "seconds are cumulative",
    ),
    _m(
        "time_to_accuracy",
        "never reached returns the last epoch",
        lambda h, t: time_to_accuracy(h, t) or (5, 60.0),
        "return None",
    ),
    _m(
        "active_fraction",
        "gamma's sign kept",
        lambda g, b: active_fraction(g, b, absolute=False),
        "use |gamma|",
    ),
    _m(
        "active_fraction",
        "share below zero",
        lambda g, b: active_fraction(g, b, below=True),
        "*below* zero",
    ),
    _m(
        "active_fraction",
        "divides by gamma squared",
        lambda g, b: active_fraction(g, b, power=2),
        "not gamma^2",
    ),
    _m(
        "active_fraction",
        "ignores beta",
        lambda g, b: active_fraction(g, b, shift=False),
        "beta is ignored",
    ),
    _m(
        "active_fraction",
        "returns one number",
        lambda g, b: float(np.mean(active_fraction(g, b))),
        "shape",
    ),
]
