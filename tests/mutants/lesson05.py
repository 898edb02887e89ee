"""Lesson 05: wrong parameter counts, time to accuracy and active fractions."""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from . import family


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


# fmt: off
COUNT = {
    "counts the BN buffers": (partial(count_parameters, buffers=True), "counts the BN buffers"),
    "counts frozen parameters": (partial(count_parameters, frozen=True), "counts frozen parameters"),
    "counts tensors": (partial(count_parameters, tensors=True), "counts tensors"),
    "returns a float": (lambda m: float(count_parameters(m)), "return an int"),
}
# fmt: on
# fmt: off
TIME = {
    "epochs from 0": (partial(time_to_accuracy, index=True), "epochs count from 1"),
    "strict comparison": (partial(time_to_accuracy, strict=True), "use >=, not >"),
    "last epoch that reaches it": (partial(time_to_accuracy, last=True), "return the first"),
    "seconds of that epoch alone": (partial(time_to_accuracy, per_epoch=True), "seconds are cumulative"),
    "never reached returns the last epoch": (lambda h, t: time_to_accuracy(h, t) or (5, 60.0), "return None"),
}
# fmt: on
# fmt: off
ACTIVE = {
    "gamma's sign kept": (partial(active_fraction, absolute=False), "use |gamma|"),
    "share below zero": (partial(active_fraction, below=True), "*below* zero"),
    "divides by gamma squared": (partial(active_fraction, power=2), "not gamma^2"),
    "ignores beta": (partial(active_fraction, shift=False), "beta is ignored"),
    "returns one number": (lambda g, b: float(np.mean(active_fraction(g, b))), "shape"),
}
# fmt: on
MUTANTS = [
    *family("count_parameters", COUNT, "count_parameters"),
    *family("time_to_accuracy", TIME, "time_to_accuracy"),
    *family("active_fraction", ACTIVE, "active_fraction"),
]
