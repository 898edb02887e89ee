"""Notebook 02's checks: right answers pass, stubs are "not yet", combined cases.

Each plausible mistake's message: tests/mutants/lesson02.py, via test_mutants.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import checks

from .mutants import lesson02 as m


def forward_ok(x, g, b, eps=1e-5):
    return m.bn_forward(x, g, b, eps)


def test_reference_implementations_pass(learner_mode):
    assert checks.batchnorm_forward(forward_ok, quiet=True)
    assert checks.batchnorm_backward(forward_ok, m.bn_backward, quiet=True)
    assert checks.batchnorm_backward_alt(
        forward_ok, m.bn_backward, m.bn_backward, quiet=True
    )
    assert checks.spatial_batchnorm_forward(m.spatial_forward, quiet=True)
    assert checks.spatial_batchnorm_backward(
        m.spatial_forward, m.spatial_backward, quiet=True
    )
    assert checks.layernorm_forward(m.ln_forward, quiet=True)
    assert checks.layernorm_backward(m.ln_forward, m.ln_backward, quiet=True)


def stub(*args, **kwargs):
    raise NotImplementedError("stub: hint")


@pytest.mark.parametrize(
    "check",
    [
        lambda: checks.batchnorm_forward(stub),
        lambda: checks.batchnorm_backward(stub, stub),
        lambda: checks.batchnorm_backward(forward_ok, stub),
        lambda: checks.batchnorm_backward_alt(forward_ok, stub, stub),
        lambda: checks.spatial_batchnorm_forward(stub),
        lambda: checks.spatial_batchnorm_backward(stub, stub),
        lambda: checks.layernorm_forward(stub),
        lambda: checks.layernorm_backward(stub, stub),
    ],
)
def test_stubs_say_not_yet_and_never_raise(check, learner_mode, capsys):
    report = check()
    assert not report and "not yet" in report.verdicts
    assert "Traceback" not in capsys.readouterr().out


def test_forward_error_is_flagged_in_the_backward_check(learner_mode):
    """A backward pass consistent with a wrong forward pass is told so."""
    wrong_forward = m.BN_FORWARD["unbiased variance"][0]  # its own cache layout

    def backward_of_unbiased(dout, cache):
        x_hat, std, gamma = cache
        n = dout.shape[0]
        g = dout * gamma
        # exact gradient of the unbiased-variance forward pass
        dx = (g - g.mean(0) - x_hat * (g * x_hat).sum(0) / (n - 1)) / std
        return dx, (dout * x_hat).sum(0), dout.sum(0)

    report = checks.batchnorm_backward(wrong_forward, backward_of_unbiased)
    text = report.lines()
    assert "numeric" in text and "itself is off" in text
    numeric = [r for r in report if r.name.endswith("numeric")][0]
    assert numeric.passed  # consistent with its own forward pass
    assert report.passed, text  # the forward's slip costs the forward only


def test_hidden_shapes_work_with_float32_and_small_batches(learner_mode):
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    out, _ = forward_ok(x, np.ones(3), np.zeros(3))
    assert out.shape == (2, 3)
    assert checks.batchnorm_forward(forward_ok, shape=(2, 9), seed=13, quiet=True)


# --------------------------------------------------------------------------
# mistakes no list foresees: combinations, stray factors, broadcasting
# --------------------------------------------------------------------------


def _lines(report):
    lines = report.lines()
    return lines if isinstance(lines, str) else " | ".join(lines)


def test_a_combination_of_forward_mistakes_is_named_stage_by_stage(learner_mode):
    def both(x, g, b, eps=1e-5):  # unbiased variance and eps outside the root
        return m.bn_forward(x, g, b, eps, ddof=1, eps_out=True)

    text = _lines(checks.batchnorm_forward(both))
    assert "the mean used is the batch mean (right)" in text, text
    assert "sqrt(v) + eps (eps outside the root), v = the unbiased" in text, text

    def mad(x, g, b, eps=1e-5):  # no listed scale: what is seen, no guess
        s = np.abs(x - x.mean(0)).mean(0)
        return g * (x - x.mean(0)) / np.sqrt(s**2 + eps) + b, None

    text = _lines(checks.batchnorm_forward(mad))
    assert "the scale is none of the usual ones (s / sqrt(var + eps): 0.8" in text

    def in_float32(x, g, b, eps=1e-5):
        f32 = np.float32
        return m.bn_forward(x.astype(f32), g.astype(f32), b.astype(f32), f32(eps))

    text = _lines(checks.batchnorm_forward(in_float32))
    assert "float32 numbers" in text and "centring" not in text, text


def test_a_combination_of_backward_mistakes_is_named_per_gradient(learner_mode):
    def both(dout, cache):  # no mean branch and no gamma: no listed mistake
        return m.bn_backward(dout, cache, mean_branch=False, gamma_factor=False)

    def no_variance_no_gamma(dout, cache):
        return m.bn_backward(dout, cache, var_branch=False, gamma_factor=False)

    text = _lines(checks.batchnorm_backward(forward_ok, both))
    assert "dx's sum over the batch per feature is not PyTorch's" in text, text
    text = _lines(checks.batchnorm_backward(forward_ok, no_variance_no_gamma))
    assert "dx's product with x_hat per feature is not PyTorch's" in text, text


def test_a_stray_factor_is_named_even_when_no_mistake_lists_it(learner_mode):
    def doubled(dout, cache):
        dx, dgamma, dbeta = m.bn_backward(dout, cache)
        return 2.0 * dx, dgamma, dbeta

    def bessel(dout, cache):
        dx, dgamma, dbeta = m.bn_backward(dout, cache)
        return dx * 16 / 15, dgamma, dbeta  # the check's batch has N = 16

    assert "constant factor 2 everywhere" in _lines(
        checks.batchnorm_backward(forward_ok, doubled)
    )
    assert "N/(N-1)" in _lines(checks.batchnorm_backward(forward_ok, bessel))


def test_a_broadcast_error_says_which_axis(learner_mode):
    def per_example(x, g, b, eps=1e-5):  # statistics over axis 1 without keepdims
        mu, var = x.mean(axis=1), x.var(axis=1)
        return g * (x - mu) / np.sqrt(var + eps) + b, None

    text = _lines(checks.batchnorm_forward(per_example))  # which shape is whose
    assert "one per example (16, 1)" in text and "mu (16,), var (16,)" in text, text

    # layer norm reduces over axis 1: the same hint must not push it to axis 0
    def ln_no_keepdims(x, g, b, eps=1e-5):
        mu, var = x.mean(axis=1), x.var(axis=1)
        return g * (x - mu) / np.sqrt(var + eps) + b, None

    text = _lines(checks.layernorm_forward(ln_no_keepdims))
    assert "keepdims=True" in text and "batch norm reduces" not in text, text


def test_a_wrong_shaped_forward_is_named_by_the_backward_check(learner_mode):
    def flat_forward(x, g, b, eps=1e-5):  # forgets to reshape back to (N, C, H, W)
        out, cache = m.spatial_forward(x, g, b, eps)
        return out.reshape(-1, x.shape[1]), cache

    text = _lines(checks.spatial_batchnorm_backward(flat_forward, m.spatial_backward))
    assert "needs spatial_batchnorm_forward first" in text, text
    assert "ERROR" not in text, text


def test_the_staged_backward_names_its_first_wrong_stage(learner_mode):
    """Karpathy-style: the learner's local gradients, stage by stage, against
    autograd's; the notebook's own variable names are found."""

    def staged(dout, cache, *, bad_dvar=False):
        x_hat, std, gamma = cache
        n = dout.shape[0]
        xc = x_hat * std
        dbeta, dgamma = dout.sum(0), (dout * x_hat).sum(0)
        dx_hat = dout * gamma
        drho = (dx_hat * xc).sum(0)
        dxc = dx_hat / std
        ds = -drho / std**2
        dvar = ds / (2.0 * std) * (2.0 if bad_dvar else 1.0)
        dxc = dxc + 2.0 * xc * dvar / n
        dmu = -dxc.sum(0)
        return dxc + dmu / n, dgamma, dbeta

    def wrong_dvar(dout, cache):
        return staged(dout, cache, bad_dvar=True)

    text = _lines(checks.batchnorm_backward(forward_ok, wrong_dvar))
    assert "the first wrong stage is dvar" in text, text
    assert "dx_hat, drho, ds" in text, text
    assert checks.batchnorm_backward(forward_ok, staged, quiet=True)


def test_a_skipped_comparison_is_a_note_not_an_ok(learner_mode):
    report = checks.batchnorm_backward_alt(forward_ok, m.bn_backward, quiet=True)
    line = next(r for r in report if r.name == "backward_alt vs backward")
    assert line.verdict == "note" and "skipped" in line.detail
    assert report.passed  # a note never fails the check
    report = checks.batchnorm_backward_alt(forward_ok, m.bn_backward, stub, quiet=True)
    line = next(r for r in report if r.name == "backward_alt vs backward")
    assert line.verdict == "note"


# --------------------------------------------------------------------------
# each graded test judges its own exercise (issue 28, review W1 and C6)
# --------------------------------------------------------------------------


def _grades(substitutions, monkeypatch):
    from helpers import course

    from .test_mutants import grader_outcome

    lesson = next(x for x in course.checked_lessons() if x.number == "02")
    return grader_outcome(lesson, substitutions, monkeypatch)


# the solution's own spatial and layer-norm functions call the namespace's
# batchnorm_forward and batchnorm_backward_alt, as a learner's reuse does
REUSED = {"batchnorm_backward": m.bn_backward, "batchnorm_backward_alt": m.bn_backward}


# forward slips whose cache holds x_hat and std made with a usual slip (the
# variance, eps, the root) or that a right backward reads right anyway
SLIPS = [
    "eps omitted",
    "beta subtracted",
    "unbiased variance",
    "eps outside the square root",
    "missing square root",
    "unbiased and eps outside",
    "gamma and beta forgotten",
]


@pytest.mark.parametrize("slip", SLIPS)
def test_a_forward_slip_costs_the_forward_points_only(slip, monkeypatch):
    forward = m.BN_FORWARD[slip][0]
    outcome = _grades({**REUSED, "batchnorm_forward": forward}, monkeypatch)
    assert {k for k, v in outcome.items() if not v} == {"batchnorm_forward"}, outcome


def test_a_closed_form_slip_costs_its_own_points_only(monkeypatch):
    """The review's C6: spatial functions that reuse a wrong backward_alt."""
    wrong = m.BN_BACKWARD["m = dout.shape[1]"][0]
    given = {"batchnorm_forward": forward_ok, "batchnorm_backward": m.bn_backward}
    outcome = _grades({**given, "batchnorm_backward_alt": wrong}, monkeypatch)
    zeroed = {k for k, v in outcome.items() if not v}
    assert "batchnorm_backward_alt" in zeroed and "spatial_batchnorm" not in zeroed


def test_the_one_pass_variance_is_right_and_scores_full_marks(monkeypatch):
    outcome = _grades({**REUSED, "batchnorm_forward": m.one_pass_forward}, monkeypatch)
    assert all(outcome.values()), outcome


def test_a_wrapper_of_a_degenerate_function_gets_no_reuse_credit(monkeypatch):
    """Reuse credit is for a slip: an (N, D) 'batch norm' that returns zeros, and
    spatial functions that wrap it faithfully, earn nothing (the outside red
    team's lying answers scored the spatial points this way)."""
    import numpy as np

    def zeros_forward(x, gamma, beta, eps=1e-5):
        return np.zeros_like(x), {"x": x}

    def zeros_backward(dout, cache):
        return np.zeros_like(dout), np.zeros(dout.shape[1]), np.zeros(dout.shape[1])

    outcome = _grades(
        {
            "batchnorm_forward": zeros_forward,
            "batchnorm_backward": zeros_backward,
            "batchnorm_backward_alt": zeros_backward,
        },
        monkeypatch,
    )
    assert not outcome["spatial_batchnorm"] and not outcome["layernorm"], outcome


def test_a_right_backward_passes_its_check_with_a_slipped_forward(learner_mode):
    """The backward pass is judged with its forward's cache made right: a right
    backward, given a forward with the unbiased variance, passes its check, and
    no stage of it is blamed."""
    wrong_forward = m.BN_FORWARD["unbiased variance"][0]
    for check in (checks.batchnorm_backward, checks.batchnorm_backward_alt):
        report = check(wrong_forward, m.bn_backward, quiet=True)
        text = _lines(report)
        assert report.passed, text
        assert "itself is off" in text and "the unbiased variance" in text, text
        assert "wrong stage" not in text, text


# --------------------------------------------------------------------------
# no cause from a cascade: a cache that is off is shown, not a branch blamed
# --------------------------------------------------------------------------


def scaled_in_place(x, g, b, eps=1e-5):
    """Right out; the cached x_hat is scaled into out in place (aliased)."""
    x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + eps)
    cache = (x_hat, np.sqrt(x.var(0) + eps), g)
    x_hat *= g
    x_hat += b
    return x_hat, cache


def test_a_cache_overwritten_in_place_is_shown_not_a_branch_blamed(learner_mode):
    for check in (checks.batchnorm_backward, checks.batchnorm_backward_alt):
        text = _lines(check(scaled_in_place, m.bn_backward))
        assert "it equals out" in text, text
        assert "the branch through" not in text and "first wrong stage" not in text


def test_the_backward_reads_its_forward_quantities_before_its_stages(learner_mode):
    """Karpathy's cmp starts at what the backward reads: a local xc that holds
    x_hat is the first that differs, not the drho computed from it."""

    def staged(dout, cache):
        x_hat, std, gamma = cache
        n = dout.shape[0]
        xc = x_hat  # meant: x_hat * std
        dx_hat = dout * gamma
        drho = (dx_hat * xc).sum(0)
        ds = -drho / std**2
        dvar = ds / (2.0 * std)
        dxc = dx_hat / std + 2.0 * xc * dvar / n
        dmu = -dxc.sum(0)
        return dxc + dmu / n, (dout * x_hat).sum(0), dout.sum(0)

    text = _lines(checks.batchnorm_backward(forward_ok, staged))
    assert "xc (as it returns) is not x - mu: it equals x_hat" in text, text
    assert "the branch through" not in text and "drho" not in text, text


def test_gamma_along_x_transposed_is_not_called_a_statistic(learner_mode):
    def through_transpose(x, g, b, eps=1e-5):  # gamma lined up with x.T's rows
        xt = x.T
        x_hat = (xt - xt.mean(0)) / np.sqrt(xt.var(0) + eps)
        return (g * x_hat + b).T, None

    for check in (checks.layernorm_forward, checks.layernorm_backward):
        args = (through_transpose,) * (1 if check is checks.layernorm_forward else 2)
        text = _lines(check(*args))
        assert "x transposed" in text and "statistic" not in text, text


def _with_cache(make):
    """A right out, with the cache ``make(x_hat, std, gamma)``."""

    def forward(x, g, b, eps=1e-5):
        out, (x_hat, std, gamma) = m.bn_forward(x, g, b, eps)
        return out, make(x_hat, std, gamma)

    return forward


def _from_any(dout, cache):  # a right backward that finds its arrays anywhere
    while isinstance(cache, list) and cache and cache[0] is cache:
        cache = cache[1]
    parts = cache.values() if isinstance(cache, dict) else cache
    return m.bn_backward(dout, tuple(np.asarray(a, dtype=float) for a in parts))


def _self_holding(*arrays):
    cache = []
    cache.extend([cache, arrays])
    return cache


@pytest.mark.parametrize(
    "make",
    [
        lambda *a: dict(zip(("x_hat", "std", "gamma"), a, strict=True)),
        lambda *a: [a[0].astype(np.float32), *a[1:]],
        lambda *a: (a[0] * np.nan, *a[1:]),
        lambda *a: tuple(np.broadcast_to(v, v.shape) for v in a),
        _self_holding,
        lambda *a: None,
    ],
)
def test_any_cache_is_read_without_crashing_the_check(make, learner_mode):
    text = _lines(checks.batchnorm_backward(_with_cache(make), _from_any))
    assert "a bug in the course" not in text and "Traceback" not in text, text


def test_a_dict_cache_of_a_slipped_forward_is_made_right(learner_mode):
    def unbiased(x, g, b, eps=1e-5):
        out, (x_hat, std, gamma) = m.bn_forward(x, g, b, eps, ddof=1)
        return out, {"x_hat": x_hat, "std": std, "gamma": gamma}

    def backward(dout, cache):
        return m.bn_backward(dout, (cache["x_hat"], cache["std"], cache["gamma"]))

    assert checks.batchnorm_backward(unbiased, backward, quiet=True)


def test_a_cache_that_deepcopy_cannot_copy_is_used_as_it_is(learner_mode):
    """A right forward whose cache holds a module (``cache = locals()`` after a
    local import) or a tensor in a graph: deepcopy raises on those; the checks
    must judge the answer, not crash or fail it."""
    torch = pytest.importorskip("torch")

    def forward(x, g, b, eps=1e-5):
        out, cache = m.bn_forward(x, g, b, eps)
        return out, (cache, np, torch.ones(1, requires_grad=True) * 2)

    def backward(dout, cache):
        return m.bn_backward(dout, cache[0])

    assert checks.batchnorm_forward(forward, quiet=True)
    assert checks.batchnorm_backward(forward, backward, quiet=True)
    assert checks.batchnorm_backward_alt(forward, backward, backward, quiet=True)


def test_a_cache_that_a_later_forward_call_overwrites_is_caught(learner_mode):
    """Unseen round 15's false ok: the forward writes its cache's arrays into
    buffers kept between calls (once per shape), so a second forward call on
    another batch of the same shape changes the first call's cache."""
    kept = {}

    def forward(x, g, b, eps=1e-5, _kept=kept):
        out, cache = m.bn_forward(x, g, b, eps)
        arrays = [a for a in cache if isinstance(a, np.ndarray)]
        for i, a in enumerate(arrays):  # a buffer per position and shape, reused
            _kept.setdefault((i, a.shape), np.empty_like(a))[...] = a
        it = iter(_kept[(i, a.shape)] for i, a in enumerate(arrays))
        return out, type(cache)(
            next(it) if isinstance(a, np.ndarray) else a for a in cache
        )

    text = _lines(checks.batchnorm_backward(forward, m.bn_backward, quiet=True))
    assert "changed the first call's cache" in text
    text = _lines(checks.batchnorm_backward_alt(forward, m.bn_backward, quiet=True))
    assert "changed the first call's cache" in text


def test_a_backward_that_ignores_the_forwards_eps_is_caught(learner_mode):
    """Unseen round 16's false ok: ds recomputed with the default eps written in;
    right at the default eps, so the numerical check runs at eps=0.1."""

    def forward(x, g, b, eps=1e-5):
        out, cache = m.bn_forward(x, g, b, eps)
        return out, (cache, x)

    def backward(dout, cache):  # the gradients of the forward at eps=1e-5 always
        return m.bn_backward(dout, m.bn_forward(cache[1], cache[0][2], 0.0, 1e-5)[1])

    text = _lines(checks.batchnorm_backward(forward, backward, quiet=True))
    assert "eps=0.1: rel. errors" in text
    assert "right at the default eps: use the eps of the forward" in text


def test_a_forward_whose_cache_is_an_autograd_graph_passes(learner_mode):
    """Unseen round 16's correct alternative: F.layer_norm on tensors that
    require grad, the cache (x, gamma, beta, out) a graph deepcopy cannot copy,
    the backward torch.autograd.grad; a copy of some items cut the graph."""
    torch = pytest.importorskip("torch")

    def forward(x, gamma, beta, eps=1e-5):
        t = [
            torch.tensor(a, dtype=torch.float64, requires_grad=True)
            for a in (x, gamma, beta)
        ]
        out = torch.nn.functional.layer_norm(t[0], (x.shape[1],), t[1], t[2], eps)
        return out.detach().numpy(), (*t, out)

    def backward(dout, cache):
        *inputs, out = cache
        grads = torch.autograd.grad(
            out, inputs, torch.as_tensor(dout), retain_graph=True
        )
        return tuple(g.numpy() for g in grads)

    assert checks.layernorm_forward(forward, quiet=True)
    assert checks.layernorm_backward(forward, backward, quiet=True)


def test_a_float32_step_is_named_by_its_error_size_not_blamed_on_eps(learner_mode):
    """Unseen round 16's wrong cause: the spatial forward's columns cast to
    float32 and the output cast back (float64 values, so no "float32 numbers"):
    its error sits in the tiny-variance channel, which was read as eps. Errors
    no larger than PyTorch's own in float32, channel by channel, are float32's."""

    def forward(x, g, b, eps=1e-5):  # float32 x meets float64 gamma: float64 out
        return m.spatial_forward(x.astype(np.float32), g, b, eps)

    for report in (
        checks.spatial_batchnorm_forward(forward, quiet=True),
        checks.spatial_batchnorm_backward(forward, m.spatial_backward, quiet=True),
    ):
        text = _lines(report)
        assert "errors of float32's size, feature by feature" in text, text
        assert "eps matters" not in text, text


def test_a_small_exact_offset_is_described_not_called_float32(learner_mode):
    """Unseen round 17's wrong cause (after the float32 reading came in): the
    zeros left out of the inner batch-norm call, so eps lands in beta: out is
    off by gamma * eps per feature, an error below float32's on this problem.
    An exact signature (an offset per feature) comes before the float32 size."""

    def forward(x, gamma, beta, eps=1e-5):
        inner, cache = m.bn_forward(x.T, np.ones(len(x)), eps, eps)  # beta = eps
        return gamma * inner.T + beta, cache

    text = _lines(checks.layernorm_forward(forward, quiet=True))
    assert "shifted by its own offset" in text and "float32" not in text, text


@pytest.mark.parametrize("per", ["feature", "example"])
def test_layer_norm_through_x_transposed_is_told_both_shapes(per, learner_mode):
    """Layer norm as batch norm of x.T with parameters of the wrong shape: gamma's
    (D,) values, or round 16's inner ones and zeros made as (N, 1) columns (the
    hint told the latter to use (D, 1), which was not their slip: (N,) it is)."""

    def forward(x, gamma, beta, eps=1e-5):
        xt = x.T  # (D, N): batch norm's statistics over axis 0 are per example
        mu, var = xt.mean(0), xt.var(0)
        if per == "feature":
            out = gamma * (xt - mu) / np.sqrt(var + eps) + beta  # (D, N) * (D,)
        else:
            ones, zeros = np.ones((len(x), 1)), np.zeros((len(x), 1))
            out = (ones * (xt - mu) / np.sqrt(var + eps) + zeros).T * gamma + beta
        return out, None

    text = _lines(checks.layernorm_forward(forward, quiet=True))
    assert "(8, 6) is x transposed: its 8 features run along its first axis" in text
    assert "one value per feature needs the shape (8, 1), one per example (6,)" in text
