"""Notebook 00's check: a right answer passes, a stub is "not yet", float32 works.

Each plausible mistake's message: tests/mutants/lesson00.py, via test_mutants.py.
"""

from __future__ import annotations

import numpy as np

from helpers import checks

from .mutants.lesson00 import correct


def test_correct_answer_passes(learner_mode, capsys):
    report = checks.batch_stats(correct)
    assert report and report.verdicts == ["ok"] * 4
    assert capsys.readouterr().out.count("| ok") == 4


def test_stub_says_not_implemented(learner_mode):
    def stub(x):
        raise NotImplementedError("batch_stats: hint")

    report = checks.batch_stats(stub)
    assert not report and "not implemented yet" in report.lines()


def test_float32_input_is_accepted(learner_mode):
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    assert checks.batch_stats(correct, x=x, quiet=True)
