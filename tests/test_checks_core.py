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


def test_an_exception_names_the_learners_line_the_libraries_meaning_and_the_input():
    # a diagnosis from the error's signature: where it was raised in the learner's
    # code, what the library's words mean, and on which input (a guard that
    # refuses N = 2 shows the (2, 3) it refused)
    def percentiles(x):
        return np.quantile(x, [1, 50, 99], axis=0)

    def guarded(x):
        if len(x) < 3:
            raise ValueError("need more examples")
        return x

    _, problem = _core.call("f", percentiles, np.ones((4, 3)))
    assert "in your line `return np.quantile(x, [1, 50, 99], axis=0)`" in problem.detail
    assert "np.quantile takes fractions" in problem.detail
    assert "called with inputs of shape (4, 3)" in problem.detail
    _, problem = _core.call("f", guarded, np.ones((2, 3), np.float32))
    assert "your own test refused an input" in problem.detail
    assert "(2, 3) float32" in problem.detail
    # the library's words for a slip made elsewhere: a None, a Linear built (out, in)
    import torch

    for slip, says in (
        (lambda t: t.grad.norm(), "is None here: no backward() has reached it"),
        (lambda t: torch.nn.Linear(3, 2)(t), "takes the input's size first"),
    ):
        _, problem = _core.call("f", slip, torch.ones(3, 2))
        assert says in problem.detail


def test_a_none_is_named_by_the_expression_that_holds_it():
    # the learner's raising line is read in its own frame: which name or attribute
    # is None, and where such a None comes from (not a list of candidates)
    import copy

    import torch

    def stepped(model, x):
        work = copy.deepcopy(model)
        for p in work.parameters():
            p -= 0.1 * p.grad

    def update(x, running_mean=None):
        running_mean.mul_(0.9).add_(0.1 * x.mean(0))

    def biased(layer):
        return layer.weight.sum() + layer.bias.sum()

    def given(x, running_mean=None):
        if running_mean:
            return x

    model, x = torch.nn.Linear(3, 2), torch.ones(4, 3)
    for fn, args, says in (
        (stepped, (model, x), "`p.grad` is None here: no backward() has reached it"),
        (update, (x,), "`running_mean` is None here: the caller left out this"),
        (biased, (torch.nn.Linear(3, 2, bias=False),), "`layer.bias` is None here"),
        (given, (x, torch.ones(3)), "test an optional argument with `is not None`"),
    ):
        _, problem = _core.call("f", fn, *args)
        assert says in problem.detail, problem.detail
        assert "a function without `return`, or a layer" not in problem.detail


def test_a_model_passed_in_keeps_its_buffers():
    # a measurement run on the caller's model in training mode moves its batch
    # norm's running statistics: the caller's buffers, caught by `call` itself
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    _, problem = _core.call("f", lambda m, x: m(x), model, torch.ones(5, 3))
    assert "buffer 1.running_mean in place" in problem.detail, problem.detail


def test_the_trace_of_torch_calls_leaves_tensors_without_storage_alone():
    """call() traces the learner's torch calls (graph cuts, in-place steps); functorch
    and sparse tensors have no data pointer: the trace notes nothing and the learner's
    right answer comes back (it once raised "Cannot access data pointer")."""
    torch = pytest.importorskip("torch")

    def fn(x):
        g = torch.func.grad(lambda t: (t.sin() * 2).sum())(x)
        y = torch.func.vmap(lambda r: r.clone().mul_(2))(x)
        return g + y + torch.sparse_coo_tensor([[0, 1]], [1.0, 2.0], (3,)).to_dense()

    value, problem = _core.call("fn", fn, torch.ones(3, dtype=torch.float64))
    assert problem is None, problem
    assert torch.allclose(
        value,
        2 * torch.cos(torch.ones(3)).double()
        + 2
        + torch.tensor([1.0, 2.0, 0.0]).double(),
    )


def test_calls_differ_reads_keywords_casts_and_losses_against_the_course():
    """The trace's torch.nn.functional calls (keywords but defaults) and float casts,
    read against the course's own code: an equivalent spelling says nothing, a cast
    only where the error is of its format's size."""
    torch = pytest.importorskip("torch")
    F, z, y = (
        torch.nn.functional,
        torch.randn(4, 3).double(),
        torch.tensor([0, 1, 2, 0]),
    )

    def seen(fn, error=1e-6):
        assert _core.call("fn", fn)[1] is None
        return _core.calls_differ(lambda: F.cross_entropy(z, y), error)

    assert seen(lambda: torch.nn.CrossEntropyLoss(reduction="mean")(z, y)) is None
    assert seen(lambda: F.nll_loss(F.log_softmax(z, 1), y)) is None
    summed = seen(lambda: F.cross_entropy(z, y, reduction="sum"))
    assert summed.endswith(
        "F.cross_entropy(reduction='sum'), the course's F.cross_entropy()"
    )
    other = seen(lambda: F.mse_loss(z, F.one_hot(y, 3).double()))
    assert other.endswith(
        "F.cross_entropy, which yours never does (yours calls F.mse_loss)"
    )
    cast = "your code converts torch.float64 to torch.float32; the course's never does"
    assert seen(lambda: F.cross_entropy(z.float(), y)) == cast
    assert seen(lambda: F.cross_entropy(z.float(), y), error=0.5) is None  # too far
    assert "none of the course's" in seen(lambda: (z * 0).sum())


def test_common_library_errors_get_their_meaning():
    import torch

    class Late(torch.nn.Module):
        def __init__(self):
            self.w = torch.nn.Parameter(torch.ones(3))
            super().__init__()

    def saved(x):
        y = torch.exp(x)
        y += 1  # exp saved y for its backward
        y.sum().backward()

    for fn, arg, says in (
        (lambda x: x.mean(dim=0), np.ones((3, 2)), "NumPy's is axis="),
        (
            lambda x: x.mean(0, keepdim=True),
            np.ones((3, 2)),
            "NumPy's keyword is keepdims",
        ),
        (lambda x: x.t().view(-1), torch.ones(3, 2), "use .reshape()"),
        (lambda x: x.mean(), torch.arange(4), "convert an integer tensor first"),
        (lambda x: x.reshape(5, -1), np.ones((3, 2)), "another number of values"),
        (
            saved,
            torch.ones(3, requires_grad=True),
            "this graph saved was changed in place after the forward",
        ),
        (lambda x: Late(), None, "call super().__init__() first"),
        (lambda x: x.mean(0).item(), np.ones((3, 2)), "takes one number"),
        (lambda x: x.mean(0).item(), torch.ones(3, 2), "takes one number"),
        (lambda x: (x - 1) ^ 2, np.ones(3), "a power is `**`"),
        (lambda x: x.shape < 2, np.ones(3), "compared with a number"),
    ):
        _, problem = _core.call("f", fn, arg)
        assert says in problem.detail, problem.detail


def test_outputs_returned_in_another_order_are_named_whatever_their_shapes():
    rng = np.random.default_rng(0)
    returns = {"dx": rng.normal(size=(6, 4)), "dgamma": rng.normal(size=4)}
    returns["dbeta"] = rng.normal(size=4)

    def judge(slot, returned):
        what = list(returns)[slot]
        return _core.compare(
            "f",
            returned[slot],
            returns[what],
            tol=1e-9,
            what=what,
            returns=returns,
            returned=returned,
        ).detail

    swapped = (returns["dx"], returns["dbeta"], returns["dgamma"])
    assert "dgamma holds the expected dbeta and the other way round" in judge(
        1, swapped
    )
    assert "return (dx, dgamma, dbeta) in this order" in judge(2, swapped)
    # one output holding another's value is no swap unless that one holds its value
    # (var computed as the unbiased variance, and var_unbiased wrong too)
    once = (returns["dx"], returns["dbeta"], 2 * returns["dbeta"])
    assert "holds the expected" not in judge(1, once)
    # outputs whose expected values are equal cannot be told apart: no order named
    same = {**returns, "dbeta": returns["dgamma"]}
    returns.update(same)
    assert "holds the expected" not in judge(
        2, (same["dx"], same["dbeta"], same["dgamma"] + 1)
    )
    # a reduction over the other axis, said by the axes of the other outputs
    wrong_axis = (returns["dx"], rng.normal(size=6), returns["dbeta"])
    assert "one value per index of axis 0 of dx (6, 4)" in judge(1, wrong_axis)
    assert "reduce over axis 0, not 1" in judge(1, wrong_axis)


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


# --------------------------------------------------------------------------
# describe: the shape of a difference, from the arrays alone (issue 28)
# --------------------------------------------------------------------------


def test_describe_recognises_factors_offsets_signs_and_permutations():
    rng = np.random.default_rng(0)
    want = rng.standard_normal((16, 5))
    known = {"N/(N-1) = 16/15": 16 / 15}
    text = _core.describe(want * np.sqrt(16 / 15), want, known=known)
    assert "1.033 = sqrt(N/(N-1) = 16/15)" in text
    assert "wrong sign" in _core.describe(-want, want)
    assert "constant offset, 0.5" in _core.describe(want + 0.5, want)
    cube = rng.standard_normal((2, 3, 4, 5))
    moved = cube.transpose(0, 2, 3, 1).reshape(cube.shape)  # reshape, no transpose
    assert "(0, 2, 3, 1)" in _core.describe(moved, cube)
    gamma = rng.uniform(0.5, 2, 5)
    text = _core.describe(want / gamma, want, known={"gamma": gamma})
    assert "1/(gamma)" in text
    only = want.copy()
    only[:, 1] *= 1.05
    text = _core.describe(only, want, small=(1,))
    assert "only feature 1" in text and "tiny variance" in text
    assert "tiny variance" not in _core.describe(only, want, small=(2,))
    noisy = want.copy()
    noisy[:, 1] += 1e-3 * rng.standard_normal(16)  # no factor: eps is not its sign
    text = _core.describe(noisy, want, small=(1,))
    assert "tiny variance" in text and "eps" not in text, text


def test_describe_names_a_cause_only_on_an_exact_signature():
    want = np.random.default_rng(1).standard_normal((8, 3))
    causes = {"factor 2": "counted twice"}
    assert _core.describe(2 * want, want, causes=causes).endswith("counted twice")
    assert "counted twice" not in _core.describe(2.001 * want, want, causes=causes)
    # two numbers always fit a factor and an offset: round 16's and 17's
    # (distance, cosine) "times 77.71, plus -38.14" said nothing
    pair = np.array([0.98, 0.49])
    assert "plus" not in (_core.describe(np.array([38.05, 0.1]), pair) or "")
    assert "plus" in _core.describe(3 * want + 1, want)
    # float32's size: within 30 times the float32 answer's error, both ways
    rng, twin = np.random.default_rng(4), want.astype(np.float32).astype(float)
    noise = lambda size: want + size * rng.standard_normal(want.shape)
    assert "float32's size" in _core.describe(noise(5e-8), want, tol=1e-10, twin=twin)
    for got, f32 in ((noise(1e-8), noise(1e-5)), (noise(1e-4), twin)):  # far off
        assert "float32" not in str(_core.describe(got, want, tol=1e-12, twin=f32))


def test_a_factor_per_position_of_an_image_never_crashes_compare():
    """The review's B1: a (N, C, H, W) answer with a per-position factor."""
    rng = np.random.default_rng(2)
    want = rng.standard_normal((4, 5, 3, 3))
    got = want * rng.uniform(0.5, 2, want.shape)
    assert not _core.compare("f", got.astype(np.float32), want, tol=1e-8)


def test_uniform_problem_describes_a_one_sided_draw():
    rng = np.random.default_rng(3)
    assert _core.uniform_problem(rng.uniform(-1.5, 1.5, 256), -1.5, 1.5, "s") is None
    text = _core.uniform_problem(rng.uniform(0, 1.5, 256), -1.5, 1.5, "s")
    assert "one-sided" in text
    assert "std" in _core.uniform_problem(rng.normal(0, 0.2, 256), -1.5, 1.5, "s")


def test_buffers_in_the_graph_are_found_by_requires_grad():
    import torch

    bn = torch.nn.BatchNorm1d(3)
    assert _core.buffers_outside_graph("f", bn)
    bn.running_mean = bn.running_mean + torch.ones(3, requires_grad=True)
    result = _core.buffers_outside_graph("f", bn)
    assert not result and "running_mean require grad" in result.detail


def test_low_precision_is_recognised_but_never_for_whole_numbers():
    want = np.random.default_rng(4).standard_normal((8, 3))
    got = want.astype(np.float32).astype(np.float64)
    result = _core.compare("f", got, want, tol=1e-12)
    assert "float32 numbers" in result.detail
    counts = _core.compare("f", np.array([100001.0]), np.array([100000.0]), tol=1e-12)
    assert "float32" not in counts.detail


# --------------------------------------------------------------------------
# no cause named from a degenerate answer, or from evidence that does not
# tell the hypotheses apart (issue 28, round 2's wrong causes)
# --------------------------------------------------------------------------


def test_a_constant_answer_names_no_single_mistake():
    want = np.array([0.5, 0.16, 0.84, 0.66, 0.69, 0.02])
    half = np.full(6, 0.5)
    result = _core.compare("f", half, want, tol=1e-6, diagnoses={"beta ignored": half})
    assert not result and not result.detail.startswith("beta ignored")
    assert "every value is 0.5" in result.detail and "candidate" in result.detail


def test_a_trivial_pair_like_distance_0_cosine_1_names_no_single_mistake():
    want, trivial = np.array([0.72, 0.91]), np.array([0.0, 1.0])
    result = _core.compare("f", trivial, want, tol=1e-8, diagnoses={"layer 0": trivial})
    assert "only the values 0 and 1" in result.detail
    assert not result.detail.startswith("layer 0")


def test_describe_says_what_a_degenerate_answer_is_not_a_factor():
    want = np.random.default_rng(5).standard_normal((6, 3))
    assert _core.describe(np.zeros((6, 3)), want) == "every value is 0"
    assert "factor" not in _core.describe(np.full((6, 3), 2.0), want)


def test_a_hypothesis_the_input_cannot_tell_from_the_reference_is_not_named():
    want = np.random.default_rng(6).standard_normal(5) + 3
    close_to_right = want * (1 + 2e-10)
    got = want * (1 + 3e-10)
    result = _core.compare(
        "f", got, want, tol=1e-10, diagnoses={"unbiased": close_to_right}
    )
    assert not result and "unbiased" not in result.detail


def test_a_stage_two_candidates_explain_is_given_as_both():
    x = np.random.default_rng(7).standard_normal((12, 3))
    twin = x.mean(0) + 1
    out = (x - twin) / np.sqrt(x.var(0) + 1e-5)
    text = _core.stages(
        out,
        x,
        1.0,
        0.0,
        eps=1e-5,
        means={"the batch mean": x.mean(0), "mean + 1": twin, "shifted": twin},
    )
    assert "mean + 1 or shifted" in text


def test_an_unchanged_running_average_is_observed_not_explained():
    text = _core.ema_problem("running_mean", np.zeros(3), np.zeros(3), np.ones(3), 0.1)
    assert "did not change in a training step" in text
    assert "a fraction 0.1 of the way" in text


def test_one_number_has_no_signature_and_a_factor_near_1_is_not_called_1():
    """A 1-element answer is a multiple (and a shift) of any other: describe
    says nothing; a factor that rounds to 1 is written as 1 + its excess."""
    assert _core.describe(np.array([2.0]), np.array([1.0])) is None
    want = np.random.default_rng(8).standard_normal((6, 3))
    text = _core.describe(want * (1 + 5e-9), want, tol=1e-10)
    assert "1 + 5e-09" in text and "1 = 1" not in text


def test_a_bare_difference_shows_the_digits_that_tell_the_numbers_apart():
    result = _core.compare(
        "f", np.array([1.98672 + 5e-9]), np.array([1.98672]), tol=1e-10
    )
    assert "got 1.986720005, expected 1.98672" in result.detail


def test_a_stage_of_one_number_for_every_column_is_said():
    x = np.random.default_rng(9).normal([1.0, -2.0, 5.0], [1.0, 3.0, 0.5], (10, 3))
    out = (x - x.mean(0)) / np.sqrt(x.var() + 1e-5)  # one variance for the matrix
    text = _core.stages(out, x, 1.0, 0.0, eps=1e-5)
    assert "the scale divides by one number for every column" in text


def test_a_factor_that_is_a_ratio_of_counts_is_named_with_the_count():
    # N - 2 where N - 1 belongs (ddof=2), and 1/N, are named from the count alone
    named = _core._named(15 / 14, {"N": 16})
    assert named == "(N-1)/(N-2) with N = 16"
    assert _core._named(1 / 16, {"N": 16}) == "1/(N)"
    assert _core._named(0.9961, {"N": 16}) is None  # no ratio of N's: not named
    # a ratio already known by another name is not named twice
    assert _core._named(16 / 15, {"N": 16, "Bessel": 16 / 15}) == "Bessel"


def test_the_right_answer_for_a_slipped_input_is_named():
    # a loop from 1, a range one short, |x|: the reference on the slipped input
    x = np.random.default_rng(0).normal(3.0, 2.0, (9, 4))
    source = (lambda z: z.mean(0), x)
    got = _core.compare("f", x[1:].mean(0), x.mean(0), tol=1e-10, source=source)
    assert "right answer for x[1:]" in got.detail
    got = _core.compare("f", np.abs(x).mean(0), x.mean(0), tol=1e-10, source=source)
    assert "right answer for |x|" in got.detail
    ties, median = np.array([1.0, 1.0, 1.0, 2.0, 5.0]), lambda z: np.median(z)
    got = _core.compare("f", 2.0, 1.0, tol=1e-10, source=(median, ties))
    assert "right answer for x's distinct values" in got.detail
    # when a slip gives the same answer as the right input, it is not named
    positive = np.abs(x)
    got = _core.compare(
        "f",
        positive.mean(0) + 1,
        positive.mean(0),
        tol=1e-10,
        source=(lambda z: z.mean(0), positive),
    )
    assert "right answer for" not in got.detail


def test_stages_name_other_centres_scales_and_a_beta_added_before_the_scale():
    x = np.random.default_rng(1).normal(2.0, 3.0, (12, 4))
    gamma, beta = np.linspace(0.5, 2.0, 4), np.linspace(-1.0, 1.0, 4)
    x_hat = (x - np.median(x, 0)) / np.sqrt(x.var(0) + 1e-5)
    found = _core.stages(gamma * x_hat + beta, x, gamma, beta, eps=1e-5)
    assert "the median, not the mean" in found
    x_hat = (x - x.min(0)) / np.ptp(x, 0)
    found = _core.stages(gamma * x_hat + beta, x, gamma, beta, eps=1e-5)
    assert "minimum (min-max scaling?)" in found  # the range: one of the scales
    x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    found = _core.stages(gamma * (x_hat + beta), x, gamma, beta, eps=1e-5)
    assert found.startswith("beta is added before the scale")
    found = _core.stages(x_hat + beta, x, gamma, beta, eps=1e-5)
    assert found.startswith("gamma is not applied")
    # another eps, read back from the scale: s^2 - var is one number, not eps
    x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    found = _core.stages(gamma * x_hat + beta, x, gamma, beta, eps=1e-5)
    assert "sqrt(var + e) with e = 0.001, not eps = 1e-05" in found


def test_an_answer_that_is_a_named_multiple_of_another_output_says_so():
    # var_unbiased computed as var * (N+1)/N: relative to the right answer the
    # factor (1 - 1/N^2) names nothing; relative to var it is (N+1)/N
    x = np.random.default_rng(2).normal(size=(16, 3))
    returns = {"var": x.var(0), "var_unbiased": x.var(0, ddof=1)}
    got = _core.compare(
        "f",
        x.var(0) * 17 / 16,
        returns["var_unbiased"],
        tol=1e-10,
        what="var_unbiased",
        returns=returns,
        known={"N": 16},
    )
    # 17/16 = 1.0625 prints as 1.062 or 1.063 by the sum's rounding (threads)
    assert "it is the expected var times 1.06" in got.detail
    assert " = (N+1)/N with N = 16" in got.detail


def test_a_change_to_anything_the_caller_passed_is_caught_arrays_nested_or_models():
    import torch

    # an array inside a tuple (a backward pass that overwrites its cache)
    def overwrites(dout, cache):
        x_hat = cache[0]
        x_hat *= 2
        return dout

    _, problem = _core.call("f", overwrites, np.ones(3), (np.ones(3), 2.0))
    assert "changed its input argument #2 (item [0]) in place" in problem.detail

    def model():
        return torch.nn.Sequential(torch.nn.Linear(3, 2)).double()

    # a model passed in: converted to float32, switched to eval mode, stepped
    for slip, says in (
        (lambda m: m.float(), "parameter 0.weight in place"),
        (lambda m: m.eval(), "switched its input argument #1 to eval mode"),
        (lambda m: m[0].bias.data.add_(1), "parameter 0.bias in place"),
    ):
        _, problem = _core.call("f", slip, model(), copy_inputs=False)
        assert problem is not None and says in problem.detail
        assert "work on a copy" in problem.detail

    # a module whose forward changes its own parameters (noise folded in)
    class Folds(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(3))

        def forward(self, x):
            with torch.no_grad():
                self.weight.mul_(0.5)
            return x * self.weight

    _, problem = _core.call("f", Folds(), torch.ones(2, 3), copy_inputs=False)
    assert "changed your module's parameter weight in place" in problem.detail
    # a parameter left uninitialised (NaN) and untouched is not "changed"
    untouched = torch.nn.Linear(2, 2)
    with torch.no_grad():
        untouched.weight.fill_(float("nan"))
    _, problem = _core.call("f", lambda m: 0, untouched, copy_inputs=False)
    assert problem is None
    # arguments that are the function's to change (watch=False), and buffers
    bn = torch.nn.BatchNorm1d(3)
    value, problem = _core.call("f", bn, torch.randn(4, 3), copy_inputs=False)
    assert problem is None and bn.num_batches_tracked == 1
    _, problem = _core.call("f", overwrites, np.ones(3), (np.ones(3),), watch=False)
    assert problem is None


def test_a_buffer_left_out_of_the_state_dict_or_in_another_dtype_is_caught():
    import torch

    class Norm(torch.nn.Module):
        def __init__(self, persistent=True, dtype=torch.float32):
            super().__init__()
            self.register_buffer("running_mean", torch.zeros(3, dtype=dtype))
            self.register_buffer("count", torch.tensor(0), persistent=persistent)

    start = {"running_mean": torch.zeros(3), "count": torch.zeros((), dtype=torch.long)}
    assert _core.registration_problem("f", Norm(), start, {}) is None
    problem = _core.registration_problem("f", Norm(persistent=False), start, {})
    assert "count is registered with persistent=False" in problem.detail
    problem = _core.registration_problem("f", Norm(dtype=torch.float64), start, {})
    assert "running_mean is torch.float64, not torch.float32 as in PyTorch" in (
        problem.detail
    )


def test_shapes_and_precedence_are_read_from_what_the_answer_shows():
    # a squeezed axis is another shape of the right values, not "reduced over every
    # axis"; x - mu / s is read as the precedence of / over -; a reshape of x
    # whose columns are not its channels is said as such, not blamed on gamma
    got = _core.shape_problem("f", np.float64(2.0), (1,))
    assert "an axis of size 1 dropped; the values are right in number" in got.detail
    got = _core.shape_problem("f", np.ones((1, 3)), (3,))
    assert "an axis of size 1 kept (keepdims=True, or made so?)" in got.detail
    got = _core.shape_problem("f", np.ones((1, 3, 1, 1)), (3,))  # no keepdims here
    assert "3 axes of size 1 added (a reshape?)" in got.detail
    x = np.random.default_rng(3).normal(5.0, 2.0, (10, 3))
    out = x - x.mean(0) / np.sqrt(x.var(0) + 1e-5)
    found = _core.stages(out, x, 1.0, 0.0, eps=1e-5)
    assert "the mean divided by the scale (as x - mu / s gives)" in found
    message = "operands could not be broadcast together with shapes (3,) (60,6)"
    hint = _core.broadcast_hint(message, (np.ones((4, 3, 5, 6)),))
    assert "not one per channel: C = x.shape[1] = 3" in hint
    assert "give it the shape (1, 3, 1, 1)" not in hint


def test_a_known_value_that_is_a_list_neither_crashes_nor_hides_a_count():
    # the count's ratios are checked against every known value: a list among them
    # used to crash the check ('NoneType' has no attribute 'size')
    assert _core._named(15 / 14, {"N": 16, "sizes": [30, 20]}) == (
        "(N-1)/(N-2) with N = 16"
    )


def test_a_notimplementederror_from_a_library_is_not_read_as_the_exercise_stub():
    # torch raises NotImplementedError for some wrong calls: that is an error in the
    # learner's finished code, not the skeleton's "raise NotImplementedError"
    import torch

    def finished(x):
        return torch.nn.functional.cross_entropy(x.long(), x)  # arguments swapped

    _, problem = _core.call("f", finished, torch.zeros(4, 3))
    assert problem.verdict == _core.ERROR, problem.detail
    assert "raised NotImplementedError" in problem.detail


# issue 28, session 6: signatures of mistakes nobody listed (round 7's observed-only)
def test_a_function_whose_parameters_differ_from_the_exercise_is_told_so():
    def mine(x, epsilon=1e-5):  # the exercise's parameter is eps
        return x

    _, result = _core.call("f", mine, np.ones((3, 2)), eps=0.1)
    assert "keep the exercise's parameters: their names and order" in result.detail


@pytest.mark.parametrize(
    "body, meaning",
    [
        ("math.sqrt(x.var(0))", "math's functions take one number"),
        ("torch.cat([torch.ones(2, 2), torch.ones(2)])", "flatten each"),
        ("torch.nn.Sigmoid().weight", "an activation has none: pick layers by"),
        ("np.einsum('ij->i', x[None])", "one letter per axis"),
        ("F.batch_norm(torch.ones(3, 2), None, None)", "training=True"),
        # round 23's observed (seen): library errors a learner's slip raises
        ("np.subtract(x.astype(int), 0.5, out=x.astype(int))", "use x.astype(float)"),
        ("np.broadcast_to(x[0], x.shape).__imul__(2)", "np.broadcast_to's"),
        ("x.transpose(1, 0, 2)", "torch's swaps two"),
        ("torch.nn.BatchNorm1d(2, **{'eps': 1e-3}, eps=1e-5)", "given twice"),
        ("torch.optim.SGD([], lr=0.1)", "an optimizer over no parameters"),
    ],
)
def test_library_errors_of_unlisted_mistakes_get_their_meaning(body, meaning):
    import math

    import torch
    import torch.nn.functional as F

    scope = {"math": math, "torch": torch, "F": F, "np": np}
    _, result = _core.call("f", lambda x: eval(body, scope, {"x": x}), np.ones((3, 2)))
    assert meaning in result.detail, result.detail


def test_an_error_at_float32_rounding_without_a_pattern_is_said():
    want = np.random.default_rng(0).normal(size=(8, 3))
    got = want.astype(np.float32).astype(np.float64) + want * 1e-12  # not float32
    result = _core.compare("f", got, want, tol=1e-10)
    assert "float32's rounding size" in result.detail, result.detail
    one = _core.compare("f", got[:1, :1], want[:1, :1], tol=1e-10)  # no pattern to see
    assert "float32" not in one.detail


def test_an_answer_with_entries_cut_off_an_axis_is_named():
    want = np.arange(1.0, 21.0).reshape(4, 5)
    result = _core.compare("f", want[:, 1:], want, tol=1e-10, what="mu")
    assert "the right values except the first 1 along axis 1" in result.detail
    result = _core.compare("f", want[:-2], want, tol=1e-10, what="mu")
    assert "except the last 2 along axis 0" in result.detail


def test_a_caller_tensor_detached_in_place_is_a_change():
    import torch

    def mine(t):
        t.detach_()  # the caller's tensor leaves the graph
        return t * 2

    _, result = _core.call("f", mine, torch.ones(3, requires_grad=True))
    assert "detach_() or requires_grad_() changed it" in result.detail


_seen = {}


def _mean_of_the_first_call(x):
    _seen.setdefault("mu", x.mean(0))  # round 8's class: a result kept between calls
    return x - _seen["mu"]


def test_a_function_that_keeps_state_between_calls_is_told_where():
    _, result = _core.call("f", _mean_of_the_first_call, np.ones((3, 2)))
    assert "changed the global `_seen` during the call" in result.detail

    def running(x, seen=[]):  # noqa: B006 (the mistake)
        seen.append(x)
        return np.concatenate(seen).mean(0)

    _, result = _core.call("f", running, np.ones((3, 2)))
    assert "changed a default argument during the call" in result.detail
    value, result = _core.call("f", lambda x, eps=1e-5: x.mean(0), np.ones((3, 2)))
    assert result is None


def test_the_grad_of_a_detached_copy_is_named_not_guessed():
    import torch

    def norms(model):  # round 9's wrong cause: .detach() makes a tensor without .grad
        model(torch.ones(2, 3)).sum().backward()
        return [model.weight.detach().grad.norm().item()]

    _, result = _core.call("f", norms, torch.nn.Linear(3, 2))
    assert "a tensor made by a call (.detach(), .clone()) has no .grad" in result.detail


def test_a_list_of_one_where_several_are_expected_is_not_called_reduced():
    want = np.array([1.0, 2.0, 3.0])  # one value of a list: not a reduction seen
    result = _core.compare("f", np.array([7.0]), want, tol=1e-10)
    assert "reduced over every axis" not in result.detail, result.detail
    result = _core.compare("f", np.float64(7.0), want, tol=1e-10)  # a scalar: it is
    assert "reduced over every axis" in result.detail, result.detail
    result = _core.compare("f", np.array([1.0]), want, tol=1e-10)
    assert "except the last 2 along axis 0" in result.detail, result.detail


def test_state_kept_by_a_function_the_check_wraps_is_seen():
    """Round 9's false ok: lesson 08 runs the learner's function inside its own
    wrappers (one per rank); what the learner's function keeps is still seen."""
    totals = {}

    def learner(x):  # the total of the first call, kept
        totals.setdefault("n", len(x))
        return x

    wrapper = lambda x: learner(x)  # noqa: E731 (as lesson 08's on_rank)
    _, result = _core.call("f", lambda f, x: f(x), wrapper, np.ones(3), watch=False)
    assert "changed the enclosing `totals` during the call" in result.detail


NORMALISE = "mu = x.mean(axis=0)\nvar = x.var(axis=0, ddof=0)\n"
NORMALISE += "out = (x - mu) / np.sqrt(var + eps)"


@pytest.mark.parametrize(
    "wrong, edit",
    [  # each one edit of the reference, as a learner writes it
        (
            lambda x: (x - x.mean(0)) / (np.sqrt(x.var(0)) + 1e-5),
            "`np.sqrt(var) + eps`",
        ),
        (lambda x: (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + 1e-5), "ddof=1)`"),
        (lambda x: (x - x.mean()) / np.sqrt(x.var(0) + 1e-5), "`x.mean()` where"),
        (
            lambda x: (x - x.mean(0)) / np.sqrt(x.std(0) + 1e-5),
            "`x.std(axis=0, ddof=0)`",
        ),
        (lambda x: (x - x.mean(0)) / np.sqrt(x.var(1, keepdims=True) + 1e-5), "axis=1"),
    ],
)
def test_one_edit_of_the_reference_is_named_as_that_edit(wrong, edit):
    x = np.random.default_rng(0).normal([1.0, -3.0, 8.0], [2.0, 0.5, 4.0], (9, 3))
    want = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    program = (NORMALISE, {"x": x, "eps": 1e-5}, "out")
    result = _core.compare("f", wrong(x), want, tol=1e-10, program=program)
    assert not result and "the right formula with one change" in result.detail
    assert edit in result.detail, result.detail


def test_neighbours_skip_edits_that_change_nothing_or_repeat_a_value():
    x = np.random.default_rng(1).normal(size=(6, 2))
    found = _core.neighbours(NORMALISE, {"x": x, "eps": 1e-5}, "out")
    want = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    values = list(found.values())
    assert values and all(_core.rel_error(v, want) > 1e-9 for v in values)
    assert all(  # one message per distinct answer: no "cannot say which"
        _core.rel_error(a, b) > 1e-9 for i, a in enumerate(values) for b in values[:i]
    )


def test_an_upstream_edit_that_zeroes_a_term_is_not_offered():
    """x_hat = 0 (mu = x) would explain any mistake that drops x_hat's terms."""
    x = np.random.default_rng(2).normal(size=(8, 3))
    program = "mu = x.mean(axis=0)\nx_hat = x - mu\nout = 2 * x + x_hat"
    found = _core.neighbours(program, {"x": x}, "out")
    assert not any("the mu that out uses: `x`" in k for k in found), list(found)


def test_a_right_answer_or_a_sign_flip_gets_no_neighbour():
    x = np.random.default_rng(3).normal(size=(7, 2))
    want = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    program = (NORMALISE, {"x": x, "eps": 1e-5}, "out")
    assert _core.compare("f", want.copy(), want, tol=1e-10, program=program)
    flipped = _core.compare("f", -want, want, tol=1e-10, program=program)
    assert "wrong sign" in flipped.detail and "one change" not in flipped.detail


def test_a_count_names_its_ratios_but_not_where_a_simpler_name_fits():
    assert _core._named(12 / 11, {"N": 12}) == "N/(N-1) with N = 12"
    assert _core._named(1 / 3, {"W": 3}) == "1/(W)"  # not (W-2)/W
    assert _core._named(2.0, {"W": 3}) == "2"  # not (W+1)/(W-1)


def test_a_factor_that_is_a_count_of_the_last_input_is_named():
    # dgamma averaged over the positions (a blind round's entry, not a mutant): off
    # by 1/(H·W); the count comes from the last call's input, no check lists it
    x = np.random.default_rng(3).normal(size=(2, 3, 5, 6))
    got, _ = _core.call("f", lambda a: a.sum((0, 2, 3)) / 30, x)
    result = _core.compare("f", got, x.sum((0, 2, 3)), tol=1e-10)
    assert "off by the constant factor 0.03333 = 1/(H·W = 30)" in result.detail


@pytest.mark.parametrize("slip", ["sum of squares", "sum over positions / N"])
def test_a_stage_off_by_a_count_is_read_as_the_usual_one_times_it(slip):
    # the variance left as a sum of squares, or a 3-D mean divided by N only: each
    # stage is the usual one times a count of the input (N, or L), named as such
    rng, eps = np.random.default_rng(0), 1e-5
    x = rng.normal(size=(6, 4, 5)) * 3 + 2
    gamma, beta = rng.random(4) + 0.5, rng.normal(size=4)
    rows = x.transpose(0, 2, 1).reshape(-1, 4)
    m, v = rows.mean(0), rows.var(0)
    if slip == "sum of squares":
        v, want = v * 30, "v = the biased variance times N·L = 30"
    else:
        m, want = x.sum((0, 2)) / 6, "the mean used is the batch mean times L = 5"
    _core.call("f", lambda a: a, x)  # the input the counts come from
    out = gamma * (rows - m) / np.sqrt(v + eps) + beta
    assert want in _core.stages(out, rows, gamma, beta, eps=eps)


def test_a_course_layer_returns_a_tensor_of_its_inputs_shape_and_dtype():
    # every module exercise is a normalisation layer: float64 noise in a float32
    # layer, a squeeze() or a list fail wherever they show, not only in one check
    torch = pytest.importorskip("torch")

    class Layer(torch.nn.Module):
        def __init__(self, how):
            super().__init__()
            self.how = how

        def forward(self, x):
            return self.how(x)

    x = torch.ones(4, 1, 3)
    for how, said in [
        (lambda x: x.double(), "torch.float32 (4, 1, 3) input gave torch.float64 (4,"),
        (lambda x: x.squeeze(), "every axis of size 1 is dropped (a squeeze()?)"),
        (lambda x: [x], "input gave list: a normalisation layer returns a tensor"),
    ]:
        _, problem = _core.call("f", Layer(how), x)
        assert problem is not None and said in problem.detail
    assert _core.call("f", Layer(lambda x: 2 * x), x)[1] is None
    assert _core.call("f", torch.nn.Flatten(), x)[1] is None  # torch's: not judged


def test_an_answer_off_by_a_factor_and_an_offset_is_read_as_both():
    """x.var() * n / n - 1 (a missing parenthesis): the biased variance minus 1,
    read against the unbiased one as the factor (N-1)/N and the offset -1."""
    x = np.random.default_rng(11).standard_normal((16, 4))
    text = _core.describe(x.var(0) - 1, x.var(0, ddof=1), known={"N": 16})
    assert (
        text
        == "the right value times 0.9375 = (N-1)/N with N = 16, plus -1, everywhere"
    )
    w = np.array([1.0, 1.0, 1.0])  # no spread: a factor and an offset cannot be told
    assert "plus" not in (_core.describe(2 * w + 1, w) or "")


@pytest.mark.parametrize("k", [2, 3])
def test_a_running_average_updated_k_times_in_a_call_is_named(k):
    old, batch, m = np.zeros(3), np.array([1.0, -2.0, 0.5]), 0.3
    new = old
    for _ in range(k):
        new = (1 - m) * new + m * batch
    text = _core.ema_problem("running_mean", new, old, batch, m)
    assert f"is what {k} updates in a row give: one update per training call" in text
    assert "updates in a row" not in _core.ema_problem(
        "running_mean", old + 0.45 * batch, old, batch, m
    )


def test_a_def_is_read_against_its_exercise_signature_sentinels_and_lists_pass():
    """Every exercise's parameters (order, defaults) are checked, from one table;
    a None default (a sentinel read in the body) and a list for a tuple pass."""
    from helpers import contract

    def problem(label, **defs):
        (key, fn), *_ = defs.items()
        return _core.order_problem(label, fn, contract.SIGNATURES[key])

    swapped = problem("b", batchnorm_backward=lambda cache, dout: 0)
    assert "dout is elsewhere" in swapped.detail
    keras = problem("f", batchnorm_forward=lambda x, gamma, beta, eps=1e-3: 0)
    assert "eps defaults to 0.001, the exercise's to 1e-05" in keras.detail
    required = problem("f", batchnorm_forward=lambda x, gamma, beta, eps: 0)
    assert "eps has no default, the exercise's 1e-05" in required.detail
    assert problem("f", batchnorm_forward=lambda x, gamma, beta, eps=None: 0) is None
    assert problem("f", batchnorm_forward=lambda x, g, b, eps=1e-5: 0) is None
    assert problem("a", activation_percentiles=lambda values, q=[15, 50, 85]: 0) is None
    assert problem("b", batchnorm_backward=lambda dout, cache=None: 0) is None
    slash = problem("s", standardize_columns=lambda X, eps=1e-5, /: X)  # round 17
    assert "eps is positional-only (before the /): a call with eps=" in slash.detail
    assert problem("s", standardize_columns=lambda X, /, eps=1e-5: X) is None
    keyword = problem("s", sync_bn_backward=lambda saved, *, dout, all_reduce: 0)
    assert "signature (saved, *, dout, all_reduce)" in keyword.detail


def test_a_checked_function_with_its_parameters_swapped_is_told_so(learner_mode):
    torch = pytest.importorskip("torch")
    from helpers import checks

    def backward(cache, dout):  # the capstone's order in lesson 02
        raise AssertionError("never called")

    text = checks.batchnorm_backward(lambda *a, **k: None, backward, quiet=True)
    assert "dout is elsewhere" in text.lines()
    text = checks.sync_batchnorm_backward(None, lambda cache, dout, r: 0, quiet=True)
    assert "dout is elsewhere" in text.lines()
    text = checks.fold_batchnorm(lambda bn, layer: 0, quiet=True).lines()
    assert "(bn, layer); the exercise's: (layer, bn): layer is elsewhere" in text
    schedule = lambda step, warmup, r_steps, d_steps, dmax_final=5.0, rmax_final=3.0: 0
    assert (
        "rmax_final is elsewhere"
        in checks.renorm_schedule(schedule, quiet=True).lines()
    )

    class Keras(torch.nn.Module):
        def __init__(self, num_features, eps=1e-3, momentum=0.01, rmax=1.0, dmax=0.0):
            super().__init__()

    text = checks.batch_renorm(Keras, None, quiet=True).lines()
    assert "eps defaults to 0.001, the exercise's to 1e-05" in text
    probe = lambda model, x, y, lr, index: (0.0, 1.0)
    assert "index is elsewhere" in checks.gradient_change(probe, quiet=True).lines()
    keras = lambda X, eps=1e-3: X
    text = checks.standardize_columns(keras, quiet=True).lines()
    assert "eps defaults to 0.001, the exercise's to 1e-05" in text


def test_twice_a_ratio_of_counts_is_no_name_it_is_a_coincidence():
    """Unseen round 16's wrong cause: a loss divided by the 3 classes gave the
    factor 8/3, which 2·(N/(N-2)) with N = 8 also is; two steps from a count are
    a coincidence, one (Bessel's N/(N-1)) is a name."""
    assert _core._named(8 / 3, {"N": 8}) is None
    assert _core._named(8 / 7, {"N": 8}) == "N/(N-1) with N = 8"


def test_a_square_answer_is_read_as_a_matrix_product_only_for_more_than_one_value():
    """(D, D) for (D,) with the diagonal right: A.T @ B; (1, 1) for (1,) is keepdims."""
    w = np.arange(1.0, 4.0)
    square = np.diag(w) + 0.5 * (1 - np.eye(3))  # the diagonal right, the rest not
    assert "a matrix product" in _core.compare("t", square, w, tol=1e-10).detail
    one = _core.compare("t", np.array([[2.0]]), np.array([2.0]), tol=1e-10).detail
    assert "keepdims" in one and "matrix product" not in one


def test_a_tensor_made_and_dropped_is_said_when_the_check_fails(
    learner_mode, monkeypatch
):
    # `buf.mul(m)` alone: the method's in-place twin (mul_) or an assignment was meant;
    # said only under a failing check, never for np.add(..., out=) or a passing one
    import torch

    from helpers import contract

    monkeypatch.setitem(contract.SIGNATURES, "update", "buf, x, m=0.1")
    monkeypatch.setitem(contract.SIGNATURES, "Layer", "")

    def update(buf, x, m=0.1):
        buf.mul(1 - m)
        buf.add_(m * x.mean(0))
        np.add(seen := np.zeros(3), 1, out=seen)
        return buf

    def body(passed):
        update(torch.zeros(3), torch.ones(4, 3))
        return _core.ok("update", "right") if passed else _core.wrong("update", "off")

    report = _core.run_check("update", lambda: body(False), quiet=True, update=update)
    note = "your line `buf.mul(1 - m)` (update) makes a new tensor and drops it: mul_"
    assert note in report[-1].detail and report[-1].verdict == _core.INFO
    report = _core.run_check("update", lambda: body(True), quiet=True, update=update)
    assert len(report) == 1 and report.passed

    class Layer(torch.nn.Module):  # a class's own methods are read
        def forward(self, x):
            x.clamp(0, 1)
            return x

    report = _core.run_check("layer", lambda: body(False), quiet=True, Layer=Layer)
    assert "`x.clamp(0, 1)` (forward) makes a new tensor" in report[-1].detail
