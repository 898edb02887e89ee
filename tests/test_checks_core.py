"""The rules every check follows (helpers/checks/_core.py)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.checks import _core


def test_stub_is_not_implemented_and_never_raises(learner_mode):
    def stub(x):
        raise NotImplementedError("f: hint")

    value, problem = _core.call("f", stub, np.ones(3))
    assert value is None
    assert problem.verdict == _core.TODO
    assert "not implemented yet" in problem.detail


def test_a_failed_result_is_falsy_so_use_is_not_none():
    failed = _core.wrong("f", "bad")
    assert not failed and failed is not None
    assert _core.ok("f", "fine")


@pytest.mark.parametrize(
    "exc, name", [(TypeError("bad arg"), "TypeError"), (IndexError("ix"), "IndexError")]
)
def test_exceptions_are_reported_with_their_type(exc, name):
    def broken(x):
        raise exc

    _, problem = _core.call("f", broken, np.ones(3))
    assert problem.verdict == _core.ERROR
    assert f"raised {name}" in problem.detail


def test_mutating_the_input_is_caught_and_the_caller_keeps_its_data():
    data = np.arange(4.0)

    def mutates(x):
        x -= 1
        return x

    _, problem = _core.call("f", mutates, data)
    assert "in place" in problem.detail
    np.testing.assert_array_equal(data, np.arange(4.0))


def test_mutating_a_torch_tensor_is_caught_too():
    import torch

    def mutates(x):
        x.add_(1)
        return x

    _, problem = _core.call("f", mutates, torch.zeros(3))
    assert problem is not None and "in place" in problem.detail


def test_not_a_function():
    _, problem = _core.call("f", 3.0)
    assert "without calling it" in problem.detail


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, "return"),
        ((np.ones(2), np.ones(2)), "tuple of 2 items"),
        ([1, 2, 3], "list of 3"),
        ("text", "str"),
        (np.ones((2, 3)), "shape (2, 3), expected (3, 2)"),
        (np.ones(1), "reduced over every axis"),
        (np.ones(3), "dimension is missing"),
        (np.full((3, 2), np.nan), "NaN"),
        (np.full((3, 2), np.inf), "infinite"),
    ],
)
def test_shape_problems_are_specific(value, expected):
    problem = _core.shape_problem("f", value, (3, 2))
    assert problem is not None and expected in problem.detail


def test_shape_hints_override_the_generic_message():
    problem = _core.shape_problem("f", np.ones(7), (3,), shape_hints={(7,): "per row"})
    assert problem.detail.endswith("per row")


def test_compare_names_the_matching_mistake():
    want = np.arange(6.0).reshape(3, 2)
    mistake = want * 2
    result = _core.compare(
        "f", mistake, want, tol=1e-10, diagnoses={"doubled it": mistake}
    )
    assert result.detail == "doubled it"


def test_compare_reports_the_worst_index_when_no_diagnosis_matches():
    want = np.zeros((2, 2))
    got = want.copy()
    got[1, 0] = 0.5
    result = _core.compare("f", got, want, tol=1e-8, metric="abs", hint="look")
    assert not result
    assert "index (1, 0)" in result.detail and "Hint: look" in result.detail


def test_compare_ok_line_shows_error_and_bound():
    result = _core.compare("f", np.ones(3), np.ones(3), tol=1e-10)
    assert result and "expect < 1e-10" in result.line()


def test_report_is_falsy_when_any_part_failed(learner_mode, capsys):
    report = _core.report([_core.ok("a", "fine"), _core.wrong("b", "bad")])
    assert not report and len(report) == 2
    out = capsys.readouterr().out
    assert "a " in out and "WRONG" in out
    assert report._ipython_display_() is None  # no second copy in a notebook


def test_empty_report_is_not_a_pass():
    assert not _core.Report([])


def test_report_raises_only_while_grading_or_when_strict(grading_mode):
    with pytest.raises(_core.CheckFailed, match="bad"):
        _core.report(_core.wrong("b", "bad"), quiet=True)
    assert _core.report(_core.ok("a", "fine"), quiet=True)


def test_strict_raises_in_a_learner_session(learner_mode):
    assert not _core.report(_core.wrong("b", "bad"), quiet=True)
    with pytest.raises(_core.CheckFailed):
        _core.report(_core.wrong("b", "bad"), quiet=True, strict=True)


def test_run_check_turns_an_unusable_return_value_into_a_line(learner_mode):
    class Weird:  # what a learner's function might return
        def __array__(self, dtype=None, copy=None):
            raise ValueError("cannot convert")

    report = _core.run_check("f", lambda: np.asarray(Weird()), quiet=True)
    assert report.verdicts == [_core.ERROR]
    assert "your code raised ValueError: cannot convert" in report.lines()


def test_run_check_tells_a_bug_in_the_check_from_the_learners(learner_mode):
    def bug_in_the_check():  # a typo inside helpers/checks looks like this
        return _core.compare("f", np.ones(3), np.ones(3), tol="1e-8")

    report = _core.run_check("f", bug_in_the_check, quiet=True)
    assert report.verdicts == [_core.ERROR]
    text = report.lines()
    assert "the check itself failed" in text and "_core.py line" in text
    assert "not in your code" in text

    def value_problem():  # NumPy's own code refuses what the learner returned
        return np.linalg.norm(np.array(["a", "b"]))

    report = _core.run_check("f", value_problem, quiet=True)
    assert "could not use what your function returned" in report.lines()
    strings = _core.compare("f", np.array(["a", "b"]), np.ones(2), tol=1e-8)
    assert not strings and "dtype <U1, expected an array of real" in strings.detail


def test_mine_or_reference_says_which_and_never_hides_a_bug(learner_mode, capsys):
    assert _core.mine_or_reference("L", "mine", "ref", lambda: True) == "mine"
    assert _core.mine_or_reference("L", "mine", "ref", lambda: False) == "ref"

    def strict_failure():
        raise _core.CheckFailed("f | WRONG | the mean is off")

    assert _core.mine_or_reference("L", "mine", "ref", strict_failure) == "ref"
    assert "the mean is off" in capsys.readouterr().out

    def bug():
        raise KeyError("typo")

    with pytest.raises(KeyError):
        _core.mine_or_reference("L", "mine", "ref", bug)


def test_expect_raises():
    def raises(x):
        raise ValueError("no")

    def silent(x):
        return x

    def other(x):
        raise KeyError("k")

    assert _core.expect_raises("f", raises, ValueError, "why", 1)
    assert (
        "did not raise" in _core.expect_raises("f", silent, ValueError, "why", 1).detail
    )
    assert "KeyError" in _core.expect_raises("f", other, ValueError, "why", 1).detail


def test_numpy_warnings_from_learner_code_are_silenced(recwarn):
    def divides(x):
        return x / 0.0

    value, problem = _core.call("f", divides, np.ones(2))
    assert problem is None and np.isinf(value).all()
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_rel_error_is_normwise_and_robust_near_zero():
    assert _core.rel_error(np.array([1.0]), np.array([1.0])) == 0.0
    assert abs(_core.rel_error(np.array([1.0]), np.array([3.0])) - 2 / 3) < 1e-12
    # a round-off difference on a value near zero is small on the output's scale
    got, want = np.array([1e-12 + 1e-16, 2.0]), np.array([1e-12, 2.0])
    assert _core.rel_error(got, want) < 1e-15


def test_a_diagnosis_is_printed_once_per_check():
    from helpers.checks._core import Report, ok, wrong

    report = Report(
        [
            wrong("f (N, C)", "forgot eps"),
            wrong("f (N, C, L)", "forgot eps"),
            ok("f (N, C, H, W)", "fine"),
        ]
    )
    lines = report.lines().splitlines()
    assert "forgot eps" in lines[0] and "forgot eps" not in lines[1]
    assert "the same as above" in lines[1]
