"""Checks for notebook 08: the learner's functions on 3 ranks vs one process, float64"""

from functools import partial

import numpy as np

from .. import distributed
from . import _core
from ._core import EPS, Result, _watch, call, compare, ok, run_check, unpack, wrong
from ._core import torch as torch_

__all__ = ["sync_batchnorm_forward", "sync_batchnorm_backward", "sync_bn_layer"]
__all__ += ["merge_running_stats"]  # each public check has mutants in tests/mutants/

TOL, TOL32, CHANNELS = 1e-12, 1e-2, 4  # TOL32: float32 at 1e4, the solution off by 3e-4
SIZES, RUNNING_SIZES = (3, 6, 5), (4, 7, 1)  # unequal; a rank of 1: n_r - 1 = 0
MOMENTUM, BUFFERS = 0.3, ("running_mean", "running_var")  # 0.3: not PyTorch's 0.1
SUMMED = "3 = W, the number of ranks, on every rank: an all_reduce of the buffers sums "
SUMMED += "them (they are equal on every rank already: leave them as they are)"
SHARES = (50, 200, 20)  # merge: the examples behind each rank's statistics, unequal
LEFT_ALONE = (  # what a merge must leave alone, as _state lists it
    "a buffer was replaced by a new tensor: update it in place "
    "(bn.running_mean.copy_(...)) so that the module keeps using it",
    "the weights changed: merge the buffers only",
    "num_batches_tracked changed: leave it (this rank's count, read by momentum=None)",
)

PROGRAM = """mean = x.sum(axis=0) / len(x)
var = ((x - mean) ** 2).sum(axis=0) / len(x)
rho = (var + eps) ** -0.5
x_hat = (x - mean) * rho
out = gamma * x_hat + beta"""  # the lesson's whole-batch forward, for _core.neighbours
MERGE = """mean = (counts * means).sum(axis=0) / counts.sum()
within = (counts - 1) * variances
between = counts * (means - mean) ** 2
var = (within + between).sum(axis=0) / (counts.sum() - 1)
running_mean = np.broadcast_to(mean, means.shape)
running_var = np.broadcast_to(var, means.shape)"""  # a row per rank (_core.neighbours)
_CALLS = {"forward": (r"\bbatch_norm\b", r"\bnn\.\w*BatchNorm\w*")}  # flags.py notes
_CALLS["backward"] = (r"\bautograd\b", r"\.backward\(")
SHORTCUTS = {f"sync_{k}_{d}": c for k in ("batchnorm", "bn") for d, c in _CALLS.items()}
_start = lambda g, b, fresh: (0 * b, 0 * g + 1) if fresh else (b + 2, g.clone())
_BN = lambda m: isinstance(m, torch_().nn.modules.batchnorm._BatchNorm)
_bns = lambda net: [*filter(_BN, net.modules())]
_sizes = lambda xs: torch_().tensor([[float(len(x))] for x in xs]).double()  # (W, 1)


def problem(seed: int = 0, sizes=SIZES):
    """(slices of x, gamma, beta, slices of dout): float64, mean 12."""
    torch, n = torch_(), sum(sizes)
    kw = {"generator": torch.Generator().manual_seed(seed), "dtype": torch.float64}
    x = torch.randn(n, CHANNELS, **kw) * 5 + 12.0
    x[:, 1] += 3 * torch.arange(n, dtype=torch.float64) / n  # ranks' means differ
    gamma, beta = torch.rand(CHANNELS, **kw) + 0.5, torch.randn(CHANNELS, **kw)
    return [*x.split(sizes)], gamma, beta, [*torch.randn(x.shape, **kw).split(sizes)]


def _ranks(name, fn, per_rank, count=0, names="", copy=True):
    """``fn`` on every rank, unpacked into ``count`` items: (values, ranks, problem)"""
    ranks = distributed.SimulatedRanks(len(per_rank), timeout=20.0)
    values, failed = call(name, ranks.run, fn, per_rank, copy_inputs=copy, watch=False)
    for rank, value in enumerate(values if count and failed is None else ()):
        values[rank], failed = unpack(f"{name} rank {rank}", value, count, names)
        if failed is None and count == 5 and isinstance(value, list):  # 5: autograd's
            why = "returned a list: an autograd.Function's backward returns a tuple (a "
            failed = wrong(f"{name} rank {rank}", why + "list counts as one gradient)")
        if failed is not None:
            break
    return (None, None, failed) if failed is not None else (values, ranks, None)


def _variants(xs):
    """Per rank (W, C): ({name: mean}, {name: biased variance}), the right one first"""
    torch, full, world = torch_(), torch_().cat(xs), len(xs)
    n, var, sizes = len(full), full.var(0, correction=0).expand(world, -1), _sizes(xs)
    own_mean = torch.stack([x.mean(0) for x in xs])
    own_var = torch.stack([x.var(0, correction=0) for x in xs])
    rows, dev = torch.ones(world, 1, dtype=torch.float64), full - own_mean.mean(0)
    mean_means, weighted = rows * own_mean.mean(0), rows * (sizes * own_var).sum(0) / n
    law = "it misses the spread of their means: law of total variance"
    by_world = "divided by W * n_rank (N = W * this rank's count)"
    means = {"the batch mean": rows * full.mean(0)}
    means["this rank's own mean (a ghost batch: all-reduce the sums)"] = own_mean
    means["the mean of the ranks' means (unweighted by their sizes)"] = mean_means
    means[f"the all-reduced sum {by_world}"] = full.sum(0) / (world * sizes)
    return means, {
        "the batch's biased variance": var,
        "the unbiased variance (divides by N - 1)": var * n / (n - 1),
        "this rank's own variance (a ghost batch)": own_var,
        f"the average of the ranks' variances ({law})": rows * own_var.mean(0),
        f"the count-weighted average of the ranks' variances ({law})": weighted,
        f"the squared deviations {by_world}": var * n / (world * sizes),
        "the variance around the mean of the ranks' means": rows * dev.square().mean(0),
    }


def _statistics(xs, eps=EPS):
    return (f := torch_().cat(xs)).mean(0), 1 / (f.var(0, correction=0) + eps).sqrt()


def _outputs(name, values, xs, what="out"):
    """(the ranks' outputs (``values``' first items) joined, None) or (None, why)."""
    outs = [value[0] for value in values]
    if kinds := [type(o).__name__ for o in outs if not isinstance(o, torch_().Tensor)]:
        return None, wrong(name, f"a rank returned a {kinds[0]}: return tensors")
    for rank, (o, x) in enumerate(zip(outs, xs, strict=True)):  # each its x's shape
        if o.shape != x.shape:
            return None, _core.shape_problem(name, o, x.shape, f"rank {rank}'s {what}")
    return torch_().cat(outs), None


def _compare_out(label, values, xs, gamma, beta, groups=True, running=()) -> Result:
    """The ranks' outputs against F.batch_norm on the whole batch, stage by stage."""
    out, problem_ = _outputs(label, values, xs)
    if problem_ is not None:
        return problem_
    torch, full, counts = torch_(), torch_().cat(xs), torch_().tensor([*map(len, xs)])
    want = torch.nn.functional.batch_norm(full, None, None, gamma, beta, True, 0, EPS)
    per_row = lambda d: {k: v.repeat_interleave(counts, 0) for k, v in d.items()}
    means, variances = map(per_row, _variants(xs))
    for when, (m, v) in zip(("before the update", "after it"), running, strict=False):
        means[f"running_mean {when} (training normalises with the batch's)"] = m
        variances[f"running_var {when}"] = v
    groups = np.repeat(np.arange(len(xs)), counts.numpy()) if groups else None
    env = {"x": full.numpy(), "gamma": gamma.numpy(), "beta": beta.numpy(), "eps": EPS}
    read = partial(_core.stages, **env, groups=groups, means=means, variances=variances)
    kw = {"readers": [read], "known": {"W = the number of ranks": len(xs)}}
    kw["program"] = PROGRAM, env, "out"
    return compare(label, out, want, tol=TOL, what="the ranks' outputs", **kw)


def sync_batchnorm_forward(fn, *, seed=0, quiet=False, strict=None):
    """Check ``fn(x, gamma, beta, all_reduce, eps, ...) -> (out, cache)`` on 3 ranks."""
    name = "sync_batchnorm_forward"  # step: positional, as PyTorch orders them
    step = lambda x, g, b, m, v, reduce, mo=MOMENTUM: fn(x, g, b, reduce, EPS, m, v, mo)

    def body():
        (xs, g, b, _), label = problem(seed), f"{name} (3 ranks)"
        results, ranks, p = _ranks(name, fn, [(x, g, b) for x in xs], 2, "out, cache")
        result = _compare_out(label, results, xs, g, b) if p is None else p
        if p is not None or not result:
            return result
        result.detail += f"; {ranks.calls} all-reduces, {ranks.elements} numbers sent"
        if any(_shares(out, cache) for out, cache in results):  # round 11's false ok
            why = "the cache holds the output tensor itself (one storage): backward "
            why += "needs x_hat, which is not out: save x_hat as a tensor of its own "
            return wrong(f"{name} cache", why + "(not turned into out in place)")
        if (far := _far(name, fn, xs, g, b)) is not None:
            return [result, far]
        label = "sync forward running stats"  # the output with them given, too
        xs, g, b, values, buffers, problem_ = _step(label, step, seed, 2, "out, cache")
        if problem_ is not None:
            return [result, problem_]
        out = _compare_out(label, values, xs, g, b, False, ((b + 2, g), buffers[0]))
        results = [result, out, *_buffer_results("sync forward", buffers, xs, g, b)]
        at = "sync forward from 0 and 1"  # PyTorch's start: no first step apart
        *_, new, p = _step(at, step, seed, 2, "out, cache", fresh=True)
        results += _buffer_results(at, new, xs, g, b, True) if p is None else [p]
        *_, new, p = _step(at := "sync forward momentum=0", partial(step, mo=0.0), seed)
        if p is None and all(m.equal(b + 2) and v.equal(g) for m, v in new):
            p = ok(at, "the running statistics keep their values")
        elif p is None:  # a failed Result is falsy: never `or`
            why = "moved: 0 is a momentum, they keep their values"
            why = why if all(v.isfinite().all() for _, v in new) else "are not finite"
            p = wrong(at, f"with momentum=0 the running statistics {why}")
        return results + [p] if all(results) else results  # else: said above

    return run_check(name, body, quiet, strict, **{name: fn})


def _far(name, fn, xs, gamma, beta) -> Result | None:
    """Float32 values around 10,000, spread 1, and eps=0.5: the section's warning."""
    torch, label = torch_(), f"{name} float32"  # around 1e4, spread 1, eps=0.5
    far = [(((x - 12) / 5 + 1e4).float(), gamma.float(), beta.float()) for x in xs]
    found, _, failed = _ranks(label, lambda *a: fn(*a, 0.5), far, 2, "out, cache")
    out, failed = _outputs(label, found, xs) if failed is None else (None, failed)
    if failed is None and out.dtype != torch.float32:
        return wrong(label, f"float32 inputs give {out.dtype} outputs: keep x's dtype")
    if failed is not None:
        return failed
    full, norm = torch.cat([a[0] for a in far]).double(), torch.nn.functional.batch_norm
    wants = (norm(full, None, None, gamma, beta, True, 0, e) for e in (0.5, EPS))
    err = [_core.rel_error(out.double(), w) for w in wants]  # eps given, default
    why = "(a variance as E[x^2] - mu^2? section 2's cancellation: square deviations)"
    why = "its output is eps=1e-5's: use the eps passed in" if err[1] <= TOL32 else why
    off = "around 10,000 with a spread of 1 and eps=0.5, the ranks' outputs are off by"
    return None if err[0] <= TOL32 else wrong(label, f"{off} {err[0]:.1e}; {why}")


def _shares(out, cache) -> bool:
    """A tensor in ``cache`` (nested: tuples, lists, dicts) on the storage of out"""
    ptr = lambda t: isinstance(t, torch_().Tensor) and t.untyped_storage().data_ptr()
    return bool(ptr(out)) and any(ptr(t) == ptr(out) for _, t, _ in _watch(cache, ""))


def _step(name, step, seed, count=0, names="", fresh=False):
    """``step(x, gamma, beta, running_mean, running_var, all_reduce)``, ranks 4, 7, 1"""
    xs, gamma, beta, _ = problem(seed, sizes=RUNNING_SIZES)
    given = [(x, gamma, beta, *_start(gamma, beta, fresh)) for x in xs]  # and buffers
    watched = [_watch(args[:3], "") for args in given]  # x, gamma, beta
    values, _, problem_ = _ranks(name, step, given, count, names, copy=False)
    for rank, found in enumerate(watched if problem_ is None else ()):
        if any(_core._changed(was, now) for _, now, was in found):
            why = f"rank {rank} changed its input x, gamma or beta in place: write "
            problem_ = wrong(name, why + "only running_mean and running_var")
    return xs, gamma, beta, values, [args[3:] for args in given], problem_


def _buffer_results(label, buffers, xs, gamma, beta, fresh=False) -> list[Result]:
    """Each rank's running_mean and running_var (``_step``'s) vs nn.BatchNorm1d's."""
    (means, variances), sizes, n = _variants(xs), _sizes(xs), sum(map(len, xs))
    var = variances["the batch's biased variance"]
    unbiased = "PyTorch stores variance * N / (N - 1), N the whole batch's count"
    corrected = "the variance corrected with this rank's count, n_r / (n_r - 1): use "
    stats = {f"the biased variance ({unbiased})": var}
    stats[corrected + "the whole batch's N / (N - 1)"] = var * sizes / (sizes - 1)
    own = variances["this rank's own variance (a ghost batch)"] * sizes / (sizes - 1)
    stats["this rank's own unbiased variance (a ghost batch)"] = own
    stats["the batch mean"] = means["the batch mean"]  # the running_mean line copied
    statistics = (dict(list(means.items())[1:]), stats)
    known = {"1 - momentum": 1 - MOMENTUM, "PyTorch's default momentum": 0.1}
    known |= {"momentum": MOMENTUM, "N": n}  # 1/momentum: the batch term unweighted
    causes = {"momentum PyTorch's default momentum": "use the momentum argument"}
    results, batches = [], (means["the batch mean"], var * n / (n - 1))
    for k, what in enumerate(("running_mean", "running_var")):
        old, batch = _start(gamma, beta, fresh)[k].numpy(), batches[k].numpy()
        got = torch_().stack([b[k].detach() for b in buffers]).numpy()
        want = np.broadcast_to((1 - MOMENTUM) * old + MOMENTUM * batch, got.shape)
        fin = np.isfinite(got).all(1)
        err = _core.rel_error(got[fin], want[fin]) if fin.any() else np.inf
        if passed := fin.all() and err <= TOL:
            seen = f"all 3 ranks hold PyTorch's update, max rel. error {err:.1e}"
        elif np.allclose(got, len(xs) * want, rtol=1e-9, atol=0):
            seen = f"{what} is PyTorch's update times {SUMMED}"
        elif np.allclose(got, old, rtol=1e-12, atol=0):
            seen = f"{what} did not change in a training step: no update ran, or a new "
            seen += "tensor was bound to the name; update the one passed in, in place"
        elif not fin.any():
            seen = f"{what} is NaN or infinite on every rank: on the rank of 1 example "
            seen += "something divides by n_r - 1 = 0 (a rank's unbiased variance, as "
            seen += "x.var(0), or n_r / (n_r - 1)), and the all-reduce spreads it"
        else:  # on the finite ranks; _core._match scales by the candidate
            stats = {s: v.numpy()[fin].ravel() for s, v in statistics[k].items()}
            stats = {s: v for s, v in stats.items() if np.isfinite(v).all()}
            args = got[fin], np.broadcast_to(old, got.shape)[fin], batch[fin]
            seen = _core.ema_problem(what, *args, MOMENTUM, known, causes, stats)
        bad = ", ".join(f"{r} (n_r = {RUNNING_SIZES[r]})" for r in np.flatnonzero(~fin))
        if bad and fin.any():
            seen = f"{what} is not finite on rank {bad}; on the others, {seen}"
        measured = () if passed else (err if fin.all() else None, TOL)
        results.append((ok if passed else wrong)(f"{label} {what}", seen, *measured))
    return results


def _dx_reader(xs, gamma, douts):
    """A ``compare`` reader: a and b in dx = gamma * invstd * (dy - a - x_hat * b)."""
    (mean, rho), sizes = _statistics(xs), [len(x) for x in xs]
    n, counts = sum(sizes), np.repeat(sizes, sizes)[:, None]
    dy, x_hat = torch_().cat(douts).numpy(), ((torch_().cat(xs) - mean) * rho).numpy()
    ranks, g = np.split(np.arange(n), np.cumsum(sizes)[:-1]), gamma.numpy()

    def term(got, values):
        total = np.broadcast_to(values.sum(0), values.shape)
        own = np.concatenate([values[r].mean(0) + 0 * values[r] for r in ranks])
        forms = {
            "missing": 0 * values,
            "this rank's own mean, not the all-reduced sum divided by N": own,
            "right": total / n,
            "of the wrong sign (added, not subtracted)": -total / n,
            "divided by N - 1, not N": total / (n - 1),
            "divided by this rank's count, not N": total / counts,
            "the all-reduced sum itself, not divided by N": total,
            "the sum all-reduced twice, counted once per rank": total * len(xs) / n,
            "divided by gamma (it multiplies dy alone, not the bracket)": total / g / n,
        }
        floor = 1e-2 * np.abs(values).max()  # "missing": |got| below 1e-9 of it
        return _core._match(got, forms, floor=floor) or "none of the usual"

    def read(got):
        z = dy - np.asarray(got, float) / (gamma * rho).numpy()
        a, b = np.empty_like(z), np.empty_like(z)
        for rows in ranks:  # z = a + b * x_hat on each rank: least squares
            xc = x_hat[rows] - x_hat[rows].mean(0)
            with np.errstate(all="ignore"):  # a rank of one: no fit (NaN)
                b[rows] = (xc * (z[rows] - z[rows].mean(0))).sum(0) / (xc * xc).sum(0)
            a[rows] = z[rows].mean(0) - b[rows] * x_hat[rows].mean(0)
        if not np.abs(a + b * x_hat - z).max() <= 1e-8 * np.abs(z).max():
            return None  # not of that form
        if (found := (term(a, dy), term(b, dy * x_hat)))[0] == found[1]:
            return f"in dx, both terms mean(dy) and mean(dy * x_hat) are {found[0]}"
        return f"in dx, mean(dy) is {found[0]}; mean(dy * x_hat) is {found[1]}"

    return read


def _gradients(name, fn, per_rank, count, names, xs, gamma, beta, douts):
    """``fn`` on every rank: dx joined, dgamma and dbeta summed (DDP), vs autograd."""
    before = [_watch(d, "dout") + _watch(a, "an input tensor") for *a, d in per_rank]
    grads, _, failed = _ranks(name, fn, per_rank, count, names, copy=False)
    for rank, where, now, was in [(r, *f) for r, fs in enumerate(before) for f in fs]:
        if failed is None and _core._changed(was, now):  # the first change found
            why = f"changed {where.split(' (')[0]} in place on rank {rank}: compute "
            failed = wrong(name, why + "new tensors (dx = dout * ..., not dout *= ...)")
    if failed is None:
        dx, failed = _outputs(f"{name} dx", grads, xs, "dx")
    if failed is not None:
        return [failed]
    torch, F = torch_(), torch_().nn.functional
    x, g, b = (t.clone().requires_grad_() for t in (torch.cat(xs), gamma, beta))
    F.batch_norm(x, None, None, g, b, True, 0, EPS).backward(torch.cat(douts))
    (mean, rho), kw = _statistics(xs), {"readers": [_dx_reader(xs, gamma, douts)]}
    kw["known"] = {"gamma": gamma, "N": len(x), "invstd": rho}
    results = [compare(f"{name} dx", dx, x.grad, tol=1e-10, what="dx", **kw)]
    if kinds := {type(t).__name__ for g in grads for t in g[1:3]} - {"Tensor"}:
        why = f"dgamma or dbeta is a {kinds.pop()}: return tensors of shape "
        return results + [wrong(f"{name} dgamma, dbeta", why + f"({CHANNELS},)")]
    if set(shapes := [tuple(t.shape) for g in grads for t in g[1:3]]) != {(CHANNELS,)}:
        why = f"dgamma and dbeta have the shapes {shapes} on the ranks, not "
        why += f"({CHANNELS},): sum this rank's examples' contributions over axis 0"
        return results + [wrong(f"{name} dgamma, dbeta", why)]
    shares = ([(p - mean) * rho * dy for p, dy in zip(xs, douts, strict=True)], douts)
    sums = [torch.stack([grad[k] for grad in grads]).sum(0) for k in (1, 2)]
    known = {"N": len(x), "gamma": gamma, "W": len(xs)}  # DDP's average divides by W
    same = {"returns": {"dx": x.grad, "dgamma": g.grad, "dbeta": b.grad}, "axis": 0}
    same |= {"returned": (dx, *sums), "known": known}  # axis 0: a factor per feature
    for k, (what, want) in enumerate((("dgamma", g.grad), ("dbeta", b.grad))):
        why = f"{what} is averaged over the slice: gamma and beta are shared by every "
        d = {why + "example, so sum over axis 0": sum(s.mean(0) for s in shares[k])}
        if all(torch.equal(grad[k + 1], grads[0][k + 1]) for grad in grads):  # alike:
            why = f"{what} was all-reduced; DDP does that afterwards, so this counts "
            why += f"the shares {len(xs)} times: return this rank's sum"
            d[why] = len(xs) * want  # W times each rank's sum: the same total
        kw = {"what": f"the sum over ranks of {what}", "diagnoses": d, **same}
        results.append(compare(f"{name} {what}", sums[k], want, tol=1e-10, **kw))
    for k, w in enumerate(("dgamma", "dbeta") if all(results) else ()):  # per rank
        own = torch.stack([s.sum(0) for s in shares[k]])  # its own examples' sums
        got, why = torch.stack([g[k + 1] for g in grads]), f"each rank's own {w}"
        results.append(compare(f"{name} {w} per rank", got, own, tol=1e-10, what=why))
    return results


def sync_batchnorm_backward(forward, backward, *, seed=0, quiet=False, strict=None):
    """Check ``backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)`` on 3 ranks."""
    name = "sync_batchnorm_backward"

    def both(x, gamma, beta, dout, reduce):
        if not isinstance(v := forward(x, gamma, beta, reduce), tuple) or len(v) != 2:
            raise ValueError("the forward pass must return (out, cache)")
        return backward(dout, v[1], reduce)

    def body():
        results = []
        for label, sizes in ((name, SIZES), (f"{name} ranks of 4, 7 and 1", (4, 7, 1))):
            if all(results):  # then a rank of one example
                args = xs, gamma, beta, douts = problem(seed, sizes)
                ranks = [(x, gamma, beta, d) for x, d in zip(xs, douts, strict=True)]
                results += _gradients(label, both, ranks, 3, "dx, dgamma, dbeta", *args)
        return results

    return run_check(name, body, quiet, strict, **{name: backward})


def _layer_forward(name, results, xs, gamma, beta) -> Result:
    """The first wrong stage of what the ranks saved, else their output's verdict."""
    for r, (_, saved) in enumerate(results):
        if saved is None or saved == ():
            why = f"saved is {saved!r}: the forward pass saves nothing for backward"
        elif not isinstance(saved, (tuple, list)) or len(saved) != 5:
            why = "saved must be a tuple of 5 tensors"
        elif kinds := [type(s).__name__ for s in saved if not torch_().is_tensor(s)]:
            why = f"saved holds a {kinds[0]}: ctx.save_for_backward takes tensors only"
        elif {s.shape for s in saved[2:4]} != {(CHANNELS,)} or saved[4].numel() != 1:
            why = "saved mean and invstd have the shape (C,), the count one value"
        elif not torch_().equal(saved[0], xs[r]):
            why = "saved[0] is not the input x itself: backward recomputes x_hat"
        elif not torch_().equal(saved[1], gamma):
            why = "saved[1] is not gamma itself"
        else:
            continue
        return wrong(f"{name} rank {r}", why + "; save (x, gamma, mean, invstd, count)")
    means, variances = _variants(xs)
    var = variances["the batch's biased variance"]
    invstds = {f"uses {k}": 1 / (v + EPS).sqrt() for k, v in variances.items()}
    invstds["has eps outside the square root"] = 1 / (var.sqrt() + EPS)
    invstds["is sqrt(var + eps), not its inverse"] = (var + EPS).sqrt()
    means = {f"is {k}": v for k, v in means.items()}
    for k, (what, options) in enumerate((("mean", means), ("invstd", invstds))):
        got = torch_().stack([s[2 + k].reshape(CHANNELS) for _, s in results])
        (_, want), *mistakes = options.items()  # the right one first
        kw = dict(what=f"the saved {what}", axis=None, known={"momentum": MOMENTUM})
        kw["diagnoses"] = {f"the saved {what} {m}": v for m, v in mistakes}
        if not (result := compare(f"{name} saved {what}", got, want, tol=TOL, **kw)):
            return result
    counts = [s[4].reshape(()).item() for _, s in results]
    if counts != [sum(RUNNING_SIZES)] * len(xs):
        return wrong(f"{name} saved count", f"the saved counts are {counts}, not N")
    return _compare_out(f"{name} out", results, xs, gamma, beta, False)


def sync_bn_layer(forward, backward, *, seed=0, quiet=False, strict=None):
    """Check the capstone on 3 ranks: ``forward`` as ``step`` calls it, ``backward``."""
    no_grad = torch_().no_grad()  # as autograd.Function.forward runs it: grad mode off
    name, step = "sync_bn_layer", no_grad(lambda *a: forward(*a, EPS, MOMENTUM))

    def body():
        xs, g, b, saved, bufs, p = _step(f"{name} forward", step, seed, 2, "out, saved")
        found = [_layer_forward(name, saved, xs, g, b) if p is None else p]
        if found[0].passed:  # and with another eps: the one passed in is used
            at = no_grad(lambda *a: forward(*a, 0.1, 0.1))
            *_, saved, _, failed = _step(f"{name} eps=0.1", at, seed, 2, "out, saved")
            if failed is None:  # a failed Result is falsy: test for None
                got = torch_().stack([s[3].reshape(-1) for _, s in saved])
                inv = lambda eps: _statistics(xs, eps)[1].expand(len(xs), -1)
                slip = {"made with eps=1e-5: use the eps passed in": inv(EPS)}
                kw = {"what": "the saved invstd with eps=0.1", "diagnoses": slip}
                failed = compare(f"{name} eps=0.1", got, inv(0.1), tol=TOL, **kw)
            found += [failed, *_buffer_results(name, bufs, xs, g, b)]
            if stuck := [r for r in found[-2:] if "did not change in a" in r.detail]:
                on = _step(name, lambda *a: forward(*a, EPS, MOMENTUM), seed, 2, "o, s")
                if on[-1] is None and all(_buffer_results(name, on[4], xs, g, b)):
                    why = "updated only with grad mode on; autograd.Function.forward "
                    why += "runs with it off: training, not grad mode, updates them"
                    for r in stuck:  # with grad mode on, as a direct call: they move
                        r.detail = r.detail.split(":")[0] + f": {why}"
        xs, gamma, beta, douts = problem(seed + 1)  # 3, 6 and 5 examples
        count = torch_().tensor([float(sum(SIZES))], dtype=torch_().float64)
        saved = [(x, gamma, *_statistics(xs), count) for x in xs]
        names = "dx, dgamma, dbeta, None, None: one gradient per input of forward"
        args = (list(zip(saved, douts, strict=True)), 5, names, xs, gamma, beta, douts)
        return [*found, *_gradients(f"{name} backward", backward, *args)]

    pair = {"sync_bn_forward": forward, "sync_bn_backward": backward}
    return run_check(name, body, quiet, strict, **pair)


def _rank_models(seed):
    """Three ranks' copies of a net of 6 BN layers (one nested), buffers apart."""
    nn, gen, models = torch_().nn, torch_().Generator().manual_seed(seed), []
    for rank in range(len(SHARES)):  # Sync: buffers on a CPU, forward on a GPU
        plain = [nn.BatchNorm1d(5), nn.BatchNorm1d(4, affine=False).eval()]  # as used
        plain.append(nn.BatchNorm1d(3))  # num_batches_tracked 0: loaded buffers
        rest = nn.BatchNorm2d(4), nn.BatchNorm3d(4), nn.Sequential(nn.SyncBatchNorm(4))
        models.append(model := nn.Sequential(*plain, *rest).double())  # eval: PreciseBN
        for bn in _bns(model):  # buffers: no gradient to record
            k = bn.num_features
            bn.running_mean.copy_(torch_().randn(k, generator=gen) + 1.5 * rank)
            bn.running_var.copy_(torch_().rand(k, generator=gen) + 0.5)
            bn.num_batches_tracked.fill_((10 + rank) * (bn.num_features != 3))
    return models


def _candidates(models, layer):
    """Per buffer: (the right merge (Chan et al.), {message: a wrong one}, the old)."""
    bns, n = [_bns(m)[layer] for m in models], torch_().tensor(SHARES).double()[:, None]
    means, variances = (torch_().stack([getattr(b, k) for b in bns]) for k in BUFFERS)
    mean, law = (n * means).sum(0) / (big := n.sum()), "(law of total variance)"
    within, spread = ((n - 1) * variances).sum(0) / (big - 1), (means - mean) ** 2
    right, avg = within + (n * spread).sum(0) / (big - 1), variances.mean(0)
    equal = "running_mean weighs the ranks equally (the mean of their means): weigh "
    msgs = {equal + "each by its count, sum(count * mean_r) / N": means.mean(0)}
    msgs["running_mean is the sum over ranks: weigh each by count / N"] = means.sum(0)
    why = "running_var misses how far the ranks' means lie from the merged mean "
    why += f"{law}: add sum(count * (mean_r - mean)^2) / (N - 1), or compute it "
    var_msgs = {why + "before running_mean holds the merged mean (0 then)": within}
    why = "running_var is the plain average of the ranks' variances: weigh them by "
    var_msgs[why + f"their counts, and add the spread of the ranks' means {law}"] = avg
    why = "running_var weighs the variances by count but the spread of the means "
    var_msgs[why + "equally (1/W): weigh both by the counts"] = within + spread.mean(0)
    why = "running_var treats the ranks' variances as biased: weights count / N, not "
    var_msgs[why + "(count - 1) / (N - 1)"] = (n * (variances + spread)).sum(0) / big
    return (mean, msgs, means), (right, var_msgs, variances)


def _state(model):
    """What a merge must leave alone: buffer objects, weights, batch counts."""
    ids, weights = [*map(id, model.buffers())], [p.tolist() for p in model.parameters()]
    return ids, weights, [int(bn.num_batches_tracked) for bn in _bns(model)]


def merge_running_stats(fn, *, seed=0, quiet=False, strict=None):
    """Check ``fn(model, all_reduce, count)``: BN buffers merged in place, no more"""
    name, on_rank = "merge_running_stats", lambda m, n, reduce: fn(m, reduce, n)

    def body():
        models = _rank_models(seed)
        layers = [_candidates(models, k) for k in range(len(_bns(models[0])))]
        before, per_rank = [*map(_state, models)], [*zip(models, SHARES, strict=True)]
        values, _, problem_ = _ranks(name, on_rank, per_rank, copy=False)
        if problem_ is not None:
            return problem_
        kinds = {type(v).__name__ for v in values if v is not None}  # returned
        for i, message in enumerate(LEFT_ALONE):  # _state read again: pure
            if [s[i] for s in map(_state, models)] != [s[i] for s in before]:
                return wrong(name, message)
        for layer, buffers in enumerate(layers):
            bns = [_bns(m)[layer] for m in models]  # stop at the first wrong layer
            if not all(results := _merged_layer(name, layer, bns, buffers, kinds)):
                return results
        msg = f"all {len(layers)} BN layers (1d, affine=False, uncounted, 2d, 3d, "
        done = ok(name, f"{msg}Sync) agree on all 3 ranks (shares {str(SHARES)[1:-1]})")
        low = list(zip([m.float() for m in _rank_models(seed)], SHARES, strict=True))
        _, _, problem_ = _ranks(label := f"{name} float32", on_rank, low, copy=False)
        kinds = {b.dtype for m, _ in low for b in m.buffers() if b.is_floating_point()}
        if problem_ is None and kinds != {torch_().float32}:  # round 10's false ok
            why = f"float32 layers hold {sorted(map(str, kinds))} buffers after it: "
            problem_ = wrong(label, why + "keep their dtype (copy_ into them)")
        return done if problem_ is None else [done, problem_]

    return run_check(name, body, quiet, strict, **{name: fn})


def _merged_layer(name, layer, bns, buffers, kinds) -> list[Result]:
    """One layer's buffers on every rank (``bns``) against the merge (``buffers``)."""
    label = f"{name} BN {layer + 1}" + f" ({type(bns[0]).__name__})" * (layer > 1)
    got = [torch_().stack([getattr(bn, what) for bn in bns]) for what in BUFFERS]
    if all(g.equal(old) for g, (*_, old) in zip(got, buffers, strict=True)):
        why = "unchanged on this layer, merged on those before: the loop skipped it or "
        why += "stopped (a return inside it?); walk model.modules(), nested too, and "
        why += "test isinstance(m, nn.modules.batchnorm._BatchNorm)"
        if " BN 1" in label:  # the first, top-level layer: any walk finds it
            why = "unchanged on the first layer: none was selected (a type test?) "
            why += "or the merged values were not written into them in place "
            why += "(bn.running_mean.copy_(...)); a return value is unused"
            if kinds:  # the merged values returned: the caller never reads them
                why = f"unchanged on the first layer; the merge returned a {min(kinds)}"
                why += ", which the caller ignores: copy_ the values into the buffers"
        if not any(bn.training for bn in bns):  # the one layer left in eval mode
            why = "unchanged on this layer, the one in eval mode (PreciseBN evaluates "
            why += "its copies): merge every batch-norm layer, whatever its mode"
        if not any(bn.num_batches_tracked for bn in bns):  # as loaded: counter 0
            why = "unchanged on this layer, the one whose num_batches_tracked is 0 "
            why += "(buffers loaded or set): the count given says what stands behind "
            why += "them; merge every batch-norm layer, whatever its counter"
        return [wrong(f"{label} buffers", why)]
    env = {"means": buffers[0][2].numpy(), "variances": buffers[1][2].numpy()}
    env["counts"], results = np.array(SHARES, dtype=float)[:, None], []
    for what, value, (right, mistakes, old) in zip(BUFFERS, got, buffers, strict=True):
        diagnoses = {k: v.expand_as(value) for k, v in mistakes.items()}
        diagnoses[f"{what} is unchanged: merge it as well"] = old
        kw = {"what": what, "diagnoses": diagnoses, "known": {"N": sum(SHARES)}}
        kw["program"], right = (MERGE, env, what), right.expand_as(value)
        kw["program"] = kw["program"] if all(results) else None  # mean wrong: not var
        results.append(compare(f"{label} {what[8:12]}", value, right, tol=TOL, **kw))
    return results
