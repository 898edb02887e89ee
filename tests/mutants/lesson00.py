"""Lesson 00: wrong ``batch_stats``."""

from __future__ import annotations

import numpy as np

from . import Mutant, raise_


def correct(x):
    if x.shape[0] < 2:
        raise ValueError("need two")
    return x.mean(0), x.var(0), x.var(0, ddof=1)


def _guard(fn):
    """Add the N<2 ValueError so a variant is wrong in one way only."""

    def wrapped(x):
        if x.shape[0] < 2:
            raise ValueError("need two")
        return fn(x)

    return wrapped


def _aliased(x):
    mu, var = x.mean(0), x.var(0)
    var_unbiased = var
    var_unbiased *= len(x) / (len(x) - 1)  # var too: one array
    return mu, var, var_unbiased


def _nonzero(x):
    n = np.count_nonzero(x, axis=0)  # N read as the non-zero entries
    mu = x.sum(0) / n
    return mu, ((x - mu) ** 2).sum(0) / n, ((x - mu) ** 2).sum(0) / (n - 1)


_MEMO: dict = {}


def _memo(x):
    return _MEMO.setdefault(x.shape, correct(x))  # the first answer per shape


_SEEN: dict = {}


def _first_mean(x):  # round 8's class (issue 28): a result kept between calls
    if x.shape[0] < 2:
        raise ValueError("N < 2")
    mu = _SEEN.setdefault("mu", x.mean(0))
    return mu, ((x - mu) ** 2).mean(0), ((x - mu) ** 2).sum(0) / (len(x) - 1)


def _tensors(x):
    import torch

    return tuple(torch.from_numpy(s) for s in correct(x))  # a NumPy exercise


def _mutant(name, fn, message):
    return Mutant("batch_stats", name, {"batch_stats": fn}, message, "batch_stats")


MUTANTS = [
    _mutant(  # round 12's false ok: np.mean(x, dtype=x.dtype) truncates integers
        "statistics in the input's dtype",
        _guard(lambda x: tuple(s.astype(x.dtype) for s in correct(x))),
        "batch_stats int64 mu               | WRONG   | mu: its dtype is int64",
    ),
    _mutant(  # round 21's false ok: x - x[0] in uint8 wraps below 0
        "shifted by the first example in the input's dtype",
        _guard(
            lambda x: [
                s + (x[0] if k == 0 else 0) for k, s in enumerate(correct(x - x[0]))
            ]
        ),
        "uint8 arithmetic wraps",
    ),
    _mutant(  # round 25's wrong cause: "the expected var times N/(N-1)" at 5e-8
        "Bessel factor in float32",
        _guard(
            lambda x: (
                x.mean(0),
                x.var(0),
                x.var(0) * np.float32(len(x) / (len(x) - 1)),
            )
        ),
        "an error of float32's rounding size",
    ),
    _mutant(  # round 24's wrong cause: var_unbiased read as one edit, after var
        "N taken as len(x.shape)",
        _guard(
            lambda x: (x.mean(0), *(((x - x.mean(0)) ** 2).sum(0) / d for d in (2, 1)))
        ),
        "var_unbiased: it is the expected var times 16 = N",
    ),
    _mutant(
        "wrong axis",
        _guard(lambda x: (x.mean(1), x.var(1), x.var(1, ddof=1))),
        "take them over axis 0",
    ),
    _mutant(  # round 23's observed's class: a sum over the features, not x.T's stats
        "squares summed per example",
        _guard(lambda x: (x.mean(0), *[((x - x.mean(0)) ** 2).sum(1) / len(x)] * 2)),
        "one value per example (N=16), not one per feature (D=5): reduce over axis 0",
    ),
    _mutant(
        "swapped variances",
        _guard(lambda x: (x.mean(0), x.var(0, ddof=1), x.var(0))),
        "this is the unbiased variance",
    ),
    _mutant(
        "both biased",
        _guard(lambda x: (x.mean(0), x.var(0), x.var(0))),
        "this is the biased variance",
    ),
    _mutant(
        "standard deviations",
        _guard(lambda x: (x.mean(0), x.std(0), x.std(0, ddof=1))),
        "standard deviation",
    ),
    _mutant(
        "keepdims",
        _guard(lambda x: (x.mean(0, keepdims=True), x.var(0), x.var(0, ddof=1))),
        "keepdims",
    ),
    _mutant(
        "no ValueError",
        lambda x: (x.mean(0), x.var(0), x.var(0, ddof=1)),
        "did not raise ValueError",
    ),
    _mutant(
        "results cast to integers",
        _guard(lambda x: [s.astype(np.int64) for s in correct(x)]),
        "its dtype is int64, and the right values have fractions",
    ),
    _mutant(
        "no ValueError for an empty batch",
        lambda x: correct(x) if len(x) else (x.mean(0), x.var(0), x.var(0)),
        "N=0: no statistic at all",
    ),
    _mutant("var and var_unbiased one array", _guard(_aliased), "the same array as"),
    _mutant("N counts the non-zero entries", _guard(_nonzero), "zeros mu"),
    _mutant("remembers its first answer", _guard(_memo), "changed the global `_MEMO`"),
    _mutant("mean kept in a global", _first_mean, "changed the global `_SEEN` during"),
    _mutant(
        "a constant feature refused",  # round 10's false ok: var 0 is a variance
        _guard(lambda x: correct(x) if x.var(0).all() else raise_(ValueError("var 0"))),
        "batch_stats zeros",
    ),
    _mutant(  # round 23's false oks: an example of zeros is one; a bare refusal
        "examples summing to 0 dropped as padding",
        _guard(lambda x: correct(x[x.sum(1) != 0])),
        "the right answer for x without its examples of zeros",
    ),
    _mutant(
        "N < 2 refused with a bare ValueError",
        lambda x: correct(x) if len(x) > 1 else raise_(ValueError()),
        "raises ValueError with no message: say why",
    ),
    _mutant(
        "Bessel's correction only below N = 30",  # round 9's false ok
        _guard(lambda x: (x.mean(0), x.var(0), x.var(0, ddof=int(len(x) < 30)))),
        "batch_stats N=48 var_unbiased",
    ),
    _mutant(
        "returns torch tensors", _tensors, "returned torch tensors for NumPy input"
    ),
    _mutant("returns two", _guard(lambda x: (x.mean(0), x.var(0))), "tuple of 3"),
    _mutant("returns None", _guard(lambda x: None), "returned None"),
    _mutant("raises TypeError", _guard(lambda x: x.mean(foo=1)), "raised TypeError"),
    _mutant(
        "NaN",
        _guard(lambda x: (x.mean(0) * np.nan, x.var(0), x.var(0, ddof=1))),
        "NaN",
    ),
]
