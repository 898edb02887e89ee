"""Checks for notebook 03: running statistics as PyTorch keeps them, and folding.

The reference is ``torch.nn.BatchNorm1d`` / ``BatchNorm2d`` run side by side
with the learner's module in float64, over a sequence of training batches of
varying size.  Alongside, the check keeps the running statistics that the
usual wrong conventions would give (biased variance, momentum on the old
value, no update, per-position statistics ...) so that a mismatch can be
named.
"""

from __future__ import annotations

# The public checks: each one has wrong implementations in tests/mutants/.
__all__ = ["fold_batchnorm", "scratch_batchnorm"]

import copy

from ._core import (
    EPS,
    INFO,
    OK,
    TODO,
    Result,
    build_module,
    call,
    channels_last,
    compare,
    describe,
    ema_problem,
    expect_raises,
    not_implemented,
    ok,
    registration_problem,
    run_check,
    stages,
    wrong,
    wrong_axes,
)
from ._core import torch as torch_

# Library calls that would solve an exercise for the learner: the grader
# flags them in its notes column (tools/grading/flags.py), it does not fail them.
SHORTCUTS = {
    "ScratchBatchNorm": (r"\bnn\.BatchNorm\w*", r"_BatchNorm\b", r"\bbatch_norm\b"),
    "fold_batchnorm": (r"\bfuse_\w+", r"\btorch\.ao\b", r"\btorch\.fx\b"),
}

TOL = 1e-10
NAME = "ScratchBatchNorm"
BATCH_SIZES = (8, 3, 16, 5, 2)
EXPECTED_KEYS = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}


def _reference(shape_tail, momentum=0.1, affine=True, channels=4, eps=EPS):
    torch = torch_()
    cls = torch.nn.BatchNorm2d if len(shape_tail) == 3 else torch.nn.BatchNorm1d
    return cls(channels, eps=eps, momentum=momentum, affine=affine).double()


def _describe(shape_tail) -> str:
    return {1: "(N, C)", 2: "(N, C, L)", 3: "(N, C, H, W)"}[len(shape_tail)]


def _update_problem(buffer, got, old, x, momentum, step, eps) -> str:
    """Read back how the learner's buffer was updated at one step."""
    torch = torch_()
    dims = [0, *range(2, x.dim())]
    n, examples = x.numel() // x.shape[1], x.shape[0]
    m = 1.0 / step if momentum is None else momentum
    batch = x.mean(dims) if buffer == "running_mean" else x.var(dims, correction=1)
    known = {
        "1 - momentum": 1 - m,
        f"1/(k+1), k = {step}": 1 / (step + 1),
        f"n/(n-1) = {n}/{n - 1}": n / (n - 1),
        "eps": eps,
        "the examples-only Bessel factor (N/(N-1)) / (n/(n-1))": (
            examples * (n - 1) / ((examples - 1) * n) if examples > 1 else 1.0
        ),
    }
    causes = {
        "momentum 1 - momentum": "momentum is applied to the old value (Keras/"
        "CS231n style); in PyTorch it weighs the new batch: running = (1 - "
        "momentum) * running + momentum * batch",
        f"momentum 1/(k+1), k = {step}": "with momentum=None PyTorch averages "
        "cumulatively, 1/k at the k-th batch (count the batch first)",
        f"factor 1/(n/(n-1) = {n}/{n - 1})": "the biased batch variance; PyTorch "
        "stores the unbiased one (times n / (n - 1), n = values per channel)",
        f"factor n/(n-1) = {n}/{n - 1}": "Bessel's correction applied twice "
        "(torch's x.var() is already unbiased)",
        "offset eps": "eps is stored in running_var; it belongs in the "
        "normalisation only",
        "factor the examples-only Bessel factor (N/(N-1)) / (n/(n-1))": "the "
        "unbiased factor uses N, but n counts every value of a channel: N*L "
        "for (N, C, L), N*H*W for (N, C, H, W)",
    }
    return ema_problem(buffer, got, old, torch.as_tensor(batch), m, known, causes)


def _close(a, b, tol=TOL, scale=0.0) -> bool:
    """``a`` equals ``b`` to ``tol`` times the larger of max |b| and ``scale``."""
    torch = torch_()
    if not isinstance(a, torch.Tensor) or tuple(a.shape) != tuple(b.shape):
        return False
    a = a.detach().double().cpu()
    b = b.detach().double().cpu()
    scale = max(float(b.abs().max()) if b.numel() else 1.0, scale, 1e-300)
    return a.shape == b.shape and bool(torch.all((a - b).abs() <= tol * scale))


_make = build_module


def _stepped(cls, label, x, *, double=False):
    """A 4-channel module after one training-mode call on ``x``:
    (module, out, None), or (None, None, the check's Result)."""
    module, problem = _make(cls, label, 4)
    if problem is not None:
        return None, None, problem
    module = (module.double() if double else module).train()
    out, problem = call(label, module, x)
    return (None, None, problem) if problem is not None else (module, out, None)


def _registration(cls) -> Result:
    label = f"{NAME} buffers"
    torch = torch_()
    module, problem = _make(cls, label, 4)
    if problem is not None:
        return problem
    ones, zeros = torch.ones(4), torch.zeros(4)
    problem = registration_problem(
        label,
        module,
        {"running_mean": zeros, "running_var": ones, "num_batches_tracked": zeros[0]},
        {"weight": ones, "bias": zeros},
    )
    if problem is not None:
        return problem
    keys = set(module.state_dict())
    if keys != EXPECTED_KEYS:
        return wrong(
            label,
            f"state_dict keys {sorted(keys)} differ from PyTorch's "
            f"{sorted(EXPECTED_KEYS)}",
        )
    if module.num_batches_tracked.dtype != torch.long:
        return wrong(label, "num_batches_tracked should be a long (int64) tensor")
    try:  # interoperability: torch's state_dict loads into the module
        module.load_state_dict(torch.nn.BatchNorm1d(4).state_dict())
    except Exception as exc:
        return wrong(label, f"cannot load torch.nn.BatchNorm1d's state_dict: {exc}")
    module, problem = _make(cls, label, 4, affine=False)
    if problem is not None:
        return problem
    if list(module.parameters()) or getattr(module, "weight", None) is not None:
        return wrong(
            label,
            "with affine=False the module has parameters: torch's has none "
            "(self.register_parameter('weight', None), likewise bias)",
        )
    return ok(label, "parameters and buffers registered like torch.nn.BatchNorm1d's")


def _copy_affine(module, ref) -> Result | None:
    torch = torch_()
    try:
        with torch.no_grad():
            module.weight.copy_(ref.weight)
            module.bias.copy_(ref.bias)
    except Exception as exc:
        return wrong(NAME, f"cannot set weight and bias ({type(exc).__name__}: {exc})")
    return None


def _pair(cls, label, shape_tail, momentum, affine, gen, eps=EPS):
    """The learner's module and PyTorch's, with the same (random) gamma and beta."""
    torch = torch_()
    given = {"momentum": momentum, "affine": affine} | (
        {} if eps == EPS else {"eps": eps}
    )
    module, problem = _make(cls, label, 4, **given)
    if problem is not None:
        return None, None, problem
    module = module.double()
    ref = _reference(shape_tail, momentum, affine, eps=eps)
    if affine:
        with torch.no_grad():
            ref.weight.copy_(torch.rand(4, generator=gen, dtype=torch.float64) + 0.5)
            ref.bias.copy_(torch.randn(4, generator=gen, dtype=torch.float64))
        problem = _copy_affine(module, ref)
    return module, ref, problem


def _output_problem(label, at, out, expected, x, ref, affine, buffers):
    """The output of one training step, read back stage by stage: over which
    dims, with which mean and variance (the batch's, or the module's running
    buffers before or after the step, ``buffers``)."""
    torch = torch_()
    if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out)
        return wrong(label, f"{at}: output {got}, expected {tuple(expected.shape)}")
    if _close(out, expected):
        return None
    c, rows = x.shape[1], channels_last
    weight = ref.weight.detach() if affine else torch.ones(c, dtype=x.dtype)
    bias = ref.bias.detach() if affine else torch.zeros(c, dtype=x.dtype)
    var, n = rows(x).var(0, correction=0), len(rows(x))
    running = " (training mode uses the batch's own statistics)"
    scales = None
    if ref.eps != EPS:  # the right scale first, then the default eps's
        scales = {
            "sqrt(var + eps)": torch.sqrt(var + ref.eps),
            f"sqrt(var + 1e-5): the module's eps ({ref.eps:g}) is not used": (
                torch.sqrt(var + EPS)
            ),
        }
    seen = (
        wrong_axes(
            out.detach(), x, weight, bias, eps=ref.eps, axes=[0, *range(2, x.dim())]
        )
        or stages(
            rows(out),
            rows(x),
            weight,
            bias,
            eps=ref.eps,
            scales=scales,
            means={"the batch mean": rows(x).mean(0)}
            | {
                f"the running mean {when} the step{running}": b[0]
                for when, b in buffers.items()
                if b
            },
            variances={
                "the batch's biased variance": var,
                "the unbiased variance (n - 1): normalise with the biased one "
                "(running_var keeps the unbiased one)": var * n / (n - 1),
            }
            | {
                f"running_var {when} the step": b[1] for when, b in buffers.items() if b
            },
        )
        or describe(out.detach(), expected.detach(), tol=1e-8, axis=1)
    )
    return wrong(
        label,
        f"{at}: the output differs from PyTorch's" + (f": {seen}" if seen else ""),
    )


def _running(module):
    """(running_mean, running_var) of a module as it reports them, or None."""
    pair = tuple(getattr(module, k, None) for k in ("running_mean", "running_var"))
    if not all(hasattr(t, "detach") for t in pair):
        return None
    return tuple(t.detach().clone() for t in pair)


def _detached_grad(x, weight, dout, eps):
    """The input gradient with the batch statistics detached (outside the
    graph): the one hypothesis a wrong input gradient is tested against."""
    torch = torch_()
    x = x.detach().clone().requires_grad_()
    dims, view = [0, *range(2, x.dim())], [1, -1] + [1] * (x.dim() - 2)
    with torch.no_grad():
        mu, var = x.mean(dims, keepdim=True), x.var(dims, keepdim=True, correction=0)
    y = (x - mu) / torch.sqrt(var + eps) * weight.detach().reshape(view)
    return torch.autograd.grad(y, x, dout)[0]


def _gradient_problem(label, at, module, ref, out, expected, xa, xb, dout, affine):
    try:
        out.backward(dout)
    except Exception as exc:
        return wrong(label, f"{at}: backward failed ({type(exc).__name__}: {exc})")
    expected.backward(dout)
    c = xb.shape[1]
    weight = ref.weight if affine else torch_().ones(c, dtype=xb.dtype)
    # the scale of dx's terms before they cancel: |dout| |gamma| / sigma
    sigma = channels_last(xb).var(0, correction=0).add(ref.eps).sqrt().min()
    scale = float(dout.abs().max() * weight.detach().abs().max() / sigma)
    grads = [("input gradient", xa.grad, xb.grad)]
    if affine:
        grads += [
            ("weight gradient", module.weight.grad, ref.weight.grad),
            ("bias gradient", module.bias.grad, ref.bias.grad),
        ]
    for what, got, want in grads:
        if got is None:
            return wrong(label, f"{at}: no {what}: the output is not connected to it")
        if _close(got, want, 1e-9, scale if what == "input gradient" else 0.0):
            continue
        seen = describe(got.detach(), want.detach(), tol=1e-8, axis=1)
        if what == "input gradient" and _close(
            got, _detached_grad(xb, weight, dout, ref.eps)
        ):
            seen = (
                "it is the gradient with the batch statistics detached (computed "
                "under no_grad or .detach()): only the running buffers go outside "
                "the graph"
            )
        return wrong(
            label,
            f"{at}: the {what} differs from PyTorch's" + (f": {seen}" if seen else ""),
        )
    return None


def _buffer_problem(label, at, module, ref, old, x, step):
    for buffer in ("running_mean", "running_var"):
        got = getattr(module, buffer)
        if getattr(got, "requires_grad", False):
            return wrong(
                label,
                f"{at}: {buffer} carries autograd history (it was updated outside "
                "torch.no_grad()): every step then keeps the whole graph alive, and "
                "copy.deepcopy(module) fails. Update the buffers in place under "
                "torch.no_grad()",
            )
        if not _close(got, getattr(ref, buffer)):
            if not hasattr(got, "shape") or tuple(got.shape) != tuple(old[0].shape):
                return wrong(label, f"{at}: {buffer} is not a tensor of shape (C,)")
            reason = _update_problem(
                buffer,
                got,
                old[buffer == "running_var"],
                x,
                ref.momentum,
                step,
                ref.eps,
            )
            return wrong(label, f"{at}: {reason}")
    if int(module.num_batches_tracked) != int(ref.num_batches_tracked):
        return wrong(
            label,
            f"{at}: num_batches_tracked is {int(module.num_batches_tracked)}, "
            f"expected {int(ref.num_batches_tracked)} (add 1 per training batch)",
        )
    return None


def _training_problem(label, where, module, ref, shape_tail, affine, gen):
    """Train both on batches of varying size; the first difference, or None."""
    torch = torch_()
    module.train()
    ref.train()
    for step, n in enumerate(BATCH_SIZES, start=1):
        x = 5 * torch.randn(n, 4, *shape_tail[1:], generator=gen, dtype=torch.float64)
        x = x + 12
        dout = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        before, old = _running(module), _running(ref)
        out, problem = call(label, module, xa, copy_inputs=False)
        if problem is not None:
            return problem
        expected = ref(xb)
        at = f"step {step} (batch of {n})"
        # the running buffers are candidates of the statistics used only where
        # they are PyTorch's (else they may hold the learner's own slip)
        pairs = {"before": (before, old), "after": (_running(module), _running(ref))}
        verified = {
            when: mine
            for when, (mine, right) in pairs.items()
            if mine and all(_close(a, b) for a, b in zip(mine, right, strict=True))
        }
        # each returns a failed Result (falsy!) or None: test with `is not None`
        for problem in (
            _output_problem(
                label,
                at,
                out,
                expected,
                x,
                ref,
                affine,
                verified,
            ),
            _gradient_problem(
                label, at, module, ref, out, expected, xa, xb, dout, affine
            ),
            _buffer_problem(label, at, module, ref, old, x, step),
        ):
            if problem is not None:
                return problem
    return None


def _eval_problem(label, module, ref, shape_tail, affine, gen):
    """Eval mode: running statistics, and no update of any buffer."""
    torch = torch_()
    module.eval()
    ref.eval()
    x = 3 * torch.randn(6, 4, *shape_tail[1:], generator=gen, dtype=torch.float64) - 2
    before = copy.deepcopy(module.state_dict())
    out, problem = call(label, module, x)
    if problem is not None:
        return problem
    after = module.state_dict()
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        if key in before and not torch.equal(before[key], after.get(key)):
            return wrong(
                label,
                f"eval mode changed {key}: update the running statistics only when "
                "self.training is True",
            )
    if _close(out, ref(x)):
        return None
    seen = None
    if isinstance(out, torch.Tensor) and out.shape == x.shape:
        c, rows = x.shape[1], channels_last(x)
        seen = stages(
            channels_last(out),
            rows,
            ref.weight.detach() if affine else torch.ones(c, dtype=x.dtype),
            ref.bias.detach() if affine else torch.zeros(c, dtype=x.dtype),
            eps=ref.eps,
            means={
                "running_mean": ref.running_mean,
                "the batch mean (eval mode uses the running statistics)": rows.mean(0),
            },
            variances={"running_var": ref.running_var, "the batch's": rows.var(0)},
        )
    return wrong(
        label, "eval-mode output differs from PyTorch's" + (f": {seen}" if seen else "")
    )


def _sequence(cls, shape_tail, momentum, affine, seed, eps=EPS) -> Result:
    """Train both modules on batches of varying size, then eval; compare all."""
    torch = torch_()
    where = _describe(shape_tail)
    label = f"{NAME} {where}"
    if momentum is None:
        label = f"{NAME} momentum=None"
    elif not affine:
        label = f"{NAME} affine=False"
    elif eps != EPS:
        label = f"{NAME} eps={eps:g}"
    gen = torch.Generator().manual_seed(seed)
    module, ref, problem = _pair(cls, label, shape_tail, momentum, affine, gen, eps)
    if problem is not None:
        return problem
    problem = _training_problem(label, where, module, ref, shape_tail, affine, gen)
    if problem is None:  # a failed Result is falsy: never chain with `or`
        problem = _eval_problem(label, module, ref, shape_tail, affine, gen)
    if problem is not None and momentum is None and "ZeroDivision" in problem.detail:
        problem.detail += (
            "; with momentum=None the average is cumulative, 1/k at the k-th batch: "
            "num_batches_tracked is 0 before the first one, so count it first"
        )
    if problem is not None:
        return problem
    return ok(
        label,
        f"{len(BATCH_SIZES)} training steps (batches of "
        f"{', '.join(map(str, BATCH_SIZES))}) and eval: outputs, gradients and "
        "buffers match PyTorch",
    )


def _bad_inputs(cls) -> list[Result]:
    torch = torch_()
    module, problem = _make(cls, f"{NAME} bad input", 4)
    if problem is not None:
        return [problem]
    module = module.double().train()
    results = [
        expect_raises(
            f"{NAME} wrong channels",
            module,
            ValueError,
            "an input with 3 channels for num_features=4 must be refused clearly",
            torch.zeros(8, 3, dtype=torch.float64),
        ),
        expect_raises(
            f"{NAME} 5-D input",
            module,
            ValueError,
            "only (N, C), (N, C, L) and (N, C, H, W) are supported",
            torch.zeros(2, 4, 2, 2, 2, dtype=torch.float64),
        ),
        expect_raises(
            f"{NAME} one value/channel",
            module,
            ValueError,
            "in training mode one value per channel has no variance",
            torch.zeros(1, 4, dtype=torch.float64),
        ),
    ]
    fresh, problem = _make(cls, f"{NAME} one example, L=3", 4)
    if problem is None:
        fresh = fresh.double().train()
        x = torch.randn(1, 4, 3, dtype=torch.float64)
        _, problem = call(f"{NAME} one example, L=3", fresh, x)
    results.append(
        problem
        if problem is not None
        else ok(
            f"{NAME} one example, L=3",
            "works: one example with 3 positions has 3 values per channel",
        )
    )
    return results


def _untracked(cls, seed) -> Result:
    """track_running_stats=False: batch statistics in both modes, no buffers."""
    torch = torch_()
    label = f"{NAME} track_running_stats=False"
    try:
        module = cls(4, track_running_stats=False).double()
    except TypeError as exc:
        return wrong(
            label,
            f"ScratchBatchNorm(4, track_running_stats=False) failed ({exc}): accept "
            "the argument (default True), as torch.nn.BatchNorm1d does",
        )
    except NotImplementedError:
        return not_implemented(label)
    ref = torch.nn.BatchNorm1d(4, track_running_stats=False).double()
    for buffer in ("running_mean", "running_var", "num_batches_tracked"):
        if getattr(module, buffer, None) is not None:
            return wrong(
                label,
                f"{buffer} should be None without tracking "
                f"(self.register_buffer('{buffer}', None)), as in torch",
            )
    gen = torch.Generator().manual_seed(seed)
    for mode in ("train", "eval"):
        getattr(module, mode)()
        getattr(ref, mode)()
        x = 3 * torch.randn(6, 4, generator=gen, dtype=torch.float64) + 1
        out, problem = call(label, module, x)
        if problem is not None:
            return problem
        if not _close(out, ref(x)):
            return wrong(
                label,
                f"{mode} mode differs from torch's: without tracked statistics both "
                "modes normalise with the batch's own (biased) statistics",
            )
    return ok(label, "batch statistics in both modes, no buffers, as torch")


def _low_precision(cls, seed) -> Result:
    """bfloat16 input (mixed precision): output in bfloat16, buffers in float32."""
    torch = torch_()
    label = f"{NAME} bfloat16 input"
    gen = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(16, 4, generator=gen) + 2).bfloat16()
    module, out, problem = _stepped(cls, label, x)
    if problem is not None:
        return problem
    want = torch.nn.BatchNorm1d(4).train()(x)
    if not isinstance(out, torch.Tensor) or out.shape != want.shape:
        return wrong(
            label,
            f"bfloat16 input gave {type(out).__name__} "
            f"{tuple(getattr(out, 'shape', ()))}, expected {tuple(want.shape)}",
        )
    if out.dtype != want.dtype:
        return wrong(
            label,
            f"bfloat16 input gave {str(out.dtype).replace('torch.', '')} output: torch "
            "returns the input's dtype (compute as you like, then out.to(x.dtype)), "
            "so that the next layer of a mixed-precision net gets what it expects",
        )
    if module.running_var.dtype != torch.float32:
        return wrong(label, "the buffers changed dtype: keep them float32")
    if not torch.allclose(out.float(), want.float(), atol=5e-2, rtol=5e-2):
        return wrong(
            label, "bfloat16 output differs from torch's beyond bfloat16 noise"
        )
    return ok(label, "returns bfloat16 for bfloat16 input; buffers stay float32")


def _resets(cls, seed) -> Result:
    """reset_running_stats() and reset_parameters(), as torch's _NormBase has."""
    torch = torch_()
    label = f"{NAME} reset_*()"
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 4, generator=gen).double() + 3
    module, _, problem = _stepped(cls, label, x, double=True)
    if problem is not None:
        return problem
    for method in ("reset_running_stats", "reset_parameters"):
        if not callable(getattr(module, method, None)):
            return wrong(label, f"no {method}() method (torch's batch norm has one)")
    with torch.no_grad():
        module.weight.fill_(2.0)
        module.bias.fill_(1.0)
    try:
        module.reset_running_stats()
        after_stats = {
            k: getattr(module, k).detach().clone()
            for k in ("running_mean", "running_var", "num_batches_tracked", "weight")
        }
        module(x)  # statistics again, for reset_parameters() to reset
        module.reset_parameters()
    except NotImplementedError:
        return not_implemented(label)
    except Exception as exc:
        return wrong(label, f"a reset raised {type(exc).__name__}: {exc}")
    if not (
        torch.equal(after_stats["running_mean"], torch.zeros(4).double())
        and torch.equal(after_stats["running_var"], torch.ones(4).double())
        and int(after_stats["num_batches_tracked"]) == 0
    ):
        return wrong(
            label,
            "reset_running_stats() must set running_mean to 0, running_var to 1 "
            "and num_batches_tracked to 0 (in place: zero_(), fill_(1))",
        )
    if not torch.equal(after_stats["weight"], torch.full((4,), 2.0).double()):
        return wrong(label, "reset_running_stats() must not touch weight and bias")
    if not (
        torch.equal(module.weight.detach(), torch.ones(4).double())
        and torch.equal(module.bias.detach(), torch.zeros(4).double())
        and int(module.num_batches_tracked) == 0
        and torch.equal(module.running_mean.detach(), torch.zeros(4).double())
    ):
        return wrong(
            label,
            "reset_parameters() must reset the statistics and set weight to 1, "
            "bias to 0",
        )
    return ok(label, "reset_running_stats() and reset_parameters() as torch's")


def scratch_batchnorm(cls, *, seed=0, quiet=False, strict=None):
    """Check a from-scratch batch-norm module against torch.nn.BatchNorm1d/2d."""

    def body():
        first = _registration(cls)
        if first.verdict == TODO:
            return first
        results = [first]
        for shape_tail in ((4,), (4, 5), (4, 3, 3)):
            results.append(_sequence(cls, shape_tail, 0.1, True, seed))
        results.append(_sequence(cls, (4, 3), None, True, seed + 1))
        results.append(_sequence(cls, (4,), 0.3, False, seed + 2))
        results.append(_sequence(cls, (4,), 0.1, True, seed + 6, eps=1e-3))
        results.append(_untracked(cls, seed + 3))
        results.append(_resets(cls, seed + 4))
        results.append(_low_precision(cls, seed + 5))
        results += _bad_inputs(cls)
        return _contrasts(results, SCRATCH_CONTRASTS)

    return run_check(NAME, body, quiet=quiet, strict=strict)


# the sequences of scratch_batchnorm's results: (N, C) first, then one change
SCRATCH_CONTRASTS = (
    (1, 2, "the input is 3-D, (N, C, L): a channel's values span N and L"),
    (1, 3, "the input is 4-D, (N, C, H, W): a channel's values span N, H and W"),
    (2, 4, "momentum=None: a cumulative average, 1/k at the k-th batch"),
    (1, 5, "affine=False: weight and bias are None"),
    (1, 6, "eps=1e-3 is passed to the constructor"),
)


# --------------------------------------------------------------------------
# folding batch norm into the previous layer
# --------------------------------------------------------------------------


def _trained_pair(kind, bias, seed, affine=True, dtype="float64", eps=EPS):
    """A layer and a trained eval-mode batch norm; ``kind`` "linear", "conv" or
    "grouped" (dilated, grouped, reflect-padded: every conv setting differs)."""
    torch = torch_()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if kind == "linear":
        layer, bn, shape = (
            torch.nn.Linear(6, 5, bias=bias),
            torch.nn.BatchNorm1d,
            (16, 6),
        )
    elif kind == "conv":
        layer = torch.nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=bias)
        bn, shape = torch.nn.BatchNorm2d, (4, 3, 7, 7)
    else:
        layer = torch.nn.Conv2d(
            4, 6, 3, padding=2, dilation=2, groups=2, bias=bias, padding_mode="reflect"
        )
        bn, shape = torch.nn.BatchNorm2d, (4, 4, 8, 8)
    layer = layer.double()
    bn = bn(layer.weight.shape[0], eps=eps, affine=affine).double()
    with torch.no_grad():
        for _ in range(4):  # give the running statistics non-trivial values
            bn(layer(3 * torch.randn(*shape, generator=gen, dtype=torch.float64) + 1))
        if affine:
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen).double() + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=gen).double())
    bn.eval()
    layer.eval()
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    kind_of = getattr(torch, dtype)
    return layer.to(kind_of), bn.to(kind_of), x


def _fold_reader(layer, bn, x):
    """The folded layer's output read back as bn's normalisation of the layer's
    own output z (``_core.stages``): which mean, which scale; the layer's bias
    and beta as candidates of the mean."""
    torch = torch_()
    with torch.no_grad():
        z = channels_last(layer(x))
    c = z.shape[1]
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones(c).double()
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros(c).double()
    mean, var = bn.running_mean, bn.running_var
    s = torch.sqrt(var + bn.eps)
    own = layer.bias.detach() if layer.bias is not None else torch.zeros(c).double()
    means = {
        "running_mean": mean,
        "0: the running mean is not subtracted, b' = (b - running_mean) * scale "
        "+ beta": torch.zeros(c),
        "running_mean + beta s / gamma: beta is missing from the new bias": mean
        + beta * s / gamma,
        "running_mean + own bias (1 - 1/scale): the layer's own bias is not scaled, "
        "b' = (b - running_mean) * scale + beta": mean + own * (1 - s / gamma),
    }

    scales = {"sqrt(running_var + eps)": s}
    if bn.eps != EPS:
        scales[f"sqrt(running_var + 1e-5): use bn.eps ({bn.eps:g})"] = (
            var + EPS
        ).sqrt()

    def read(out):
        return stages(
            channels_last(torch.as_tensor(out)),
            z,
            gamma,
            beta,
            eps=bn.eps,
            means=means,
            variances={"running_var": var},
            scales=scales,
        )

    return [read]


def _settings_problem(label, kind, folded, layer) -> Result | None:
    """Every conv setting copied; the layer's dtype and device kept."""
    if kind != "linear":
        for attr in (
            "stride",
            "padding",
            "kernel_size",
            "dilation",
            "groups",
            "padding_mode",
        ):
            if getattr(folded, attr, None) != getattr(layer, attr):
                return wrong(
                    label,
                    f"the folded conv's {attr} is {getattr(folded, attr, None)}, the "
                    f"original's {getattr(layer, attr)}: copy every setting "
                    "(stride, padding, dilation, groups, padding_mode)",
                )
    weight = getattr(folded, "weight", None)
    if (
        getattr(weight, "dtype", None) != layer.weight.dtype
        or weight.device != layer.weight.device
    ):
        return wrong(
            label,
            f"the folded layer's weight is {getattr(weight, 'dtype', None)}, the "
            f"layer's {layer.weight.dtype}: give the new layer the layer's dtype "
            "and device (.to(layer.weight))",
        )
    return None


def _fold_one(fn, kind, bias, seed, affine=True, dtype="float64", eps=EPS) -> Result:
    torch = torch_()
    extra = "" if bias else " (no bias)"  # labels fit NAME_WIDTH
    extra = extra if affine else " affine=False"
    extra = extra if eps == EPS else f" eps={eps:g}"
    label = f"fold_batchnorm {kind}" + (extra if dtype == "float64" else f" {dtype}")
    layer, bn, x = _trained_pair(kind, bias, seed, affine, dtype, eps)
    with torch.no_grad():
        want = bn.double()(layer.double()(x))
        readers = _fold_reader(layer, bn, x)
        layer, bn = layer.to(getattr(torch, dtype)), bn.to(getattr(torch, dtype))
    before = {
        "layer": copy.deepcopy(layer.state_dict()),
        "bn": copy.deepcopy(bn.state_dict()),
    }
    # the learner's function gets the real layers, so that an in-place change
    # is seen (the expected output was computed above, before the call)
    folded, problem = call(label, fn, layer, bn, copy_inputs=False)
    if problem is not None:
        return problem
    want_type = torch.nn.Linear if kind == "linear" else torch.nn.Conv2d
    if not isinstance(folded, want_type):
        return wrong(
            label,
            f"returned a {type(folded).__name__}; return one {want_type.__name__} "
            "(that is the point: one layer instead of two)",
        )
    for key, module in (("layer", layer), ("bn", bn)):
        after = module.state_dict()
        if set(after) != set(before[key]) or any(
            not torch.equal(before[key][k], after[k]) for k in after
        ):
            return wrong(
                label, f"changed the original {key} in place: build a new layer"
            )
    problem = _settings_problem(label, kind, folded, layer)
    if problem is not None:
        return problem
    if folded.bias is None:
        return wrong(
            label,
            "the folded layer has no bias: it needs one even when the original had "
            "none (create it with bias=True)",
        )
    with torch.no_grad():
        try:
            got = copy.deepcopy(folded).double()(x)
        except Exception as exc:
            return wrong(label, f"the folded layer fails on input ({exc})")
        result = compare(
            label,
            got,
            want,
            tol=TOL if dtype == "float64" else 1e-2 if dtype == "float16" else 1e-5,
            readers=readers,
            what="the folded layer's output",
        )
    if result.passed:
        result.detail = "equals layer -> bn in eval mode; " + result.detail
    return result


def _fold_refusals(fn, seed) -> list[Result]:
    """Folding needs fixed statistics: training mode and untracked BN are refused."""
    torch = torch_()
    layer, bn, _ = _trained_pair("linear", True, seed)
    untracked = torch.nn.BatchNorm1d(bn.num_features, track_running_stats=False)
    return [
        expect_raises(
            "fold_batchnorm training BN",
            fn,
            ValueError,
            "a batch norm in training mode has no fixed statistics to fold (torch: "
            "'Fusion only for eval!'); check bn.training",
            layer,
            copy.deepcopy(bn).train(),
        ),
        expect_raises(
            "fold_batchnorm untracked BN",
            fn,
            ValueError,
            "a batch norm with track_running_stats=False always uses batch "
            "statistics (running_var is None): say so instead of a TypeError",
            layer,
            untracked.double().eval(),
        ),
    ]


# (passing case, failing case, the one setting between them): a failure seen
# only where that setting differs locates the mistake (a differential diagnosis)
FOLD_CONTRASTS = (
    (0, 1, "the layer has no bias (fold into a new bias)"),
    (3, 2, "the conv has no bias (fold into a new bias)"),
    (3, 4, "the conv has dilation=2, groups=2 and padding_mode='reflect'"),
    (0, 5, "affine=False: bn.weight and bn.bias are None (gamma = 1 and beta = 0)"),
    (3, 6, "affine=False: bn.weight and bn.bias are None (gamma = 1 and beta = 0)"),
    (0, 7, "the layers are float32"),
    (2, 8, "the layers are float16"),
    (3, 9, "bn.eps is 1e-3, not the default 1e-5"),
)


def _contrasts(results, contrasts) -> list[Result]:
    """Say, on a failed case whose twin differing in one setting passes, that
    the failure comes only with that setting."""
    for good, bad, setting in contrasts:
        if results[good].passed and results[bad].verdict not in (OK, INFO, TODO):
            results[bad].detail += f" (it fails only where {setting})"
    return results


def fold_batchnorm(fn, *, seed=0, quiet=False, strict=None):
    """Check ``fn(layer, bn)`` returns one layer equal to layer -> bn (eval)."""

    def body():
        first = _fold_one(fn, "linear", True, seed)
        if first.verdict == TODO:  # one "not yet" line is enough
            return first
        results = [
            first,
            _fold_one(fn, "linear", False, seed + 1),
            _fold_one(fn, "conv", False, seed + 2),
            _fold_one(fn, "conv", True, seed + 3),
            _fold_one(fn, "grouped", True, seed + 5),
            _fold_one(fn, "linear", True, seed + 6, affine=False),
            _fold_one(fn, "conv", True, seed + 7, affine=False),
            _fold_one(fn, "linear", True, seed + 8, dtype="float32"),
            _fold_one(fn, "conv", False, seed + 9, dtype="float16"),
            _fold_one(fn, "conv", True, seed + 10, eps=1e-3),
            *_fold_refusals(fn, seed + 4),
        ]
        return _contrasts(results, FOLD_CONTRASTS)

    return run_check("fold_batchnorm", body, quiet=quiet, strict=strict)
