"""Checks for notebook 07 (why batch norm works: the evidence, measured)."""

from __future__ import annotations

# The public checks: each one has wrong implementations in tests/mutants/.
__all__ = ["noisy_batchnorm", "gradient_change", "landscape_probe"]

import copy

from ._core import (
    Result,
    buffers_outside_graph,
    build_module,
    call,
    compare,
    ema_problem,
    ok,
    run_check,
    to_numpy,
    uniform_problem,
    unpack,
    wrong,
)
from ._core import torch as torch_

NAME = "NoisyBatchNorm"

# Library calls that would solve an exercise for the learner: none here (the
# exercises are measurements), so nothing is flagged.
SHORTCUTS: dict = {}


def _batch(seed, n=16, c=5):
    torch = torch_()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=gen, dtype=torch.float64) * 3 + 2
    return x, torch.randn(n, c, generator=gen, dtype=torch.float64)


# --------------------------------------------------------------------------
# NoisyBatchNorm
# --------------------------------------------------------------------------


def _noise(module, label):
    """(shift, scale) from ``module.last_noise``, or a Result saying what is wrong."""
    torch = torch_()
    noise = getattr(module, "last_noise", None)
    if not (isinstance(noise, tuple) and len(noise) == 2):
        return None, wrong(
            label,
            "after a training-mode call, module.last_noise must be the pair "
            "(shift, scale) of the noise it just used",
        )
    shift, scale = (torch.as_tensor(t) for t in noise)
    if shift.shape != (module.num_features,) or scale.shape != (module.num_features,):
        return None, wrong(
            label,
            f"the noise has shapes {tuple(shift.shape)}, {tuple(scale.shape)}: draw "
            f"one shift and one scale per channel, shape ({module.num_features},)",
        )
    if shift.requires_grad or scale.requires_grad:
        return None, wrong(
            label, "the noise requires grad: it is a constant, draw it without autograd"
        )
    return (shift.double(), scale.double()), None


def _train_step(cls, seed) -> list[Result]:
    """Training mode: the output, the input gradient and the buffers of torch's
    batch norm, with the module's own noise applied after it."""
    torch = torch_()
    label = f"{NAME} train"
    module, problem = build_module(cls, label, 5, shift=1.5, spread=3.0)
    if problem is not None:
        return [problem]
    module = module.double().train()
    ref = torch.nn.BatchNorm1d(5).double().train()
    x, dy = _batch(seed)
    xa, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, problem = call(label, module, xa, copy_inputs=False)
    if problem is not None:
        return [problem]
    noise, problem = _noise(module, label)
    if problem is not None:
        return [problem]
    shift, scale = noise
    want = ref(xr) * scale + shift
    # what batch norm alone gives (gamma = 1, beta = 0 at the start): no noise
    normalised = torch.nn.functional.batch_norm(x, None, None, training=True)
    result = compare(
        label,
        out,
        want.detach(),
        tol=1e-10,
        what="the output",
        diagnoses={
            "no noise was applied: multiply the normalised output by the scale and add "
            "the shift (per channel)": normalised,
            "the noise was added before the normalisation, which removes it: add it "
            "after batch norm": torch.nn.functional.batch_norm(
                x * scale + shift, None, None, training=True
            ),
        },
    )
    if not result.passed:
        return [result]
    out.backward(dy)
    want.backward(dy)
    plain = xr.detach().clone().requires_grad_()  # batch norm's dx, no scale
    torch.nn.functional.batch_norm(plain, None, None, training=True).backward(dy)
    noisy = x * scale + shift
    return [
        result,
        compare(
            f"{label} dx",
            xa.grad,
            xr.grad,
            tol=1e-10,
            what="the input gradient",
            diagnoses={
                "batch norm's dx without the noise's scale: the output is "
                "scale * BN(x) + shift, so dx is scaled too": plain.grad
            },
        ),
        _running_var(label, module, x, noisy),
        buffers_outside_graph(f"{label} buffers", module),
    ]


def _running_var(label, module, x, noisy) -> Result:
    """running_var after one step from 1, momentum 0.1, read back
    (``_core.ema_problem``) where it differs: not updated, another momentum,
    another variance averaged in (the noisy input's)."""
    torch = torch_()
    want = 0.9 + 0.1 * x.var(0)  # PyTorch keeps the unbiased variance
    result = compare(
        f"{label} running_var", module.running_var, want, tol=1e-12, what="running_var"
    )
    got = to_numpy(module.running_var)
    if not result.passed and got is not None and got.shape == tuple(want.shape):
        noisy_var = "the variance of the noisy input x * scale + shift (the running "
        result.detail = ema_problem(
            "running_var",
            got,
            torch.ones(x.shape[1]),
            x.var(0),
            0.1,
            statistics={noisy_var + "statistics are batch norm's, of x)": noisy.var(0)},
        )
    return result


def _noise_changes(cls, seed) -> Result:
    """A fresh noise at every training-mode call, within the stated ranges."""
    torch = torch_()
    label = f"{NAME} noise"
    module, problem = build_module(cls, label, 64, shift=1.5, spread=3.0)
    if problem is not None:
        return problem
    module = module.double().train()
    x, _ = _batch(seed, c=64)
    draws = []
    with torch.random.fork_rng():  # reproducible draws; the learner's RNG kept
        torch.manual_seed(seed)
        for _ in range(4):
            with torch.no_grad():
                _, problem = call(label, module, x)
            if problem is not None:
                return problem
            noise, problem = _noise(module, label)
            if problem is not None:
                return problem
            draws.append(noise)
    (s1, c1), (s2, c2) = draws[:2]
    if torch.equal(s1, s2) or torch.equal(c1, c2):
        return wrong(
            label,
            "the same noise at two steps: draw a new shift and scale at every "
            "training-mode call (in forward, not in __init__)",
        )
    shifts = torch.stack([s for s, _ in draws])
    scales = torch.stack([c for _, c in draws])
    for samples, low, high, what in (
        (shifts, -1.5, 1.5, "the shift (here shift=1.5)"),
        (scales, 1.0, 3.0, "the scale (here spread=3)"),
    ):
        message = uniform_problem(samples, low, high, what)
        if message:
            return wrong(label, message)
    return ok(
        label, "a new shift and scale per channel at every step, uniform in range"
    )


def _eval_mode(cls, seed) -> Result:
    """Eval mode: plain batch norm with the running statistics, no noise."""
    torch = torch_()
    label = f"{NAME} eval"
    module, problem = build_module(cls, label, 5)
    if problem is not None:
        return problem
    module = module.double()
    ref = torch.nn.BatchNorm1d(5).double()
    x, _ = _batch(seed)
    with torch.no_grad():
        for m in (module, ref):
            m.running_mean.fill_(1.5)
            m.running_var.fill_(4.0)
    module.eval()
    with torch.no_grad():
        out, problem = call(label, module, x)
    if problem is not None:
        return problem
    want, noise = ref.eval()(x).detach(), getattr(module, "last_noise", None)
    noisy = {}
    if isinstance(noise, tuple) and len(noise) == 2:  # the noise this call drew
        shift, scale = (torch.as_tensor(t, dtype=torch.float64) for t in noise)
        noisy[
            "the noise is applied in eval mode: no noise at inference, eval mode "
            "is plain batch norm"
        ] = want * scale + shift
    batch = torch.nn.functional.batch_norm(x, None, None, training=True)
    noisy[
        "eval mode uses the batch's statistics: it is plain batch norm with the "
        "running ones"
    ] = batch
    return compare(
        label, out, want, tol=1e-12, what="the eval-mode output", diagnoses=noisy
    )


def noisy_batchnorm(cls, *, seed=0, quiet=False, strict=None):
    """Check ``NoisyBatchNorm(num_features, shift=1.0, spread=2.0)``."""

    def body():
        return [
            *_train_step(cls, seed),
            _noise_changes(cls, seed),
            _eval_mode(cls, seed),
        ]

    return run_check(NAME, body, quiet=quiet, strict=strict)


# --------------------------------------------------------------------------
# internal covariate shift, Santurkar et al.'s way
# --------------------------------------------------------------------------


def _net(seed):
    """A float64 MLP with batch norm, in training mode, and a batch."""
    torch = torch_()
    from torch import nn

    torch.manual_seed(seed)
    model = (
        nn.Sequential(
            nn.Linear(6, 8),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.Linear(8, 8),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.Linear(8, 3),
        )
        .double()
        .train()
    )
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(20, 6, generator=gen, dtype=torch.float64) * 2 + 1
    return model, x, torch.randint(3, (20,), generator=gen)


def _grad_of(model, x, y, index):
    torch = torch_()
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return model[index].weight.grad.detach().clone()


def _ics_reference(model, x, y, index, lr, *, before_only=True, zero=True):
    """(||G - G'||, cos(G, G')): G' after an SGD step of the layers before ``index``."""
    torch = torch_()
    work = copy.deepcopy(model)
    g = _grad_of(work, x, y, index)
    with torch.no_grad():
        for i, layer in enumerate(work):
            if before_only and i >= index:
                break
            for p in layer.parameters():
                p -= lr * p.grad
    if zero:
        g2 = _grad_of(work, x, y, index)
    else:  # gradients accumulate on top of the first ones
        torch.nn.functional.cross_entropy(work(x), y).backward()
        g2 = work[index].weight.grad.detach().clone()
    cos = (g * g2).sum() / (g.norm() * g2.norm())
    return torch.stack([(g - g2).norm(), cos])


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _unchanged(label, model, before) -> Result | None:
    torch = torch_()
    state = model.state_dict()
    changed = [
        key for key, value in state.items() if not torch.equal(value, before[key])
    ]
    if not changed:
        return None
    return wrong(
        label,
        f"the model's {changed[0]} changed: measure on a copy (copy.deepcopy(model)), "
        "since a training-mode forward pass also updates batch norm's buffers",
    )


def _measured(name, fn, seed, args, names):
    """Call ``fn(model, x, y, *args)`` on :func:`_net`'s model and batch; the model
    must come back unchanged and the result be a pair: (pair, (x, y), None) or
    (None, (x, y), the check's Result)."""
    model, x, y = _net(seed)
    before = _state(model)
    value, problem = call(name, fn, model, x, y, *args, copy_inputs=False)
    if problem is None:
        problem = _unchanged(name, model, before)
    if problem is None:
        value, problem = unpack(name, value, 2, names)
    return (None, (x, y), problem) if problem is not None else (value, (x, y), None)


def gradient_change(fn, *, seed=0, quiet=False, strict=None):
    """Check ``fn(model, x, y, index, lr) -> (distance, cosine)``."""
    name = "gradient_change"
    torch = torch_()

    def body():
        items, (x, y), problem = _measured(name, fn, seed, (3, 0.5), "distance, cosine")
        if problem is not None:
            return problem
        got = torch.tensor([float(items[0]), float(items[1])], dtype=torch.float64)
        fresh, _, _ = _net(seed)
        want = _ics_reference(fresh, x, y, 3, 0.5)
        everything = _ics_reference(fresh, x, y, 3, 0.5, before_only=False)
        accumulated = _ics_reference(fresh, x, y, 3, 0.5, zero=False)
        in_eval = _ics_reference(copy.deepcopy(fresh).eval(), x, y, 3, 0.5)
        d, c = want
        g_norm = _grad_of(copy.deepcopy(fresh), x, y, 3).norm()
        return compare(
            f"{name} (layer 3)",
            got,
            want,
            tol=1e-8,
            what="(distance, cosine)",
            diagnoses={
                "measured in eval mode: keep the model's training mode, the "
                "mode in which it is trained": in_eval,
                "the layer itself and the layers after it were updated too: Santurkar "
                "et al. update only the layers *before* it, then ask how its gradient "
                "moved": everything,
                "the second gradient was added to the first: call zero_grad() before "
                "the second backward pass": accumulated,
                "the layers before it moved up the gradient: an SGD step is w - lr "
                "* grad": _ics_reference(fresh, x, y, 3, -0.5),
                **{
                    f"this is layer {i}'s gradient, not layer 3's (the index passed "
                    "in)": _ics_reference(fresh, x, y, i, 0.5)
                    for i in (0, 6)
                },
                "the distance is squared: return ||G - G'||": torch.stack([d**2, c]),
                "the distance is relative to ||G||: return ||G - G'||": torch.stack(
                    [d / g_norm, c]
                ),
                "this is 1 - cos(G, G'): return the cosine": torch.stack([d, 1 - c]),
                "this is the angle between G and G': return its cosine": torch.stack(
                    [d, torch.arccos(c)]
                ),
            },
        )

    return run_check(name, body, quiet=quiet, strict=strict)


# --------------------------------------------------------------------------
# the loss landscape along the gradient
# --------------------------------------------------------------------------


def _flat_grad(model, x, y):
    torch = torch_()
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])


def _probe_reference(model, x, y, steps, *, normalise=False, cumulative=False):
    torch = torch_()
    work = copy.deepcopy(model)
    start = [p.detach().clone() for p in work.parameters()]
    _, g = _flat_grad(work, x, y)
    grads = [p.grad.detach().clone() for p in work.parameters()]
    scale = 1 / g.norm() if normalise else 1.0
    losses, changes = [], []
    for eta in steps:
        with torch.no_grad():
            for p, p0, dp in zip(work.parameters(), start, grads, strict=True):
                if cumulative:
                    p -= eta * scale * dp
                else:
                    p.copy_(p0 - eta * scale * dp)
        loss, g2 = _flat_grad(work, x, y)
        losses.append(loss)
        changes.append((g - g2).norm().item())
    return torch.tensor(losses + changes, dtype=torch.float64)


def landscape_probe(fn, *, seed=0, quiet=False, strict=None):
    """Check ``fn(model, x, y, step_sizes) -> (losses, grad_changes)``."""
    name = "landscape_probe"
    torch = torch_()
    steps = [0.05, 0.2, 0.8]

    def body():
        items, (x, y), problem = _measured(
            name, fn, seed, (steps,), "losses, grad_changes"
        )
        if problem is not None:
            return problem
        try:
            got = torch.tensor(
                [float(v) for part in items for v in part], dtype=torch.float64
            )
        except (TypeError, ValueError):
            return wrong(name, "return two lists of numbers, one value per step size")
        if got.shape != (2 * len(steps),):
            return wrong(
                name,
                f"return one loss and one gradient change per step size ({len(steps)})",
            )
        fresh, _, _ = _net(seed)
        evaluated = copy.deepcopy(fresh).eval()
        return compare(
            f"{name} (3 steps)",
            got,
            _probe_reference(fresh, x, y, steps),
            tol=1e-8,
            what="(losses, gradient changes)",
            diagnoses={
                "the step followed the normalised gradient g / ||g||: Santurkar et al. "
                "move along the gradient itself, w - eta * g": _probe_reference(
                    fresh, x, y, steps, normalise=True
                ),
                "the steps piled up: each step size starts from the original weights, "
                "w - eta * g, not from where the previous one ended": _probe_reference(
                    fresh, x, y, steps, cumulative=True
                ),
                "the probe ran in eval mode: keep the model's training mode, the mode "
                "in which it is trained": _probe_reference(evaluated, x, y, steps),
                "the probe moved up the gradient: the step is w - eta * g": (
                    _probe_reference(fresh, x, y, [-eta for eta in steps])
                ),
            },
        )

    return run_check(name, body, quiet=quiet, strict=strict)
