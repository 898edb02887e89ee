"""Checks for notebook 03: a module run beside torch's BatchNorm, and folding."""

__all__ = ["fold_batchnorm", "scratch_batchnorm"]  # each has mutants in tests/mutants/

import numpy as np

from . import _core as core
from ._core import EPS, TODO, Result, call, channels_last, copy, ok, to_numpy, wrong

SHORTCUTS = {  # library calls that would solve an exercise (tools/grading/flags.py)
    "ScratchBatchNorm": (r"\bnn\.BatchNorm\w*", r"_BatchNorm\b", r"\bbatch_norm\b"),
    "fold_batchnorm": (r"\bfuse_\w+", r"\btorch\.ao\b", r"\btorch\.fx\b"),
}

TOL, NAME, BATCH_SIZES, torch_ = 1e-10, "ScratchBatchNorm", (8, 3, 16, 5, 2), core.torch
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
SCRATCH_CONTRASTS = (  # scratch_batchnorm's results: (N, C) first, then one change
    (1, 2, "the input is 3-D, (N, C, L): a channel's values span N and L"),
    (1, 3, "the input is 4-D, (N, C, H, W): a channel's values span N, H and W"),
    (2, 4, "momentum=None: a cumulative average, 1/k at the k-th batch"),
    (1, 5, "affine=False: weight and bias are None"),
    (1, 7, "track_running_stats=False: batch statistics in both modes, no buffers"),
    (4, 11, "reset_running_stats() ran before step 3: num_batches_tracked counts anew"),
)
BAD_INPUTS = (  # (what, input shape, why it must raise ValueError)
    ("wrong channels", (8, 3), "3 channels for num_features=4 must be refused"),
    ("5-D input", (2, 4, 2, 2, 2), "only (N, C), (N, C, L), (N, C, H, W) are taken"),
    ("1-D input", (4,), "only (N, C), (N, C, L), (N, C, H, W) are taken"),
    ("one value/channel", (1, 4), "one value per channel has no batch variance"),
    ("one value/channel, L=1", (1, 4, 1), "one value per channel, whatever its shape"),
)
FOLD_CONTRASTS = (  # (passing case, failing case, the one setting between them)
    (0, 1, "the layer has no bias (fold into a new bias)"),
    (3, 2, "the conv has no bias (fold into a new bias)"),
    (3, 4, "the conv has dilation=2, groups=2, a 3x2 kernel, padding_mode='reflect'"),
    (0, 5, "affine=False: bn.weight and bn.bias are None (gamma = 1 and beta = 0)"),
    (3, 6, "affine=False: bn.weight and bn.bias are None (gamma = 1 and beta = 0)"),
)
REFUSALS = {  # folding needs fixed statistics: why each is refused (ValueError)
    "fold_batchnorm training BN": "in training mode bn has no fixed statistics "
    "(torch: 'Fusion only for eval!'): check bn.training",
    "fold_batchnorm untracked BN": "with track_running_stats=False bn keeps none "
    "(running_var is None): say so, not a TypeError",
}


def _close(a, b, tol=TOL, scale=0.0) -> bool:
    """``a`` equals ``b`` to ``tol`` times the larger of max |b| and ``scale``."""
    if not isinstance(a, torch_().Tensor) or tuple(a.shape) != tuple(b.shape):
        return False
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    scale = max(float(b.abs().max()) if b.numel() else 1.0, scale, 1e-300)
    return bool(((a - b).abs() <= tol * scale).all())


def _stepped(cls, label, x, *, double=False):
    """A module after a training step on ``x``: (module, out, None) or a Result."""
    module, problem = core.build_module(cls, label, 4)
    if problem is None:
        module = (module.double() if double else module).train()
        out, problem = call(label, module, x)
    return (None, None, problem) if problem is not None else (module, out, None)


def _registration(cls) -> Result:
    """Parameters and buffers registered as torch's, with its start values."""
    label, ref = f"{NAME} buffers", torch_().nn.BatchNorm1d(4)  # as it starts
    start, params = dict(ref.named_buffers()), dict(ref.named_parameters())
    for given in ({}, {"affine": False}):
        module, problem = core.build_module(cls, label, 4, **given)
        if problem is None and not given:
            problem = core.registration_problem(label, module, start, params)
        if problem is not None:
            return problem
    set_ = [getattr(module, k, 0) is not None for k in ("weight", "bias")]  # 0: none
    if list(module.parameters()) or any(set_):
        why = "with affine=False torch's has no parameters; weight and bias are None "
        return wrong(label, why + "(register_parameter('weight', None), also bias)")
    return ok(label, "parameters and buffers registered like torch.nn.BatchNorm1d's")


def _reader(prefix, x, gamma, beta, eps, means, variances, axes=()):
    """A ``compare`` reader: the axes of the statistics, else which mean and scale."""
    kw, rows = dict(means=means, variances=variances), channels_last(x)
    kw = {k: d and {n: to_numpy(v) for n, v in d.items()} for k, d in kw.items()}
    ax = lambda o: axes and core.wrong_axes(o, x, gamma, beta, eps=eps, axes=axes)
    st = lambda o: core.stages(channels_last(o), rows, gamma, beta, eps=eps, **kw)
    return lambda out: (seen := ax(out) or st(out)) and prefix + seen


def _compared(label, at, got, want, ref, x, means, variances, grads=None):
    """An output (read by ``_reader``), then its gradients, as PyTorch's; None: right"""
    c = x.shape[1]
    gamma, beta = (ref.weight, ref.bias) if ref.affine else (np.ones(c), np.zeros(c))
    prefix, axes = f"{at}: the output differs from PyTorch's: ", [0, *range(2, x.dim())]
    read = _reader(prefix, x, gamma, beta, ref.eps, means, variances, axes)
    result = core.compare(label, got, want, tol=TOL, readers=[read])
    result.detail = ("" if result.detail.startswith(at) else f"{at}: ") + result.detail
    if not result.passed or grads is None:  # else the gradients too
        return None if result.passed else result
    (module, xa, xb, dout), grad = grads, torch_().autograd.grad
    try:
        got.backward(dout)
    except Exception as exc:
        return wrong(label, f"{at}: backward failed: {core.raised(exc)}")
    want.backward(dout)
    weight = ref.weight.detach() if ref.affine else xb.new_ones(xb.shape[1])
    sigma = channels_last(xb).var(0, correction=0).add(ref.eps).sqrt().min()
    scale = float(dout.abs().max() * weight.abs().max() / sigma)  # of dx's terms
    grads = [("input gradient", xa.grad, xb.grad, scale)]
    for key in ("weight", "bias") if ref.affine else ():
        mine = getattr(getattr(module, key, None), "grad", None)
        grads.append((f"{key} gradient", mine, getattr(ref, key).grad, 0.0))
    for what, got, want, floor in (g for g in grads if not _close(*g[1:3], 1e-9, g[3])):
        if got is None:
            return wrong(label, f"{at}: no {what}: the output is not connected to it")
        fits, xd = [], xb.detach().clone().requires_grad_()
        for cut in ("statistics", "mean", "variance") if floor else ():
            xm, xv = (xd if cut == k else xd.detach() for k in ("variance", "mean"))
            mu, var = xm.mean(axes, True), xv.var(axes, correction=0, keepdim=True)
            y = (xd - mu) / (var + ref.eps).sqrt() * weight.reshape(mu.shape)
            if _close(got, grad(y, xd, dout)[0], 1e-9, floor):
                fits.append(cut)
        seen = f": {seen}" if (seen := core.describe(got, want, tol=1e-8)) else ""
        if len(fits) == 1:
            seen = f": it is the gradient with the batch {fits[0]} detached (no_grad, "
            seen += "x.detach()): only the running buffers go outside the graph"
        return wrong(label, f"{at}: the {what} differs from PyTorch's{seen}")


def _running(module):
    """(running_mean, running_var) of a module as it reports them, or False."""
    ts = [getattr(module, k, None) for k in BUFFERS[:2]]
    return all(hasattr(t, "detach") for t in ts) and [t.detach().clone() for t in ts]


UPDATE = """var = x.var(axis=0, ddof=0)
unbiased = var * len(x) / (len(x) - 1)
running_mean = (1 - momentum) * old + momentum * x.mean(axis=0)
running_var = (1 - momentum) * old + momentum * unbiased"""  # PyTorch's, for neighbours


def _update_problem(label, module, ref, buffer, k, old, x, gen) -> str:
    """``buffer`` after step ``k``: its start, no change, or a·old + b·batch + c."""
    if not old:  # the learner's buffers were no tensors before this step
        return f"{buffer} is not a tensor before this step: register it in __init__"
    got, mine = getattr(module, buffer, None), old[var := buffer == "running_var"]
    if not isinstance(got, torch_().Tensor) or got.shape != getattr(ref, buffer).shape:
        return f"{buffer} is not a tensor of shape (C,)"
    if not got.isfinite().all():
        return f"{buffer} holds NaN or infinite values after this step"
    if k == 1 and not torch_().all(mine == float(var)):
        values = core._fmt(to_numpy(mine))
        return f"{buffer} is {values} before the first step: it starts at {var:d}"
    records = [(k, mine, first := got.detach().clone(), x)]  # got moves on below
    for step in range(k + 1, k + 4):  # more steps of the learner's own module
        xt = 5 * torch_().randn(6, *x.shape[1:], generator=gen).double() + 12
        (_, problem), new = call(label, module, xt), getattr(module, buffer, None)
        if problem is not None or not isinstance(new, torch_().Tensor):
            break
        records.append((step, records[-1][2], new.detach().clone(), xt))
    if all(torch_().equal(r[1], r[2]) for r in records):
        return f"{buffer} did not change in {len(records)} training step(s): update it"
    m0, q = ref.momentum if ref.momentum is not None else 1 / k, 1 if var else np.nan
    env = {"x": to_numpy(channels_last(x)), "old": to_numpy(mine), "momentum": m0}
    found = core.neighbours(UPDATE, env, buffer).items()  # finite values only
    edits = [w for w, v in found if core.rel_error(to_numpy(first), v) <= 1e-9]
    edit = f"{buffer} after one step: {edits[0]}" if edits else None
    seen = f"{buffer} is not PyTorch's"
    dims, what = [0, 2, 3][: x.dim() - 1], "unbiased variance" if var else "mean"
    stats = [r[3].var(dims) if var else r[3].mean(dims) for r in records]
    for (step, before, after, xs), stat in zip(records, stats, strict=True):
        o, y, s = (to_numpy(t).ravel() for t in (before, after, stat))
        design = np.nan_to_num(np.stack([o, s, np.ones_like(s)], 1))
        rank = np.linalg.matrix_rank(design, 1e-6 * np.abs(design).max())
        if np.allclose(y, o) or rank < 3 or len(y) < 4:  # 3 values fit any a, b, c
            continue
        n, tol = xs.numel() // xs.shape[1], 1e-9 * np.abs(y).max()
        a, b, c = abc = np.linalg.lstsq(design, y, rcond=None)[0]
        if not np.allclose(design @ abc, y, rtol=0, atol=tol):
            break  # not of that form
        m, r = (ref.momentum, np.nan) if ref.momentum is not None else (1 / step, 1)
        stored = "eps is stored in running_var; it belongs in the normalisation only"
        causes = {  # (a, b, c): the cause (a nan: not applicable)
            (m, 1 - m, 0): "momentum is applied to the old value (Keras/CS231n style)",
            (step / (step + 1), r / (step + 1), 0): "with momentum=None PyTorch "
            "averages cumulatively, 1/k at the k-th batch (count the batch first)",
            (1 - m, q * m * (n - 1) / n, 0): "the biased batch variance; PyTorch "
            "stores the unbiased one (times n / (n - 1), n = values per channel)",
            (1 - m, m, q * m * ref.eps): stored,
            (1 - m, m, q * m * ref.eps * n / (n - 1)): stored,  # before Bessel's
        }
        fits = [w for key, w in causes.items() if np.allclose(abc, key, 0, tol)]
        with np.errstate(all="ignore"):  # f = n'/(n' - 1): the count n' of the factor
            u = (f := b / (q * m) * n / (n - 1)) / (f - 1)  # a whole count, or none
            used = round(u) if np.isfinite(u) and abs(u - round(u)) < 1e-6 else 0
        if np.isclose(a, 1 - m) and abs(c) <= tol and 1 < used != n and not fits:
            dims = ("N", "N·L", "N·H·W")[xs.dim() - 2] + f" = {n} values per channel"
            fits = [f"Bessel's n / (n - 1) uses n = {used}, but n counts {dims}"]
        if np.allclose(abc, (1 - m, m, 0), 1e-5, tol):  # PyTorch's update, rounded
            fits = ["PyTorch's to 5 digits: a rounding difference (a float32 step?)"]
        seen += f"; read at step {step}: {buffer} = {a:.4g}·old + {b:.4g}·batch"
        seen += f" + {c:.4g}" * bool(abs(c) > tol) + f"; PyTorch's: {1 - m:.4g}·old"
        seen += f" + {m:.4g}·batch (batch = the batch's {what})"
        return (seen + f": {fits[0]}") if len(fits) == 1 else (edit or seen)
    return edit or core.ema_problem(buffer, first, mine, stats[0], m0)


def _training_problem(label, cls, tail, seed, given):
    """Build both (float64, alike), train on batches, eval: the first difference."""
    later, reset = given.pop("momentum_later", None), given.pop("reset_at", None)
    module, problem = core.build_module(cls, label, tail[0], **given)
    if problem is not None:
        return problem
    kind = torch_().nn.BatchNorm2d if len(tail) == 3 else torch_().nn.BatchNorm1d
    ref, gen = kind(tail[0], **given).double(), torch_().Generator().manual_seed(seed)
    if later is not None:  # set after __init__: read in forward
        module.momentum = ref.momentum = later
    try:
        module = module.double().train()
        with torch_().no_grad():
            gamma = torch_().rand(tail[0], generator=gen) + 0.5
            values = {"weight": gamma, "bias": torch_().randn(tail[0], generator=gen)}
            for key, value in values.items() if ref.affine else ():
                getattr(ref, key).copy_(value), getattr(module, key).copy_(value)
    except Exception as exc:
        return wrong(label, f"cannot set weight and bias ({exc})")
    kept = [k for k in BUFFERS if getattr(module, k, None) is not None]
    if kept and not ref.track_running_stats:
        why = f"{kept[0]} should be None without tracking (register_buffer(name, None))"
        return wrong(label, why)
    running = " (training mode uses the batch's own statistics)"
    for step, n in enumerate(BATCH_SIZES, start=1):
        if step == reset:  # then both count again from 0
            if not callable(method := getattr(module, "reset_running_stats", None)):
                return wrong(label, "no reset_running_stats() method (torch's has one)")
            if (problem := call(label, method)[1]) is not None:
                return problem
            ref.reset_running_stats()
        x = 5 * torch_().randn(n, *tail, generator=gen).double() + 12
        dout, old = torch_().randn(x.shape, generator=gen).double(), _running(module)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        with torch_().set_grad_enabled(not (quiet := step == 4)):  # step 4: no autograd
            (out, problem), want = call(label, module, xa, copy_inputs=False), ref(xb)
        if problem is not None:
            return problem
        at = f"step {step} (batch of {n}{', under torch.no_grad()' * quiet})"
        var, v = (rows := channels_last(x)).var(0, correction=0), len(rows)
        means = {"the batch mean": rows.mean(0), "0 (nothing is subtracted)": 0}
        m = ref.momentum if ref.momentum is not None else 1 / step  # scaled in place?
        means["momentum times the batch mean (a mul_ on it?)"] = m * rows.mean(0)
        unb = "the unbiased variance (n - 1): normalise with the biased one"
        variances = {"the batch's biased variance": var, "1": 1, unb: var * v / (v - 1)}
        for when, pair in (("before", old), ("after", _running(module))):
            if pair and (when, m) != ("after", 1):  # momentum 1: after = batch mean
                means[f"the running mean {when} the step{running}"] = pair[0]
            variances |= {f"running_var {when} the step": pair[1]} if pair else {}
        grads = None if quiet else (module, xa, xb, dout)
        problem = _compared(label, at, out, want, ref, x, means, variances, grads)
        if problem is None and step == 2:  # eval in between: nothing kept from it
            problem = _evaluate(label, "eval after step 2", module, ref, tail, gen)
        if problem is not None:
            return problem
        if ref.track_running_stats:  # its buffers: outside the graph, counted, updated
            if not (graph := core.buffers_outside_graph(label, module)).passed:
                return wrong(label, f"{at}: {graph.detail}")
            count, k = getattr(module, BUFFERS[2], None), int(ref.num_batches_tracked)
            if getattr(count, "dtype", 0) != torch_().long or count.shape or count != k:
                seen = f"num_batches_tracked is {count!r}, not tensor({k}) (a long)"
                return wrong(label, f"{at}: {seen}")
            for buffer in BUFFERS[:2]:
                if not _close(getattr(module, buffer, None), getattr(ref, buffer)):
                    why = _update_problem(label, module, ref, buffer, k, old, x, gen)
                    return wrong(label, f"{at}: {why}")
    return _evaluate(label, "eval mode", module, ref, tail, gen)


def _evaluate(label, at, module, ref, tail, gen):
    """Eval mode: the running statistics (the batch's if untracked), gradients too."""
    module.eval(), ref.eval()
    x = 3 * torch_().randn(6, *tail, generator=gen).double() - 2
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    before, rows = copy.deepcopy(module.state_dict()), channels_last(x)
    out, problem = call(label, module, xa, copy_inputs=False)
    if problem is not None:
        return problem
    for key in BUFFERS:
        if key in before and not _close(module.state_dict().get(key), before[key], 0):
            return wrong(label, f"eval mode changed {key}: update it only in training")
    means = {"running_mean": ref.running_mean} if ref.track_running_stats else {}
    variances = {"running_var": ref.running_var} if ref.track_running_stats else {}
    means["the batch mean (eval mode uses the running statistics)"] = rows.mean(0)
    variances["the batch's biased variance"] = rows.var(0, correction=0)
    grads = (module, xa, xb, torch_().randn(x.shape, generator=gen).double())  # dout
    problem = _compared(label, at, out, ref(xb), ref, x, means, variances, grads)
    module.train(), ref.train()
    return problem


def _sequence(cls, tail, seed, **given) -> Result:
    """Train the module beside PyTorch's on batches of varying size, then eval."""
    shape = {1: "(N, C)", 2: "(N, C, L)", 3: "(N, C, H, W)"}[len(tail)]
    setting = [f"{k}={v}" for k, v in given.items() if k != "momentum" or not v]
    label = f"{NAME} {setting[-1] if setting else shape}"
    if (problem := _training_problem(label, cls, tail, seed, given)) is None:
        sizes = ", ".join(map(str, BATCH_SIZES))
        return ok(label, f"training on batches of {sizes}, then eval, as PyTorch")
    return problem


def _bad_inputs(cls) -> list[Result]:
    """What torch refuses raises ValueError; one example of 3 positions works."""
    bn, problem = core.build_module(cls, f"{NAME} bad input", 4)
    if problem is not None:
        return [problem]
    bn, zeros = bn.double().train(), lambda *s: torch_().zeros(*s).double()
    free = core.build_module(cls, f"{NAME} bad input", 4, track_running_stats=False)[0]
    runs = [(bn, "", slice(None)), (copy.deepcopy(bn).eval(), " (eval)", slice(3))]
    free = " (eval, track_running_stats=False)", free and free.double().eval()
    runs += [(free[1], free[0], slice(3, None))] * (free[1] is not None)  # batch stats
    results = [  # in eval too, but for one value per channel (running statistics)
        core.expect_raises(f"{NAME} {what}{mode}", m, ValueError, why, zeros(*s))
        for m, mode, rows in runs
        for what, s, why in BAD_INPUTS[rows]
    ]
    held = [to_numpy(getattr(bn, k, None)) for k in BUFFERS[:2]]  # start: 0, 1
    moved = [BUFFERS[i] for i, v in enumerate(held) if v is not None and np.any(v != i)]
    why = f"{', '.join(moved)} changed by refused inputs: check inputs before updating"
    results += [wrong(f"{NAME} refused input", why + " them")] * bool(moved)
    label, x = f"{NAME} one example, L=3", torch_().randn(1, 4, 3).double()
    module, _, problem = _stepped(cls, label, x, double=True)
    works = "works: one example with 3 positions has 3 values per channel"
    results.append(problem if problem is not None else ok(label, works))
    label = f"{NAME} eval, one example"  # the running statistics need no batch
    if module is not None:
        _, problem = call(label, module.eval(), torch_().randn(1, 4).double())
        results.append(problem if problem is not None else ok(label, "works in eval"))
    module, problem = core.build_module(cls, label := f"{NAME} eval, untrained", 4)
    if problem is None:
        x = 3 * torch_().randn(8, 4).double() + 2  # statistics 0 and 1, not the batch's
        out, problem = call(label, module.double().eval(), x)
        if problem is None:  # torch's eval output (a failed Result is falsy: no `or`)
            problem = core.compare(label, out, x / (1 + EPS) ** 0.5, tol=TOL)
    return [*results, problem]


def _low_precision(cls, seed) -> Result:
    """bfloat16 input (mixed precision): output in bfloat16, buffers in float32."""
    torch, label = torch_(), f"{NAME} bfloat16 input"
    x = 3 * torch.randn(16, 4, generator=torch.Generator().manual_seed(seed)) + 2
    bn, out, problem = _stepped(cls, label, x.bfloat16())
    if problem is not None:
        return problem
    want = torch.nn.BatchNorm1d(4).train()(x.bfloat16())  # its dtype: ``call``'s check
    if getattr(getattr(bn, "running_var", None), "dtype", torch.float) != torch.float:
        return wrong(label, "the buffers changed dtype: keep them float32")
    if not torch.allclose(out.float(), want.float(), atol=5e-2, rtol=5e-2):
        return wrong(label, "bfloat16 output differs from torch's beyond its noise")
    return ok(label, "returns bfloat16 for bfloat16 input; buffers stay float32")


def _resets(cls, seed) -> Result:
    """reset_running_stats() and reset_parameters(), in place, as torch's."""
    torch, label, keys = torch_(), f"{NAME} reset_*()", (*BUFFERS, "weight", "bias")
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(seed)).double() + 3
    module, _, problem = _stepped(cls, label, x, double=True)
    if problem is not None:
        return problem
    kinds = {k: getattr(getattr(module, k, None), "dtype", None) for k in keys}
    with torch.no_grad():
        module.weight.fill_(2.0), module.bias.fill_(1.0)
    for method, values, rule in (  # after it: the buffers, weight and bias
        ("reset_running_stats", (0, 1, 0, 2, 1), "leave weight and bias"),
        ("reset_parameters", (0, 1, 0, 1, 0), "set weight to 1, bias to 0"),
    ):
        if not callable(getattr(module, method, None)):
            return wrong(label, f"no {method}() method (torch's batch norm has one)")
        held = {k: getattr(module, k, None) for k in keys}
        if (problem := call(label, getattr(module, method))[1]) is not None:
            return problem
        for key in (k for k, t in held.items() if getattr(module, k, None) is not t):
            why = f"{method}() replaced {key} by a new tensor: reset it in place (an "
            return wrong(label, why + "optimizer built before holds the old one)")
        for (key, t), value in zip(held.items(), values, strict=True):
            kind = getattr(t, "dtype", type(t).__name__)
            if not (kind == kinds.get(key, kind) and torch.as_tensor(t == value).all()):
                seen = core._fmt(to_numpy(t)) if hasattr(t, "dtype") else t
                why = f"{method}() must set running_mean to 0, running_var to 1 and "
                why += "num_batches_tracked to 0 in place (zero_(), fill_(1)) and "
                return wrong(label, why + f"{rule}: {key} is {seen} ({kind}) after it")
        if (problem := call(label, module, x)[1]) is not None:  # statistics again
            return problem
    for setting in ("affine", "track_running_stats"):  # None: nothing to reset
        module, problem = core.build_module(cls, label, 4, **{setting: False})
        for method in ("reset_running_stats", "reset_parameters"):
            if problem is None:  # after a step: statistics to reset, if it keeps them
                problem = call(label, module.double().train(), x)[1]
            if problem is None:
                _, problem = call(label, getattr(module, method, None))
            held = [getattr(module, k, None) for k in BUFFERS]
            if problem is None and None not in held:  # affine=False: stats all the same
                if [float(t.sum()) for t in held] != [0, 4, 0]:
                    why = f"{method}() left the running statistics as they were with "
                    return wrong(label, why + f"{setting}=False: reset them regardless")
        if problem is not None:
            problem.detail += f" (with {setting}=False: nothing to reset, as in torch)"
            return problem
    return ok(label, "reset_running_stats() and reset_parameters() as torch's")


def scratch_batchnorm(cls, *, seed=0, quiet=False, strict=None):
    """Check a from-scratch batch-norm module against torch.nn.BatchNorm1d/2d."""

    def body():
        if (first := _registration(cls)).verdict == TODO:
            return first
        results = [
            *(_sequence(cls, t, seed) for t in ((4,), (4, 5), (5, 2, 3))),  # H != W
            _sequence(cls, (4, 3), seed + 1, momentum=None),
            _sequence(cls, (4,), seed + 2, momentum=0.3, affine=False),
            _sequence(cls, (4,), seed + 6, eps=1e-3),
            _sequence(cls, (4,), seed + 3, track_running_stats=False),
            _sequence(cls, (1, 3), seed + 7, momentum=0.0),  # one channel: no squeeze
            _sequence(cls, (4,), seed + 8, momentum_later=0.5),
            _resets(cls, seed + 4),
            _sequence(cls, (4,), seed + 5, momentum=None, reset_at=3),
            _low_precision(cls, seed + 5),
            *_bad_inputs(cls),
        ]
        return _contrasts([first, *results], SCRATCH_CONTRASTS)

    return core.run_check(NAME, body, quiet, strict, ScratchBatchNorm=cls)


def _contrasts(results, contrasts) -> list[Result]:
    """A failed case whose twin, one setting apart, passes: say so."""
    for g, b, setting in contrasts:
        if results[g].passed and not (bad := results[b]).passed and bad.verdict != TODO:
            bad.detail += f" (it fails only where {setting})"
    return results


def _trained_pair(kind, bias, seed, affine=True, dtype="float64", eps=EPS, steps=4):
    """A layer (linear, conv, grouped), a trained eval-mode BN (``dtype``), an input."""
    torch, nn, gen = torch_(), torch_().nn, torch_().Generator().manual_seed(seed)
    torch.manual_seed(seed)
    grouped = {"padding": 3, "dilation": 2, "groups": 2, "padding_mode": "reflect"}
    make, args, kw, shape = {  # Conv1d: outside the exercise, folded right or refused
        "linear": (nn.Linear, (6, 5), {}, (16, 6)),
        "conv": (nn.Conv2d, (3, 5, 3), {"stride": (2, 1), "padding": 1}, (4, 3, 7, 7)),
        "grouped": (nn.Conv2d, (4, 6, (3, 2)), grouped, (4, 4, 8, 8)),
        "Conv1d": (nn.Conv1d, (3, 5, 3), {"padding": 1}, (4, 3, 9)),
    }[kind]
    layer = make(*args, bias=bias, **kw).double().eval()
    norm = nn.BatchNorm1d if kind in ("linear", "Conv1d") else nn.BatchNorm2d
    bn = norm(layer.weight.shape[0], eps=eps, affine=affine).double()
    with torch.no_grad():
        for _ in range(steps):  # give the running statistics non-trivial values
            bn(layer(3 * torch.randn(*shape, generator=gen).double() + 1))
        if affine:
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=gen))
    x = torch.randn(*shape, generator=gen).double()
    return layer.to(getattr(torch, dtype)), bn.eval().to(getattr(torch, dtype)), x


def _fold_problem(kind, folded, layer) -> str | None:
    """Why ``folded`` is not a new layer like ``layer``, with a bias."""
    if not isinstance(folded, want := type(layer)):  # made by _trained_pair
        why = f"returned a {type(folded).__name__}: return one {want.__name__}"
        return why + " (or raise TypeError for layers other than Linear and Conv2d)"
    settings = "stride padding kernel_size dilation groups padding_mode".split()
    for attr in settings if kind != "linear" else ():
        if (mine := getattr(folded, attr, None)) != (theirs := getattr(layer, attr)):
            how = "copy every setting (stride, padding, dilation, groups, padding_mode)"
            return f"the folded conv's {attr} is {mine}, the original's {theirs}: {how}"
    if (w := folded.weight).dtype != (v := layer.weight).dtype or w.device != v.device:
        why = f"the folded layer's weight is {w.dtype}, the layer's {v.dtype}: give "
        return why + "the new layer the layer's dtype and device (.to(layer.weight))"
    if folded.bias is None:
        return "the folded layer has no bias: create it with bias=True, always"


def _refused(fn, label, layer, bn, _x=None) -> Result:  # _x: _trained_pair's
    """A layer fold_batchnorm won't fold: a TypeError, by class (the grader renames)."""
    why = "a layer it does not fold: raise TypeError, as the exercise asks"
    found = core.expect_raises(label, fn, TypeError, why, layer, bn)
    stub = found.verdict == TODO  # NotImplementedError here is no stub's
    return wrong(label, f"raised NotImplementedError ({why})") if stub else found


def _fold(
    fn, kind, bias, seed, affine=True, dtype="double", eps=EPS, train=0, steps=4, m=0.1
):
    """One fold of a trained pair: kind, settings, dtype, originals intact, output."""
    extra, what = "" if bias else " (no bias)", "the folded layer's output"
    extra = f" eps={eps:g}" if eps != EPS else extra if affine else " affine=False"
    extra = " untrained BN" if not steps else " layer.train()" if train else extra
    extra = " momentum=None" if m is None else extra
    label = f"fold_batchnorm {kind}" + (extra if dtype == "double" else f" {dtype}")
    layer, bn, x = _trained_pair(kind, bias, seed, affine, dtype, eps, steps)
    bn.momentum = m  # None: a cumulative average, as fixed as any in eval mode
    with torch_().no_grad():  # the fold read as bn of the layer's output z, in float64
        want, z = bn.double()(layer.double()(x)), channels_last(layer(x))
    c, mean, var = z.shape[1], bn.running_mean, bn.running_var  # a wrong bias: a mean
    pairs = (bn.weight, z.new_ones), (bn.bias, z.new_zeros), (layer.bias, z.new_zeros)
    gamma, beta, own = (t.detach() if t is not None else f(c) for t, f in pairs)
    s = (var + bn.eps).sqrt()
    t, right = 1 - s / gamma, "b' = (b - running_mean) * scale + beta"
    means = {
        "0: the running mean is not subtracted": 0 * mean,
        "running_mean + b: the layer's own bias b is left out": mean + own,
        "running_mean + b (1 - 1/scale): the own bias is not scaled": mean + own * t,
        "running_mean - beta (1 - 1/scale): beta is scaled too": mean - beta * t,
    }
    means = {"running_mean": mean} | {f"{k}, {right}": v for k, v in means.items()}
    read = _reader("", z, gamma, beta, bn.eps, means, {"running_var": var})
    layer.to(d := getattr(torch_(), dtype)).train(bool(train)), bn.to(d)  # in place
    folded, problem = call(label, fn, layer, bn, copy_inputs=False)  # in place: seen
    if problem is None and (why := _fold_problem(kind, folded, layer)):
        problem = wrong(label, why)
    if problem is None:  # x requires grad: the folded layer trains (no inference_mode)
        run = folded if dtype == "double" else copy.deepcopy(folded).double()
        got, problem = call(label, run, x.requires_grad_())
    if problem is not None:
        return problem
    tol = TOL if dtype == "double" else 1e-2 if dtype == "float16" else 1e-5
    result = core.compare(label, got, want, tol=tol, readers=[read], what=what)
    result.detail = "equals layer -> bn in eval mode; " * result.passed + result.detail
    return result


def fold_batchnorm(fn, *, seed=0, quiet=False, strict=None):
    """Check ``fn(layer, bn)`` returns one layer equal to layer -> bn (eval)."""

    def body():
        if (first := _fold(fn, "linear", True, seed)).verdict == TODO:
            return first  # one "not yet" line is enough
        results = [
            *(_fold(fn, k, False, seed + s) for k, s in (("linear", 1), ("conv", 2))),
            *(_fold(fn, k, True, seed + s) for k, s in (("conv", 3), ("grouped", 5))),
            _fold(fn, "linear", True, seed + 6, affine=False),
            _fold(fn, "conv", True, seed + 7, affine=False),
            _fold(fn, "linear", True, seed + 8, dtype="float32"),
            _fold(fn, "conv", False, seed + 9, dtype="float16"),
            _fold(fn, "conv", True, seed + 10, eps=1e-3),
            _fold(fn, "linear", True, seed + 11, train=True),
            _fold(fn, "linear", True, seed + 12, steps=0),
            _fold(fn, "conv", True, seed + 14, m=None),
        ]
        other = _fold(fn, "Conv1d", True, seed + 13)  # right, or a TypeError
        if other.verdict in (core.ERROR, TODO):
            other = _refused(fn, other.name, *_trained_pair("Conv1d", True, seed + 13))
        layer, bn, _ = _trained_pair("linear", True, seed + 4)
        odd = torch_().nn.Identity()  # no weight, no bias: refused for its type
        results += [other, _refused(fn, "fold_batchnorm nn.Identity", odd, bn)]
        free = torch_().nn.BatchNorm1d(5, track_running_stats=False).double().eval()
        for (name, why), b in zip(REFUSALS.items(), (bn.train(), free), strict=True):
            results.append(core.expect_raises(name, fn, ValueError, why, layer, b))
        return _contrasts([first, *results], FOLD_CONTRASTS)

    return core.run_check("fold_batchnorm", body, quiet, strict, fold_batchnorm=fn)
