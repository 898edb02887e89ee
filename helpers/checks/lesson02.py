"""Checks for notebook 02: batch norm (and layer norm) forward and backward in NumPy.

References are ``torch.nn.functional.batch_norm`` / ``layer_norm`` with
autograd in float64, and centred numerical gradients of the learner's own
forward pass.  Each check also computes what the usual mistakes produce (the
unbiased variance, eps outside the square root, a missing branch in the
backward pass, ...) and names the one the learner's answer matches.
"""

from __future__ import annotations

# The public checks: each one has wrong implementations in tests/mutants/.
__all__ = [
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "batchnorm_forward",
    "layernorm_backward",
    "layernorm_forward",
    "spatial_batchnorm_backward",
    "spatial_batchnorm_forward",
]

import copy
from dataclasses import dataclass

import numpy as np

from .. import gradcheck
from ._core import (
    EPS,
    ERROR,
    TODO,
    Result,
    _fmt,
    call,
    channels_last,
    compare,
    expect_raises,
    from_channels_last,
    info,
    ok,
    quiet_numerics,
    rel_error,
    run_check,
    shape_problem,
    stages,
    to_numpy,
    unpack,
    wrong,
    wrong_axes,
)

OUT, GRADS = (2, "out, cache"), (3, "dx, dgamma, dbeta")  # what the passes return
FORWARD_TOL = 1e-10  # float64 against torch, on well-conditioned data (the floor)
BACKWARD_TOL = 1e-10
NUMERIC_TOL = 1e-7  # float64, centred differences with h = 1e-5


def tolerance(kind: str, p) -> float:
    """The error a correct float64 implementation may make on ``p``: the
    problem's conditioning, not one implementation's rounding.  A variance
    of values with mean mu and variance var is known to about
    u * (mu^2 + var) / var (u = 2.2e-16): the one-pass E[x^2] - mu^2, as right
    as the two-pass formula, reaches it on a feature with a tiny spread."""
    x2 = p.x if kind == "layer" else _as_2d(kind, p.x)
    axis = 1 if kind == "layer" else 0
    kappa = np.max((x2**2).mean(axis) / (x2.var(axis) + p.eps))
    return max(FORWARD_TOL, 64 * np.finfo(float).eps * float(kappa))


# Library calls that would solve an exercise for the learner: the grader
# flags them in its notes column (tools/grading/flags.py), it does not fail them.
_TORCH = (r"\bF\.\w+", r"\bbatch_norm\b", r"\blayer_norm\b", r"\btorch\.\w+")
SHORTCUTS = {name: _TORCH for name in __all__}  # NumPy exercises: no torch at all


@dataclass(frozen=True)
class Kind:
    """One of the lesson's three normalisations, and the names its checks use."""

    key: str  # "batch", "spatial" or "layer": which statistics, which reference
    forward: str  # the learner's forward function's name
    refuses_one_example: bool  # N = 1 must raise ValueError (batch norm proper)


KINDS = {
    "batch": Kind("batch", "batchnorm_forward", True),
    "spatial": Kind("spatial", "spatial_batchnorm_forward", False),
    "layer": Kind("layer", "layernorm_forward", False),
}


@dataclass
class Problem:
    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    dout: np.ndarray
    eps: float


def make_problem(kind: str, seed: int, shape=None, eps=EPS, tiny=True) -> Problem:
    """Non-trivial inputs: x = 5 randn + 12, gamma != 1, beta != 0, random dout.

    With ``tiny`` one feature (channel) has a standard deviation of 0.01, so
    that eps matters and its place in the formula can be told apart.
    """
    rng = np.random.default_rng(seed)
    if shape is None:
        shape = {"batch": (16, 5), "spatial": (4, 3, 5, 6), "layer": (6, 8)}[kind]
    x = 5.0 * rng.standard_normal(shape) + 12.0
    features = shape[1]
    if tiny:
        if kind == "layer":  # layer norm: one example with a tiny spread
            x[1] = 12.0 + 0.01 * rng.standard_normal(shape[1:])
        else:
            x[:, 1] = 12.0 + 0.01 * rng.standard_normal(x[:, 1].shape)
    gamma = rng.uniform(0.5, 2.0, features)
    beta = rng.normal(0.0, 1.0, features)
    dout = rng.standard_normal(shape)
    return Problem(x, gamma, beta, dout, eps)


# --------------------------------------------------------------------------
# references (torch) and the usual mistakes
# --------------------------------------------------------------------------


def reference(kind: str, p: Problem):
    """(out, dx, dgamma, dbeta) from torch autograd in float64."""
    import torch
    import torch.nn.functional as F

    x = torch.tensor(p.x, dtype=torch.float64, requires_grad=True)
    g = torch.tensor(p.gamma, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(p.beta, dtype=torch.float64, requires_grad=True)
    if kind == "layer":
        out = F.layer_norm(x, (x.shape[1],), g, b, eps=p.eps)
    else:
        out = F.batch_norm(x, None, None, g, b, training=True, eps=p.eps)
    out.backward(torch.from_numpy(p.dout))
    return (
        out.detach().numpy(),
        x.grad.numpy(),
        g.grad.numpy(),
        b.grad.numpy(),
    )


def _as_2d(kind: str, array):
    """View a problem as (examples, features) over which statistics are taken."""
    return channels_last(array) if kind == "spatial" else array


def forward_invariants(kind: str, p: Problem) -> list:
    """Read the output back stage by stage (``_core.wrong_axes``, ``stages``):
    over which axes the statistics were taken, which mean and which scale were
    used."""
    axes = {"batch": (0,), "spatial": (0, 2, 3), "layer": (1,)}[kind]
    rows = (lambda a: a.T) if kind == "layer" else (lambda a: _as_2d(kind, a))
    column = (lambda v: v[:, None]) if kind == "layer" else (lambda v: v)

    def axes_used(out):
        return wrong_axes(out, p.x, p.gamma, p.beta, eps=p.eps, axes=axes)

    def read_back(out):
        return stages(rows(out), rows(p.x), column(p.gamma), column(p.beta), eps=p.eps)

    return [axes_used, read_back]


def directions(kind: str, p: Problem) -> dict:
    """The two branches of batch norm's input gradient, per feature: a constant
    (through the mean) and x_hat (through the variance)."""
    if kind == "layer":
        return {}
    x2 = _as_2d(kind, p.x)
    x_hat = (x2 - x2.mean(0)) / np.sqrt(x2.var(0) + p.eps)
    return {
        "1": np.ones(p.x.shape),
        "x_hat": from_channels_last(x_hat, p.x.shape),
    }


def dx_invariants(kind: str, p: Problem, dx_ref) -> list:
    """What batch norm's dx always satisfies, per feature: its sum over the
    batch and its projection on x_hat are PyTorch's (0, and 0 but for eps)."""
    ways = directions(kind, p)
    size = np.abs(dx_ref).sum() if ways else 0.0

    def check(dx):
        for name, what in (
            ("1", "sum over the batch"),
            ("x_hat", "product with x_hat"),
        ):
            got, want = (_as_2d(kind, a * ways[name]).sum(0) for a in (dx, dx_ref))
            if not np.allclose(got, want, rtol=1e-6, atol=1e-9 * size):
                return f"dx's {what} per feature is not PyTorch's ({_fmt(got)})"
        return None

    return [check] if ways else []


def known(kind: str, p: Problem) -> dict:
    """Quantities of the problem a slip multiplies by (their inverses, roots and
    squares are recognised too), named for the learner."""
    n = _as_2d(kind, p.x).shape[0] if kind != "layer" else p.x.shape[1]
    x2 = _as_2d(kind, p.x)
    return {
        f"N/(N-1) = {n}/{n - 1}": n / (n - 1),
        f"N = {n}": float(n),
        "gamma": p.gamma,
        "beta": p.beta,
        **({} if kind == "layer" else {"sigma": np.sqrt(x2.var(0) + p.eps)}),
    }


def causes(kind: str, p: Problem, what: str = "out") -> dict:
    """Signatures (see ``_core.describe``) that name one cause exactly, for
    the output ``what`` ("out", "dx", "dgamma" or "dbeta") only."""
    n = _as_2d(kind, p.x).shape[0] if kind != "layer" else p.x.shape[1]
    feature = "channel" if kind == "spatial" else "feature"
    summed = {
        f"factor 1/(N = {n})": "averaged over the batch; gradients of a shared "
        "parameter add up (sum)"
    }
    return {
        "out": {
            f"{feature} offset -2·(beta)": "beta is subtracted: out = gamma * x_hat "
            "+ beta",
            f"{feature} offset -(beta)": "beta is not added: out = gamma * x_hat + "
            "beta",
        },
        "dx": {
            f"{feature} factor 1/(gamma)": "the gradient reaching x_hat is dout * "
            "gamma",
            "along 1": "the branch through the mean is off (missing, or scaled wrong)",
            "along x_hat": "the branch through the variance is off (missing, or "
            "scaled wrong)",
            "along 1 and x_hat": "the direct term dout * gamma / sigma is right; "
            "what differs lies in the branches through the mean and the variance "
            "(one or both)",
        },
        "dgamma": {
            **summed,
            f"{feature} factor sigma": "x - mu where x_hat = (x - mu) / sigma is meant",
        },
        "dbeta": summed,
    }[what]


def forward_mistakes(kind: str, p: Problem) -> dict[str, np.ndarray]:
    """A mistake that no stage shows: the spatial reshape without its transpose."""
    if kind != "spatial":
        return {}
    n, c, h, w = p.x.shape
    naive = p.x.reshape(-1, c)
    out = p.gamma * (naive - naive.mean(0)) / np.sqrt(naive.var(0) + p.eps) + p.beta
    return {
        "reshaped to (N*H*W, C) without moving C last: transpose(0, 2, 3, 1) "
        "before the reshape, and transpose back after": out.reshape(p.x.shape)
    }


def backward_mistakes(kind: str, p: Problem) -> dict[str, dict[str, np.ndarray]]:
    """Swapped or mixed-up parameter gradients (their formulas, per output)."""
    axis = 1 if kind == "layer" else 0
    x, dout = _as_2d(kind, p.x), _as_2d(kind, p.dout)
    x_hat = (x - x.mean(axis, keepdims=True)) / np.sqrt(
        x.var(axis, keepdims=True) + p.eps
    )
    swapped = "this is {}'s formula (dgamma and dbeta swapped?)"
    ones = Problem(p.x, np.ones_like(p.gamma), p.beta, p.dout, p.eps)
    return {
        "dx": {
            "dx misses gamma: the gradient reaching x_hat is dout * gamma": (
                reference(kind, ones)[1]
            )
        },
        "dgamma": {
            "dgamma uses x instead of x_hat: out = gamma * x_hat + beta": (
                dout * x
            ).sum(0),
            swapped.format("dbeta"): dout.sum(0),
        },
        "dbeta": {swapped.format("dgamma"): (dout * x_hat).sum(0)},
    }


def _not_summed_hints(kind: str, p: Problem) -> dict[tuple, str]:
    hint = (
        "not summed: gamma and beta are shared by every example, so their "
        "gradients add up over the batch"
        + (" and over H and W" if kind == "spatial" else " (axis 0)")
    )
    hints = {p.x.shape: hint, _as_2d(kind, p.x).shape: hint}
    if kind == "spatial":
        n, c, h, w = p.x.shape
        hints[(c, h, w)] = "summed over N only: sum over N, H and W (axes 0, 2, 3)"
        hints[(n, c)] = "summed over H and W only: sum over N too"
    return hints


def _output_shape_hints(kind: str, p: Problem) -> dict[tuple, str]:
    if kind != "spatial":
        return {}
    n, c, h, w = p.x.shape
    return {
        (n * h * w, c): "still (N*H*W, C): reshape back and transpose to (N, C, H, W)",
        (n, h, w, c): "still channels-last: transpose(0, 3, 1, 2) back to (N, C, H, W)",
    }


# --------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------


def _composed(kind, given, p: Problem):
    """The spatial or layer-norm output built from the learner's own (N, D)
    ``batchnorm_forward`` (``given``), the way the lesson suggests; or None."""
    if given is None or kind == "batch":
        return None
    ones, zeros = np.ones(p.x.shape[0]), np.zeros(p.x.shape[0])
    args = (
        (_as_2d(kind, p.x), p.gamma, p.beta)
        if kind == "spatial"
        else (p.x.T, ones, zeros)
    )
    value, problem = call("given", given, *args, eps=p.eps)
    if problem is not None or not isinstance(value, (tuple, list)) or not value:
        return None
    out = to_numpy(value[0])
    if out is None or out.shape != args[0].shape:
        return None
    if kind == "spatial":
        return from_channels_last(out, p.x.shape)
    return p.gamma * out.T + p.beta


def _wrong_view(kind, given, p: Problem):
    """The learner's (N, D) function applied to the wrong 2-D view of the input
    (spatial: reshaped without the transpose; layer norm: not transposed), its
    output mapped back the same wrong way: (out, dx) or None."""
    x = p.x.reshape(-1, p.x.shape[1]) if kind == "spatial" else p.x
    gamma = p.gamma if kind == "spatial" else np.ones(x.shape[1])
    beta = p.beta if kind == "spatial" else np.zeros(x.shape[1])
    forward, backward = given if isinstance(given, (tuple, list)) else (given, None)
    value, problem = call("given", forward, x, gamma, beta, eps=p.eps)
    if problem is not None or not isinstance(value, (tuple, list)) or len(value) != 2:
        return None
    out, dx = to_numpy(value[0]), None
    if backward is not None:
        dout = p.dout.reshape(x.shape)
        grads, problem = call("given", backward, dout, value[1])
        if problem is None and isinstance(grads, (tuple, list)) and grads:
            dx = to_numpy(grads[0])
    return out, dx


def _layout_blind(kind, given, p: Problem) -> bool:
    """Whether the learner's (N, D) function cannot tell the right view of the
    input from a wrong one (zeros, the identity, anything elementwise): then an
    answer "built on it" proves nothing, and earns no reuse credit."""
    if given is None or kind == "batch":
        return True
    wrong = _wrong_view(kind, given, p)
    if wrong is None or wrong[0] is None:
        return True
    right = _composed(kind, given[0] if isinstance(given, (tuple, list)) else given, p)
    if right is None or right.size != wrong[0].size:
        return True
    other = wrong[0].reshape(right.shape)
    if kind == "layer":  # as _composed maps the layer-norm output
        other = p.gamma * other + p.beta
    if rel_error(right, other) >= 1e-6:
        return False
    return True


def _judged_with_given(
    result, got, composed, tol, given_name="batchnorm_forward", blind=False
):
    """A spatial or layer-norm answer built right on the learner's own (N, D)
    function passes: that function's slip costs its own exercise's points.

    Only where that could have failed: an (N, D) function that cannot tell the
    input's layout (``_layout_blind``: zeros, the identity) gives no credit."""
    if blind or result.passed or composed is None or to_numpy(got) is None:
        return result
    if getattr(to_numpy(got), "shape", None) != composed.shape:
        return result
    if rel_error(got, composed) > tol:
        return result
    return info(
        result.name,
        f"right for your {given_name}, which this uses and which is off (its own "
        f"check says how; here {result.detail})",
    )


def _forward_results(kind, name, fn, p: Problem, given=None) -> list[Result]:
    items, problem = call(name, fn, p.x, p.gamma, p.beta, eps=p.eps, returns=OUT)
    if problem is not None:
        return [problem]
    want = reference(kind, p)[0]
    tol = tolerance(kind, p)
    results = [
        compare(
            f"{name} out",
            items[0],
            want,
            tol=tol,
            diagnoses=forward_mistakes(kind, p),
            what="out",
            shape_hints=_output_shape_hints(kind, p),
            readers=forward_invariants(kind, p),
            known=known(kind, p),
            causes=causes(kind, p),
            small=() if kind == "layer" else (1,),
        )
    ]
    results[0] = _judged_with_given(
        results[0],
        items[0],
        _composed(kind, given, p),
        tol,
        blind=_layout_blind(kind, given, p),
    )
    big_eps = Problem(p.x, p.gamma, p.beta, p.dout, 0.1)
    value, problem = call(name, fn, p.x, p.gamma, p.beta, eps=0.1)
    if problem is not None:
        results.append(problem)
    elif results[0].verdict == "ok":
        items, problem = unpack(name, value, 2, "out, cache")
        if problem is not None:  # a failed Result is falsy: never use `or`
            results.append(problem)
        else:
            results.append(
                compare(
                    f"{name} eps=0.1",
                    items[0],
                    reference(kind, big_eps)[0],
                    tol=tol,
                    diagnoses={
                        "ignores its eps argument (a fixed 1e-5?): use the eps "
                        "passed in": want
                    },
                    what="out",
                )
            )
    return results


def _batch_of_two(name, fn, p: Problem) -> Result:
    """The smallest batch batch norm handles (N = 2): computed, not refused."""
    two, label = Problem(p.x[:2], p.gamma, p.beta, p.dout[:2], p.eps), f"{name} N=2"
    value, problem = call(label, fn, two.x, p.gamma, p.beta, eps=p.eps, returns=OUT)
    if problem is not None:  # a failed Result is falsy: never use `or`
        return problem
    want = reference("batch", two)[0]
    return compare(label, value[0], want, tol=tolerance("batch", two), what="out")


def _forward_check(kind: Kind, fn, *, seed, shape, eps, quiet, strict, given=None):
    name = kind.forward
    p = make_problem(kind.key, seed, shape, eps)

    def body():
        results = _forward_results(kind.key, name, fn, p, given)
        if kind.refuses_one_example and all(
            r.verdict not in (TODO, ERROR) for r in results[:1]
        ):
            results.append(_batch_of_two(name, fn, p))
            single = p.x[:1]
            results.append(
                expect_raises(
                    f"{name} batch of one",
                    fn,
                    ValueError,
                    "one example has zero variance: PyTorch refuses it in "
                    "training mode too",
                    single,
                    p.gamma,
                    p.beta,
                )
            )
        return results

    return run_check(name, body, quiet=quiet, strict=strict)


def _numeric_result(kind, name, forward, backward, seed) -> Result:
    """Compare the learner's backward with numerical gradients of their forward."""
    shape = {"batch": (6, 4), "spatial": (3, 2, 2, 3), "layer": (4, 6)}[kind]
    p = make_problem(kind, seed + 100, shape, tiny=False)
    items, problem = call(name, forward, p.x, p.gamma, p.beta, eps=p.eps, returns=OUT)
    if problem is not None:
        return problem
    grads, problem = call(name, backward, p.dout, items[1], returns=GRADS)
    if problem is not None:
        return problem

    evaluate = gradcheck.evaluator(
        forward, ("x", "gamma", "beta"), pick=lambda r: r[0], eps=p.eps
    )
    try:
        found = gradcheck.numerical_gradients(
            evaluate, {"x": p.x, "gamma": p.gamma, "beta": p.beta}, p.dout
        )
    except Exception as exc:  # the forward pass failed on a nudged input
        return Result(
            f"{name} numeric",
            ERROR,
            f"{getattr(forward, '__name__', 'the forward pass')} raised "
            f"{type(exc).__name__} on a nudged input: {str(exc)[:100]}",
        )
    numeric = {"dx": found["x"], "dgamma": found["gamma"], "dbeta": found["beta"]}
    errors = {}
    for key, got in zip(("dx", "dgamma", "dbeta"), grads, strict=True):
        shaped = shape_problem(name, got, numeric[key].shape, key)
        if shaped is not None:
            return Result(f"{name} numeric", shaped.verdict, shaped.detail)
        errors[key] = rel_error(got, numeric[key])
    worst = max(errors.values())
    detail = ", ".join(f"{k} {v:.0e}" for k, v in errors.items())
    label = f"{name} numeric"
    if worst < NUMERIC_TOL:
        return ok(label, f"rel. errors {detail} (expect < {NUMERIC_TOL:.0e})", worst)
    return wrong(
        label,
        f"rel. errors {detail} (expect < {NUMERIC_TOL:.0e}): {gradcheck.band(worst)}",
        worst,
    )


def _explanations(name, backward, p, cache, gradients):
    """The first wrong stage of a staged backward (Karpathy's ``cmp``)."""
    if name != "batchnorm_backward" or gradients[0].verdict in ("ok", "note"):
        return []  # right, or judged on its own forward: no stages
    staged = _stage_result(name, backward, p, cache)
    return [] if staged is None else [staged]


def _grads_blind(kind, given, p: Problem, mine) -> bool:
    """``_layout_blind`` for the backward: the (N, D) backward's dx on the wrong
    view equals the one on the right view (zeros, a pass-through)."""
    wrong = _wrong_view(kind, given, p)
    if mine is None or wrong is None or wrong[1] is None or mine[0] is None:
        return True
    if wrong[1].size != mine[0].size:
        return True
    return rel_error(mine[0], wrong[1].reshape(mine[0].shape)) < 1e-6


def _composed_grads(kind, given, p: Problem):
    """(dx, dgamma, dbeta) of the spatial or layer-norm backward built from the
    learner's own (N, D) ``batchnorm_forward`` and ``batchnorm_backward_alt``
    (``given``, a pair), the way the lesson suggests; None if they fail."""
    if kind == "batch" or not isinstance(given, (tuple, list)) or len(given) != 2:
        return None
    layer = kind == "layer"
    x2 = p.x.T if layer else _as_2d(kind, p.x)
    gamma = np.ones(x2.shape[1]) if layer else p.gamma
    beta = np.zeros(x2.shape[1]) if layer else p.beta
    value, problem = call("given", given[0], x2, gamma, beta, eps=p.eps)
    if problem is not None or not isinstance(value, (tuple, list)) or len(value) != 2:
        return None
    dout2 = (p.dout * p.gamma).T if layer else _as_2d(kind, p.dout)
    grads, problem = call("given", given[1], dout2, value[1])
    if problem is not None or not isinstance(grads, (tuple, list)) or len(grads) != 3:
        return None
    dx2, x_hat = to_numpy(grads[0]), to_numpy(value[0])
    if dx2 is None or x_hat is None or dx2.shape != x2.shape != x_hat.shape:
        return None
    if layer:
        return dx2.T, (p.dout * x_hat.T).sum(0), p.dout.sum(0)
    return from_channels_last(dx2, p.x.shape), to_numpy(grads[1]), to_numpy(grads[2])


def _judge_backward(kind_: Kind, name, out, p, gradients, numeric):
    """A backward pass is judged on its own (STYLE.md 6): when the learner's
    forward is off, it passes if it is right for the reference forward
    (PyTorch's gradients, from the learner's cache) or for the learner's own
    forward (its numerical gradients); the forward's slip costs the forward."""
    forward_ok = rel_error(out, reference(kind_.key, p)[0]) <= tolerance(kind_.key, p)
    if all(r.passed for r in gradients) and any(r.verdict == "note" for r in gradients):
        why = "differs as the (N, D) function it uses is off"
        return [*gradients, info(numeric.name, f"{why} ({numeric.detail})")]
    if forward_ok:
        return [*gradients, numeric]
    off = f"{kind_.forward} itself is off (run its check)"
    if all(r.passed for r in gradients):
        why = f"{off}; judged against PyTorch's gradients above, which are right"
        return [*gradients, info(numeric.name, f"{why} ({numeric.detail})")]
    if numeric.passed and rel_error(out, reference(kind_.key, p)[0]) < 0.5:
        notes = [
            r if r.passed else info(r.name, f"differs from PyTorch's ({r.detail})")
            for r in gradients
        ]
        why = "right for your forward pass, as the numerical gradients show"
        return [*notes, numeric, info(name, f"{off}; this backward pass is {why}")]
    return [
        *gradients,
        numeric,
        wrong(
            name,
            f"{off}: the gradients above are "
            "compared with PyTorch's, which differentiate the correct forward",
        ),
    ]


def _forward_for_backward(name, forward_name, forward, p: Problem):
    """(out, cache) of the learner's forward pass, or the Result that says why the
    backward pass cannot be checked yet (not written, raises, wrong shape)."""
    value, problem = call(name, forward, p.x, p.gamma, p.beta, eps=p.eps)
    if problem is not None:
        if problem.verdict == TODO:
            detail = f"needs {forward_name} first, which is not implemented yet"
            return None, Result(name, TODO, detail)
        detail = f"{forward_name} failed: {problem.detail}"
        return None, Result(name, problem.verdict, detail)
    items, problem = unpack(forward_name, value, 2, "out, cache")
    if problem is not None:
        return None, problem
    shape = getattr(items[0], "shape", None)
    if shape != p.x.shape:
        return None, wrong(
            name,
            f"needs {forward_name} first: it returns out of shape {shape} for an "
            f"input of shape {p.x.shape} (run its check and fix it), and the "
            "backward pass can only be checked against a working forward pass",
        )
    return items, None


def _backward_check(
    kind_: Kind,
    name,
    forward,
    backward,
    *,
    seed,
    shape,
    quiet,
    strict,
    also=None,
    given=None,
):
    kind, forward_name = kind_.key, kind_.forward
    p = make_problem(kind, seed, shape)

    def body():
        items, problem = _forward_for_backward(name, forward_name, forward, p)
        if problem is not None:
            return problem
        out, cache = items
        grads, problem = call(name, backward, p.dout, cache, returns=GRADS)
        if problem is not None:
            return problem
        mistakes = backward_mistakes(kind, p)
        hints = _not_summed_hints(kind, p)
        refs = dict(zip(("dx", "dgamma", "dbeta"), reference(kind, p)[1:], strict=True))
        extra = {
            "dx": dict(
                shape_hints=_output_shape_hints(kind, p),
                directions=directions(kind, p),
                invariants=dx_invariants(kind, p, refs["dx"]),
                small=() if kind == "layer" else (1,),
            ),
            "dgamma": dict(shape_hints=hints, axis=0),
            "dbeta": dict(shape_hints=hints, axis=0),
        }
        gradients = [
            compare(
                f"{name} {what}",
                grad,
                refs[what],
                tol=tolerance(kind, p),
                diagnoses=mistakes[what],
                what=what,
                known=known(kind, p),
                causes=causes(kind, p, what),
                **extra[what],
            )
            for what, grad in zip(refs, grads, strict=True)
        ]
        mine = _composed_grads(kind, given, p)
        blind = _layout_blind(kind, given, p) or _grads_blind(kind, given, p, mine)
        if mine is not None:  # built on their (N, D) functions, the lesson's way
            gradients = [
                _judged_with_given(
                    r, g, c, tolerance(kind, p), "batchnorm_backward_alt", blind
                )
                for r, g, c in zip(gradients, grads, mine, strict=True)
            ]
        numeric = _numeric_result(kind, name, forward, backward, seed)
        results = _judge_backward(kind_, name, out, p, gradients, numeric)
        if also is not None:
            results.append(also(p, cache, grads))
        return results + _explanations(name, backward, p, cache, results)

    return run_check(name, body, quiet=quiet, strict=strict)


# The staged backward's local gradients, by the names lesson 02's table uses
# (and a few common spellings), in the order the backward pass computes them.
STAGES = {
    "dx_hat": ("dx_hat", "dxhat"),
    "drho": ("drho", "dr", "dinv_std", "dinvstd", "distd"),
    "ds": ("ds", "dstd", "dsqrtvar"),
    "dvar": ("dvar", "dsigma2"),
    "dxc": ("dxc", "dxmu"),
    "dmu": ("dmu",),
}


def _stage_references(p: Problem) -> dict:
    """Every stage's gradient from autograd, on the check's problem (float64)."""
    import torch

    x = torch.tensor(p.x, requires_grad=True)
    mu = x.mean(0)
    xc = x - mu
    var = (xc**2).mean(0)
    s = torch.sqrt(var + p.eps)
    rho = 1 / s
    x_hat = xc * rho
    y = torch.from_numpy(p.gamma) * x_hat + torch.from_numpy(p.beta)
    named = {"dx_hat": x_hat, "drho": rho, "ds": s, "dvar": var, "dxc": xc, "dmu": mu}
    for tensor in named.values():
        tensor.retain_grad()
    y.backward(torch.from_numpy(p.dout))
    return {k: v.grad.numpy() for k, v in named.items()}


def _locals_at_return(fn, *args):
    """Call ``fn`` and keep its local variables as it returns (sys.setprofile)."""
    import sys

    code, kept = getattr(fn, "__code__", None), {}
    where = getattr(code, "co_filename", None)  # the learner's cell or file
    if where is None:  # not plain Python (the grader's remote proxy): no locals
        return kept

    def profile(frame, event, arg):
        # fn and the functions it calls from the same source (a helper of
        # theirs); frames that return later (outer ones) do not erase names
        if event == "return" and frame.f_code.co_filename == where:
            for key, value in frame.f_locals.items():
                kept.setdefault(key, value)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        with quiet_numerics():
            fn(*args)
    except Exception:
        pass  # the comparison of dx already reported it
    finally:
        sys.setprofile(previous)
    return kept


def _stage_result(name, backward, p: Problem, cache) -> Result | None:
    """Karpathy's stage-by-stage comparison: the first wrong intermediate gradient.

    Looks for the staged backward's local variables by the names of the
    lesson's table; says nothing if none is found under those names.
    """
    found = _locals_at_return(backward, copy.deepcopy(p.dout), copy.deepcopy(cache))
    wanted = _stage_references(p)
    checked = []
    for stage, spellings in STAGES.items():
        local = next((found[n] for n in spellings if n in found), None)
        if local is None:
            continue
        got = np.asarray(local, dtype=float).reshape(-1)
        want = wanted[stage].reshape(-1)
        if got.shape != want.shape or rel_error(got, want) > 1e-8:
            before = ", ".join(checked) or "none checked before it"
            return wrong(
                f"{name} stages",
                f"the first wrong stage is {stage} (your local variable), compared "
                f"with autograd's gradient of the same quantity; right before it: "
                f"{before}",
            )
        checked.append(stage)
    if not checked:
        return None
    return ok(f"{name} stages", f"{', '.join(checked)} agree with autograd")


def _forward_checker(kind: Kind, default_seed: int, doc: str):
    """A public forward-pass check: the learner's function, then keywords."""

    def check(
        fn,
        given=None,
        *,
        seed=default_seed,
        shape=None,
        eps=EPS,
        quiet=False,
        strict=None,
    ):
        return _forward_check(
            kind,
            fn,
            seed=seed,
            shape=shape,
            eps=eps,
            quiet=quiet,
            strict=strict,
            given=given,
        )

    check.__name__ = check.__qualname__ = kind.forward
    check.__doc__ = doc
    return check


def _backward_checker(kind: Kind, name: str, default_seed: int, doc: str):
    """A public backward-pass check: the learner's forward and backward."""

    def check(
        forward,
        backward,
        given=None,
        *,
        seed=default_seed,
        shape=None,
        quiet=False,
        strict=None,
    ):
        return _backward_check(
            kind,
            name,
            forward,
            backward,
            seed=seed,
            shape=shape,
            quiet=quiet,
            strict=strict,
            given=given,
        )

    check.__name__ = check.__qualname__ = name
    check.__doc__ = doc
    return check


batchnorm_forward = _forward_checker(
    KINDS["batch"],
    0,
    "Check ``fn(x, gamma, beta, eps) -> (out, cache)`` for x of shape (N, D).",
)
batchnorm_backward = _backward_checker(
    KINDS["batch"],
    "batchnorm_backward",
    1,
    "Check ``backward(dout, cache) -> (dx, dgamma, dbeta)`` (staged version).",
)
spatial_batchnorm_forward = _forward_checker(
    KINDS["spatial"],
    3,
    "Check ``fn(x, gamma, beta, eps)`` for x of shape (N, C, H, W).",
)
spatial_batchnorm_backward = _backward_checker(
    KINDS["spatial"],
    "spatial_batchnorm_backward",
    4,
    "Check the spatial backward pass: statistics per channel over N, H, W.",
)
layernorm_forward = _forward_checker(
    KINDS["layer"],
    5,
    "Check ``fn(x, gamma, beta, eps)``: each row of x (N, D) normalised.",
)
layernorm_backward = _backward_checker(
    KINDS["layer"],
    "layernorm_backward",
    6,
    "Check the layer-norm backward pass: statistics per example.",
)


def batchnorm_backward_alt(
    forward, backward_alt, staged=None, *, seed=2, shape=None, quiet=False, strict=None
):
    """Check the closed-form backward; with ``staged`` also compare the two."""

    def against_staged(p, cache, grads):
        """Informative only: never fails (the other function has its own check)."""
        label = "backward_alt vs backward"
        if staged is None:
            return info(label, "skipped (no staged version given)")
        other, problem = call(label, staged, p.dout, cache)
        if problem is not None:
            if problem.verdict == TODO:
                return info(label, "skipped: batchnorm_backward is not implemented yet")
            return info(label, f"skipped: batchnorm_backward failed ({problem.detail})")
        other, problem = unpack(label, other, 3, "dx, dgamma, dbeta")
        if problem is not None:
            return info(label, f"skipped: batchnorm_backward {problem.detail}")
        try:
            worst = max(rel_error(a, b) for a, b in zip(grads, other, strict=True))
        except (TypeError, ValueError):
            return info(label, "skipped: batchnorm_backward returned non-arrays")
        if worst < BACKWARD_TOL:
            return ok(label, f"max rel. difference {worst:.0e}: they agree")
        return info(
            label,
            f"max rel. difference {worst:.0e}: they disagree; the lines above and "
            "batchnorm_backward's own check say which one is off",
        )

    return _backward_check(
        KINDS["batch"],
        "batchnorm_backward_alt",
        forward,
        backward_alt,
        seed=seed,
        shape=shape,
        quiet=quiet,
        strict=strict,
        also=against_staged,
    )
