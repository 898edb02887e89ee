"""Checks for notebook 04: batch renormalization (Ioffe, 2017).

References: ``torch.nn.functional.batch_norm`` for the case rmax=1, dmax=0
(renorm is then plain batch norm); otherwise the notebook's *given* NumPy
forward pass (not an exercise), passed in by the caller, and centred
numerical gradients of it with r and d held constant, as Algorithm 1's
stop_gradient prescribes.  The schedule is checked against values of the
paper's schedule (5k warm-up, rmax 3 by 40k, dmax 5 by 25k steps).
"""

from __future__ import annotations

# The public checks: each one has wrong implementations in tests/mutants/.
__all__ = ["batch_renorm", "batch_renorm_backward", "renorm_schedule"]

import re

import numpy as np

from .. import gradcheck
from ._core import (
    EPS,
    TODO,
    Result,
    buffers_outside_graph,
    build_module,
    call,
    channels_last,
    compare,
    ema_problem,
    expect_raises,
    from_channels_last,
    ok,
    real,
    registration_problem,
    run_check,
    stages,
    to_numpy,
    unpack,
    wrong,
)
from ._core import torch as torch_

# Library calls that would solve an exercise for the learner: the grader
# flags them in its notes column (tools/grading/flags.py), it does not fail them.
SHORTCUTS = {
    "batch_renorm_backward": (r"\btorch\.\w+", r"\bautograd\b"),
    "BatchRenorm": (r"\bnn\.BatchNorm\w*", r"\bbatch_norm\b"),
}

TOL = 1e-9
NAME = "BatchRenorm"


def problem(seed=0, n=12, d=5):
    """A batch whose statistics differ from the running ones, so r and d matter.

    Some features' r and d fall inside [1/rmax, rmax] and [-dmax, dmax], some
    outside, so the clipping is exercised both ways.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, size=(n, d))
    running_mean = np.array([3.2, 2.0, 3.0, 5.5, 3.1])[:d]
    running_std = np.array([1.9, 1.0, 4.5, 2.1, 2.0])[:d]
    gamma = rng.uniform(0.5, 2.0, d)
    beta = rng.normal(0.0, 1.0, d)
    dout = rng.standard_normal((n, d))
    return x, gamma, beta, running_mean, running_std, dout


RMAX, DMAX = 1.5, 0.5


# dx's two branches, per feature: through the batch mean (a constant) and
# through sigma_B (along x_hat); a difference along them names the branch
BRANCHES = {
    "along 1": "the branch through the batch mean is off (missing, or scaled wrong)",
    "along x_hat": "the branch through sigma_B is off (missing, or scaled wrong)",
    "along 1 and x_hat": "the direct term is right; what differs lies in the "
    "branches through the batch mean and sigma_B (one or both)",
}


def _branches(rows, shape):
    """{"1": ones, "x_hat": the batch's x_hat} in the layout of ``shape``."""
    x_hat = (rows - rows.mean(0)) / np.sqrt(rows.var(0) + EPS)
    return {"1": np.ones(shape), "x_hat": from_channels_last(x_hat, shape)}


def _numeric_grads(numpy_forward, x, gamma, beta, mean, std, dout, fixed=True):
    """Numerical dx, dgamma, dbeta; with ``fixed`` r and d are held constant."""
    _, _, (r, d) = numpy_forward(x, gamma, beta, mean, std, RMAX, DMAX)
    extra = {"r": r, "d": d} if fixed else {}

    def evaluate(variants):
        calls = [
            ((v["x"], v["gamma"], v["beta"], mean, std, RMAX, DMAX), extra)
            for v in variants
        ]
        many = getattr(numpy_forward, "many", None)
        results = many(calls) if many else [numpy_forward(*a, **k) for a, k in calls]
        return [result[0] for result in results]

    found = gradcheck.numerical_gradients(
        evaluate, {"x": x, "gamma": gamma, "beta": beta}, dout
    )
    return found["x"], found["gamma"], found["beta"], (r, d)


# --------------------------------------------------------------------------
# the NumPy backward pass
# --------------------------------------------------------------------------


def batch_renorm_backward(numpy_forward, backward, *, seed=0, quiet=False, strict=None):
    """Check ``backward(dout, cache) -> (dx, dgamma, dbeta)`` with r, d constant."""
    name = "batch_renorm_backward"

    def body():
        x, gamma, beta, mean, std, dout = problem(seed)
        value, problem_ = call(
            name, numpy_forward, x, gamma, beta, mean, std, RMAX, DMAX
        )
        if problem_ is not None:
            return Result(
                name,
                problem_.verdict,
                f"the given forward pass failed: {problem_.detail}",
            )
        _, cache, _ = value
        grads, problem_ = call(
            name, backward, dout, cache, returns=(3, "dx, dgamma, dbeta")
        )
        if problem_ is not None:
            return problem_
        dx_ref, dg_ref, db_ref, (r, _) = _numeric_grads(
            numpy_forward, x, gamma, beta, mean, std, dout
        )
        dx_through, _, _, _ = _numeric_grads(
            numpy_forward, x, gamma, beta, mean, std, dout, fixed=False
        )
        x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + EPS)
        dgamma_x_hat = (dout * x_hat).sum(0)
        not_summed = {
            x.shape: "not summed over the batch: gamma and beta are shared by every "
            "example (sum over axis 0)"
        }
        diagnoses = {
            "dx": {
                "dx lets the gradient flow through r and d: they are constants "
                "(stop_gradient), so dx is batch norm's dx scaled by r": dx_through,
            },
            "dgamma": {
                "dgamma uses x_hat; the output is gamma * (x_hat * r + d) + "
                "beta, so dgamma = sum(dout * (x_hat * r + d))": dgamma_x_hat
            },
            "dbeta": {},
        }
        refs = {"dx": dx_ref, "dgamma": dg_ref, "dbeta": db_ref}
        return [
            compare(
                f"{name} {what}",
                grad,
                refs[what],
                tol=1e-7,
                what=what,
                shape_hints=None if what == "dx" else not_summed,
                diagnoses=diagnoses[what],
                known={"r": r, "gamma": gamma, f"N = {len(x)}": len(x)},
                directions=_branches(x, x.shape) if what == "dx" else None,
                causes={
                    **BRANCHES,
                    "feature factor 1/(r)": "dx misses the factor r: the gradient "
                    "reaching x_hat is dout * gamma * r",
                }
                if what == "dx"
                else {
                    f"factor 1/(N = {len(x)})": "averaged over the batch; the "
                    "gradients of a shared parameter add up (sum)",
                },
                axis=1 if what == "dx" else 0,
            )
            for what, grad in zip(refs, grads, strict=True)
        ]

    return run_check(name, body, quiet=quiet, strict=strict)


# --------------------------------------------------------------------------
# the torch module
# --------------------------------------------------------------------------


def _make(cls, label, *args, **kwargs):
    module, problem_ = build_module(cls, label, *args, **kwargs)
    return (None, problem_) if problem_ is not None else (module.double(), None)


def _ready(cls, label, state, rmax, dmax, *, train=True):
    """A 5-channel module in float64 holding ``state`` (gamma, beta, mean, std)
    and the given rmax, dmax, in training or eval mode; or the check's Result."""
    module, problem_ = _make(cls, label, 5)
    if problem_ is not None:
        return None, problem_
    _set_state(module, *state, rmax, dmax)
    return module.train(train), None


def _case(cls, label, seed, rmax, dmax, *, train=True):
    """``problem(seed)`` and a module holding its state: (module, data, Result)."""
    data = problem(seed)
    module, problem_ = _ready(cls, label, data[1:5], rmax, dmax, train=train)
    return module, data, problem_


def _output_of(cls, label, seed, rmax, dmax, *, train=True):
    """The module's output on ``problem(seed)``, without autograd:
    (module, data, out, Result or None)."""
    torch = torch_()
    module, data, problem_ = _case(cls, label, seed, rmax, dmax, train=train)
    if problem_ is not None:
        return module, data, None, problem_
    with torch.no_grad():
        out, problem_ = call(label, module, torch.from_numpy(data[0]))
    return module, data, out, problem_


def _registration(cls) -> Result:
    """The paper keeps the running standard deviation, not the variance; rmax,
    dmax and momentum are plain attributes the training loop may change."""
    label = f"{NAME} buffers"
    torch = torch_()
    buffers = {"running_mean": torch.zeros(5), "running_std": torch.ones(5)}
    for given in ({}, {"momentum": 0.2, "rmax": 2.0, "dmax": 1.0}):
        module, problem_ = _make(cls, label, 5, **given)
        if problem_ is None:
            attrs = {"rmax": 1.0, "dmax": 0.0, "momentum": 0.01, **given}
            params = {"weight": None, "bias": None}
            problem_ = registration_problem(label, module, buffers, params, attrs)
        if problem_ is not None:
            return problem_
    return ok(
        label,
        "weight, bias; running_mean and running_std buffers; defaults and "
        "keyword arguments kept",
    )


def _set_state(module, gamma, beta, mean, std, rmax, dmax):
    torch = torch_()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(gamma))
        module.bias.copy_(torch.from_numpy(beta))
        module.running_mean.copy_(torch.from_numpy(mean))
        module.running_std.copy_(torch.from_numpy(std))
    module.rmax, module.dmax = rmax, dmax


def _backward(label, out, dout) -> Result | None:
    torch = torch_()
    try:
        out.backward(torch.from_numpy(dout))
    except RuntimeError as exc:
        # torch names the tensor changed in place: "[torch.DoubleTensor [5]]"
        changed = re.search(r"Tensor \[(\d+)\]\]", str(exc))
        if "inplace operation" in str(exc) and changed and int(changed[1]) == 5:
            return wrong(
                label,
                "backward failed: a per-channel tensor the graph needs (shape [5]) "
                "was changed in place after the output used it: the running buffers "
                "are, so r and d hold them in the graph. Compute r and d from "
                "detached statistics (stop_gradient)",
            )
        return wrong(label, f"backward failed (RuntimeError: {exc})"[:300])
    except Exception as exc:
        return wrong(label, f"backward failed ({type(exc).__name__}: {exc})"[:300])
    return None


def _read_back(rows, gamma, beta, mean, std, rmax, dmax, shape):
    """The output read back as gamma * ((x - mu_B) / sigma_B * r + d) + beta,
    i.e. x centred on mu_B - d sigma_B / r and divided by sigma_B / r
    (``_core.stages``): r and d clipped or not, sigma_B biased or not."""
    mu = rows.mean(0)
    means, scales = {}, {}
    for unbiased in (False, True):
        sigma = np.sqrt(rows.var(0, ddof=int(unbiased)) + EPS)
        b = " from the unbiased batch variance (use correction=0)" if unbiased else ""
        for r_clip, d_clip in (
            (True, True),
            (False, True),
            (True, False),
            (False, False),
        ):
            r = np.clip(sigma / std, 1 / rmax, rmax) if r_clip else sigma / std
            d = (mu - mean) / std
            d = np.clip(d, -dmax, dmax) if d_clip else d
            r_name = "r" if r_clip else "r not clipped to [1/rmax, rmax]"
            d_name = "d" if d_clip else "d not clipped to [-dmax, dmax]"
            means[f"mu_B - {d_name} sigma_B / {r_name}{b}"] = mu - d * sigma / r
            scales[f"sigma_B / {r_name}{b}"] = sigma / r
    means["the running mean (eval mode's)"] = mean
    scales["the running std (eval mode's)"] = std
    means["mu_B (d = 0)"], scales["sigma_B (r = 1)"] = mu, np.sqrt(rows.var(0) + EPS)

    def read(out):
        got = to_numpy(out)
        if got is None or got.shape != shape:
            return None
        return stages(
            channels_last(got), rows, gamma, beta, eps=EPS, means=means, scales=scales
        )

    return [read]


def _plain_bn_case(cls, numpy_forward, seed) -> Result:
    """With rmax=1 and dmax=0, batch renorm is batch norm."""
    torch = torch_()
    import torch.nn.functional as F

    label = f"{NAME} rmax=1, dmax=0"
    module, data, problem_ = _case(cls, label, seed, 1.0, 0.0)
    x, gamma, beta, mean, std, dout = data
    if problem_ is not None:
        return problem_
    xa = torch.tensor(x, requires_grad=True)
    out, problem_ = call(label, module, xa, copy_inputs=False)
    if problem_ is not None:
        return problem_
    xb = torch.tensor(x, requires_grad=True)
    want = F.batch_norm(
        xb, None, None, torch.from_numpy(gamma), torch.from_numpy(beta), training=True
    )
    result = compare(
        label,
        out,
        want,
        tol=TOL,
        what="the output",
        readers=_read_back(x, gamma, beta, mean, std, 1.0, 0.0, x.shape),
    )
    if not result.passed:
        return result
    failed = _backward(label, out, dout)
    if failed is not None:
        return failed
    want.backward(torch.from_numpy(dout))
    grad = compare(
        label,
        xa.grad,
        xb.grad,
        tol=TOL,
        what="the input gradient",
        directions=_branches(x, x.shape),
        causes=BRANCHES,
    )
    if not grad.passed:
        return grad
    return ok(label, "output and input gradient equal plain batch norm's")


def _output_result(label, out, numpy_forward, rows, gamma, beta, mean, std, shape):
    """The training-mode output against the NumPy forward pass (named mistakes)."""
    want, _, _ = numpy_forward(rows, gamma, beta, mean, std, RMAX, DMAX)
    return compare(
        f"{label} output",
        out,
        from_channels_last(want, shape),
        tol=TOL,
        what="the output",
        readers=_read_back(rows, gamma, beta, mean, std, RMAX, DMAX, shape),
    )


def _gradient_result(label, xa, numpy_forward, rows, gamma, beta, mean, std, drows):
    """The input gradient: r and d must be constants (detached statistics)."""
    shape = xa.shape
    dx_fixed, _, _, _ = _numeric_grads(
        numpy_forward, rows, gamma, beta, mean, std, drows
    )
    dx_free, _, _, _ = _numeric_grads(
        numpy_forward, rows, gamma, beta, mean, std, drows, fixed=False
    )
    return compare(
        f"{label} gradient",
        xa.grad,
        from_channels_last(dx_fixed, shape),
        tol=1e-7,
        what="the input gradient",
        directions=_branches(rows, tuple(shape)),
        causes=BRANCHES,
        diagnoses={
            "the gradient flows through r and d: compute them from detached "
            "statistics (r.detach(), or under torch.no_grad())": from_channels_last(
                dx_free, shape
            )
        },
    )


def _running_results(label, module, rows, mean, std) -> list[Result]:
    """running_mean and running_std after one training step, read back
    (``_core.ema_problem``) where they differ."""
    momentum = module.momentum
    batch_mean, batch_var = rows.mean(0), rows.var(0)
    batch_std = np.sqrt(batch_var + EPS)
    updates = {"running_mean": (mean, batch_mean), "running_std": (std, batch_std)}
    known = {"1 - momentum": 1 - momentum, "sigma_B": batch_std}
    causes = {
        "momentum 1 - momentum": "momentum weighs the old value; here mu <- mu + "
        "momentum * (mu_B - mu)",
        "feature factor sigma_B": "running_std is updated with the variance: use "
        "the batch's standard deviation sigma_B = sqrt(var_B + eps)",
    }
    statistics = {
        "sqrt(var_B), without eps": np.sqrt(batch_var),
        "var_B + eps, the variance (use sigma_B = sqrt(var_B + eps))": batch_var + EPS,
    }
    results = []
    for key, (old, new) in updates.items():
        want = old + momentum * (new - old)
        result = compare(
            f"{label} {key}", getattr(module, key), want, tol=TOL, what=key
        )
        if not result.passed and to_numpy(getattr(module, key)) is not None:
            got = to_numpy(getattr(module, key))
            if got.shape == want.shape and np.all(np.isfinite(got)):
                result.detail = ema_problem(
                    key, got, old, new, momentum, known, causes, statistics
                )
        results.append(result)
    return results


def _general_case(cls, numpy_forward, seed, image=False) -> list[Result]:
    """One training step in the general case (r, d clipped): output, gradient,
    running statistics."""
    torch = torch_()
    label = f"{NAME} {'NCHW' if image else 'NC'}"
    x, gamma, beta, mean, std, dout = problem(seed, n=12 if not image else 24)
    if image:  # 24 rows = 2 examples x 3 x 4 positions
        x = from_channels_last(x, (2, 5, 3, 4))
        dout = from_channels_last(dout, (2, 5, 3, 4))
    module, problem_ = _ready(cls, label, (gamma, beta, mean, std), RMAX, DMAX)
    if problem_ is not None:
        return [problem_]
    xa = torch.tensor(x, requires_grad=True)
    out, problem_ = call(label, module, xa, copy_inputs=False)
    if problem_ is not None:
        return [problem_]
    rows, drows = channels_last(x), channels_last(dout)
    results = [
        _output_result(label, out, numpy_forward, rows, gamma, beta, mean, std, x.shape)
    ]
    if not results[0].passed:
        return results
    failed = _backward(f"{label} gradient", out, dout)
    if failed is not None:
        return [*results, failed]
    results.append(
        _gradient_result(label, xa, numpy_forward, rows, gamma, beta, mean, std, drows)
    )
    return results + _running_results(label, module, rows, mean, std)


def _eval_case(cls, seed) -> Result:
    label = f"{NAME} eval"
    module, data, out, problem_ = _output_of(cls, label, seed, RMAX, DMAX, train=False)
    x, gamma, beta, mean, std, _ = data
    if problem_ is not None:
        return problem_
    batch = " (eval mode uses the running statistics)"

    def read(got):  # which mean and which scale eval mode used
        return stages(
            to_numpy(got),
            x,
            gamma,
            beta,
            eps=EPS,
            means={"running_mean": mean, f"the batch mean{batch}": x.mean(0)},
            scales={"running_std": std, f"sigma_B{batch}": np.sqrt(x.var(0) + EPS)},
            variances={"running_std ** 2 (it already holds sqrt(var + eps))": std**2},
        )

    result = compare(
        label,
        out,
        gamma * (x - mean) / std + beta,
        tol=TOL,
        what="the eval-mode output",
        readers=[read],
    )
    if result.passed:
        still = module.running_mean.detach().numpy()
        if not np.array_equal(still, mean):
            return wrong(
                label, "eval mode changed running_mean: update only in training"
            )
        result.detail = "uses running_mean and running_std; " + result.detail
    return result


def _attributes_case(cls, seed) -> Result:
    """rmax and dmax are read at every call (the schedule changes them)."""
    torch = torch_()
    label = f"{NAME} rmax, dmax changed"
    # built with the defaults (rmax=1, dmax=0), then changed as the schedule does
    _, (x, gamma, beta, *_), out, problem_ = _output_of(cls, label, seed, RMAX, DMAX)
    if problem_ is not None:
        return problem_
    with torch.no_grad():
        plain = (x - x.mean(0)) / np.sqrt(x.var(0) + EPS) * gamma + beta
    got = out.detach().numpy() if isinstance(out, torch.Tensor) else out
    if got is not None and np.allclose(got, plain, atol=1e-9):
        return wrong(
            label,
            "setting module.rmax and module.dmax after construction changed nothing: "
            "read self.rmax and self.dmax in forward()",
        )
    return ok(label, "module.rmax and module.dmax take effect at the next call")


def _graph_case(cls, seed) -> Result:
    """After training steps with backward, no buffer requires grad (W5 of the
    review: rebinding outside no_grad keeps every step's graph alive and breaks
    copy.deepcopy).  ``requires_grad`` is read, not ``grad_fn``: the grader
    mirrors tensors back as data, without their graph."""
    torch = torch_()
    label = f"{NAME} buffers after 3 steps"
    module, problem_ = _make(cls, label, 5)
    if problem_ is not None:
        return problem_
    module = module.double().train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(3):
        x = 3 * torch.randn(8, 5, generator=gen, dtype=torch.float64) + 1
        out, problem_ = call(label, module, x.requires_grad_(), copy_inputs=False)
        if problem_ is not None:
            return problem_
        outside = buffers_outside_graph(label, module)
        failed = outside if not outside else _backward(label, out, np.ones((8, 5)))
        if failed is not None:
            return failed
    return outside


def batch_renorm(cls, numpy_forward, *, seed=0, quiet=False, strict=None):
    """Check a BatchRenorm module (Ioffe 2017, Algorithm 1) against references."""
    torch = torch_()

    def body():
        first = _registration(cls)
        if first.verdict == TODO:
            return first
        results = [first, _plain_bn_case(cls, numpy_forward, seed)]
        results += _general_case(cls, numpy_forward, seed)
        results += _general_case(cls, numpy_forward, seed + 1, image=True)
        results.append(_eval_case(cls, seed + 2))
        results.append(_attributes_case(cls, seed + 3))
        results.append(_graph_case(cls, seed + 4))
        module, problem_ = _make(cls, f"{NAME} wrong channels", 5)
        if problem_ is None:
            results.append(
                expect_raises(
                    f"{NAME} wrong channels",
                    module.train(),
                    ValueError,
                    "an input with 3 channels for num_features=5 must be refused",
                    torch.zeros(4, 3, dtype=torch.float64),
                )
            )
        return results

    return run_check(NAME, body, quiet=quiet, strict=strict)


# --------------------------------------------------------------------------
# the schedule
# --------------------------------------------------------------------------

# The paper's schedule: plain BN for 5k steps, then rmax rising linearly to 3
# (reached at step 40k, i.e. over 35k steps) and dmax to 5 (at 25k: 20k steps).
PAPER = {"warmup": 5000, "r_steps": 35000, "d_steps": 20000}
PAPER_POINTS = {  # step -> (rmax, dmax), as the paper states them
    0: (1.0, 0.0),
    5000: (1.0, 0.0),
    12500: (1.0 + 2.0 * 7500 / 35000, 5.0 * 7500 / 20000),
    25000: (1.0 + 2.0 * 20000 / 35000, 5.0),
    40000: (3.0, 5.0),
    100000: (3.0, 5.0),
}


def _ramp(at, values, steps):
    """(first value, step it starts moving, step it stops, last value) of a
    curve sampled at ``steps``; ``at(step)`` gives its value at any step, to
    find the exact steps between samples.  None for a constant's steps."""
    moving = np.flatnonzero(np.abs(np.diff(values)) > 1e-12)
    if not moving.size:
        return values[0], None, None, values[-1]

    def first(lo, hi, changed):  # the first step in (lo, hi] where changed
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if changed(at(mid)) else (mid, hi)
        return int(hi)

    i, j = moving[0], moving[-1]
    start = first(steps[i], steps[i + 1], lambda v: not abs(v - values[0]) <= 1e-12)
    stop = first(steps[j], steps[j + 1], lambda v: abs(v - values[-1]) <= 1e-12)
    return values[0], start, stop, values[-1]


def _ramp_problem(what, got, want, steps, lengths) -> str | None:
    """How the learner's ramp of ``what`` differs from the paper's, read off
    the curves (``got``, ``want``: (function of the step, samples)): its start
    value, where it starts and stops moving (the length named among
    ``lengths``), where it ends."""
    (a0, a1, a2, a3), (b0, b1, b2, b3) = _ramp(*got, steps), _ramp(*want, steps)
    paper = "the paper's"
    if a1 is None:
        return f"{what} stays {a0:.4g}; {paper} goes from {b0:.4g} to {b3:.4g}"
    parts = [f"{what} starts at {a0:.4g}, {paper} at {b0:.4g}"] if a0 != b0 else []
    if a1 == a2:  # one step: a jump, not a ramp
        return "; ".join(
            parts
            + [
                f"{what} jumps to {a3:.4g} at step {a2}, {paper} ramps from "
                f"step {b1} to step {b2}"
            ]
        )
    if a1 != b1:
        parts.append(
            f"{what} starts moving at step {a1}, {paper} after the warm-up, at "
            f"step {b1}"
        )
    if a2 == steps[-1]:
        parts.append(
            f"{what} is still moving at step {a2}, the last probed: cap it at "
            "the final value"
        )
    elif a2 - a1 != b2 - b1:
        named = [k for k, v in lengths.items() if v == a2 - a1 + 1]
        parts.append(
            f"{what} ramps over {a2 - a1 + 1} steps"
            + (f" ({named[0]})" if named else "")
            + f", {paper} over {b2 - b1 + 1}"
        )
    if a3 != b3 and a2 != steps[-1]:
        parts.append(f"{what} ends at {a3:.4g}, {paper} at {b3:.4g}")
    return "; ".join(parts) or None


def _schedule_problem(name, fn) -> Result | None:
    """The learner's schedule sampled every 500 steps to 100k, as two curves."""
    steps = np.arange(0, 100001, 500)
    curves = []
    for step in steps:
        value, problem_ = call(name, fn, int(step), **PAPER)
        if problem_ is None:
            raw, (value, problem_) = value, unpack(name, value, 2, "rmax, dmax")
        if problem_ is not None:
            return problem_
        if not isinstance(raw, tuple):  # what `schedule(...) == (1.0, 0.0)` needs
            return wrong(name, f"returned a {type(raw).__name__}: return a tuple")
        try:
            curves.append((real(value[0]), real(value[1])))
        except (TypeError, ValueError):
            return wrong(name, f"returned {value!r}: expected two numbers")
    got = np.array(curves)
    want = np.array([_paper(t) for t in steps])
    if np.allclose(got, want, rtol=0, atol=1e-9):
        return None
    lengths = {f"{k} = {v}": v for k, v in PAPER.items()}

    def curve(i):  # the learner's i-th value at any step (NaN if it fails)
        def at(step):
            value, failed = call(name, fn, int(step), **PAPER)
            try:
                return float(value[i]) if failed is None else float("nan")
            except (TypeError, ValueError, IndexError, KeyError):
                return float("nan")

        return at

    found = [
        _ramp_problem(
            what,
            (curve(i), got[:, i]),
            (lambda step, i=i: _paper(step)[i], want[:, i]),
            steps,
            lengths,
        )
        for i, what in enumerate(("rmax", "dmax"))
    ]
    worst = int(np.argmax(np.abs(got - want).max(1)))
    seen = "; ".join(filter(None, found)) or (
        f"at step {steps[worst]} got (rmax, dmax) = ({got[worst, 0]:.4g}, "
        f"{got[worst, 1]:.4g}), expected ({want[worst, 0]:.4g}, {want[worst, 1]:.4g})"
    )
    return wrong(name, f"with the paper's schedule: {seen}")


def _paper(step, final=(3.0, 5.0)):
    """The paper's (rmax, dmax) at ``step``, between ``PAPER_POINTS`` (a test
    holds them equal there)."""
    t = max(0.0, step - PAPER["warmup"])
    r = 1.0 + (final[0] - 1.0) * min(1.0, t / PAPER["r_steps"])
    return r, final[1] * min(1.0, t / PAPER["d_steps"])


def renorm_schedule(fn, *, quiet=False, strict=None):
    """Check ``fn(step, warmup, r_steps, d_steps, rmax_final, dmax_final)``."""
    name = "renorm_schedule"

    def body():
        problem_ = _schedule_problem(name, fn)
        if problem_ is not None:
            return problem_
        # the final values are parameters, not constants
        value, problem_ = call(name, fn, 10, 0, 10, 20, rmax_final=2.0, dmax_final=1.0)
        if problem_ is not None:
            return problem_
        if not np.allclose([real(v) for v in value], (2.0, 0.5), atol=1e-9):
            return wrong(
                name,
                "rmax_final and dmax_final are ignored: with warmup=0, r_steps=10, "
                f"d_steps=20, rmax_final=2, dmax_final=1 step 10 gives {value}, "
                "expected (2.0, 0.5)",
            )
        return ok(
            name,
            "the paper's schedule every 500 steps to 100k, and custom final values",
        )

    return run_check(name, body, quiet=quiet, strict=strict)
