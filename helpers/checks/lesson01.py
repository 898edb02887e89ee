"""Checks for notebook 01: standardisation, percentiles, per-layer gradient norms."""

__all__ = ["activation_percentiles", "layer_gradient_norms", "standardize_columns"]
import numpy as np

from . import _core
from ._core import EPS, call, compare, copy, ok, rel_error, run_check, torch, wrong

_NORMS = (r"\bbatch_norm\b", r"\bStandardScaler\b", r"\blayer_norm\b")
SHORTCUTS = {"standardize_columns": _NORMS}  # calls solving it: tools/grading/flags.py
_ROWS = [[1, -3, 4, -2, 5, 4], [2, -6, 9, -1, 8, 2], [2, -6, 9, -1, 9, 7]]
EXAMPLE_4X6 = np.array([*_ROWS, [-1, 3, -4, 2, -5, -4]], dtype=float)  # notebook 01's
STANDARD = "mu = x.mean(axis=0)\nout = (x - mu) / np.sqrt(x.var(axis=0, ddof=0) + eps)"
SPREAD = np.random.default_rng(0).normal([12, -3, 0.5, 7], [5, 0.01, 2, 30], (10, 4))
METHODS = """inverted_cdf averaged_inverted_cdf closest_observation hazen weibull
interpolated_inverted_cdf median_unbiased normal_unbiased lower higher midpoint
nearest""".split()  # numpy.percentile's methods but its default, "linear"
METHOD = "these are numpy.percentile's values with method={!r}; use its default, "
METHOD = (METHOD + "linear interpolation").format  # METHOD(m): its message
RANKS = "each value returned is one of the data's own values, with no interpolation "
RANKS += "between neighbouring ranks: numpy.percentile's default interpolates linearly"
WHOLE = "percentiles of each column, not of all the values: flatten it first"
FRACTION = "q was used as a fraction: numpy.percentile takes percents (15, not 0.15)"
HELD = "the gradients the model held were added in: call model.zero_grad() first"
SUMMED = "the loss is summed over the batch; use the mean (F.cross_entropy's default)"


def standardize_columns(fn, x=None, eps=EPS, quiet=False, strict=None):
    """Check ``fn(X, eps) -> X_std``: each column to mean 0, variance 1."""
    batch_norm, tensor = torch().nn.functional.batch_norm, torch().from_numpy
    x = np.asarray(SPREAD if x is None else x, dtype=float)  # 0.01 spread: eps matters
    bn = lambda d, e: batch_norm(tensor(d), None, None, training=True, eps=e or 1e-300)

    def body():
        name, d = "standardize_columns", x.shape[1]
        value, problem = call(name, fn, x, eps=eps)
        if problem is not None:
            return problem
        hints = {(d,): "one value per column (its statistics): return the whole matrix"}
        read = dict(shape_hints=hints, program=(STANDARD, {"x": x, "eps": eps}, "out"))
        stage = {"eps": eps, "means": {"the column mean": x.mean(0)}}
        stage["scales"] = {"sqrt(var + eps)": np.sqrt(x.var(0) + eps)}
        axes = lambda out: _core.wrong_axes(out, x, 1.0, 0.0, eps=eps, axes=(0,))
        read["readers"] = [axes, lambda out: _core.stages(out, x, 1.0, 0.0, **stage)]
        results = [compare(name, value, bn(x, eps), tol=1e-10, **read)]
        if not results[0]:
            return results
        ignored = {"the eps argument is ignored: use the eps passed in": value}
        for case, data, e, diagnoses in (  # last: the default eps (later cells use it)
            ("4x6 example", EXAMPLE_4X6, eps, {}),
            ("4x6 example in int64", EXAMPLE_4X6.astype(np.int64), eps, {}),  # counts
            ("one column", x[:, :1], eps, {}),  # D = 1 stays 2-D
            ("eps=0.01", x, 0.01, ignored),  # eps matters: a tiny column
            ("eps=0, N=40", np.r_[x, x, x, x + 60 * (x == x.max())], 0.0, {}),  # z > 3
            ("called without eps (the signature's default eps=1e-5)", x, None, {}),
        ):
            label, want = f"{name} {case}", bn(data * 1.0, EPS if e is None else e)
            got, problem = call(label, fn, data, **({} if e is None else {"eps": e}))
            if problem is None:  # a failed Result is falsy: never chain with `or`
                problem = compare(label, got, want, tol=1e-10, diagnoses=diagnoses)
            results.append(problem)
        return results

    return run_check("standardize_columns", body, quiet, strict, standardize_columns=fn)


def activation_percentiles(fn, quiet=False, strict=None):
    """Check ``fn(values, q=(15, 50, 85)) -> array`` against numpy.percentile."""
    name, tensor, q3 = "activation_percentiles", torch().from_numpy, {"q": (15, 50, 85)}
    values = np.random.default_rng(3).standard_normal((40, 7)) * 2 + 1
    cases = {  # label: (values, keywords): any shape, tensor or array
        "q=3 values": (tensor(values), q3),
        "q=5 values": (tensor(values), {"q": (5, 25, 50, 75, 95)}),
        "NumPy input": (values[:20], {"q": (10, 90)}),
        "default q": (tensor(values[:, :3]), {}),
        "tensor in the graph": (tensor(values[:10]).requires_grad_(), q3),
        "nn.Parameter": (torch().nn.Parameter(tensor(values[:9])), q3),  # a subclass
        "values with ties": (tensor(np.round(values, 1)), q3),  # repeated values
        "integer values": (tensor(np.round(values * 9).astype(np.int64)), q3),
        "many values": (tensor(np.resize(values, (900, 7))), q3),  # 6300 values
        "1-D values": (values[:, 0], {"q": (10, 90)}),  # as the graded test's
        "q of 1 or less": (tensor(values), {"q": (0.5, 1)}),  # percents, not fractions
        "one q": (tensor(values), {"q": [50]}),  # an array of one, not a number
        "3-D values": (tensor(values[:36].reshape(4, 9, 7)), q3),  # any shape
    }

    def body():
        seen, results, kept = [], [], [*map(METHOD, METHODS), FRACTION]
        for label, (data, keywords) in cases.items():
            got, problem = call(f"{name} {label}", fn, data, **keywords)
            if not isinstance(got, np.ndarray):  # None, with call's problem if any
                why = f"returned a {type(got).__name__}: return a NumPy array"
                return problem if problem is not None else wrong(f"{name} {label}", why)
            v, q = _core.to_numpy(data), keywords.get("q", q3["q"])  # v: the values
            mistakes = {METHOD(m): np.percentile(v, q, method=m) for m in METHODS}
            mistakes[FRACTION] = np.percentile(v, np.asarray(q) / 100.0)
            kept = [k for k in kept if rel_error(got, mistakes[k]) <= 1e-9]  # fits all
            seen.append((label, v, got, np.percentile(v, q), mistakes, q))
        ranked = all(np.isin(got, v).all() for _, v, got, *_ in seen)
        for label, v, got, want, mistakes, q in seen:
            hints = {(len(want), v.shape[-1]): WHOLE} if v.ndim == 2 else {}
            kwargs = {"diagnoses": {k: mistakes[k] for k in kept}, "shape_hints": hints}
            kwargs["source"] = (lambda z, q=q: np.percentile(z, q), v)
            kwargs["invariants"] = [lambda g: RANKS if ranked else None]  # every case
            results.append(compare(f"{name} {label}", got, want, tol=1e-12, **kwargs))
            if not results[-1]:
                break
        return results

    return run_check(name, body, quiet, strict, activation_percentiles=fn)


def _summaries(model, x, y) -> tuple:
    """||dL/dW|| per nn.Linear (L: mean cross-entropy), and other summaries named."""
    layers = [m for m in model.modules() if isinstance(m, torch().nn.Linear)]
    loss = torch().nn.functional.cross_entropy(model(x), y)
    params = list(model.parameters())
    found = dict(zip(map(id, params), torch().autograd.grad(loss, params), strict=True))
    w = [found[id(m.weight)] for m in layers]
    norms = np.array([float(g.norm()) for g in w])
    weights = [m.weight.detach().norm() for m in layers]
    named = [found[id(p)].norm() for k, p in model.named_parameters() if "weight" in k]
    found = {
        "one norm per parameter (weights and biases): return one norm per nn.Linear, "
        "of its weight's gradient": [g.norm() for g in found.values()],
        "the norms of every other parameter: not every layer has a bias; take each "
        "nn.Linear's weight": [g.norm() for g in list(found.values())[::2]],
        "these are the weights' norms, not their gradients' norms": weights,
        "the gradients' squared norms: return ||dL/dW||": [g.norm() ** 2 for g in w],
        "every parameter named weight, batch norm's too: take each nn.Linear's": named,
    }
    return norms, {k: np.array([float(v) for v in vs]) for k, vs in found.items()}


def _floats(name, fn, *args):
    """``fn(*args)``'s norms as a float64 array, or a wrong Result saying why not."""
    got, problem = call(name, fn, *args, copy_inputs=False)
    if got is None:  # call gives None with its problem; unpack says a bare None
        return _core.unpack(name, got, 1, "")[1] if problem is None else problem
    try:
        return np.asarray([_core.real(v) for v in got], dtype=float)
    except (TypeError, ValueError):
        inner = sorted({type(v).__name__ for v in got}) if isinstance(got, list) else []
        why = f"returned a {type(got).__name__}{' of ' if inner else ''}"
        why += f"{', '.join(inner)}: return one float per nn.Linear (.item() gives a "
        return wrong(name, why + "tensor's number)")


def layer_gradient_norms(fn, seed=0, quiet=False, strict=None):
    """Check ``fn(model, x, y) -> [||dL/dW|| per nn.Linear, input to output]``, twice"""
    name, torch_, nn = "layer_gradient_norms", torch(), torch().nn
    torch_.manual_seed(seed)  # the last Linear is "10"; BN is no Linear; nested bias
    top = [nn.Linear(6, 5), nn.BatchNorm1d(5, track_running_stats=False)]
    mid = [nn.Sigmoid(), nn.Sequential(nn.Linear(5, 4, bias=False), nn.Tanh())]
    model = nn.Sequential(*top, *mid, *[nn.Identity()] * 6, nn.Linear(4, 3)).double()
    gen = torch_.Generator().manual_seed(seed)
    x = 3 * torch_.randn(13, 6, generator=gen, dtype=torch_.float64) + 2  # 13: prime
    y = torch_.randint(0, 2, (13,), generator=gen)  # class 2 absent: one_hot(y) fails
    torch_.nn.functional.cross_entropy(model(x), y).backward()  # gradients held

    def body():
        want, mistakes = (course := lambda: _summaries(_core.copied(model), x, y))()
        if not isinstance(got := _floats(name, fn, model, x, y), np.ndarray):
            return got
        for why, value in mistakes.items():  # another length: named by its values
            if value.shape == got.shape != want.shape and rel_error(got, value) < 1e-6:
                return wrong(name, why)
        sizes = np.array([p.numel() for p in model.parameters() if p.ndim == 2])
        how = {"known": {"N": len(x), "each weight's number of entries": sizes}}
        how |= {"causes": {"factor N": SUMMED, "factor 2": HELD}, "axis": 0}
        if not (first := compare(name, got, want, tol=1e-9, diagnoses=mistakes, **how)):
            seen = first.error and _core.calls_differ(course, first.error)  # F.* calls
            first.detail += f"; {seen}" * bool(seen)
            return first
        if not isinstance(again := _floats(name, fn, model, x, y), np.ndarray):
            return again
        if rel_error(again, want) > 1e-6:
            return wrong(name, "a second call gives other norms")
        results = [first, ok(f"{name} called twice", "same norms (gradients reset)")]
        small = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3)).double()
        cases = {"float32 model": (copy.deepcopy(model).float(), x.float(), y, 1e-4)}
        cases["batch of one"] = (small, x[:1], y[:1], 1e-9)  # (no BN: one is fine)
        for label, (m, a, b, tol) in cases.items():  # each in turn
            want, label = _summaries(copy.deepcopy(m), a, b)[0], f"{name} {label}"
            if not isinstance(got := _floats(label, fn, m, a, b), np.ndarray):
                return [*results, got]
            results.append(compare(label, got, want, tol=tol))
        return results

    return run_check(name, body, quiet, strict, layer_gradient_norms=fn)
