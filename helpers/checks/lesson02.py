"""Checks for notebook 02: batch norm (and layer norm) forward and backward in NumPy.

References are ``torch.nn.functional.batch_norm`` / ``layer_norm`` with
autograd in float64, and centred numerical gradients of the learner's own
forward pass.  ``_core.compare`` says how a wrong answer differs (its stages
read back, the shape of the difference) and names a cause only where the
signature is specific.  A backward pass is judged on its own: with the cache of
a right forward pass where the learner's forward slips, and it names a cause
only when the cache it reads holds the forward's right quantities; else the
first quantity that differs is shown (Karpathy's per-intermediate ``cmp``).
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
import re
from dataclasses import dataclass

import numpy as np

from .. import gradcheck
from ._core import (
    EPS,
    ERROR,
    TODO,
    Result,
    _fmt,
    _match,
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
    if tiny:
        if kind == "layer":  # layer norm: one example with a tiny spread
            x[1] = 12.0 + 0.01 * rng.standard_normal(shape[1:])
        else:
            x[:, 1] = 12.0 + 0.01 * rng.standard_normal(x[:, 1].shape)
    gamma = rng.uniform(0.5, 2.0, shape[1])
    beta = rng.normal(0.0, 1.0, shape[1])
    return Problem(x, gamma, beta, rng.standard_normal(shape), eps)


# --------------------------------------------------------------------------
# references (torch), what the answers are read against, the usual mistakes
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
    return tuple(t.detach().numpy() for t in (out, x.grad, g.grad, b.grad))


def _as_2d(kind: str, array):
    """View a problem as (examples, features) over which statistics are taken."""
    return channels_last(array) if kind == "spatial" else array


def _count(kind: str, p: Problem) -> int:
    """How many values each statistic averages."""
    return p.x.shape[1] if kind == "layer" else _as_2d(kind, p.x).shape[0]


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
    return {"1": np.ones(p.x.shape), "x_hat": from_channels_last(x_hat, p.x.shape)}


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
    n, x2 = _count(kind, p), _as_2d(kind, p.x)
    sigma = {} if kind == "layer" else {"sigma": np.sqrt(x2.var(0) + p.eps)}
    ratio = {f"N/(N-1) = {n}/{n - 1}": n / (n - 1), f"N = {n}": float(n)}
    return {**ratio, "gamma": p.gamma, "beta": p.beta, **sigma}


def causes(kind: str, p: Problem, what: str = "out") -> dict:
    """Signatures (see ``_core.describe``) that name one cause exactly, for
    the output ``what`` ("out", "dx", "dgamma" or "dbeta") only."""
    n, feature = _count(kind, p), "channel" if kind == "spatial" else "feature"
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
    naive = p.x.reshape(-1, p.x.shape[1])
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


def shape_hints(kind: str, p: Problem) -> tuple[dict, dict]:
    """Wrong shapes that say what was done: (for dgamma and dbeta, for out and dx)."""
    where = " and over H and W" if kind == "spatial" else " (axis 0)"
    hint = (
        "not summed: gamma and beta are shared by every example, so their "
        "gradients add up over the batch" + where
    )
    params = {p.x.shape: hint, _as_2d(kind, p.x).shape: hint}
    if kind != "spatial":
        return params, {}
    n, c, h, w = p.x.shape
    params[(c, h, w)] = "summed over N only: sum over N, H and W (axes 0, 2, 3)"
    params[(n, c)] = "summed over H and W only: sum over N too"
    return params, {
        (n * h * w, c): "still (N*H*W, C): reshape back and transpose to (N, C, H, W)",
        (n, h, w, c): "still channels-last: transpose(0, 3, 1, 2) back to (N, C, H, W)",
    }


def _transposed_hint(problem: Result, p: Problem) -> Result:
    """Layer norm through x.T: NumPy's broadcast error names x.T's shape, whose
    1-D partners need not be statistics (gamma and beta have D values too)."""
    n, d = p.x.shape
    if problem.verdict != ERROR or f"({d},{n})" not in problem.detail:
        return problem
    head = re.split(r" \(x is \(|\(a broadcasting error", problem.detail)[0]
    return Result(
        problem.name,
        ERROR,
        f"{head.rstrip()} (({d}, {n}) is x transposed: a 1-D array of {d} values "
        f"lines up with its last axis, of {n}; along its first axis it needs the "
        "shape "
        f"({d}, 1), or apply it after transposing back. Call the function "
        "yourself to see the full traceback)",
    )


# --------------------------------------------------------------------------
# spatial and layer norm built on the learner's own (N, D) functions
# --------------------------------------------------------------------------


def _given(kind, given, p: Problem, wrong_view=False):
    """The learner's (N, D) functions (``given``: batchnorm_forward, or it and
    batchnorm_backward_alt) run the way the lesson suggests: spatial on the
    channels-last rows, layer norm on x.T with gamma = 1 and beta = 0 (with
    ``wrong_view``: the view a slip uses, reshaped without the transpose, or
    not transposed).  [out, dx, dgamma, dbeta] in the problem's layout, None
    where a call failed; None without ``given``."""
    if given is None or kind == "batch":
        return None
    forward, backward = given if isinstance(given, (tuple, list)) else (given, None)
    layer, shape, found = kind == "layer", p.x.shape, [None] * 4
    if wrong_view:
        to2 = (lambda a: a) if layer else (lambda a: a.reshape(-1, shape[1]))
        back = (lambda a: a) if layer else (lambda a: a.reshape(shape))
    else:
        to2 = (lambda a: a.T) if layer else channels_last
        back = (lambda a: a.T) if layer else (lambda a: from_channels_last(a, shape))
    x2 = to2(p.x)
    ones = (np.ones(x2.shape[1]), np.zeros(x2.shape[1]))
    value, problem = call(
        "given", forward, x2, *(ones if layer else (p.gamma, p.beta)), eps=p.eps
    )
    if problem is not None or not isinstance(value, (tuple, list)) or len(value) != 2:
        return found
    out2 = to_numpy(value[0])
    if out2 is None or out2.shape != x2.shape:
        return found
    found[0] = p.gamma * back(out2) + p.beta if layer else back(out2)
    if backward is None:
        return found
    dout2 = to2(p.dout * p.gamma if layer else p.dout)
    grads, problem = call("given", backward, dout2, value[1], returns=GRADS)
    dx2 = None if problem is not None else to_numpy(grads[0])
    if dx2 is not None and dx2.shape == x2.shape:
        found[1] = back(dx2)
        found[2:] = (
            ((p.dout * back(out2)).sum(0), p.dout.sum(0))
            if layer
            else (to_numpy(grads[1]), to_numpy(grads[2]))
        )
    return found


def _blind(kind, given, p: Problem, mine) -> bool:
    """Whether the learner's (N, D) functions cannot tell the right view of the
    input from a wrong one (zeros, the identity, anything elementwise): then an
    answer "built on them" proves nothing, and earns no reuse credit."""
    other = _given(kind, given, p, wrong_view=True)
    if mine is None or other is None or mine[0] is None:
        return True
    pairs = [(a, b) for a, b in zip(mine[:2], other[:2], strict=True) if a is not None]
    return any(b is None or rel_error(a, b) < 1e-6 for a, b in pairs)


def _judged_with_given(result, got, mine, tol, given_name, blind) -> Result:
    """A spatial or layer-norm answer built right on the learner's own (N, D)
    function passes: that function's slip costs its own exercise's points.
    Only where that could have failed (``_blind``)."""
    if blind or result.passed or mine is None or to_numpy(got) is None:
        return result
    if to_numpy(got).shape != mine.shape or rel_error(got, mine) > tol:
        return result
    return info(
        result.name,
        f"right for your {given_name}, which this uses and which is off (its own "
        f"check says how; here {result.detail})",
    )


# --------------------------------------------------------------------------
# the forward checks
# --------------------------------------------------------------------------


def _forward_results(kind, name, fn, p: Problem, given=None) -> list[Result]:
    items, problem = call(name, fn, p.x, p.gamma, p.beta, eps=p.eps, returns=OUT)
    if problem is not None:
        return [_transposed_hint(problem, p) if kind == "layer" else problem]
    want, tol = reference(kind, p)[0], tolerance(kind, p)
    result = compare(
        f"{name} out",
        items[0],
        want,
        tol=tol,
        diagnoses=forward_mistakes(kind, p),
        what="out",
        shape_hints=shape_hints(kind, p)[1],
        readers=forward_invariants(kind, p),
        known=known(kind, p),
        causes=causes(kind, p),
        small=() if kind == "layer" else (1,),
    )
    mine = _given(kind, given, p)
    blind = _blind(kind, given, p, mine)
    result = _judged_with_given(
        result, items[0], mine and mine[0], tol, "batchnorm_forward", blind
    )
    if result.verdict != "ok":
        return [result]
    big_eps = Problem(p.x, p.gamma, p.beta, p.dout, 0.1)
    value, problem = call(name, fn, p.x, p.gamma, p.beta, eps=0.1, returns=OUT)
    if problem is not None:
        return [result, problem]
    slip = "ignores its eps argument (a fixed 1e-5?): use the eps passed in"
    return [
        result,
        compare(
            f"{name} eps=0.1",
            value[0],
            reference(kind, big_eps)[0],
            tol=tol,
            diagnoses={slip: want},
            what="out",
        ),
    ]


def _forward_check(kind: Kind, fn, *, seed, shape, eps, quiet, strict, given=None):
    name = kind.forward
    p = make_problem(kind.key, seed, shape, eps)

    def body():
        results = _forward_results(kind.key, name, fn, p, given)
        if not kind.refuses_one_example or results[0].verdict in (TODO, ERROR):
            return results
        two = Problem(p.x[:2], p.gamma, p.beta, p.dout[:2], p.eps)  # the smallest
        label, want = f"{name} N=2", reference("batch", two)[0]
        value, problem = call(label, fn, two.x, p.gamma, p.beta, eps=p.eps, returns=OUT)
        if problem is not None:  # a failed Result is falsy: never use `or`
            results.append(problem)
        else:
            tol = tolerance("batch", two)
            results.append(compare(label, value[0], want, tol=tol, what="out"))
        why = "one example has zero variance: PyTorch refuses it in training mode too"
        one = (p.x[:1], p.gamma, p.beta)
        return [
            *results,
            expect_raises(f"{name} batch of one", fn, ValueError, why, *one),
        ]

    return run_check(name, body, quiet=quiet, strict=strict)


# --------------------------------------------------------------------------
# the backward checks: the cache they are given, numerical gradients, stages
# --------------------------------------------------------------------------


def _copying(fn):
    """``fn`` on copies of its arguments: a forward pass that writes into its
    input costs its own check (which says so), not the backward pass's."""
    if not callable(fn) or hasattr(fn, "many"):
        return fn  # the grader's remote functions get copies already
    return lambda *args, **kwargs: fn(*copy.deepcopy(args), **kwargs)


def _numeric_result(kind, name, forward, backward, seed) -> Result:
    """Compare the learner's backward with numerical gradients of their forward."""
    shape = {"batch": (6, 4), "spatial": (3, 2, 2, 3), "layer": (4, 6)}[kind]
    p = make_problem(kind, seed + 100, shape, tiny=False)
    label = f"{name} numeric"
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
        what = getattr(forward, "__name__", "the forward pass")
        detail = f"raised {type(exc).__name__} on a nudged input: {str(exc)[:100]}"
        return Result(label, ERROR, f"{what} {detail}")
    errors = {}
    for key, got in zip(("dx", "dgamma", "dbeta"), grads, strict=True):
        want = found[key[1:]]
        shaped = shape_problem(name, got, want.shape, key)
        if shaped is not None:
            return Result(label, shaped.verdict, shaped.detail)
        errors[key] = rel_error(got, want)
    worst = max(errors.values())
    detail = ", ".join(f"{k} {v:.0e}" for k, v in errors.items())
    detail += f" (expect < {NUMERIC_TOL:.0e})"
    if worst < NUMERIC_TOL:
        return ok(label, f"rel. errors {detail}", worst)
    return wrong(label, f"rel. errors {detail}: {gradcheck.band(worst)}", worst)


def _arrays(cache, path=()):
    """(path, array) for each float array of several values in a cache (a
    tuple, list or dict, nested), in order."""
    if isinstance(cache, np.ndarray):
        if cache.dtype.kind == "f" and cache.size > 1:
            yield path, cache
    elif isinstance(cache, (tuple, list)):
        for i, item in enumerate(cache):
            yield from _arrays(item, (*path, i))
    elif isinstance(cache, dict):
        for key, item in cache.items():
            yield from _arrays(item, (*path, key))


def _rebuilt(cache, new: dict, path=()):
    """``cache`` with the arrays at the paths of ``new`` replaced."""
    if path in new:
        return new[path]
    if isinstance(cache, dict):
        return {k: _rebuilt(v, new, (*path, k)) for k, v in cache.items()}
    if isinstance(cache, (tuple, list)):
        items = [_rebuilt(v, new, (*path, i)) for i, v in enumerate(cache)]
        return type(cache)(*items) if hasattr(cache, "_fields") else type(cache)(items)
    return cache


def forward_quantities(p: Problem) -> list[tuple[str, dict]]:
    """What a batch-norm forward pass may cache, computed right (first), then
    with each usual slip in the variance or the scale (``_core.stages``' forms)."""
    x, mu, found = p.x, p.x.mean(0), []
    for v_slip, var in (("", x.var(0)), ("the unbiased variance", x.var(0, ddof=1))):
        scales = {
            "": np.sqrt(var + p.eps),
            "no eps": np.sqrt(var),
            "eps outside the root": np.sqrt(var) + p.eps,
            "no square root": var + p.eps,
        }
        for s_slip, s in scales.items():
            with np.errstate(all="ignore"):
                quantities = {"x_hat": (x - mu) / s, "x - mu": x - mu, "mu": mu}
                quantities |= {"var": var, "var + eps": var + p.eps, "the scale": s}
                quantities |= {"1/scale": 1 / s, "1/(var + eps)": 1 / (var + p.eps)}
            quantities |= {"x": x, "gamma": p.gamma, "beta": p.beta}
            found.append((", ".join(filter(None, (v_slip, s_slip))), quantities))
    return found


def _cache_status(cache, out, p: Problem):
    """The learner's cache read as the forward's quantities (``_arrays``):
    ("right", cache); ("repaired", the cache recomputed right, the slip) when
    its arrays are all one slip's; (an observation, None) when an array is none
    of them, or two are one array in memory; (None, cache): nothing to read."""
    found, variants = list(_arrays(cache)), forward_quantities(p)
    where = lambda path: "cache" + "".join(f"[{k!r}]" for k in path)  # noqa: E731
    if not found:
        return None, cache, ""
    for i, (path, a) in enumerate(found):
        for other, b in found[i + 1 :]:
            if np.shares_memory(a, b):
                text = f"{where(path)} and {where(other)} are one array in memory"
                return f"in your forward pass's cache, {text}", None, ""
    for slip, quantities in variants:
        keys = [_match(a, quantities, 1e-8) for _, a in found]
        if None in keys:
            continue
        if not slip:
            return "right", cache, ""
        right = variants[0][1]
        new = {
            path: np.broadcast_to(right[key], a.shape).copy()
            for (path, a), key in zip(found, keys, strict=True)
        }
        return "repaired", _rebuilt(cache, new), slip
    odd = [
        (path, a)
        for path, a in found
        if all(_match(a, q, 1e-8) is None for _, q in variants)
    ]
    if not odd:
        return "its arrays are the forward's quantities, with different slips", None, ""
    path, a = odd[0]
    text = (
        f"{where(path)} of your forward pass's cache is none of the forward's "
        "quantities (x_hat, x - mu, mu, var, sqrt(var + eps), their inverses, x, "
        "gamma, beta)"
    )
    if isinstance(out, np.ndarray) and np.shares_memory(a, out):
        text += ": it is out itself, one array in memory"
    elif _match(a, {"out": to_numpy(out)}, 1e-8):
        text += ": it equals out"
    return text, None, ""


# The staged backward's local variables by the names of lesson 02's table (and
# a few common spellings), in the order it computes them: first what it reads
# from the cache (checked in the closed form too), then the local gradients.
STAGES = {
    "x_hat": ("x_hat", "xhat", "x_norm", "xnorm"),
    "x - mu": ("xc", "xmu", "x_mu", "x_centered"),
    "sqrt(var + eps)": ("std", "sqrtvar"),
    "1/sqrt(var + eps)": ("rho", "ivar", "inv_std", "istd", "invstd"),
    "dx_hat": ("dx_hat", "dxhat"),
    "drho": ("drho", "dr", "dinv_std", "dinvstd", "distd", "divar"),
    "ds": ("ds", "dstd", "dsqrtvar"),
    "dvar": ("dvar", "dsigma2"),
    "dxc": ("dxc", "dxmu"),
    "dmu": ("dmu",),
}


def _stage_references(p: Problem) -> dict:
    """Every stage of ``STAGES`` on the check's problem (float64): the forward's
    quantities, and autograd's gradient of each intermediate."""
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
    read = {
        "x_hat": x_hat,
        "x - mu": xc,
        "sqrt(var + eps)": s,
        "1/sqrt(var + eps)": rho,
    }
    values = {k: v.detach().numpy() for k, v in read.items()}
    return values | {k: v.grad.numpy() for k, v in named.items()}


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


def _stage_result(name, backward, p: Problem, cache, out):
    """Karpathy's stage-by-stage comparison of the backward pass's local
    variables (``STAGES``, by name; nothing if none is found): (a Result, and
    whether the first that differs is a forward quantity it reads)."""
    found = _locals_at_return(backward, copy.deepcopy(p.dout), copy.deepcopy(cache))
    wanted, checked, label = _stage_references(p), [], f"{name} stages"
    for stage, spellings in STAGES.items():
        spelling = next((n for n in spellings if n in found), None)
        got = None if spelling is None else to_numpy(found[spelling])
        if spelling is None or (got is None and stage.startswith("d")):
            continue
        want = wanted[stage]
        if got is not None and got.size == want.size:
            if rel_error(got.reshape(want.shape), want) <= 1e-8:
                checked.append(stage)
                continue
        before = ", ".join(checked) or "none checked before it"
        if stage.startswith("d"):
            text = (
                f"the first wrong stage is {stage} (your local variable), compared "
                f"with autograd's gradient of the same quantity; right before it: "
                f"{before}"
            )
            return wrong(label, text), False
        seen = got is not None and _match(
            got, {k: v for k, v in wanted.items() if k[0] != "d"} | {"out": out}, 1e-8
        )
        return wrong(
            label,
            f"your backward pass's {spelling} (its value when the function returns) "
            f"is not {stage}" + (f": it equals {seen}" if seen else "") + "; it is "
            "read before any gradient is computed, so every gradient computed from "
            "it is off with it: compare it with the forward pass's first",
        ), True
    if not checked:
        return None, False
    return info(label, f"{', '.join(checked)} agree; what differs comes after"), False


def _judge_backward(kind_, name, error, p, gradients, numeric, slip=""):
    """A backward pass is judged on its own (STYLE.md 6): when the learner's
    forward is off (``error``, its max rel. error), it passes if it is right
    with the cache of a right forward pass (``slip``: the learner's cache was
    recomputed right) or for the learner's own forward (its numerical
    gradients); the forward's slip costs the forward."""
    if all(r.passed for r in gradients) and any(r.verdict == "note" for r in gradients):
        why = "differs as the (N, D) function it uses is off"
        return [*gradients, info(numeric.name, f"{why} ({numeric.detail})")]
    if error <= tolerance(kind_.key, p):
        return [*gradients, numeric]
    off = f"{kind_.forward} itself is off (run its check)"
    if all(r.passed for r in gradients):
        how = (
            f"; its cache, read as made with {slip}, was made right here"
            if slip
            else ""
        )
        why = f"{off}{how}; judged against PyTorch's gradients above, which are right"
        return [*gradients, info(numeric.name, f"{why} ({numeric.detail})")]
    if numeric.passed and error < 0.5:
        notes = [
            r if r.passed else info(r.name, f"differs from PyTorch's ({r.detail})")
            for r in gradients
        ]
        why = "right for your forward pass, as the numerical gradients show"
        return [*notes, numeric, info(name, f"{off}; this backward pass is {why}")]
    why = "compared with PyTorch's, which differentiate the correct forward"
    return [*gradients, numeric, wrong(name, f"{off}: the gradients above are {why}")]


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


def _gradient_results(kind, name, grads, p: Problem, named: bool) -> list[Result]:
    """dx, dgamma and dbeta against PyTorch's; causes named only when ``named``
    (the cache the backward pass read holds the forward's right quantities)."""
    refs = dict(zip(("dx", "dgamma", "dbeta"), reference(kind, p)[1:], strict=True))
    params, outputs = shape_hints(kind, p)
    mistakes = backward_mistakes(kind, p)
    extra = {
        "dx": dict(
            shape_hints=outputs,
            directions=directions(kind, p),
            invariants=dx_invariants(kind, p, refs["dx"]),
            small=() if kind == "layer" else (1,),
        ),
        "dgamma": dict(shape_hints=params, axis=0),
        "dbeta": dict(shape_hints=params, axis=0),
    }
    return [
        compare(
            f"{name} {what}",
            grad,
            refs[what],
            tol=tolerance(kind, p),
            diagnoses=mistakes[what] if named else None,
            what=what,
            known=known(kind, p),
            causes=causes(kind, p, what) if named else None,
            **extra[what],
        )
        for what, grad in zip(refs, grads, strict=True)
    ]


def _backward_check(kind_, name, forward, backward, options, also=None, given=None):
    kind, forward = kind_.key, _copying(forward)
    p = make_problem(kind, options["seed"], options["shape"])

    def body():
        items, problem = _forward_for_backward(name, kind_.forward, forward, p)
        if problem is not None:
            return problem
        out, cache = items
        error = rel_error(out, reference(kind, p)[0])
        status, fixed, slip = (None, cache, "")
        if kind == "batch":
            status, fixed, slip = _cache_status(cache, out, p)
        used = fixed if status == "repaired" else cache
        grads, problem = call(name, backward, p.dout, used, returns=GRADS)
        if problem is not None:
            return problem
        refs, tol = reference(kind, p)[1:], tolerance(kind, p)
        failing = any(rel_error(g, r) > tol for g, r in zip(grads, refs, strict=True))
        stage, early = None, False
        if failing and kind == "batch":
            stage, early = _stage_result(name, backward, p, used, out)
        odd = status is not None and fixed is None  # the cache is off
        right_cache = status in ("right", "repaired") or error <= tolerance(kind, p)
        gradients = _gradient_results(
            kind, name, grads, p, right_cache and not (early or odd)
        )
        mine = _given(kind, given, p)
        if mine is not None and mine[1] is not None:  # their (N, D) functions
            blind = _blind(kind, given, p, mine)
            gradients = [
                _judged_with_given(r, g, c, tol, "batchnorm_backward_alt", blind)
                for r, g, c in zip(gradients, grads, mine[1:], strict=True)
            ]
        numeric = _numeric_result(kind, name, forward, backward, options["seed"])
        results = _judge_backward(kind_, name, error, p, gradients, numeric, slip)
        if also is not None:
            results.append(also(p, used, grads))
        if all(r.passed for r in results):
            return results
        explain = [wrong(f"{name} cache", status)] if odd and failing else []
        return results + explain + ([stage] if stage is not None else [])

    return run_check(name, body, quiet=options["quiet"], strict=options["strict"])


# --------------------------------------------------------------------------
# the public checks
# --------------------------------------------------------------------------


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
        options = dict(seed=seed, shape=shape, eps=eps, quiet=quiet, strict=strict)
        return _forward_check(kind, fn, given=given, **options)

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
        options = dict(seed=seed, shape=shape, quiet=quiet, strict=strict)
        return _backward_check(kind, name, forward, backward, options, given=given)

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
    label = "backward_alt vs backward"

    def against_staged(p, cache, grads):
        """Informative only: never fails (the other function has its own check)."""
        if staged is None:
            return info(label, "skipped (no staged version given)")
        other, problem = call(label, staged, p.dout, cache, returns=GRADS)
        if problem is not None:
            if problem.verdict == TODO:
                return info(label, "skipped: batchnorm_backward is not implemented yet")
            return info(label, f"skipped: batchnorm_backward failed ({problem.detail})")
        worst = max(rel_error(a, b) for a, b in zip(grads, other, strict=True))
        if worst < BACKWARD_TOL:
            return ok(label, f"max rel. difference {worst:.0e}: they agree")
        return info(
            label,
            f"max rel. difference {worst:.0e}: they disagree; the lines above and "
            "batchnorm_backward's own check say which one is off",
        )

    options = dict(seed=seed, shape=shape, quiet=quiet, strict=strict)
    name, kind = "batchnorm_backward_alt", KINDS["batch"]
    return _backward_check(kind, name, forward, backward_alt, options, against_staged)
