"""Notebook 00's check gives a specific message for each plausible mistake."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import checks


def correct(x):
    n = x.shape[0]
    if n < 2:
        raise ValueError("need two")
    return x.mean(0), x.var(0), x.var(0, ddof=1)


def guard(fn):
    """Add the N<2 ValueError so a variant is wrong in one way only."""

    def wrapped(x):
        if x.shape[0] < 2:
            raise ValueError("need two")
        return fn(x)

    return wrapped


MISTAKES = {
    "wrong axis": (
        guard(lambda x: (x.mean(1), x.var(1), x.var(1, ddof=1))),
        "reduce over axis=0",
    ),
    "swapped variances": (
        guard(lambda x: (x.mean(0), x.var(0, ddof=1), x.var(0))),
        "this is the unbiased variance",
    ),
    "both biased": (
        guard(lambda x: (x.mean(0), x.var(0), x.var(0))),
        "this is the biased variance",
    ),
    "standard deviations": (
        guard(lambda x: (x.mean(0), x.std(0), x.std(0, ddof=1))),
        "standard deviation",
    ),
    "keepdims": (
        guard(lambda x: (x.mean(0, keepdims=True), x.var(0), x.var(0, ddof=1))),
        "keepdims",
    ),
    "no ValueError": (
        lambda x: (x.mean(0), x.var(0), x.var(0, ddof=1)),
        "did not raise ValueError",
    ),
    "returns two": (guard(lambda x: (x.mean(0), x.var(0))), "tuple of 3"),
    "returns None": (guard(lambda x: None), "returned None"),
    "raises TypeError": (guard(lambda x: x.mean(foo=1)), "raised TypeError"),
    "NaN": (
        guard(lambda x: (x.mean(0) * np.nan, x.var(0), x.var(0, ddof=1))),
        "NaN",
    ),
}


def test_correct_answer_passes(learner_mode, capsys):
    report = checks.batch_stats(correct)
    assert report and report.verdicts == ["ok"] * 4
    assert capsys.readouterr().out.count("| ok") == 4


def test_stub_says_not_implemented(learner_mode):
    def stub(x):
        raise NotImplementedError("batch_stats: hint")

    report = checks.batch_stats(stub)
    assert not report and "not implemented yet" in report.lines()


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_mistake_gets_its_message(mistake, learner_mode):
    fn, expected = MISTAKES[mistake]
    report = checks.batch_stats(fn, quiet=True)
    assert not report
    assert expected in report.lines(), report.lines()


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_mistake_fails_while_grading(mistake, grading_mode):
    with pytest.raises(checks.CheckFailed):
        checks.batch_stats(MISTAKES[mistake][0], quiet=True)


def test_float32_input_is_accepted(learner_mode):
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    assert checks.batch_stats(correct, x=x, quiet=True)
