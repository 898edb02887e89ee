"""Notebook 00's check: a right answer passes, a stub is "not yet", float32 works.

Each plausible mistake's message: tests/mutants/lesson00.py, via test_mutants.py.
"""

from __future__ import annotations

import numpy as np

from helpers import checks

from .mutants.lesson00 import correct


def test_correct_answer_passes(learner_mode, capsys, recwarn):
    report = checks.batch_stats(correct)
    assert not [str(w.message) for w in recwarn], "a check warned the learner"
    # 3 + N=2, N=48, D=1, float32, zeros, int64, new values + N=1, N=0
    assert report and report.verdicts == ["ok"] * 13
    assert capsys.readouterr().out.count("| ok") == 13


def test_stub_says_not_implemented(learner_mode):
    def stub(x):
        raise NotImplementedError("batch_stats: hint")

    report = checks.batch_stats(stub)
    assert not report and "not implemented yet" in report.lines()


def test_float32_input_is_accepted(learner_mode):
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    assert checks.batch_stats(correct, x=x, quiet=True)


def test_a_float32_batch_is_checked_in_float32(learner_mode):
    """The hidden test feeds float32: the learner's code must see float32, and a
    function that is only right in float64 arithmetic still passes at float32
    precision, while one that breaks in float32 is caught."""
    import numpy as np

    from helpers import checks

    seen = []

    class Right:  # a spy: a callable object, whose state the checks do not watch
        def __call__(self, x):
            seen.append(x.dtype)
            return _right(x)

    def _right(x):
        n = x.shape[0]
        if n < 2:
            raise ValueError("N < 2")
        return x.mean(0), x.var(0), x.var(0) * n / (n - 1)

    def float16_inside(x):  # loses precision: wrong at float32's tolerance
        n = x.shape[0]
        if n < 2:
            raise ValueError("N < 2")
        h = x.astype(np.float16)
        return h.mean(0), h.var(0), h.var(0) * n / (n - 1)

    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert checks.batch_stats(Right(), x=x, quiet=True)
    assert seen and all(d == np.float32 for d in seen)
    assert not checks.batch_stats(float16_inside, x=x, quiet=True)


def test_a_wrong_mean_is_blamed_once_not_in_the_variances(learner_mode):
    """var computed about the learner's own wrong mean: the mean is the first
    wrong statistic, the variances say they follow from it."""

    def sum_over_n_minus_1(x):
        n = x.shape[0]
        if n < 2:
            raise ValueError("N < 2")
        mu = x.sum(0) / (n - 1)
        spread = ((x - mu) ** 2).sum(0)
        return mu, spread / n, spread / (n - 1)

    lines = checks.batch_stats(sum_over_n_minus_1, quiet=True).lines().splitlines()
    assert "N/(N-1) = 16/15" in lines[0] and "divided by N-1" in lines[0]
    assert (
        "taken from your mu, which is wrong" in lines[1]
        and "the same as above" in lines[2]
    )


def test_deviations_from_another_centre_are_named(learner_mode):
    def uncentred(x):  # the mean of x**2, not of the squared deviations
        if x.shape[0] < 2:
            raise ValueError("N < 2")
        n = x.shape[0]
        return x.mean(0), (x**2).mean(0), (x**2).sum(0) / (n - 1)

    text = checks.batch_stats(uncentred, quiet=True).lines()
    assert "the deviations are taken from 0 (x is not centred)" in text


def test_a_variance_of_a_slipped_input_is_named(learner_mode):
    # the right variance of x[1:]: the slips are tried with each variance's own
    # correction (0 for var), not the next one
    def stats(x):
        if len(x) < 2:
            raise ValueError("one example")
        return x.mean(0), x[1:].var(0), x.var(0, ddof=1)

    assert "right answer for x[1:]" in checks.batch_stats(stats, quiet=True).lines()
