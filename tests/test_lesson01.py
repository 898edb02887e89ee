"""Notebook 01's checks: right answers pass, stubs are "not yet".

Each plausible mistake's message: tests/mutants/lesson01.py, via test_mutants.py.
"""

from __future__ import annotations

import pytest

from helpers import checks

from .mutants import lesson01 as m

CHECKS = {
    "standardize": checks.standardize_columns,
    "percentiles": checks.activation_percentiles,
    "gradient norms": checks.layer_gradient_norms,
}


def test_right_answers_pass(learner_mode):
    assert checks.standardize_columns(m.standardize, quiet=True)
    assert checks.activation_percentiles(m.percentiles, quiet=True)
    assert checks.layer_gradient_norms(m.grad_norms, quiet=True)


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_stub_says_not_yet(kind, learner_mode):
    def stub(*args, **kwargs):
        raise NotImplementedError("stub")

    assert CHECKS[kind](stub, quiet=True).verdicts == ["not yet"]
