"""Checks for notebook 07 (why batch norm works: the evidence, measured)."""

__all__ = ["noisy_batchnorm", "gradient_change", "landscape_probe"]  # with mutants

import numpy as np

from . import _core
from ._core import call, compare, ema_problem, ok, to_numpy, uniform_problem, wrong

SHIFT, SPREAD, torch_ = 1.5, 3.0, _core.torch  # the noise the checks ask for
SHIFTS, SCALES = (-SHIFT, SHIFT), (1.0, SPREAD)  # the ranges they are drawn from
ICS = {"the distance ||G - G'||": slice(0, 1), "the cosine": slice(1, 2)}
PROBE = {"the losses L(w - eta * g)": slice(0, 3), "the gradient changes": slice(3, 6)}
_bn = lambda t: torch_().nn.functional.batch_norm(t, None, None, training=True)
CASES = {"gradient_change": "index {}, lr {}", "landscape_probe": "step sizes {}"}
HINTS = {  # what to look at, by the check and which parts of its answer are off
    ("gradient_change", 0): "the cosine is right; the distance is the 2-norm of G - G'",
    ("gradient_change", 1): "the distance is right; the cosine is "
    "<G, G'> / (||G|| ||G'||)",
    ("gradient_change", 0, 1): "both differ: G or G' is off",
    ("landscape_probe", 0): "the gradient changes are right, so the points are: the "
    "loss taken there differs (the cross-entropy at w - eta * g itself)",
    ("landscape_probe", 0, 1): "both differ: g (of the mean loss, in the model's mode) "
    "or the points w - eta * g (each from w, all parameters) are off",
    ("landscape_probe", 1): "the points are right; ||grad - g|| at each point, over "
    "all parameters",  # and when what is off is what nothing moving gives, by call():
    0: "what is off is what the measurement gives when nothing moves, as many slips "
    "do: not computed, nothing moved, or a .grad read that was overwritten",  # anything
    1: "no parameter was changed in place (p -= lr * p.grad, p.copy_(...) or an "
    "optimizer's step), so nothing moved: `p = p - lr * g` binds the name to a new "
    "tensor and leaves the model's as it was",  # no step in place
    2: "optimizer.step() found no .grad on any parameter it holds, so nothing moved: "
    "it holds other tensors than backward() reached (the caller's model, not the "
    "copy?), or it ran before backward()",  # a step that moved nothing
}


def _batch(seed, c=5):
    torch, gen = torch_(), torch_().Generator().manual_seed(seed)
    x = torch.randn(16, c, generator=gen, dtype=torch.float64) * 3 + 2
    return x, torch.randn(16, c, generator=gen, dtype=torch.float64)


def _noisy_call(module, label, x):
    """(out, module.last_noise in float64) after ``module(x)``, or (a Result, None)."""
    out, problem = call(label, module, x, copy_inputs=False)
    noise = getattr(module, "last_noise", None)
    if problem is not None:
        return problem, None
    if not (isinstance(noise, tuple) and len(noise) == 2):
        message = "after a training-mode call, module.last_noise must be the pair "
        return wrong(label, message + "(shift, scale) of the noise it just used"), None
    (shift, scale), c = map(to_numpy, noise), module.num_features
    shapes = [f"{type(t).__name__} {tuple(np.shape(t))}" for t in noise]
    message = "the noise requires grad: it is a constant, draw it without autograd"
    if shift is None or scale is None or shift.shape != (c,) or scale.shape != (c,):
        message = f"the noise is {shapes[0]}, {shapes[1]}: draw one shift and one "
        message += f"scale per channel, tensors of shape ({c},)"
    elif not any(getattr(t, "requires_grad", False) for t in noise):
        return out, (torch_().as_tensor(shift), torch_().as_tensor(scale))
    return wrong(label, message), None


def _train_step(cls, seed) -> list:
    """Training mode: output, dx, running_var, buffers (with the module's noise)."""
    label = "NoisyBatchNorm train"
    module, problem = _core.build_module(cls, label, 5, shift=SHIFT, spread=SPREAD)
    if problem is None:  # then gamma and beta, not 1 and 0
        module, (x, dy) = module.double().train(), _batch(seed)
        w, b = (torch_().linspace(*r, 5).double() for r in ((0.5, 2), (-1, 1)))
        _, problem = call(label, module.load_state_dict, dict(weight=w, bias=b), False)
    if problem is not None:
        return [problem]
    out, noise = _noisy_call(module, label, xa := x.clone().requires_grad_())
    if noise is None:
        return [out]
    (shift, scale), bn = noise, lambda t: _bn(t) * w + b  # the noise after gamma, beta
    want, plain = bn(xr := x.clone().requires_grad_()) * scale + shift, bn(x)
    d = {
        "no noise was applied: multiply the normalised output by the scale and add "
        "the shift (per channel)": plain,
        "the noise was added before the normalisation, which removes it: add it "
        "after batch norm": bn(x * scale + shift),
        "the output is out * shift + scale: shift and scale swapped in the formula, "
        "or last_noise not (shift, scale)": plain * shift + scale,
        "the noise was applied before gamma and beta: apply it to batch norm's "
        "output, super().forward(x)": (_bn(x) * scale + shift) * w + b,
        "the shift was added before the scale, which scales it too: out * scale + "
        "shift": (plain + shift) * scale,
    }
    if not (result := compare(label, out, want.detach(), tol=1e-10, diagnoses=d)):
        return [result]
    torch_().autograd.backward([out, want], [dy, dy])
    dx = compare(f"{label} dx", xa.grad, xr.grad, tol=1e-10, what="dx, x's gradient")
    var = _running_var(label, module, x, x * scale + shift)
    count = getattr(module, "num_batches_tracked", None)  # batch norm's buffers: all
    if var.passed and count is not None and int(count) != 1:
        why = f"num_batches_tracked is {int(count)} after one training step, not 1: "
        why += "super().forward(x) counts the steps, F.batch_norm alone does not"
        var = wrong(f"{label} num_batches_tracked", why)
    return [result, dx, var, _core.buffers_outside_graph(f"{label} buffers", module)]


def _running_var(label, module, x, noisy, what="running_var"):
    """running_var after one step from 1 (momentum 0.1), else how it moved."""
    if (got := getattr(module, "running_var", None)) is None:  # compare: "no return?"
        return wrong(f"{label} running_var", "none kept: keep track_running_stats=True")
    result = compare(f"{label} {what}", got, 0.9 + 0.1 * x.var(0), tol=1e-12, what=what)
    if result.passed or result.error is None:  # None: not an array of shape (C,)
        return result
    stats = {"the biased variance": x.var(0, unbiased=False)}  # not the unbiased one
    stats["the variance of the noisy output, not of x"] = noisy.var(0)
    result.detail = ema_problem(what, got, 1.0, x.var(0), 0.1, statistics=stats)
    return result


def _noise_draws(cls, seed, stored=False):
    """A new noise at each call, uniform in range, shift and scale independent."""
    label = "NoisyBatchNorm noise"
    module, problem = _core.build_module(cls, label, 64, shift=SHIFT, spread=SPREAD)
    if problem is not None:
        return problem
    module, x, draws, outs = module.double().train(), _batch(seed, c=64)[0], [], []
    with torch_().random.fork_rng(), torch_().no_grad():  # the learner's RNG is kept
        torch_().manual_seed(seed)
        for _ in range(8):  # each noise cloned, and kept alive: its storage not reused
            problem, noise = _noisy_call(module, label, x)
            if noise is None:
                return problem
            draws.append([t.clone() for t in noise]), outs.append((problem, noise))
    shifts, scales = (torch_().stack(d).numpy() for d in zip(*draws, strict=True))
    pairs = (("shift", shifts), ("scale", scales))  # which one stayed the same
    same = " and ".join(k for k, d in pairs if np.array_equal(d[0], d[1]))
    swapped, bound = uniform_problem(shifts, *SCALES, "") is None, 5 / 512**0.5
    swapped = swapped and uniform_problem(scales, *SHIFTS, "") is None
    with np.errstate(all="ignore"):
        r = np.corrcoef(shifts.ravel(), scales.ravel())[0, 1]
    alias = outs[0][1][0].data_ptr() == outs[1][1][0].data_ptr() and not same
    stale = " and " in same and not torch_().equal(outs[0][0], outs[1][0])  # both kept
    problems = {  # message: whether it applies; the first that does is said
        "module.last_noise is the same pair of tensors at every step, redrawn in "
        "place, so a kept last_noise changes: store new tensors each call": alias,
        "module.last_noise is the same at two steps but the outputs differ: store the "
        "noise each call applies": stale,
        f"the same {same} at two steps: drawn once (in __init__?) or from a generator "
        "seeded again at each call: draw afresh at every training-mode call": same,
        "the shift is drawn from the scale's range [1, spread] and the scale from the "
        "shift's [-shift, shift] (the output uses them as stored)": swapped and stored,
        uniform_problem(shifts, *SHIFTS, f"the shift (here shift={SHIFT:g})"): True,
        uniform_problem(scales, *SCALES, f"the scale (here spread={SPREAD:g})"): True,
        f"the shift and the scale are correlated (r = {r:.2f} over 512 draws; "
        f"independent ones give |r| < {bound:.2f} but once in a million): draw each "
        "from its own torch.rand": not abs(r) < bound,
    }
    good = ok(label, "new noise per channel at every step, uniform, independent")
    return next((wrong(label, m) for m, a in problems.items() if m and a), good)


def _eval_mode(cls, seed, label="NoisyBatchNorm eval"):
    """Eval mode: plain batch norm with the running statistics, no noise."""
    module, problem = _core.build_module(cls, label, 5, eps=0.1)  # passed on
    if problem is not None:
        return problem
    module, x = module.double().eval(), _batch(seed)[0]
    try:
        with torch_().no_grad():
            module.running_mean.fill_(1.5), module.running_var.fill_(4.0)
            module.weight.fill_(2.0), module.bias.fill_(0.5)  # applied in eval too
    except (AttributeError, TypeError, RuntimeError):  # a buffer or weight is None
        why = "weight, bias" if getattr(module, "weight", None) is None else "buffers"
        return wrong(label, f"no {why}: keep affine=True, track_running_stats=True")
    out, problem = call(label, module, x)
    if problem is not None:
        return problem
    plain, batch = (x - 1.5) / (4.0 + 0.1) ** 0.5, 2 * _bn(x) + 0.5  # eps = 0.1
    want, gb = 2 * plain + 0.5, {"gamma and beta are not applied": plain}
    noise = getattr(module, "last_noise", None)  # the noise this call drew, if any
    noise = [to_numpy(t) for t in noise] if isinstance(noise, tuple) else []
    d = {"eval mode uses the batch's statistics, not the running ones": batch}
    why = "pass **kwargs on, super().__init__(num_features, **kwargs)"
    why = "forward ignores self.eps" if getattr(module, "eps", 0) == 0.1 else why
    d[f"eps=0.1 was not used: {why}"] = 2 * (x - 1.5) / 4.00001**0.5 + 0.5
    if [getattr(t, "shape", None) for t in noise] == [(5,), (5,)]:
        inference = "the noise is applied in eval mode: no noise at inference"
        d[inference] = to_numpy(want) * noise[1] + noise[0]
    return compare(label, out, want, tol=1e-12, what="eval output", diagnoses=d | gb)


def _other_kinds(cls, seed) -> list:
    """A bfloat16 layer (its output bfloat16), one keeping no running statistics."""
    x, low = _batch(seed)[0], "NoisyBatchNorm bfloat16"
    half, problem = _core.build_module(cls, low, 5, shift=SHIFT, spread=SPREAD)
    if problem is None:  # a failed Result is falsy: never chain with `or`
        problem = _noisy_call(half.bfloat16().train(), low, x.bfloat16())[0]
    half = problem if isinstance(problem, _core.Result) else ok(low, "bfloat16 output")
    free = "NoisyBatchNorm eval, no running statistics"
    module, problem = _core.build_module(cls, free, 5, track_running_stats=False)
    if problem is None:  # eval mode: no noise, and the batch's statistics
        out, problem = call(free, module.double().eval(), x)
    what = "eval output (no running statistics: the batch's, as nn.BatchNorm1d)"
    if problem is None:
        problem = compare(free, out, ref := _bn(x), tol=1e-12, what=what)
        o, r = to_numpy(out), to_numpy(ref)  # r: mean 0 per feature
        a, b = (o * r).mean(0) / (r * r).mean(0), o.mean(0)  # out = a * r + b: noise?
        if not problem and o.shape == r.shape and np.allclose(o, a * r + b, 0, 1e-9):
            fmt = _core._fmt
            why = f"each feature is batch norm's times ({fmt(a)}) plus ({fmt(b)}): "
            why += "noise in eval mode: add it only when self.training (with or "
            problem.detail = why + "without running statistics)"
    return [half, problem]


def noisy_batchnorm(cls, *, seed=0, quiet=False, strict=None):
    """Check ``NoisyBatchNorm(num_features, shift=1.0, spread=2.0)``."""

    def body():  # C=1, float32, ranges of width 0
        draws = _noise_draws(cls, seed, (train := _train_step(cls, seed))[0].passed)
        label, x = "NoisyBatchNorm affine=False", _batch(seed, 1)[0].float()
        bn, res = _core.build_module(cls, label, 1, affine=False, shift=0.0, spread=1.0)
        if res is None:  # then plain batch norm, and no weight to apply
            res, noise = _noisy_call(bn.train(), label, x)  # out or a Result
            what = "the output (shift=0, spread=1, affine=False: plain batch norm)"
            read = lambda g: _core.stages(g, x, np.ones(1), np.zeros(1), eps=_core.EPS)
            scale = lambda g: t if "mean (right)" in (t := read(g) or "") else None
            if noise is not None:  # the scale read back (an offset reads as a mean)
                res = compare(label, res, _bn(x), tol=1e-5, what=what, readers=[scale])
        return [*train, draws, _eval_mode(cls, seed), res, *_other_kinds(cls, seed)]

    return _core.run_check("NoisyBatchNorm", body, quiet, strict, NoisyBatchNorm=cls)


def _net(seed, train=True, low=False):
    """The lesson's 13-entry MLP, training or not, and a batch; float32 if ``low``."""
    nn, gen = torch_().nn, torch_().Generator().manual_seed(seed + 1)
    torch_().manual_seed(seed)  # Linears at 0, 3, 6, 9 and 12, all but 0 after a BN
    mid = (m for _ in range(3) for m in (nn.Linear(8, 8), nn.ReLU(), nn.BatchNorm1d(8)))
    layers = [nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), *mid, nn.Linear(8, 3)]
    x = torch_().randn(20, 6, generator=gen, dtype=torch_().float64) * 2 + 1
    y = torch_().randint(2, (20,), generator=gen)  # class 2 absent: one_hot(y) fails
    layers[-1].weight.data.mul_(3)  # a gradient of norm > 2: clipping it would show
    dtype = torch_().float32 if low else torch_().float64
    return nn.Sequential(*layers).to(dtype).train(train), x.to(dtype), y


def _grads(model, x, y):
    model.zero_grad()
    (loss := torch_().nn.functional.cross_entropy(model(x), y)).backward()
    return loss.item(), [p.grad.detach().clone() for p in model.parameters()]


def _measurement(name, fn, seed, args, names, parts, answers, quiet, strict):
    """Body: ``fn(model, x, y, *args)`` leaves the model alone, its pair vs answers."""
    how = {"copy_inputs": False, "returns": (2, names)}  # a pair (_core.unpack)

    def run(i=0):  # training, eval, the other arguments, then a float32 model
        train, low, k = i != 1, i == len(args), i % len(args)  # args[1]: eval mode
        (model, x, y), extra = _net(seed, train, low), args[k]
        case = [CASES[name].format(*extra), "eval" * (not train), "float32" * low]
        label = f"{name} {', '.join(filter(None, case))}"
        for p in model.parameters():  # the caller's gradients, as in a training loop
            p.grad = torch_().ones_like(p)
        value, problem = call(label, fn, model, x, y, *extra, **how)
        if problem is not None:
            return problem
        if any(p.grad is None or p.grad.ne(1).any() for p in model.parameters()):
            why = "changed the .grad the caller's model holds (zero_grad() or "
            why += "backward() on it): work on a copy; the model must not change"
            return wrong(label, why)
        items = [v for i in value for v in (i if isinstance(i, list | tuple) else [i])]
        if any(isinstance(v, np.ndarray | torch_().Tensor) for v in items):  # 0-d too
            why = "return Python numbers (float(a), .item()), not NumPy arrays or "
            return wrong(label, why + "tensors (a tensor keeps its graph and memory)")
        if "cosine" in names and any(isinstance(v, list | tuple) for v in value):
            return wrong(label, f"returned {value!r}: return two Python floats")
        flat = [to_numpy(v) for v in items]
        now, other = ("training", "eval") if train else ("eval", "training")
        mode = f"measured in {other} mode: keep the model's mode ({now} here)"
        models = _net(seed, train, low)[0], _net(seed, not train, low)[0]
        want, still, diagnoses = answers(*models, mode, x, y, *extra)
        if any(v is None for v in flat) or sum(v.size for v in flat) != len(want):
            zero = any(0 in e for e in extra if isinstance(e, list))  # eta = 0 kept?
            why = "; a step size of 0 has its loss (at w) and a change (0) too" * zero
            return wrong(label, f"return {names}: {len(want)} numbers in all{why}")
        g, tol = np.concatenate([np.ravel(v) for v in flat]), 1e-4 if low else 1e-10
        result = compare(label, g, want, tol=tol, diagnoses=diagnoses)
        if result.passed and not low:
            return run(i + 1)
        if low and not result.passed:  # right in float64: float32 work done lower
            why = "right for a float64 model, not for a float32 one (as the lesson's): "
            why += "float32 work done at a lower precision (torch.autocast, bfloat16, "
            return wrong(label, why + f".half()?): {result.detail}", result.error, 1e-4)
        if result.passed or any(m in result.detail for m in (*diagnoses, "float32")):
            return result
        w, show = to_numpy(want), lambda a: ", ".join(f"{v:.6g}" for v in a)
        same = lambda a, b: np.allclose(a, b, rtol=1e-10, atol=1e-12)
        seen = _core._precision(g, result.error, w, g.dtype)  # rounded, float32
        said = [seen or _core.describe(g, w, tol=1e-10, axis=None)]
        off = {k: i for k, i in enumerate(parts.values()) if not same(g[i], w[i])}
        for k, (part, i) in enumerate(parts.items()):
            tail = f", expected {show(w[i])}" if k in off else ""
            said.append(f"{part}: {'got' if k in off else 'right,'} {show(g[i])}{tail}")
        idle = off and all(same(g[i], to_numpy(still)[i]) for i in off.values())
        hint = None if said[0] else HINTS.get((name, *off))
        steps = extra[0] if name == "landscape_probe" else []  # eta = 0: w itself
        if 0 in steps and abs(at_w := g[len(steps) + (j := steps.index(0))]) > 1e-9:
            hint = f"at eta = 0 the point is w, yet its gradient change is {at_w:.4g}, "
            hint += "not 0: the model there differs from w's in more than its weights"
            ran = "; right in training mode, so its running statistics (eval mode reads"
            ran += " them) changed: a training pass updates them"  # L(w) changed too:
            hint += ran * (1 - train) * (not same(g[j], w[j]))  # not g alone
        moved = "in place" in _core._TRACE or "rebound" not in _core._TRACE
        still = HINTS[2 if _core._IDLE else 0 if moved else 1]  # p = p - lr * g: 1
        right = lambda: answers(models[0], models[0], mode, x, y, *extra)  # its calls
        said += [_core.calls_differ(right, result.error), still if idle else hint]
        result.detail = "; ".join(filter(None, said))
        return result

    return _core.run_check(name, run, quiet, strict, **{name: fn})


def _ics_answers(model, flipped, other, x, y, index, lr):
    """gradient_change's right answer, the answer when nothing moves, mistakes."""

    def ics(m=model, lr=lr, *, before_only=True, zero=True, short=0, rel=False):
        """(||G - G'||, cos(G, G')): G' after an SGD step of the layers before index"""
        _grads(work := _core.copied(m), x, y)
        g = work[index].weight.grad.clone()
        with torch_().no_grad():
            for p in work[: index - short if before_only else None].parameters():
                p -= lr * p.grad
        _grads(work, x, y)  # G', or G' + G: the second gradient piled up on the first
        h = work[index].weight.grad if zero else work[index].weight.grad + g
        d = (g - h).norm() / (g.norm() if rel else 1)  # relative: over ||G||
        return torch_().stack([d, (g * h).sum() / (g.norm() * h.norm())])

    want = d, c = ics()
    short = f"the layer just before it was not updated: step all of model[:{index}]"
    diagnoses = {
        other: ics(flipped),
        "the layer itself and the layers after it were updated too: update only "
        "the layers before it": ics(before_only=False),
        "the second gradient was added to the first: call zero_grad() before the "
        "second backward pass": ics(zero=False),
        short: ics(short=1),
        "the distance is squared: return ||G - G'||": want.new([d * d, c]),
        "the distance is relative to ||G||: return ||G - G'||": ics(rel=True),
        "this is 1 - cos(G, G'): return the cosine": want.new([d, 1 - c]),
        "G and G' are lr times the loss's gradients (the loss scaled by lr?): "
        "measure the gradients of the loss itself": want.new([lr * d, c]),
    }
    return want, ics(lr=0.0), diagnoses


def gradient_change(fn, *, seed=0, quiet=False, strict=None):
    """Check ``fn(model, x, y, index, lr) -> (distance, cosine)``."""
    a = ((6, 0.5), (12, 0.2), (0, 0.5)), "(distance, cosine)", ICS  # 6: the lesson's
    return _measurement("gradient_change", fn, seed, *a, _ics_answers, quiet, strict)


def _probe_answers(model, flipped, other, x, y, steps):
    """landscape_probe's right answer, the answer when nothing moves, mistakes."""

    def probe(m=model, eta=steps, *, normalise=False, cumulative=False, flip=False):
        """The losses at w - eta * g, then the norms of the gradient changes."""
        torch, work = torch_(), _core.copied(m)  # the course's model; flip: g's mode
        params, mode = list(work.parameters()), work.training
        (_, grads), _ = _grads(work.train(mode != flip), x, y), work.train(mode)
        flat = lambda gs: torch.cat([d.flatten() for d in gs])
        start, g = [p.detach().clone() for p in params], flat(grads)
        scale, out = (1 / g.norm() if normalise else 1.0), []
        for step in eta:
            with torch.no_grad():
                for p, p0, d in zip(params, start, grads, strict=True):
                    p.copy_((p if cumulative else p0) - step * scale * d)
            out.append(_grads(work, x, y))  # the loss there, the gradients
        changes = [(g - flat(moved)).norm().item() for _, moved in out]
        return torch.tensor([loss for loss, _ in out] + changes, dtype=torch.float64)

    etas = torch_().tensor([1.0] * len(steps) + list(steps), dtype=torch_().float64)
    diagnoses = {
        "the step followed the normalised gradient g / ||g||: move along g itself, "
        "w - eta * g": probe(normalise=True),
        "the steps piled up: each step size starts from the original weights, "
        "w - eta * g": probe(cumulative=True),
        other.replace("measured", "the probe ran"): probe(flipped),
        other.replace("measured", "g was taken"): probe(flip=True),
        "the step sizes were sorted: keep the order given": probe(eta=sorted(steps)),
        "each gradient change is divided by its eta (a smoothness): return "
        "||grad - g|| itself": probe() / etas,
    }
    return probe(), probe(eta=[0.0] * len(steps)), diagnoses


def landscape_probe(fn, *, seed=0, quiet=False, strict=None):
    """Check ``fn(model, x, y, step_sizes) -> (losses, grad_changes)``."""
    a = (([0.05, 0.2, 0.8],), ([0.8, 0.0, 0.2],)), "(losses, grad_changes)", PROBE
    return _measurement("landscape_probe", fn, seed, *a, _probe_answers, quiet, strict)
