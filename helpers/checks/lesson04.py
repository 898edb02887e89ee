"""Checks for notebook 04: batch renormalization (Ioffe, 2017) and its schedule."""

__all__ = ["batch_renorm", "batch_renorm_backward", "renorm_schedule"]  # with mutants

import numpy as np

from .. import gradcheck
from . import _core
from ._core import EPS, Result, _fmt, call, compare, ok, to_numpy, torch, wrong
from ._core import from_channels_last as unrows

TOL, NAME, RMAX, DMAX, BACKWARD = 1e-9, "BatchRenorm", 1.5, 0.5, "batch_renorm_backward"
SHORTCUTS = {BACKWARD: (r"\btorch\.\w+", r"\bautograd\b")}  # calls solving an exercise
SHORTCUTS[NAME] = (r"\bnn\.BatchNorm\w*", r"\bbatch_norm\b")  # tools/grading/flags.py
_x_hat = lambda rows: (rows - rows.mean(0)) / np.sqrt(rows.var(0) + EPS)
_close = lambda a, b, tol=1e-7: np.abs(a - b) <= tol * max(np.abs(b).max(), 1.0)
_branches = lambda x, shape: {"1": np.ones(shape), "x_hat": unrows(_x_hat(x), shape)}
_off = "the branch through {} is off (missing, or scaled wrong)".format  # in dx
BRANCHES = {"along 1": _off("the batch mean"), "along x_hat": _off("sigma_B")}
_both = "the direct term is right; what differs lies in the branches through the "
BRANCHES["along 1 and x_hat"] = _both + "batch mean and sigma_B (one or both)"
DETACHED = "compute r and d from detached statistics (stop_gradient)"
_flows = lambda how: f"the gradient flows through {how}{DETACHED}"  # r, d: constants
THROUGH = {_flows("r and d: they are constants; "): ""}  # message -> held constant
THROUGH |= {_flows(f"{a} ({b} is held constant): "): b for a, b in ("rd", "dr")}
IMAGES = "(N, C) input works: (N, C, H, W) input takes its statistics per channel, "
IMAGES += "over axes (0, 2, 3), and gamma, beta, r, d broadcast as (1, C, 1, 1)"
SUMMED = "not summed over the batch: gamma and beta are shared by every example"
MIXED = "dx mixes the features: dout in feature 0 alone changed others; mean on axis 0"
UPDATE = """mean = x.mean(axis=0)\nstd = np.sqrt(x.var(axis=0) + eps)
running_mean = old_mean + momentum * (mean - old_mean)
running_std = old_std + momentum * (std - old_std)\n"""  # Algorithm 1: one edit, a slip
PAPER = {"warmup": 5000, "r_steps": 35000, "d_steps": 20000}  # the paper's schedule
GRID = [(0, 10, 20, 2, 1), (10, 0, 0, 3, 5), (10, 0, 20, 3, 5), (10, 20, 0, 3, 5)]
GRID += [(10, 87.5, 37.5, 3, 5), (12.5, 87.5, 50, 3, 5)]  # set_bounds' (fractions)
GRID += [(12.5, 0, 87.5, 3, 5)]  # a ramp of 0 steps after a fractional warm-up


def problem(seed=0, n=12, d=5):
    """A batch whose r and d are clipped in some features, not in the others."""
    x = (rng := np.random.default_rng(seed)).normal(3.0, 2.0, size=(n, d))
    mean, std = np.array([[3.2, 2.0, 3.0, 5.5, 3.1], [1.9, 1.0, 4.5, 2.1, 2.0]])[:, :d]
    gamma, beta = rng.uniform(0.5, 2.0, d), rng.normal(0.0, 1.0, d)
    return x, gamma, beta, mean, std, rng.standard_normal((n, d))  # running mean, std


def _spreads(var, n):
    """sigma_B as a learner may compute it, (words, value), the right one first."""
    unbiased = " of the unbiased variance (use correction=0)"
    for which, v in (("", var), (unbiased, var * n / (n - 1))):
        yield f"sqrt(var_B + eps){which}", np.sqrt(v + EPS)
        yield f"sqrt(var_B), without eps{which}", np.sqrt(v)
        yield f"sqrt(var_B) + eps, eps outside the root{which}", np.sqrt(v) + EPS
        yield f"var_B + eps, the variance{which}", v + EPS
        yield f"var_B, the variance without eps{which}", v


def _numeric_grads(forward, x, gamma, beta, mean, std, dout, fixed="rd", bounds=None):
    """Numerical dx, dgamma, dbeta, holding constant r and d if in ``fixed``."""
    names = ("running_mean", "running_std", "rmax", "dmax")  # the given forward's
    given = dict(zip(names, (mean, std, *(bounds or (RMAX, DMAX))), strict=True))
    _, _, (r, d) = forward(x, gamma, beta, **given)
    given |= {k: v for k, v in (("r", r), ("d", d)) if k in fixed}
    inputs = {"x": x, "gamma": gamma, "beta": beta}
    evaluate = gradcheck.evaluator(forward, tuple(inputs), lambda out: out[0], **given)
    return *gradcheck.numerical_gradients(evaluate, inputs, dout).values(), (r, d)


def _probe(backward, cache, douts, k):
    """Item ``k`` of what the backward pass returns for each of ``douts``, or None."""
    found = []
    for dout in douts:
        value, failed = call("probe", backward, dout, cache, returns=(3, ""))
        found.append(None if failed is not None else to_numpy(value[k]))
        if found[-1] is None or found[-1].shape != found[0].shape:
            return None
    return np.array(found)


def _terms(backward, cache, dgamma, dout, x, r, d) -> str | None:
    """dgamma's summand (x_hat * r + d) read as x_hat * a + b, one example at a time"""
    ones, x_hat = np.eye(len(dout))[:, :, None] * np.ones_like(dout[0]), _x_hat(x)
    if (s := _probe(backward, cache, ones, 1)) is None or s.shape != dout.shape:
        return None
    a, b = (s * x_hat).sum(0) / (x_hat * x_hat).sum(0), s.mean(0)
    linear = np.allclose((dout * s).sum(0), dgamma, rtol=1e-9, atol=1e-12)
    if not (linear and _close(a * x_hat + b, s).all()):
        return None  # no such reading
    scale = [k for k, v in {"": 1.0, " * r": r}.items() if _close(a, v).all()]
    shift = [k for k, v in {"": 0.0, " + d": d}.items() if _close(b, v).all()]
    term = f"x_hat * a + b with a = ({_fmt(a, 5)}), b = ({_fmt(b, 5)})"
    term = f"x_hat{scale[0]}{shift[0]}" if scale and shift else term
    return f"dgamma uses {term}; the output is gamma * (x_hat * r + d) + beta"


def batch_renorm_backward(numpy_forward, backward, *, seed=0, quiet=False, strict=None):
    """Check ``backward(dout, cache) -> (dx, dgamma, dbeta)`` with r, d constant."""

    def body():
        _, x, gamma, beta, mean, std, dout = data = (numpy_forward, *problem(seed))
        value, failed = call(BACKWARD, *data[:6], RMAX, DMAX)  # the given forward
        if failed is not None:
            return failed
        got, failed = call(BACKWARD, backward, dout, value[1], returns=(3, "dx, ..."))
        if failed is not None:
            return failed
        (dx, dgamma, dbeta, (r, d)), n = _numeric_grads(*data), len(x)
        sigma = np.sqrt(x.var(0) + EPS)
        known = {"r": r, "gamma": gamma, "sigma_B": sigma, f"N = {n}": n}
        held = {k: _numeric_grads(*data, f)[0] for k, f in THROUGH.items()}
        dx_how = dict(diagnoses=held, causes=BRANCHES, directions=_branches(x, x.shape))
        params = dict(axis=0, shape_hints={x.shape: SUMMED})
        refs = {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}
        kw = dict(tol=5e-9, known=known, returns=refs, returned=got)  # 20 x numeric
        vs = lambda k, g, h: compare(f"{BACKWARD} {k}", g, refs[k], what=k, **kw, **h)
        results = list(map(vs, refs, got, (dx_how, params, params)))  # 3 items each
        one = np.where(np.arange(len(gamma)) == 0, dout, 0.0)  # feature 0's dout
        mixed = None if results[0] else _probe(backward, value[1], [one], 0)
        if mixed is not None and mixed.shape[1:] == dout.shape:  # 0 but in feature 0
            if np.abs(mixed[0, :, 1:]).max() > 1e-9 * np.abs(mixed).max():
                results[0].detail = f"{MIXED} (max rel. error {results[0].error:.1e})"
        swapped = "the other way round" in results[1].detail  # the outputs' order
        if not (results[1] or swapped) and results[1].error is not None:
            if read := _terms(backward, value[1], to_numpy(got[1]), dout, x, r, d):
                results[1].detail = read + f" (max rel. error {results[1].error:.1e})"
        if all(results):  # one feature: dx keeps its shape (N, 1), no squeeze()
            one, at = (numpy_forward, *problem(seed, d=1)), f"{BACKWARD} D=1"
            (v, failed), dx1 = call(at, *one[:6], RMAX, DMAX), _numeric_grads(*one)[0]
            if failed is None:
                got, failed = call(at, backward, one[-1], v[1], returns=(3, "dx, ..."))
            if failed is None:  # a failed Result is falsy: no `or`
                failed = compare(at, got[0], dx1, tol=5e-9, what="dx")
            results.append(failed)
        return results

    return _core.run_check(BACKWARD, body, quiet, strict, **{BACKWARD: backward})


def _ready(cls, label, state=(), bounds=(RMAX, DMAX), x=None, **how):
    """A float64 module (5 channels) with ``state``, ``bounds``, and its out on ``x``"""
    kw = dict(zip(("rmax", "dmax"), bounds, strict=True)) if how.get("given") else {}
    moved = {"momentum": how["momentum"]} if how.get("momentum") else {}
    module, failed = _core.build_module(cls, label, 5, **kw, **moved)
    if failed is not None:
        return None, None, failed
    module = module.double().train(how.get("train", True))
    pairs = [*zip("weight bias running_mean running_std".split(), state, strict=False)]
    doing, hint = "setting weight, bias, running_mean and running_std", ""
    try:  # what the notebook's training loop does to the module
        with torch().no_grad():
            for key, value in pairs:
                getattr(module, key).copy_(torch().from_numpy(value))
        doing, hint = "setting module.rmax and module.dmax", ": keep them plain floats"
        if not kw:
            module.rmax, module.dmax = bounds
        doing, hint = "setting the state again after a training step", ""
        if not how.get("train", True) and x is not None:  # eval after a training
            with torch().no_grad():  # step (r and d it kept must not be used)
                call(label, module.train(), x * 3 + 1)
                for key, value in pairs:
                    getattr(module, key).copy_(torch().from_numpy(value))
            module.eval()
    except Exception as exc:
        return None, None, wrong(label, f"{doing} failed ({exc!r}"[:250] + ")" + hint)
    if x is None:
        return module, None, None
    with torch().set_grad_enabled(x.requires_grad):
        return module, *call(label, module, x, copy_inputs=False)


def _registration(cls) -> Result:
    """Buffers running_mean, running_std (a std, as the paper); plain attributes."""
    label, params = f"{NAME} buffers", {"weight": torch().ones(5), "bias": None}
    buffers = {"running_mean": torch().zeros(5), "running_std": torch().ones(5)}
    for given in ({}, {"momentum": 0.2, "rmax": 2.0, "dmax": 1.0, "eps": 0.5}):
        module, failed = _core.build_module(cls, label, 5, **given)
        attrs = {"rmax": 1.0, "dmax": 0.0, "momentum": 0.01, "eps": EPS, **given}
        if failed is None:
            failed = _core.registration_problem(label, module, buffers, params, attrs)
        if failed is not None:
            return failed
    return ok(label, "weight, bias; running_mean, running_std buffers; defaults kept")


def _stage(what, got, want, raw, lo, hi, known) -> str | None:
    """How stage r or d differs: where, values, a common factor or sign, clipping."""
    got = np.where(np.abs(got) < 1e-12, 0.0, got)  # round-off, not a value
    if not (bad := np.flatnonzero(~_close(got, want))).size:
        return None
    (g, w, v), many = (got[bad], want[bad], raw[bad]), bad.size > 1
    where = f"feature{'s' if many else ''} {', '.join(map(str, bad))}"
    text = f"{what} is off in {where}: yours {_fmt(g, 5)}, expected {_fmt(w, 5)}"
    if (tiny := np.abs(g - w).max() / max(np.abs(w).max(), 1e-300)) < 1e-3:
        text = f"{what} is off in {where} by relative differences up to {tiny:.1e}"
    with np.errstate(all="ignore"):  # an expected 0: an infinite ratio
        ratio, name = g / w, many and _core._named(g[0] / w[0], known)
        if many and g.all() and np.ptp(ratio) <= 1e-6 * abs(ratio[0]):
            text += f", by the same factor {ratio[0]:.6g}{' = ' + name if name else ''}"
    for sign, word in ((-1, "negative"), (1, "positive")):  # one sign only?
        if bad.size < want.size and list(bad) == list(np.flatnonzero(want * sign > 0)):
            text += f"; exactly the features where {what} should be {word}"
    if _close(g, v).all():
        return text + f": there {what} is not clipped to [{lo:.4g}, {hi:.4g}]"
    text += f" ({what} before clipping to [{lo:.4g}, {hi:.4g}]: {_fmt(v, 5)}"
    inside = ((v >= lo) & (v <= hi)).all()
    return text + (", inside the range: nothing to clip)" if inside else ")")


def _reader(rows, state, bounds, momentum):
    """``compare``'s reader: out read as gamma * (x_hat * r + d) + beta: which r, d"""
    (gamma, beta, mean, std), (rmax, dmax), var = state, bounds, rows.var(0)
    mu, sigma, x_hat = rows.mean(0), np.sqrt(var + EPS), _x_hat(rows)

    def rd(s=sigma, run=(mean, std), clip="rd", by=None, r_s=None):
        r = (s if r_s is None else r_s) / run[1]
        d = (mu - run[0]) / (run[1] if by is None else by)
        r = np.clip(r, 1 / rmax, rmax) if "r" in clip else r
        return r * sigma / s, np.clip(d, -dmax, dmax) if "d" in clip else d

    def read(got):  # compare reads only an output of the expected shape
        fit = lambda z: ((z * x_hat).sum(0) / (x_hat * x_hat).sum(0), z.mean(0))
        with np.errstate(all="ignore"):
            a, b = fit(y := _core.channels_last(got))
            if not _close(a * x_hat + b, y).all():
                return None  # not gamma * (x_hat * r + d) + beta for any r, d
            a, b = fit((y - beta) / gamma)
        head = "read as gamma * (x_hat * r + d) + beta with the batch's x_hat: "
        fits = [k for k, v in changes.items() if same((a, b), v)]
        if len(fits) == 1:
            return head + fits[0]
        known = {"N/(N-1)": len(rows) / (len(rows) - 1), "rmax": rmax}
        seen = [_stage("r", a, right[0], sigma / std, 1 / rmax, rmax, known)]
        seen.append(_stage("d", b, right[1], (mu - mean) / std, -dmax, dmax, known))
        return head + "; ".join(filter(None, seen)) if any(seen) else None

    fresh = (mean + momentum * (mu - mean), std + momentum * (sigma - std))
    r_no, d_no = "r not clipped to [1/rmax, rmax]", "d not clipped to [-dmax, dmax]"
    r_no += " (or x - mu_B divided by running_std: x_hat times that unclipped r)"
    d_is = "d = (mu_B - running_mean) / running_std"
    both = f"{r_no}; {d_no} (eval mode's (x - running_mean) / running_std)"
    changes = {r_no: rd(clip="d"), d_no: rd(clip="r"), both: rd(clip="")}
    changes["r = 1 and d = 0 in every feature, plain batch norm's"] = (1.0, 0.0)
    stale = "r and d are computed from the running statistics after this step's "
    changes[stale + "update: compute them before updating the buffers"] = rd(run=fresh)
    changes[f"d is divided by sigma_B: {d_is}"] = rd(by=sigma)
    for words, s in list(_spreads(var, len(rows)))[1:]:
        changes[f"sigma_B is {words}"] = rd(s=s)
        changes[f"r uses sigma_B = {words} (x_hat is right)"] = rd(r_s=s)
    r, d = right = rd()
    gone = "beta is not added: out = gamma * (x_hat * r + d) + beta"
    after = "r and d are applied to gamma * x_hat + beta: apply them to x_hat first"
    changes |= {gone: (r, d - beta / gamma), after: (r, (beta * (r - 1) + d) / gamma)}
    changes["gamma and beta are not applied"] = r / gamma, (d - beta) / gamma
    same = lambda p, q: _close(p[0], q[0]).all() and _close(p[1], q[1]).all()
    return read


def _step(cls, given, case, seed, bounds=(RMAX, DMAX), image=False, train=True, **how):
    """A training step (output, input gradient, running stats) or eval step: vs given"""
    plain, m, label = bounds == (1.0, 0.0), how.get("momentum", 0), f"{NAME} {case}"
    rows, *state, drows = problem(seed, n=24 if image else 12)  # gamma, beta, mean, std
    shape = (2, 5, 3, 4) if image else rows.shape  # 24 rows = 2 x 3 x 4 positions
    x = torch().tensor(unrows(rows, shape), requires_grad=train)
    module, out, failed = _ready(cls, label, state, bounds, x, train=train, **how)
    if failed is not None:
        return [failed]
    if not train:  # compared as rows (N * H * W, C)
        out = _core.channels_last(out) if np.shape(out) == shape else out
        return [_eval(label, module, out, rows, state)]
    want = unrows(given(rows, *state, *bounds)[0], shape)
    momentum = getattr(module, "momentum", None)  # missing or not a number: the default
    momentum = m or (momentum if isinstance(momentum, (int, float)) else 0.01)
    read, data = _reader(rows, state, bounds, momentum), (given, rows, *state, drows)
    result = compare(f"{label} output", out, want, tol=TOL, readers=[read])
    if "plain batch norm's" in result.detail:  # right with rmax, dmax given?
        _, out2, failed = _ready(cls, label, state, bounds, x.detach(), given=True)
        if failed is None and compare(label, out2, want, tol=TOL):
            result.detail = "module.rmax, module.dmax set after construction changed "
            result.detail += "nothing (passed to it, they work): read them in forward()"
    if "eval mode's" in result.detail:  # or the modes swapped: is eval mode's eval?
        bn, ev, failed = _ready(cls, label, state, bounds, x.detach(), train=False)
        if failed is None and not _eval(
            label, bn, _core.channels_last(ev), rows, state
        ):
            why = "training mode gives eval mode's output and eval mode another: "
            result.detail = why + "the test of self.training is the wrong way round"
    if not result:
        return [result]
    try:
        out.backward(torch().from_numpy(unrows(drows, shape)))
    except Exception as exc:  # "...: [torch.DoubleTensor [5]], which is output 0 of"
        changed = __import__("re").search(r"Tensor \[(\d+)\]\]", str(exc))
        if not ("inplace operation" in str(exc) and changed and int(changed[1]) == 5):
            return [wrong(f"{label} gradient", "backward failed: " + _core.raised(exc))]
        why = "backward failed: a per-channel tensor of the graph (shape [5]) was "
        why += "changed in place after the output used it: a batch statistic updated in"
        why += " place (std.mul_(m)?), or the running buffers if r and d hold them: "
        return [wrong(f"{label} gradient", why + DETACHED)]
    numeric = lambda held: unrows(_numeric_grads(*data, held, bounds)[0], shape)
    kw = dict(diagnoses={k: numeric(f) for k, f in THROUGH.items()}, causes=BRANCHES)
    kw |= dict(tol=1e-7, what="the input gradient", directions=_branches(rows, shape))
    if not (grad := compare(f"{label} gradient", x.grad, numeric("rd"), **kw)):
        return [grad]
    statistics = list(_running(label, module, momentum, rows, *state[2:]))
    graph = _core.buffers_outside_graph(f"{label} buffers", module)
    now = lambda: np.array(to_numpy(getattr(module, "running_mean", None)), dtype=float)
    with torch().no_grad():  # training mode without autograd updates them too
        old, (_, failed) = now(), call(label, module, x.detach())
    if failed is None and np.array_equal(old, now()):  # (a missing one: NaN, unequal)
        why = "a training step under torch.no_grad() left running_mean unchanged"
        statistics.append(wrong(f"{label} no_grad", why + ": it moves in training"))
    if plain:  # r = 1, d = 0: the running statistics move all the same
        return [ok(label, "output and input gradient right")] + statistics
    return [result, grad, *statistics, graph]


def _running(label, module, momentum, rows, mean, std):
    """running_mean and running_std after one step, read back where they differ."""
    (sigma, *others), mu = _spreads(rows.var(0), len(rows)), rows.mean(0)
    known = {"1 - momentum": 1 - momentum, "momentum": momentum}  # 1/momentum: raw term
    env = dict(x=rows, eps=EPS, momentum=momentum, old_mean=mean, old_std=std)
    for key, old, new in (("running_mean", mean, mu), ("running_std", std, sigma[1])):
        got, want = getattr(module, key, None), old + momentum * (new - old)
        result = compare(f"{label} {key}", got, want, tol=TOL, what=key)
        if not result and result.error is not None:  # finite, of the shape
            args = (to_numpy(got), old, new, momentum, known, None, dict(others))
            result.detail = _core.ema_problem(key, *args, program=(UPDATE, env, key))
        yield result


def _eval(label, module, out, x, state) -> Result:
    """Eval mode normalises with the running statistics and changes nothing."""
    (gamma, beta, mean, std), batch = state, " (eval mode uses the running statistics)"
    given = {"means": {"running_mean": mean, f"the batch mean{batch}": x.mean(0)}}
    given["scales"] = {"running_std": std, f"sigma_B{batch}": np.sqrt(x.var(0) + EPS)}
    std_is = "running_std (it is a standard deviation already: divide by it)"
    given["variances"] = {"running_std ** 2": std**2, std_is: std}
    read = lambda got: _core.stages(got, x, gamma, beta, eps=EPS, **given)  # m and s
    want, what = gamma * (x - mean) / std + beta, "the eval-mode output"
    result = compare(label, out, want, tol=TOL, what=what, readers=[read])
    if result and not np.array_equal(np.ravel(to_numpy(module.running_mean)), mean):
        return wrong(label, "eval mode changed running_mean: update only in training")
    return result


def batch_renorm(cls, numpy_forward, *, seed=0, quiet=False, strict=None):
    """Check a BatchRenorm module (Ioffe 2017, Algorithm 1) against references."""

    def body():
        if (first := _registration(cls)).verdict == _core.TODO:
            return first
        step = lambda *args, **how: _step(cls, numpy_forward, *args, **how)
        results = [first, *step("rmax=1 dmax=0", seed, (1.0, 0.0))]
        nc, nchw = step("NC", seed, momentum=0.2), step("NCHW", seed + 1, image=True)
        nc += step("NC nothing clipped", seed + 4, (1e3, 1e3)) if all(nc) else []
        nc += step(f"NC rmax={RMAX} dmax=0", seed + 5, (RMAX, 0.0)) if all(nc) else []
        if all(nc) and nchw[0].verdict == _core.ERROR:  # only 4-D input fails
            nchw[0].detail += "; " + IMAGES
        results += nc + nchw + step("eval", seed + 2, train=False)
        results += step("eval NCHW", seed + 3, image=True, train=False)
        label, x = f"{NAME} image batch of one", torch().randn(1, 5, 2, 2).double()
        module, _, failed = _ready(cls, label)  # 4 values per channel: enough
        failed = call(label, module, x)[1] if failed is None else failed
        one = f"{NAME} eval, one example", torch().randn(1, 5).double()  # no batch
        failed = call(one[0], module.eval(), one[1])[1] if failed is None else failed
        if failed is not None:
            return [*results, failed]
        refusals = {"wrong channels": ((4, 3), "3 channels for num_features=5")}
        refusals["wrong channels, 4-D"] = (2, 3, 2, 2), "3 channels for num_features=5"
        refusals["3-D input"] = (4, 5, 6), "(N, C, L): only (N, C) and (N, C, H, W)"
        refusals["1-D input"] = (5,), "(C,): only (N, C) and (N, C, H, W)"
        refusals["one value"] = (1, 5), "one value per channel in training"
        for what, (shape, why) in refusals.items():
            label, x = f"{NAME} {what}", torch().ones(shape, dtype=torch().float64)
            module, _, failed = _ready(cls, label)
            if failed is None:
                failed = _core.expect_raises(label, module, ValueError, why, x)
            results.append(failed)
            if not failed.passed:
                break
        return results

    return _core.run_check(NAME, body, quiet, strict, BatchRenorm=cls)


def _paper(step, final=(3.0, 5.0), warmup=5000, r_steps=35000, d_steps=20000):
    """(rmax, dmax) at ``step``, the paper's by default (a 0-step ramp jumps)."""
    t = step - warmup
    ramp = lambda n: float(t > 0) if n <= 0 else min(1.0, max(0.0, t / n))
    return 1.0 + (final[0] - 1.0) * ramp(r_steps), final[1] * ramp(d_steps)


def _first(at, lo, hi, changed):
    """The first step in (lo, hi] where ``changed(at(step))``: steps exact by ``at``."""
    while hi - lo > 1:
        lo, hi = (lo, mid) if changed(at(mid := (lo + hi) // 2)) else (mid, hi)
    return int(hi)


def _ramp_problem(i, at, values, steps) -> str | None:
    """How the ramp of rmax (``i`` = 0) or dmax differs from the paper's: start, span"""
    what, paper, start = ("rmax", "dmax")[i], "the paper's", PAPER["warmup"]
    a0, a3, b0, b3 = values[0], values[-1], _paper(0)[i], _paper(10**9)[i]
    if not (moving := np.flatnonzero(np.abs(np.diff(values)) > 1e-12)).size:
        return f"{what} stays {a0:.4g}; {paper} goes from {b0:.4g} to {b3:.4g}"
    b1, b2 = start + 1, start + (PAPER["r_steps"], PAPER["d_steps"])[i]
    m, n, at_i = moving[0], moving[-1], lambda t: at(t)[i]
    a1 = _first(at_i, steps[m], steps[m + 1], lambda v: not abs(v - a0) <= 1e-12)
    a2 = _first(at_i, steps[n], steps[n + 1], lambda v: abs(v - a3) <= 1e-12)
    parts = [f"{what} starts at {a0:.4g}, {paper} at {b0:.4g}"] if a0 != b0 else []
    jump = at(a1)[i] - a0  # a ramp's first move is one step's worth of it
    if jumps := a1 == a2 or abs(jump) > 2 * abs(a3 - a0) / (a2 - a1 + 1):
        then = f", then moves until step {a2}" if a2 > a1 else ""
        jumped = f"{what} jumps from {a0:.4g} to {a0 + jump:.4g} at step {a1}{then}; "
        parts.append(jumped + f"{paper} ramps from step {b1} to step {b2}")
    elif a1 != b1:
        parts.append(f"{what} starts moving at step {a1}, {paper} after the warm-up, ")
        parts[-1] += f"at step {b1}"
    if a2 == steps[-1] and abs(a3 - a0) > abs(b3 - b0):  # past the final value
        parts.append(f"{what} is still moving at step {a2}: cap it at the final value")
    elif a2 == steps[-1]:  # short of it: a slower ramp
        parts.append(f"{what} is still moving at step {a2}, at {a3:.4g}; {paper} ")
        parts[-1] += f"reaches {b3:.4g} at step {b2}"
    elif (span := a2 - a1 + 1) != b2 - b1 + 1 and not jumps:
        named = "".join(f" ({k} = {v})" for k, v in PAPER.items() if v == span)
        parts += [f"{what} ramps over {span} steps{named}, {paper} over {b2 - b1 + 1}"]
    if a3 != b3 and a2 != steps[-1]:
        parts.append(f"{what} ends at {a3:.4g}, {paper} at {b3:.4g}")
    return "; ".join(parts) or None


def _grid_problem(name, fn, warmup, *lengths_final) -> Result | None:
    """The first step where ``fn`` differs on a GRID schedule, said; None if none."""
    (lengths, final), names = (lengths_final[:2], lengths_final[2:]), ("rmax", "dmax")
    ends = {warmup + n * k // 2 for n in lengths for k in (1, 2)}  # mid and end points
    points = {max(0, warmup - 1), warmup, warmup + 1, warmup + 25} | ends  # whole steps
    for step in sorted(map(int, points)):
        value, failed = _values(name, fn, step, warmup, *lengths_final)
        if failed is not None:
            return failed
        if not np.allclose(value, want := _paper(step, final, warmup, *lengths)):
            break
    else:
        return None
    text = "warmup={}, r_steps={}, d_steps={}, rmax_final={:g}, dmax_final={:g}: "
    text = text.format(warmup, *lengths_final) + f"step {step}: {value}, not {want}"
    if np.allclose(value, _paper(step, (3, 5), warmup, *lengths)):
        return wrong(name, f"rmax_final and dmax_final are ignored: {text}")
    if np.allclose(value, _paper(step, final, warmup, *map(int, lengths))):
        return wrong(name, f"the lengths were cut to whole steps (int()): {text}")
    off = [k for k in (0, 1) if not np.isclose(value[k], want[k], atol=1e-9)]
    if len(off) == 1 and lengths[1 - off[0]] == 0 and lengths[off[0]] > 0:
        text += f": {names[off[0]]} is right when both ramps have steps, wrong when "
        text += f"{names[1 - off[0]][0]}_steps=0: one ramp's length changes the other"
    elif 0 in lengths:
        text += ": (1, 0) up to warmup; a 0-step ramp jumps to its final value after"
    return wrong(name, text)


def _values(name, fn, step, *args, **kwargs):
    """``fn(step, ...)`` as two floats, or the Result saying why it is not."""
    value, failed = call(name, fn, step, *args, **kwargs)
    if failed is None:
        raw, (value, failed) = value, _core.unpack(name, value, 2, "rmax, dmax")
    if failed is not None:
        return None, failed
    if not isinstance(raw, tuple):  # what `schedule(...) == (1.0, 0.0)` needs
        return None, wrong(name, f"returned a {type(raw).__name__}: return a tuple")
    try:
        return (_core.real(value[0]), _core.real(value[1])), None
    except (TypeError, ValueError):
        return None, wrong(name, f"returned {value!r}: expected two numbers")


def renorm_schedule(fn, *, quiet=False, strict=None):
    """Check ``fn(step, warmup, r_steps, d_steps, rmax_final, dmax_final)``."""

    def body():
        steps, got, name = np.arange(0, 100001, 500), [], "renorm_schedule"
        for step in steps:
            value, failed = _values(name, fn, int(step), **PAPER)
            if failed is not None:
                return failed
            got.append(value)
        got, want = np.array(got), np.array([_paper(t) for t in steps])
        if not np.allclose(got, want, rtol=0, atol=1e-9):
            at = lambda t: _values(name, fn, int(t), **PAPER)[0] or (np.nan, np.nan)
            found = [_ramp_problem(i, at, got[:, i], steps) for i in (0, 1)]
            k, pair = int(np.argmax(np.abs(got - want).max(1))), "({:.6g}, {:.6g})"
            found.append(f"the largest difference: at step {steps[k]} (rmax, dmax) = ")
            found[-1] += f"{pair.format(*got[k])}, expected {pair.format(*want[k])}"
            seen = "; ".join(filter(None, found))
            return wrong(name, f"with the paper's schedule: {seen}")
        value, failed = _values(name, fn, *np.int64([20000, *PAPER.values()]))
        if failed is None and not np.allclose(value, _paper(20000)):  # np.arange's
            failed = wrong(name, f"{value}, not {_paper(20000)}")
        if failed is not None:  # (a failed Result is falsy: never `or`)
            failed.detail = f"with NumPy integer steps (np.arange's) {failed.detail}"
            return failed
        found = (_grid_problem(name, fn, *case) for case in GRID)  # 0-step ramps too
        why = "the paper's schedule every 500 steps to 100k, final values, 0-step ramps"
        return next((r for r in found if r is not None), ok(name, why))

    return _core.run_check("renorm_schedule", body, quiet, strict, renorm_schedule=fn)
