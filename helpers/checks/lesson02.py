"""Checks for notebook 02: batch and layer norm vs float64 autograd and numerics."""

import contextlib
import re
import sys
from collections import namedtuple

import numpy as np

from .. import gradcheck
from . import _core
from ._core import EPS, Result, call, compare, info, ok, rel_error, to_numpy, wrong

__all__ = ["batchnorm_backward", "batchnorm_backward_alt", "batchnorm_forward"]
__all__ += ["layernorm_backward", "layernorm_forward"]  # each has mutants in tests/
__all__ += ["spatial_batchnorm_backward", "spatial_batchnorm_forward"]

OUT, GRADS = (2, "out, cache"), (3, "dx, dgamma, dbeta")  # what the passes return
FORWARD_TOL, BACKWARD_TOL, NUMERIC_TOL = 1e-10, 1e-10, 1e-7  # float64; centred h = 1e-5
FORWARD = {"batch": "batchnorm_forward", "layer": "layernorm_forward"}
FORWARD["spatial"] = "spatial_batchnorm_forward"  # each kind's forward, by name

_TORCH = (r"\bF\.\w+", r"\bbatch_norm\b", r"\blayer_norm\b", r"\btorch\.\w+")
SHORTCUTS = {name: _TORCH for name in __all__}  # flags.py notes any torch call

Problem = namedtuple("Problem", "x gamma beta dout eps")  # one check's inputs
PROGRAM = """mu = x.mean({a})
var = x.var({a}, ddof=0)
std = np.sqrt(var + eps)
x_hat = (x - mu) / std
out = gamma * x_hat + beta
dbeta = dout.sum(axis=0)
dgamma = (dout * x_hat).sum(axis=0)
dx_hat = dout * gamma
dx = (dx_hat - dx_hat.mean({a}) - x_hat * (dx_hat * x_hat).mean({a})) / std
"""  # the reference written out: its one-edit neighbours (_core) name a slip
ALT = "dx = (len(x) * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat)"
ALT += ".sum(axis=0)) / (len(x) * std)"  # batchnorm_backward_alt's form
# the staged backward's locals and common spellings: cache, then gradients
STAGES = """x_hat: x_hat xhat x_norm xnorm; x - mu: xc xmu x_mu x_centered;
sqrt(var + eps): std sqrtvar; 1/sqrt(var + eps): rho ivar inv_std istd invstd;
dx_hat: dx_hat dxhat; drho: drho dr dinv_std dinvstd distd divar; ds: ds dstd dsqrtvar;
dvar: dvar dsigma2; dxc: dxc; dmu: dmu"""  # dxc, not dxmu: it may hold one branch only
STAGES = {k: tuple(v.split()) for k, v in re.findall(r"\s*([^;:]+): ([^;]+)", STAGES)}
BRANCH = "the branch through the {} is off (missing, or scaled wrong)".format
BOTH = "the direct term dout * gamma / sigma is right; what differs lies in the "
DX_CAUSES = {"along 1": BRANCH("mean"), "along x_hat": BRANCH("variance")}
DX_CAUSES["along 1 and x_hat"] = BOTH + "branches through the mean and the variance"


def tolerance(kind: str, p) -> float:
    """The error a right float64 answer may make on ``p``: u * (mu^2 + var) / var."""
    x2, axis = (p.x, 1) if kind == "layer" else (_core.channels_last(p.x), 0)
    kappa = np.max((x2**2).mean(axis) / (x2.var(axis) + p.eps))  # one-pass E[x^2]-mu^2
    return max(FORWARD_TOL, 64 * np.finfo(float).eps * float(kappa))


def program(kind, p: Problem, out: str, alt=False):
    """The neighbours' (program, inputs, output) for ``out``; none for 4-D x."""
    text = PROGRAM.format(a="axis=0" if kind == "batch" else "axis=1, keepdims=True")
    text += ALT * (alt and kind == "batch")
    return None if kind == "spatial" else (text, p._asdict(), out)


def make_problem(kind: str, seed: int, shape=None, eps=EPS, tiny=True) -> Problem:
    """Inputs; with ``tiny`` a feature spreads 0.01: where eps and its place matter."""
    shape = shape or {"batch": (16, 5), "spatial": (4, 3, 5, 6), "layer": (6, 8)}[kind]
    x = 5.0 * (rng := np.random.default_rng(seed)).standard_normal(shape) + 12.0
    if tiny:  # one feature (layer norm: one example) with a tiny spread
        rows = 1 if kind == "layer" else (slice(None), 1)
        x[rows] = 12.0 + 0.01 * rng.standard_normal(x[rows].shape)
    gamma, beta = rng.uniform(0.5, 2.0, shape[1]), rng.normal(0.0, 1.0, shape[1])
    return Problem(x, gamma, beta, rng.standard_normal(shape), eps)


def reference(kind: str, p: Problem, dtype="float64"):
    """(out, dx, dgamma, dbeta) from torch autograd in ``dtype`` (as float64)."""
    torch, dtype = _core.torch(), getattr(_core.torch(), dtype)
    x, g, b = (torch.tensor(a, dtype=dtype, requires_grad=True) for a in p[:3])
    if kind == "layer":
        out = torch.nn.functional.layer_norm(x, (x.shape[1],), g, b, eps=p.eps)
    else:  # training=True
        out = torch.nn.functional.batch_norm(x, None, None, g, b, True, eps=p.eps)
    out.backward(torch.from_numpy(p.dout).to(dtype))
    return tuple(t.detach().double().numpy() for t in (out, x.grad, g.grad, b.grad))


def forward_invariants(kind: str, p: Problem) -> list:
    """Readers of the output (``_core.wrong_axes``, ``stages``): axes, mean, scale."""
    axes = {"batch": (0,), "spatial": (0, 2, 3), "layer": (1,)}[kind]
    rows = (lambda a: a.T) if kind == "layer" else _core.channels_last
    g, b = (p.gamma[:, None], p.beta[:, None]) if kind == "layer" else p[1:3]
    by_axes = lambda out: _core.wrong_axes(out, *p[:3], eps=p.eps, axes=axes)
    return [by_axes, lambda out: _core.stages(rows(out), rows(p.x), g, b, eps=p.eps)]


def directions(kind: str, p: Problem) -> dict:
    """dx's two branches per feature: 1 (through the mean), x_hat (the variance)."""
    x_hat = ((x2 := _core.channels_last(p.x)) - x2.mean(0)) / np.sqrt(x2.var(0) + p.eps)
    ways = {"1": np.ones_like(p.x), "x_hat": _core.from_channels_last(x_hat, p.x.shape)}
    return {} if kind == "layer" else ways


def dx_invariants(kind: str, p: Problem, dx_ref) -> list:
    """What dx always satisfies: per feature, PyTorch's sum and product with x_hat."""
    ways, labels = directions(kind, p), ("sum over the batch", "product with x_hat")

    def check(dx):
        for way, what in zip(ways.values(), labels, strict=True):  # 1, then x_hat
            got, want = (_core.channels_last(a * way).sum(0) for a in (dx, dx_ref))
            if not np.allclose(got, want, rtol=1e-6, atol=1e-9 * abs(dx_ref).sum()):
                return f"dx's {what} per feature is not PyTorch's ({_core._fmt(got)})"

    return [check] if ways else []


def known(kind: str, p: Problem) -> dict:
    """What a slip multiplies by (also their inverses, roots, squares, N/(N-1))."""
    x2 = p.x.T if kind == "layer" else _core.channels_last(p.x)
    sigma = {} if kind == "layer" else {"sigma": np.sqrt(x2.var(0) + p.eps)}
    return {f"N = {len(x2)}": len(x2), "gamma": p.gamma, "beta": p.beta, **sigma}


def forward_mistakes(kind: str, p: Problem) -> dict[str, np.ndarray]:
    """A mistake that no stage shows: the spatial reshape without its transpose."""
    if kind != "spatial":
        return {}
    naive = p.x.reshape(-1, p.x.shape[1])
    out = p.gamma * (naive - naive.mean(0)) / np.sqrt(naive.var(0) + p.eps) + p.beta
    why = "reshaped to (N*H*W, C) without moving C last: transpose(0, 2, 3, 1) before"
    return {why + " the reshape, and transpose back after": out.reshape(p.x.shape)}


def shape_hints(kind: str, p: Problem) -> tuple[dict, dict]:
    """Wrong shapes that say what was done: (for dgamma and dbeta, for out and dx)."""
    where = " and over H and W" if kind == "spatial" else " (axis 0)"
    hint = "not summed: gradients of shared gamma, beta add up over the batch" + where
    params = dict.fromkeys((p.x.shape, nhw := _core.channels_last(p.x).shape), hint)
    if kind != "spatial":
        return params, {}
    params[p.x.shape[1:]] = "summed over N only: sum over N, H and W (axes 0, 2, 3)"
    return params, {nhw: "still (N*H*W, C): reshape back and transpose to (N, C, H, W)"}


def _transposed_hint(problem: Result, p: Problem) -> Result:
    """Layer norm via x.T: NumPy names x.T's shape; its 1-D partner may be gamma/beta"""
    n, d = p.x.shape
    if problem.verdict != _core.ERROR or f"({d},{n})" not in problem.detail:
        return problem
    why = re.split(r" \(x is \(| \(a broadcasting error", problem.detail)[0]
    why += f" (({d}, {n}) is x transposed: its {d} features run along its first axis, "
    why += f"its {n} examples along its last: one value per feature needs the shape "
    return Result(problem.name, _core.ERROR, why + f"({d}, 1), one per example ({n},))")


def _composed(kind, given, p: Problem, wrong_view=False) -> list:
    """[out, dx, dgamma, dbeta] from the (N, D) ``given`` as the lesson uses them."""
    forward, backward = given if isinstance(given, (tuple, list)) else (given, None)
    layer, shape, found = kind == "layer", p.x.shape, [None] * 4
    to2, back = _core.channels_last, lambda a: _core.from_channels_last(a, shape)
    if wrong_view:  # (N, D) layer norm: these reshapes change nothing
        to2, back = (lambda a: a.reshape(-1, shape[1])), (lambda a: a.reshape(shape))
    elif layer:
        to2 = back = lambda a: a.T
    x2 = to2(p.x)
    affine = (np.ones(x2.shape[1]), np.zeros(x2.shape[1])) if layer else p[1:3]
    value, problem = call("given", forward, x2, *affine, eps=p.eps, returns=OUT)
    if problem is not None or np.shape(out2 := to_numpy(value[0])) != x2.shape:
        return found
    found[0] = p.gamma * back(out2) + p.beta if layer else back(out2)
    dout2 = to2(p.dout * p.gamma if layer else p.dout)
    grads, problem = call("given", backward, dout2, value[1], returns=GRADS)
    if problem is None and np.shape(dx2 := to_numpy(grads[0])) == x2.shape:
        own = ((p.dout * back(out2)).sum(0), p.dout.sum(0)) if layer else grads[1:]
        found[1:] = back(dx2), *map(to_numpy, own)
    return found


def _given(kind, given, p: Problem):
    """``_composed``; None if no ``given`` or a wrong view gives the same: no credit"""
    if given is None or kind == "batch":
        return None
    mine, other = _composed(kind, given, p), _composed(kind, given, p, True)
    pairs = zip(mine[:2], other[:2], strict=True)
    same = [a is None or b is None or rel_error(a, b) < 1e-6 for a, b in pairs]
    return None if same[0] or (mine[1] is not None and same[1]) else mine


def _credited(result, got, mine, tol, given_name="batchnorm_backward_alt") -> Result:
    """Right on their off (N, D) function (``mine``): passes; that one's check fails"""
    if result.passed or mine is None or rel_error(got, mine) > tol:
        return result  # (rel_error is infinite for a shape or type not mine's)
    why = f"right for your {given_name}, which this uses and which is off (its own "
    return info(result.name, why + f"check says how; here {result.detail})")


def _in_order(value):
    """(out, cache) from a forward returning (cache, out): only its own check fails."""
    swapped = isinstance(value, tuple) and len(value) == 2
    swapped = swapped and isinstance(value[0], (tuple, list, dict))
    return value[::-1] if swapped and isinstance(value[1], np.ndarray) else value


def _copying(fn):
    """``fn`` on copies: a forward writing into its input fails only its own check."""
    copied = lambda *args, **kwargs: _in_order(fn(*_core.copied(args), **kwargs))
    copied.many = getattr(fn, "many", None)  # grader's remote function: one round trip
    return copied if callable(fn) else fn


def _forward_check(kind, fn, given, seed, shape, eps, quiet, strict):
    name, p = FORWARD[kind], make_problem(kind, seed, shape, eps)

    def output(label, p, got=None, **how):
        """``fn``'s out on problem ``p`` (or ``got``) compared with PyTorch's."""
        if got is None:  # eps=None: the signature's default, which should be EPS
            eps = {} if p.eps is None else {"eps": p.eps}
            value, problem = call(label, fn, *p[:3], **eps, returns=OUT)
            if problem is not None:
                return problem
            got = value[0]
        p = p._replace(eps=EPS) if p.eps is None else p
        how |= dict(tol=tolerance(kind, p), twin=reference(kind, p, "float32")[0])
        return compare(label, got, reference(kind, p)[0], what="out", **how)

    def body():
        items, problem = call(name, fn, *p[:3], eps=p.eps, returns=OUT)
        if problem is not None:
            return _transposed_hint(problem, p) if kind == "layer" else problem
        how = dict(diagnoses=forward_mistakes(kind, p), program=program(kind, p, "out"))
        how |= dict(readers=forward_invariants(kind, p), known=known(kind, p))
        how |= dict(shape_hints=shape_hints(kind, p)[1], small=(1,) * (kind != "layer"))
        result = output(f"{name} out", p, got=items[0], **how)
        mine, tol = _given(kind, given, p), tolerance(kind, p)
        result = _credited(result, items[0], mine and mine[0], tol, FORWARD["batch"])
        if result.verdict != "ok":
            return result
        low = [(k, a.dtype) for k, a in _arrays(items[1]) if a.dtype.itemsize < 8]
        for path, dtype in low[: kind == "batch"]:  # others: batchnorm_forward's cache
            why = f"your cache{''.join(f'[{k!r}]' for k in path)} is {dtype}: the "
            why += "backward passes read it with 7 digits, not 16: keep x's float64"
            return [result, wrong(f"{name} cache", why)]
        read = lambda q: forward_invariants(kind, q)[1:]  # the scale: which eps used
        eps = output(f"{name} eps=0.1", big := p._replace(eps=0.1), readers=read(big))
        if eps:  # the later cells call it without eps
            eps = output(f"{name} default eps", p._replace(eps=None), readers=read(p))
        if kind != "batch":  # one image: H * W values per channel
            one = p._replace(x=p.x[:1], dout=p.dout[:1])
            return [result, eps, output(f"{name} N=1", one)]  # layer norm's too
        two, label = p._replace(x=p.x[:2], dout=p.dout[:2]), f"{name} batch of one"
        why = "one example has zero variance: PyTorch refuses it in training mode too"
        one = _core.expect_raises(label, fn, ValueError, why, p.x[:1], *p[1:3])
        big = make_problem(kind, seed + 1, (48, 5))  # past the first rows
        big.x[:, 3], label = 0.0, f"{name} N=48 (feature 3 constant: out = beta there)"
        big = output(label, big, readers=forward_invariants(kind, big))
        return [result, eps, output(f"{name} N=2", two), big, one]  # the smallest batch

    return _core.run_check(name, body, quiet, strict, **{name: fn})


def batchnorm_forward(fn, *, seed=0, shape=None, eps=EPS, quiet=False, strict=None):
    """Check ``fn(x, gamma, beta, eps) -> (out, cache)`` for x of shape (N, D)."""
    return _forward_check("batch", fn, None, seed, shape, eps, quiet, strict)


def spatial_batchnorm_forward(
    fn, given=None, *, seed=3, shape=None, eps=EPS, quiet=False, strict=None
):
    """Check ``fn(x, gamma, beta, eps)`` for NCHW x; ``given``: batchnorm_forward"""
    return _forward_check("spatial", fn, given, seed, shape, eps, quiet, strict)


def layernorm_forward(
    fn, given=None, *, seed=5, shape=None, eps=EPS, quiet=False, strict=None
):
    """Check ``fn(x, gamma, beta, eps)`` per row of x; ``given``: batchnorm_forward"""
    return _forward_check("layer", fn, given, seed, shape, eps, quiet, strict)


def _numeric_result(kind, name, forward, backward, seed, one=False) -> Result:
    """The learner's backward vs numerical gradients of their forward; one feature."""
    shape = {"batch": (6, 4), "spatial": (3, 2, 2, 3), "layer": (4, 6)}[kind]
    p = make_problem(kind, seed + 100, (6, 1) if one else shape, eps=0.1, tiny=False)
    label, errors = f"{name} numeric" + " (one feature)" * one, {}
    items, problem = call(name, forward, *p[:3], eps=p.eps, returns=OUT)
    if problem is None:
        grads, problem = call(name, backward, p.dout, items[1], returns=GRADS)
    if problem is not None:
        return problem
    inputs, pick = dict(x=p.x, gamma=p.gamma, beta=p.beta), lambda r: _in_order(r)[0]
    evaluate = gradcheck.evaluator(forward, tuple(inputs), pick=pick, eps=p.eps)
    try:
        found = gradcheck.numerical_gradients(evaluate, inputs, p.dout)
    except Exception as exc:  # the forward pass failed on a nudged input
        why = "on a nudged input it raised " + _core.raised(exc)
        return Result(label, _core.ERROR, why)
    for key, got in zip(("dx", "dgamma", "dbeta"), grads, strict=True):
        if (s := _core.shape_problem(name, got, found[key[1:]].shape, key)) is not None:
            return Result(label, s.verdict, s.detail)
        errors[key] = rel_error(got, found[key[1:]])
    detail = ", ".join(f"{k} {v:.0e}" for k, v in errors.items())
    detail = f"eps=0.1: rel. errors {detail} (expect < {NUMERIC_TOL:.0e})"
    if (worst := max(errors.values())) < NUMERIC_TOL and (one or kind != "batch"):
        return ok(label, detail, worst)
    if worst < NUMERIC_TOL:
        solo = _numeric_result(kind, name, forward, backward, seed, one=True)
        return ok(label, detail, worst) if solo.passed else solo
    return wrong(label, f"{detail}: {gradcheck.band(worst)}", worst)


def _arrays(cache, path=()):
    """(path, array) for each float array in a cache (tuples, lists, dicts)."""
    if isinstance(cache, np.ndarray) and cache.dtype.kind == "f" and cache.size > 1:
        yield path, cache
    elif isinstance(cache, (tuple, list, dict)) and len(path) < 8:  # not endless
        for key, item in cache.items() if isinstance(cache, dict) else enumerate(cache):
            yield from _arrays(item, (*path, key))


def forward_quantities(p: Problem):
    """What a forward pass may cache: made right (first), then with each usual slip."""
    for axis, ddof in ((0, 0), (0, 1), (1, 0), (1, 1)):  # the right one first
        keep = {"axis": axis, "keepdims": axis > 0}
        mu, var = p.x.mean(**keep), p.x.var(ddof=ddof, **keep)
        slips = ("statistics over axis 1" * axis, "the unbiased variance" * ddof)
        scales = {"": np.sqrt(var + p.eps), "no eps": (root := np.sqrt(var))}
        scales |= {"eps outside the root": root + p.eps, "no square root": var + p.eps}
        for s_slip, s in scales.items():
            with np.errstate(all="ignore"):
                q = {"x_hat": (p.x - mu) / s, "x - mu": p.x - mu, "mu": mu, "var": var}
                q |= {"var + eps": var + p.eps, "scale": s, "1/scale": 1 / s}
                q |= {"1/(var + eps)": 1 / (var + p.eps), "x": p.x}
            slip = ", ".join(filter(None, (*slips, s_slip)))
            yield slip, q | {"gamma": p.gamma, "beta": p.beta}


def _cache_status(cache, out, p: Problem, forward_off: bool):
    """(status, cache to use, note): "right", "repaired" (the slips), "odd" or None."""
    found, variants = list(_arrays(cache)), list(forward_quantities(p))
    where = lambda path: "your forward pass's cache" + "".join(f"[{k!r}]" for k in path)
    slips, right = {}, {}  # by path: the slip, the array made right
    for i, (path, a) in enumerate(found):
        if any(np.may_share_memory(a, b) for _, b in found[i + 1 :]):
            return "odd", cache, f"{where(path)} shares memory with another array"
        matches = ((slip, _core._match(a, q, 1e-8)) for slip, q in variants)
        slip, key = next(((s, k) for s, k in matches if k), (None, None))
        if key is None:
            text = f"{where(path)} is none of the forward's quantities (x_hat, "
            text += "x - mu, mu, var, sqrt(var + eps), their inverses, x, gamma, beta)"
            seen = _core._match(a, {"out": to_numpy(out)}, 1e-8)
            return "odd", cache, text + (f": it equals {seen}" if seen else "")
        slips[path], right[path] = slip, variants[0][1][key]
    slip = " and ".join(sorted(filter(None, set(slips.values()))))
    if not slip or not forward_off:
        text = f"{where(())} holds quantities made with {slip}"
        return ("odd", cache, text) if slip else ("right" if found else None, cache, "")
    return "repaired", _rebuilt(cache, right), slip  # the right forward's values


def _rebuilt(cache, new: dict, path=()):
    """A copy of ``cache`` (tuples, lists, dicts) with the arrays at ``new``'s paths."""
    if path in new:
        return np.array(new[path], dtype=float)
    if isinstance(cache, (tuple, list)):
        return type(cache)(_rebuilt(c, new, (*path, i)) for i, c in enumerate(cache))
    if isinstance(cache, dict):
        return {k: _rebuilt(v, new, (*path, k)) for k, v in cache.items()}
    return _core.copied(cache)


def _stage_references(p: Problem) -> dict:
    """``STAGES`` on ``p``: the forward's quantities, autograd's gradients."""
    x = (torch := _core.torch()).tensor(p.x, requires_grad=True)
    xc = x - (mu := x.mean(0))
    s = torch.sqrt((var := (xc**2).mean(0)) + p.eps)
    x_hat = xc * (rho := 1 / s)
    y = torch.from_numpy(p.gamma) * x_hat + torch.from_numpy(p.beta)
    grads = torch.autograd.grad(y, [x_hat, rho, s, var, xc, mu], torch.tensor(p.dout))
    found = (a.detach().numpy() for a in (x_hat, xc, s, rho, *grads))  # STAGES' order
    return dict(zip(STAGES, found, strict=True))


def _locals_at_return(fn, *args):
    """Call ``fn``; the locals of it and of its helpers (same file) as they return."""
    where, kept = getattr(getattr(fn, "__code__", None), "co_filename", None), {}
    if where is None:  # not plain Python (the grader's remote proxy): no locals
        return kept

    def profile(frame, event, arg):
        if event == "return" and frame.f_code.co_filename == where:
            kept.update({k: v for k, v in frame.f_locals.items() if k not in kept})

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:  # its exception is suppressed: the comparison of dx reported it
        with _core.quiet_numerics(), contextlib.suppress(Exception):
            fn(*args)
    finally:
        sys.setprofile(previous)
    return kept


def _stage_result(name, backward, p: Problem, cache, out):
    """Karpathy's cmp of the backward's locals: (Result, first wrong is forward's)"""
    found = _locals_at_return(backward, p.dout.copy(), _core.copied(cache))
    wanted, checked, label = _stage_references(p), [], f"{name} stages"
    for stage, spellings in STAGES.items():
        spelling = next((n for n in spellings if n in found), None)
        got, want = to_numpy(found.get(spelling)), wanted[stage]
        if got is None:
            continue
        if got.size == want.size and rel_error(got.reshape(want.shape), want) <= 1e-8:
            checked.append(stage)
            continue
        if stage.startswith("d"):
            why = f"the first wrong stage is {stage} (per autograd); right before it: "
            return wrong(label, why + (", ".join(checked) or "none checked")), False
        forward = {k: v for k, v in wanted.items() if k[0] != "d"}
        seen = _core._match(got, {**forward, "out": to_numpy(out)}, 1e-8)
        text = f"your backward pass's {spelling} (as it returns) is not {stage}"
        text += (f": it equals {seen}" if seen else "") + "; it comes before every "
        return wrong(label, text + "gradient: fix it first"), True
    text = f"{', '.join(checked)} agree; what differs comes after"
    return (info(label, text) if checked else None), False


def _judge_backward(kind, name, error, p, gradients, numeric, slip=""):
    """STYLE.md 6: with the forward off, right on a right cache or on theirs passes"""
    if all(r.passed for r in gradients) and any(r.verdict == "note" for r in gradients):
        why = "differs as the (N, D) function it uses is off"
        return [*gradients, info(numeric.name, f"{why} ({numeric.detail})")]
    if error <= tolerance(kind, p):  # at eps=1e-5 right, at 0.1 not: the eps used
        if all(gradients) and not numeric.passed and numeric.error is not None:
            numeric.detail += "; right at the default eps: use the eps of the forward"
        return [*gradients, numeric]
    off = f"{FORWARD[kind]} itself is off (run its check)"
    if all(r.passed for r in gradients):
        how = f"; its cache's x_hat and the like, made with {slip}, were made right"
        why = f"{off}{how if slip else ''}: judged by PyTorch's gradients, it is right"
        return [*gradients, info(numeric.name, why)]
    if numeric.passed and error < 0.5:
        differs = lambda r: info(r.name, f"differs from PyTorch's ({r.detail})")
        notes = [r if r.passed else differs(r) for r in gradients]
        why = "right for your forward pass, as the numerical gradients show"
        return [*notes, numeric, info(name, f"{off}; this backward pass is {why}")]
    why = "compared with PyTorch's, which differentiate the correct forward"
    return [*gradients, numeric, wrong(name, f"{off}: the gradients above are {why}")]


def _gradient_results(kind, name, grads, p: Problem, named: bool) -> list[Result]:
    """dx, dgamma, dbeta against PyTorch's; causes named if ``named`` (a right cache)"""
    refs = dict(zip(("dx", "dgamma", "dbeta"), reference(kind, p)[1:], strict=True))
    twins, results, alt = reference(kind, p, "float32")[1:], [], name.endswith("_alt")
    (params, outputs), tol = shape_hints(kind, p), tolerance(kind, p)
    dx = dict(directions=directions(kind, p), small=() if kind == "layer" else (1,))
    dx |= dict(invariants=dx_invariants(kind, p, refs["dx"]), shape_hints=outputs)
    for (what, want), grad, twin in zip(refs.items(), grads, twins, strict=True):
        how = dx if what == "dx" else dict(shape_hints=params, axis=0)
        how = how | dict(twin=twin, returns=refs, returned=grads, known=known(kind, p))
        if named:  # a dx that differs along a branch names it (dx alone has directions)
            how |= dict(program=program(kind, p, what, alt), causes=DX_CAUSES)
        results.append(compare(f"{name} {what}", grad, want, tol=tol, what=what, **how))
    return results


def _backward(kind, forward, backward, given, options, also=None, name=None):
    forward, p = _copying(forward), make_problem(kind, *options[:2])  # seed, shape
    name = name or FORWARD[kind].replace("forward", "backward")

    def body():
        items, problem = call(name, forward, *p[:3], eps=p.eps, returns=OUT)
        if problem is None and (s := getattr(items[0], "shape", None)) != p.x.shape:
            problem = wrong(name, f"out has shape {s} for x of shape {p.x.shape}")
        if problem is not None:  # the backward pass needs a working forward pass
            problem = _transposed_hint(problem, p) if kind == "layer" else problem
            detail = f"needs {FORWARD[kind]} first (run its check): {problem.detail}"
            return Result(name, problem.verdict, detail)
        out, cache = items
        error, tol = rel_error(out, reference(kind, p)[0]), tolerance(kind, p)
        cached = kind == "batch" and _cache_status(cache, out, p, error > tol)
        status, used, note = cached or (None, cache, "")
        grads, problem = call(name, backward, p.dout, used, returns=GRADS)
        if problem is None and used is cache:  # (a repaired cache is the course's)
            again = (name, forward, backward, (p.x[::-1] * 1.5 + 0.5, *p[1:3]), p.dout)
            problem = _core.cache_kept(*again, cache, grads)
        if problem is not None:
            return problem
        pairs = zip(grads, reference(kind, p)[1:], strict=True)
        failing = not all(rel_error(g, r) <= tol for g, r in pairs)  # NaN included
        stage, early, slip = None, False, note if status == "repaired" else ""
        if failing and kind == "batch":
            stage, early = _stage_result(name, backward, p, used, out)
        right = status in ("right", "repaired") or (status is None and error <= tol)
        gradients = _gradient_results(kind, name, grads, p, right and not early)
        mine = _given(kind, given, p) or [None] * 4  # their (N, D) functions
        gradients = list(map(_credited, gradients, grads, mine[1:], [tol] * 3))
        numeric = _numeric_result(kind, name, forward, backward, options[0])
        results = _judge_backward(kind, name, error, p, gradients, numeric, slip)
        if also is not None:
            results.append(also(p, used, grads))
        more = [wrong(f"{name} cache", note)] if status == "odd" and failing else []
        more += [stage] if stage is not None else []
        return results if all(r.passed for r in results) else results + more

    return _core.run_check(name, body, *options[2:], **{name: backward})


def batchnorm_backward(
    forward, backward, *, seed=1, shape=None, quiet=False, strict=None
):
    """Check ``backward(dout, cache) -> (dx, dgamma, dbeta)`` (staged version)."""
    return _backward("batch", forward, backward, None, (seed, shape, quiet, strict))


def spatial_batchnorm_backward(
    forward, backward, given=None, *, seed=4, shape=None, quiet=False, strict=None
):
    """Check the spatial backward; ``given``: (batchnorm_forward, ..._backward_alt)"""
    return _backward("spatial", forward, backward, given, (seed, shape, quiet, strict))


def layernorm_backward(
    forward, backward, given=None, *, seed=6, shape=None, quiet=False, strict=None
):
    """Check layer norm's backward; ``given``: (batchnorm_forward, ..._backward_alt)"""
    return _backward("layer", forward, backward, given, (seed, shape, quiet, strict))


def batchnorm_backward_alt(
    forward, backward_alt, staged=None, *, seed=2, shape=None, quiet=False, strict=None
):
    """Check the closed-form backward; with ``staged`` also compare the two."""

    def also(p, cache, grads, label="backward_alt vs backward"):
        """Against ``staged``: a note, never a failure (it has its own check)."""
        if staged is None:
            return info(label, "skipped (no staged version given)")
        other, problem = call(label, staged, p.dout, cache, returns=GRADS)
        if problem is not None:
            return info(label, f"skipped: batchnorm_backward: {problem.detail}")
        worst = max(rel_error(a, b) for a, b in zip(grads, other, strict=True))
        if worst < BACKWARD_TOL:
            return ok(label, f"max rel. difference {worst:.0e}: they agree")
        why = "the lines above and batchnorm_backward's check say which one is off"
        return info(label, f"max rel. difference {worst:.0e}: they disagree; {why}")

    options, name = (seed, shape, quiet, strict), "batchnorm_backward_alt"
    return _backward("batch", forward, backward_alt, None, options, also, name)
