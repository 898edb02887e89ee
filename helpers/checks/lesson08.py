"""Checks for notebook 08 (batch norm across devices).

Every check runs the learner's function on several ranks at once, as threads
of this process with a summing ``all_reduce`` (``helpers.distributed.
SimulatedRanks``): rank ``r`` gets its slice of one batch and must produce
what one process computes on the whole batch (PyTorch, float64).  The slices
have different sizes, so a mean of the ranks' means (which ignores how many
examples each has) is told apart from the mean of the batch.
"""

from __future__ import annotations

# The public checks: each one has wrong implementations in tests/mutants/.
__all__ = [
    "sync_batchnorm_forward",
    "sync_batchnorm_backward",
    "sync_bn_layer",
    "merge_running_stats",
]

import numpy as np

from .. import distributed
from ._core import (
    EPS,
    Result,
    call,
    compare,
    ema_problem,
    info,
    ok,
    run_check,
    stages,
    unpack,
    wrong,
)
from ._core import torch as torch_

TOL = 1e-12  # float64, against one process on the whole batch
SIZES = (3, 6, 5)  # examples per rank: unequal on purpose
CHANNELS = 4

# Library calls that would solve an exercise for the learner: the grader
# flags them in its notes column (tools/grading/flags.py), it does not fail them.
SHORTCUTS = {
    "sync_batchnorm_forward": (r"\bbatch_norm\b", r"\bnn\.\w*BatchNorm\w*"),
    "sync_batchnorm_backward": (r"\bautograd\b", r"\.backward\("),
    "sync_bn_forward": (r"\bbatch_norm\b", r"\bnn\.\w*BatchNorm\w*"),
    "sync_bn_backward": (r"\bautograd\b", r"\.backward\("),
}


def problem(seed: int = 0, sizes=SIZES, offset=12.0):
    """(slices of x, gamma, beta, slices of dout): float64, mean ``offset``."""
    torch = torch_()
    gen = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    x = torch.randn(n, CHANNELS, generator=gen, dtype=torch.float64) * 5 + offset
    x[:, 1] += 3 * torch.arange(n, dtype=torch.float64) / n  # ranks' means differ
    gamma = torch.rand(CHANNELS, generator=gen, dtype=torch.float64) + 0.5
    beta = torch.randn(CHANNELS, generator=gen, dtype=torch.float64)
    dout = torch.randn(n, CHANNELS, generator=gen, dtype=torch.float64)
    return list(x.split(list(sizes))), gamma, beta, list(dout.split(list(sizes)))


def _ranks(name, fn, per_rank, copy_inputs=True):
    """Run ``fn`` on every rank: (results, ranks, None) or (None, None, Result).
    The ranks get copies of ``per_rank`` unless ``copy_inputs`` is false."""
    ranks = distributed.SimulatedRanks(len(per_rank), timeout=20.0)
    value, problem_ = call(name, ranks.run, fn, per_rank, copy_inputs=copy_inputs)
    return (None, None, problem_) if problem_ is not None else (value, ranks, None)


# --------------------------------------------------------------------------
# the forward pass
# --------------------------------------------------------------------------


def _read_back(xs, gamma, beta):
    """The ranks' outputs read back stage by stage (``_core.stages``), per rank:
    the statistics that exist on 3 ranks of unequal sizes are the candidates."""
    torch = torch_()
    full = torch.cat(xs).numpy()
    ranks = np.repeat(np.arange(len(xs)), [len(x) for x in xs])
    sizes, world = np.array([len(x) for x in xs], float), len(xs)

    def per_rank(f):  # a statistic of each rank's slice, on that rank's rows
        return np.concatenate([np.repeat(f(x.numpy())[None], len(x), 0) for x in xs])

    own_mean, own_var = per_rank(lambda x: x.mean(0)), per_rank(lambda x: x.var(0))
    means = own_mean[np.cumsum(sizes).astype(int) - 1]  # one row per rank
    variances = own_var[np.cumsum(sizes).astype(int) - 1]
    var, n = full.var(0), len(full)
    counts = sizes[ranks][:, None]
    weighted = (sizes[:, None] * variances).sum(0) / n
    mean_of_means = means.mean(0)

    def read(out):
        return stages(
            out,
            full,
            gamma.numpy(),
            beta.numpy(),
            eps=EPS,
            groups=ranks,
            means={
                "the batch mean": full.mean(0),
                "this rank's own mean (a ghost batch: all-reduce the sums)": own_mean,
                "the mean of the ranks' means (unweighted by their sizes)": (
                    mean_of_means
                ),
            },
            variances={
                "the batch's biased variance": var,
                "the unbiased variance (divides by N - 1)": var * n / (n - 1),
                "this rank's own variance (a ghost batch)": own_var,
                "the average of the ranks' variances (it misses the spread of "
                "their means: law of total variance)": variances.mean(0),
                "the count-weighted average of the ranks' variances (it misses the "
                "spread of their means)": weighted,
                "the squared deviations summed over ranks divided by W * n_rank "
                "(N = W * this rank's count)": var * n / (world * counts),
                "the variance around the mean of the ranks' means": (
                    (full - mean_of_means) ** 2
                ).mean(0),
            },
        )

    return [read]


def _precision_note(fn, seed) -> Result:
    """float32 with mean 1e4 and std 1: where E[x^2] - E[x]^2 cancels."""
    torch = torch_()
    name = "sync_batchnorm_forward float32"
    xs, gamma, beta, _ = problem(seed, offset=1e4)
    xs = [(x - x.mean()) / 5 + 1e4 for x in xs]  # std about 1 around 10,000
    xs32 = [x.float() for x in xs]
    per_rank = [(x, gamma.float(), beta.float()) for x in xs32]
    results, _, problem_ = _ranks(name, fn, per_rank)
    if problem_ is not None:
        return info(name, f"skipped ({problem_.detail})")
    full = torch.cat(xs)
    want = torch.nn.functional.batch_norm(full, None, None, gamma, beta, True, 0.0, EPS)
    got = torch.cat([torch.as_tensor(out).double() for out, _ in results])
    err = float((got - want).abs().max())
    if err < 1e-2:
        return info(name, f"max abs. error {err:.1e}: numerically stable")
    return info(
        name,
        f"max abs. error {err:.1e} in float32: E[x^2] - E[x]^2 cancels when the mean "
        "is large against the spread; all-reduce the sum first, then the squared "
        "deviations from the global mean (or merge per-rank means and variances)",
    )


def sync_batchnorm_forward(fn, *, seed=0, quiet=False, strict=None):
    """Check ``fn(x, gamma, beta, all_reduce, eps=1e-5) -> (out, cache)`` on 3 ranks."""
    name = "sync_batchnorm_forward"
    torch = torch_()

    def body():
        xs, gamma, beta, _ = problem(seed)
        results, ranks, problem_ = _ranks(name, fn, [(x, gamma, beta) for x in xs])
        if problem_ is not None:
            return problem_
        outs = []
        for rank, value in enumerate(results):
            items, problem_ = unpack(f"{name} rank {rank}", value, 2, "out, cache")
            if problem_ is not None:
                return problem_
            outs.append(torch.as_tensor(items[0]))
        shapes = {tuple(o.shape) for o in outs}
        if shapes != {(n, CHANNELS) for n in SIZES} or len(outs) != len(SIZES):
            return wrong(
                name,
                f"rank outputs of shapes {[tuple(o.shape) for o in outs]}: each rank "
                "returns its own slice, normalised, of the shape of its x",
            )
        full = torch.cat(xs)
        want = torch.nn.functional.batch_norm(
            full, None, None, gamma, beta, training=True, eps=EPS
        )
        result = compare(
            f"{name} (3 ranks)",
            torch.cat(outs),
            want,
            tol=TOL,
            what="the ranks' outputs",
            readers=_read_back(xs, gamma, beta),
        )
        if result.passed:
            result.detail += (
                f"; {ranks.calls} all-reduce call(s), {ranks.elements} numbers sent "
                "by each rank"
            )
        if not result.passed:
            return result
        return [result, *_running_results(fn, seed), _precision_note(fn, seed)]

    return run_check(name, body, quiet=quiet, strict=strict)


# --------------------------------------------------------------------------
# the forward pass's running statistics (PyTorch's convention)
# --------------------------------------------------------------------------

RUNNING_SIZES = (4, 7, 1)  # a rank of one example: n_r / (n_r - 1) is infinite
MOMENTUM = 0.3  # not PyTorch's default 0.1, so that an ignored argument shows


def _running_start(seed):
    """The running statistics every rank holds before the step (float64)."""
    torch = torch_()
    gen = torch.Generator().manual_seed(seed + 1000)
    mean = torch.randn(CHANNELS, generator=gen, dtype=torch.float64) + 2
    var = torch.rand(CHANNELS, generator=gen, dtype=torch.float64) + 0.5
    return mean, var


def torch_running(xs, mean0, var0, momentum=MOMENTUM):
    """running_mean and running_var of ``nn.BatchNorm1d`` after one training
    step on the concatenated batch: the reference, PyTorch itself."""
    torch = torch_()
    bn = torch.nn.BatchNorm1d(CHANNELS, momentum=momentum).double()
    with torch.no_grad():
        bn.running_mean.copy_(mean0)
        bn.running_var.copy_(var0)
        bn.train()(torch.cat(xs))
    return bn.running_mean.clone(), bn.running_var.clone()


def _running_mistakes(xs, mean0, var0, m=MOMENTUM):
    """Per statistic: {message: what every rank would hold (rows: ranks)}."""
    full = torch_().cat(xs).numpy()
    mean0, var0 = mean0.numpy(), var0.numpy()
    sizes = np.array([len(x) for x in xs], float)[:, None]
    world, n = len(xs), len(full)
    mean, var = full.mean(0), full.var(0)
    own_mean = np.stack([x.numpy().mean(0) for x in xs])
    own_var = np.stack([x.numpy().var(0) for x in xs])
    with np.errstate(all="ignore"):
        own_unbiased = own_var * sizes / (sizes - 1)
        local_count = var * sizes / (sizes - 1)

    def rows(old, stat, k=m):
        return np.broadcast_to((1 - k) * old + k * stat, (world, len(old)))

    unbiased = var * n / (n - 1)
    mean_rows = {
        "running_mean averages in this rank's own mean (a ghost batch): use the "
        "all-reduced mean of the whole batch": rows(mean0, own_mean),
        "running_mean averages in the mean of the ranks' means: weigh them by their "
        "counts (use the whole batch's mean)": rows(mean0, own_mean.mean(0)),
        "running_mean moved by 1 - momentum: momentum weights the new batch, "
        "(1 - momentum) * running_mean + momentum * mean": rows(mean0, mean, 1 - m),
        "running_mean moved by 0.1, not by the momentum passed (0.3): use the "
        "momentum argument": rows(mean0, mean, 0.1),
        "running_mean did not change for the caller: update the tensor in place "
        "(running_mean.mul_(1 - momentum).add_(momentum * mean)); assigning a new "
        "tensor to the name changes nothing outside your function": rows(mean0, mean0),
    }
    var_rows = {
        "running_var uses this rank's count for the unbiased correction, "
        "n_r / (n_r - 1) (infinite on a rank of 1 example): use the whole batch's "
        "N / (N - 1), N the all-reduced count": rows(var0, local_count),
        "running_var stores the biased variance: PyTorch stores the unbiased one, "
        "variance * N / (N - 1) with N the whole batch's count": rows(var0, var),
        "running_var averages in this rank's own unbiased variance (a ghost "
        "batch): use the whole batch's": rows(var0, own_unbiased),
        "running_var averages in the average of the ranks' own variances (it "
        "misses the spread of their means, and weighs them equally): use the whole "
        "batch's unbiased variance": rows(var0, own_unbiased.mean(0)),
        "running_var averages in the average of the ranks' biased variances: use "
        "the whole batch's unbiased variance": rows(var0, own_var.mean(0)),
        "running_var moved by 1 - momentum: momentum weights the new batch, "
        "(1 - momentum) * running_var + momentum * unbiased variance": rows(
            var0, unbiased, 1 - m
        ),
        "running_var moved by 0.1, not by the momentum passed (0.3): use the "
        "momentum argument": rows(var0, unbiased, 0.1),
        "running_var did not change for the caller: update the tensor in place "
        "(running_var.mul_(1 - momentum).add_(momentum * unbiased)); assigning a "
        "new tensor to the name changes nothing outside your function": rows(
            var0, var0
        ),
    }
    return mean_rows, var_rows


def _same_rows(got, cand) -> bool:
    """Equal to 1e-9 where finite, and non-finite at the same places."""
    got, cand = np.asarray(got, float), np.asarray(cand, float)
    if got.shape != cand.shape:
        return False
    finite = np.isfinite(cand)
    if not np.array_equal(np.isfinite(got), finite):
        return False
    return bool(np.allclose(got[finite], cand[finite], rtol=1e-9, atol=1e-12))


def _running_results(fn, seed) -> list[Result]:
    """Run ``fn`` with running statistics on 3 ranks (4, 7 and 1 examples) and
    compare every rank's buffers with nn.BatchNorm1d on the whole batch."""
    name = "sync forward running stats"
    xs, gamma, beta, _ = problem(seed, sizes=RUNNING_SIZES)
    mean0, var0 = _running_start(seed)
    buffers = [(mean0.clone(), var0.clone()) for _ in xs]
    # the ranks get copies of the inputs (only the buffers are theirs to write):
    # the reference below is built from the check's own, untouched xs
    given = [(x.clone(), gamma.clone(), beta.clone()) for x in xs]
    per_rank = [(*g, rm, rv) for g, (rm, rv) in zip(given, buffers, strict=True)]

    def on_rank(x, g, b, rm, rv, all_reduce):  # positional, as PyTorch orders them
        return fn(x, g, b, all_reduce, EPS, rm, rv, MOMENTUM)

    _, _, problem_ = _ranks(name, on_rank, per_rank, copy_inputs=False)
    if problem_ is not None:
        if "positional argument" in problem_.detail:
            problem_.detail += (
                "; the function takes (x, gamma, beta, all_reduce, eps=1e-5, "
                "running_mean=None, running_var=None, momentum=0.1)"
            )
        return [problem_]
    for rank, (x, g, b) in enumerate(given):
        if not all(torch_().equal(*p) for p in ((x, xs[rank]), (g, gamma), (b, beta))):
            return [
                wrong(
                    name,
                    f"rank {rank} changed its input x, gamma or beta in place: only "
                    "running_mean and running_var are the function's to write",
                )
            ]
    return _buffer_results(buffers, xs, mean0, var0)


def _buffer_results(buffers, xs, mean0, var0) -> list[Result]:
    """Every rank's (running_mean, running_var) in ``buffers`` against
    nn.BatchNorm1d after one training step on the whole batch."""
    want_mean, want_var = torch_running(xs, mean0, var0)
    mistakes = _running_mistakes(xs, mean0, var0)
    return [
        _judge_running(
            what,
            np.stack([np.asarray(b[k].detach(), float) for b in buffers]),
            want,
            mistakes[k],
            lambda g, what=what, k=k: _core_ema(what, g, (mean0, var0)[k], xs, k),
        )
        for k, (what, want) in enumerate(
            (("running_mean", want_mean), ("running_var", want_var))
        )
    ]


def _judge_running(what, got, want, mistakes, reader) -> Result:
    """One running statistic of every rank (rows of ``got``) against PyTorch's
    ``want``: ok, a named mistake, a non-finite or diverging rank, or how it
    differs (``reader``: ``_core.ema_problem``)."""
    label = f"sync forward {what}"
    rows = np.broadcast_to(want.numpy(), got.shape)
    if np.all(np.isfinite(got)):
        err = float(np.abs(got - rows).max() / np.abs(rows).max())
        if err <= TOL:
            return ok(
                label,
                "all 3 ranks (4, 7, 1 examples) equal nn.BatchNorm1d on the whole "
                f"batch, max rel. error {err:.1e} (expect < {TOL:.0e})",
                err,
                TOL,
            )
    named = next((m for m, cand in mistakes.items() if _same_rows(got, cand)), None)
    if named is not None:
        return wrong(label, named)
    bad = [r for r in range(len(got)) if not _same_rows(got[r], rows[r])]
    infinite = [r for r in bad if not np.all(np.isfinite(got[r]))]
    if infinite:
        return wrong(
            label,
            f"{what} is not finite on rank {infinite[0]} "
            f"({RUNNING_SIZES[infinite[0]]} example(s)): a division by this rank's "
            "count (minus one)? Use the whole batch's count N",
        )
    if np.ptp(got, axis=0).max() > 1e-9 * np.abs(got).max():
        return wrong(
            label,
            f"the ranks hold different {what} (ranks {bad} differ from PyTorch's): "
            "each rank must update with the whole batch's statistics, so that all "
            "ranks keep the same buffers",
        )
    return compare(label, got[0], want, tol=TOL, what=what, readers=[reader])


def _core_ema(what, new, old, xs, k):
    """How ``new`` differs from PyTorch's update (``_core.ema_problem``)."""
    full = torch_().cat(xs).numpy()
    n = len(full)
    batch = full.mean(0) if k == 0 else full.var(0) * n / (n - 1)
    return ema_problem(
        what,
        new,
        old,
        batch,
        MOMENTUM,
        statistics={"the biased variance": full.var(0)} if k else None,
    )


# --------------------------------------------------------------------------
# the backward pass
# --------------------------------------------------------------------------


def _full_gradients(xs, gamma, beta, douts):
    """dx, dgamma, dbeta of batch norm on the whole batch (autograd, float64)."""
    torch = torch_()
    x = torch.cat(xs).clone().requires_grad_()
    g, b = gamma.clone().requires_grad_(), beta.clone().requires_grad_()
    out = torch.nn.functional.batch_norm(x, None, None, g, b, training=True, eps=EPS)
    out.backward(torch.cat(douts))
    return x.grad, g.grad, b.grad


def _statistics(xs):
    """The whole batch's mean and 1 / sqrt(biased variance + eps)."""
    full = torch_().cat(xs)
    return full.mean(0), 1 / (full.var(0, correction=0) + EPS).sqrt()


def _backward_mistakes(xs, gamma, douts):
    """dx of the usual mistakes, concatenated over the ranks."""
    torch = torch_()

    def closed_form(x, dy, mean, rho, mean_dy, mean_dy_xhat):
        x_hat = (x - mean) * rho
        return gamma * rho * (dy - mean_dy - x_hat * mean_dy_xhat)

    pairs = list(zip(xs, douts, strict=True))
    dfull, (mean, rho) = torch.cat(douts), _statistics(xs)
    x_hat = (torch.cat(xs) - mean) * rho
    sums = dfull.sum(0), (dfull * x_hat).sum(0)

    def per_rank(stats, means):  # dx with each rank's statistics and means
        return torch.cat(
            [closed_form(x, dy, *stats(x), *means(x, dy, *stats(x))) for x, dy in pairs]
        )

    own = lambda x: (x.mean(0), 1 / (x.var(0, correction=0) + EPS).sqrt())  # noqa: E731
    local = lambda x, dy, m, r: (dy.mean(0), (dy * (x - m) * r).mean(0))  # noqa: E731
    return {
        "dx divides the all-reduced sums by this rank's count: divide by the whole "
        "batch's count N (the forward pass's all-reduced count)": per_rank(
            lambda x: (mean, rho),
            lambda x, dy, m, r: (sums[0] / len(x), sums[1] / len(x)),
        ),
        "dx uses this rank's own means of dy and dy * x_hat: all-reduce their sums "
        "(and divide by the whole batch's count), as the forward pass did": per_rank(
            lambda x: (mean, rho), local
        ),
        "dx is per-device batch norm's (ghost batch): the backward pass must use "
        "the whole batch's statistics and all-reduced sums": per_rank(own, local),
        "dx misses the term through the variance: subtract x_hat * mean(dy * x_hat)": (
            gamma * rho * (dfull - dfull.mean(0))
        ),
        "dx misses the term through the mean: subtract the batch mean of dy": (
            gamma * rho * (dfull - x_hat * (dfull * x_hat).mean(0))
        ),
    }


def _param_result(name, grads, shares, what, sizes):
    """The sum over ranks of the learner's ``what`` (one (C,) share per rank)
    against the sum of the true per-rank ``shares``."""
    torch = torch_()
    shapes = [tuple(torch.as_tensor(g).shape) for g in grads]
    if any(s != (CHANNELS,) for s in shapes):
        return wrong(
            name,
            f"{what} has the shapes {shapes} on the ranks, expected ({CHANNELS},) "
            "each: sum this rank's examples' contributions over axis 0 (gamma and "
            "beta are shared by every example)",
        )
    total = torch.stack([torch.as_tensor(g) for g in grads]).sum(0)
    want = torch.stack(shares).sum(0)
    return compare(
        name,
        total,
        want,
        tol=1e-10,
        what=f"the sum over ranks of {what}",
        diagnoses={
            f"{what} was all-reduced: each rank returns its own share (the sum over "
            "its slice); the data-parallel wrapper (DDP) reduces every parameter's "
            "gradient over the ranks afterwards, so all-reducing here as well counts "
            f"the shares {len(sizes)} times": len(sizes) * want,
            f"{what} is averaged over the slice: gamma and beta are shared by every "
            "example, so sum over axis 0": torch.stack(
                [share / n for share, n in zip(shares, sizes, strict=True)]
            ).sum(0),
        },
    )


def _gradient_results(name, grads, xs, gamma, beta, douts) -> list[Result]:
    """Every rank's (dx, dgamma, dbeta) against one process on the whole batch:
    dx put together, dgamma and dbeta summed over the ranks (DDP's reduction)."""
    torch = torch_()
    sizes = [len(x) for x in xs]
    dxs = [torch.as_tensor(g[0]) for g in grads]
    if [tuple(d.shape) for d in dxs] != [(n, CHANNELS) for n in sizes]:
        return [wrong(name, "each rank returns dx for its own slice only")]
    mean, rho = _statistics(xs)
    shares = [
        [(dy * (x - mean) * rho).sum(0) for x, dy in zip(xs, douts)],
        [dy.sum(0) for dy in douts],
    ]
    diagnoses = _backward_mistakes(xs, gamma, douts)
    return [
        compare(
            f"{name} dx",
            torch.cat(dxs),
            _full_gradients(xs, gamma, beta, douts)[0],
            tol=1e-10,
            what="dx",
            diagnoses=diagnoses,
        ),
        *(
            _param_result(
                f"{name} {what}", [g[k + 1] for g in grads], shares[k], what, sizes
            )
            for k, what in enumerate(("dgamma", "dbeta"))
        ),
    ]


def sync_batchnorm_backward(forward, backward, *, seed=0, quiet=False, strict=None):
    """Check ``backward(dout, cache, all_reduce) -> (dx, dgamma, dbeta)`` on 3
    ranks, each with the cache of ``forward`` on its slice."""
    name = "sync_batchnorm_backward"

    def both(x, gamma, beta, dout, all_reduce):
        value = forward(x, gamma, beta, all_reduce)
        if not isinstance(value, tuple) or len(value) != 2:
            raise ValueError("the forward pass must return (out, cache)")
        return backward(dout, value[1], all_reduce)

    def body():
        xs, gamma, beta, douts = problem(seed)
        per_rank = [(x, gamma, beta, d) for x, d in zip(xs, douts, strict=True)]
        results, _, problem_ = _ranks(name, both, per_rank)
        if problem_ is not None:
            return problem_
        grads = []
        for rank, value in enumerate(results):
            items, problem_ = unpack(
                f"{name} rank {rank}", value, 3, "dx, dgamma, dbeta"
            )
            if problem_ is not None:
                return problem_
            grads.append(items)
        return _gradient_results(name, grads, xs, gamma, beta, douts)

    return run_check(name, body, quiet=quiet, strict=strict)


# --------------------------------------------------------------------------
# the capstone: the layer as torch.autograd.Function's two halves
# --------------------------------------------------------------------------

SAVED = "(x, gamma, mean, invstd, count)"


def _saved_problem(name, saved, x, gamma) -> str | None:
    """None, or why ``saved`` is not the tuple ctx.save_for_backward keeps."""
    torch = torch_()
    if saved is None or (isinstance(saved, (tuple, list)) and not saved):
        return (
            f"saved is {saved!r}: the forward pass saves nothing for backward; "
            f"return the tensors ctx.save_for_backward keeps, {SAVED}"
        )
    if not isinstance(saved, (tuple, list)) or len(saved) != 5:
        return f"saved must be a tuple of 5 tensors, {SAVED}"
    kinds = [type(s).__name__ for s in saved if not isinstance(s, torch.Tensor)]
    if kinds:
        return (
            f"saved holds a {kinds[0]}: ctx.save_for_backward takes tensors only "
            "(keep the count as the all-reduced tensor)"
        )
    if saved[2].numel() != CHANNELS or saved[3].numel() != CHANNELS:
        return f"saved mean and invstd must hold one value per channel ({CHANNELS})"
    if saved[4].numel() != 1:
        return "saved count must be one number, the whole batch's N (a tensor)"
    for i, (got, want) in enumerate(((saved[0], x), (saved[1], gamma))):
        if got.shape != want.shape or not torch.equal(got, want):
            return (
                f"saved[{i}] is not the {('input x', 'gamma')[i]} itself: save "
                f"{SAVED}, as PyTorch's SyncBatchNorm does (backward recomputes "
                "x_hat from x, mean and invstd)"
            )
    return None


def _layer_forward(name, results, xs, gamma, beta) -> list[Result] | None:
    """The ranks' saved statistics, then their output: the first stage wrong."""
    torch = torch_()
    items = []
    for rank, value in enumerate(results):
        pair, problem_ = unpack(f"{name} rank {rank}", value, 2, "out, saved")
        if problem_ is not None:
            return [problem_]
        why = _saved_problem(name, pair[1], xs[rank], gamma)
        if why is not None:
            return [wrong(f"{name} rank {rank}", why)]
        items.append(pair)
    mean, invstd = _statistics(xs)
    full, world = torch.cat(xs), len(xs)
    own = [(x.mean(0), x.var(0, correction=0)) for x in xs]
    var, n = full.var(0, correction=0), len(full)
    counts = torch.tensor([float(len(x)) for x in xs], dtype=torch.float64)[:, None]
    rows = lambda t: t.expand(world, CHANNELS)  # noqa: E731
    root = lambda v: 1 / (v + EPS).sqrt()  # noqa: E731
    stages_ = (
        (
            "mean",
            2,
            mean,
            {
                "the saved mean is this rank's own mean (a ghost batch): all-reduce the "
                "sum and the count": torch.stack([m for m, _ in own]),
                "the saved mean is the mean of the ranks' means (unweighted by their "
                "sizes): divide the all-reduced sum by the all-reduced count": rows(
                    torch.stack([m for m, _ in own]).mean(0)
                ),
            },
        ),
        (
            "invstd",
            3,
            invstd,
            {
                "the saved invstd uses this rank's own variance (a ghost batch)": root(
                    torch.stack([v for _, v in own])
                ),
                "the saved invstd uses the unbiased variance: normalise with the biased "
                "one, divided by N": rows(root(var * n / (n - 1))),
                "the saved invstd has eps outside the square root: 1 / sqrt(var + eps)": rows(
                    1 / (var.sqrt() + EPS)
                ),
                "the saved invstd uses the average of the ranks' variances (it misses the "
                "spread of their means)": rows(
                    root(torch.stack([v for _, v in own]).mean(0))
                ),
                "the saved invstd divides the squared deviations by W * n_rank, not by the "
                "all-reduced count N": root(var * n / (world * counts)),
            },
        ),
    )
    for what, k, want, diagnoses in stages_:
        got = torch.stack([s[k].reshape(CHANNELS).double() for _, s in items])
        result = compare(
            f"{name} saved {what}",
            got,
            rows(want),
            tol=TOL,
            what=f"the saved {what}",
            diagnoses=diagnoses,
            axis=None,
        )
        if not result.passed:
            return [result]
    counts_ = [float(s[4].reshape(())) for _, s in items]
    if any(c != n for c in counts_):
        return [
            wrong(
                f"{name} saved count",
                f"the saved counts are {counts_}: save "
                f"the whole batch's count N = {n}, all-reduced",
            )
        ]
    x_hat = (full - mean) * invstd
    out = torch.cat([torch.as_tensor(o) for o, _ in items])
    result = compare(
        f"{name} out",
        out,
        gamma * x_hat + beta,
        tol=TOL,
        what="the ranks' outputs",
        diagnoses={
            "gamma and beta are not applied: out = gamma * x_hat + beta": x_hat,
            "gamma and beta are swapped: out = gamma * x_hat + beta": beta * x_hat
            + gamma,
        },
    )
    return [result]


def sync_bn_layer(forward, backward, *, seed=0, quiet=False, strict=None):
    """Check the capstone's halves of a torch.autograd.Function on 3 ranks of 4,
    7 and 1 examples: ``forward(x, gamma, beta, running_mean, running_var,
    all_reduce, eps, momentum) -> (out, saved)`` (saved: the tensors for
    ctx.save_for_backward, then out, then the running statistics, stage by
    stage) and ``backward(saved, dout, all_reduce) -> (dx, dgamma, dbeta, None,
    None)``, given the right saved tensors (so it is judged on its own)."""
    name = "sync_bn_layer"
    torch = torch_()

    def body():
        xs, gamma, beta, douts = problem(seed, sizes=RUNNING_SIZES)
        mean0, var0 = _running_start(seed)
        buffers = [(mean0.clone(), var0.clone()) for _ in xs]
        given = [
            (x.clone(), gamma.clone(), beta.clone(), *b) for x, b in zip(xs, buffers)
        ]

        def step(x, g, b, rm, rv, all_reduce):
            return forward(x, g, b, rm, rv, all_reduce, EPS, MOMENTUM)

        results, _, problem_ = _ranks(f"{name} forward", step, given, copy_inputs=False)
        found = [problem_] if problem_ is not None else (
            _layer_forward(name, results, xs, gamma, beta)
        )
        if all(r.passed for r in found):
            found += _buffer_results(buffers, xs, mean0, var0)
        mean, invstd = _statistics(xs)
        count = torch.tensor([float(sum(RUNNING_SIZES))], dtype=torch.float64)
        saved = [(x, gamma, mean, invstd, count) for x in xs]
        values, _, problem_ = _ranks(
            f"{name} backward", backward, list(zip(saved, douts))
        )
        grads = []
        for rank, value in enumerate(values or ()):
            items, problem_ = unpack(
                f"{name} backward rank {rank}",
                value,
                5,
                "dx, dgamma, dbeta, None, None: one gradient per input of forward; "
                "None for running_mean and running_var",
            )
            if problem_ is not None:
                break
            grads.append(items)
        if problem_ is not None:
            return [*found, problem_]
        return [
            *found,
            *_gradient_results(f"{name} backward", grads, xs, gamma, beta, douts),
        ]

    return run_check(name, body, quiet=quiet, strict=strict)


# --------------------------------------------------------------------------
# running statistics across ranks
# --------------------------------------------------------------------------


BN_AT = (1, 4, 6, 8, 10)  # BatchNorm1d twice, BatchNorm2d, BatchNorm3d, SyncBatchNorm
SHARES = (50, 200, 20)  # examples behind each rank's statistics: unequal on purpose


def _rank_models(seed):
    """Three ranks' copies of one net with five BN layers (every kind a merge
    meets) whose running statistics drifted apart: different means, variances
    and batch counts."""
    torch = torch_()
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    models = []
    for rank in range(len(SHARES)):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Linear(3, 5),
            nn.BatchNorm1d(5),
            nn.ReLU(),
            nn.Linear(5, 4),
            nn.BatchNorm1d(4),
            nn.Unflatten(1, (4, 1, 1)),
            nn.BatchNorm2d(4),
            nn.Unflatten(2, (1, 1)),
            nn.BatchNorm3d(4),
            nn.Flatten(),
            nn.SyncBatchNorm(4),  # its buffers exist on a CPU; its forward needs a GPU
        ).double()
        with torch.no_grad():
            for bn in (model[i] for i in BN_AT):
                bn.running_mean.copy_(
                    torch.randn(bn.num_features, generator=gen) + 1.5 * rank
                )
                bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
                bn.num_batches_tracked.fill_(10 + rank)
        models.append(model)
    return models


def _candidates(models, index):
    """(right mean, right var, {message: mean}, {message: var}) of one layer:
    the mean and unbiased variance of all ranks' values (Chan et al.)."""
    torch = torch_()
    means = torch.stack([m[index].running_mean for m in models])
    variances = torch.stack([m[index].running_var for m in models])
    n = torch.tensor(SHARES, dtype=torch.float64)[:, None]
    big, world = n.sum(), len(models)
    mean = (n * means).sum(0) / big
    within = ((n - 1) * variances).sum(0) / (big - 1)
    var = within + (n * (means - mean) ** 2).sum(0) / (big - 1)
    equal = means.mean(0)
    mean_msgs = {
        "running_mean weighs the ranks equally (the mean of their means): weigh "
        "each by its count, sum(count * mean_r) / N with N = all_reduce(count)": equal,
        "running_mean is the sum over ranks: weigh each by count / N": means.sum(0),
        "running_mean is the count-weighted sum divided by the number of ranks, not "
        "by the total count N = all_reduce(count)": (n * means).sum(0) / world,
    }
    var_msgs = {
        "running_var misses how far the ranks' means lie from the merged mean (law "
        "of total variance: add sum(count * (mean_r - mean)^2), then divide by "
        "N - 1)": within,
        "running_var misses how far the ranks' means lie from the merged mean (law "
        "of total variance: add the count-weighted (mean_r - mean)^2)": (
            n * variances
        ).sum(0)
        / big,
        "running_var weighs the ranks equally (both terms of the law of total "
        "variance): weigh each rank by its count": variances.mean(0)
        + ((means - equal) ** 2).mean(0),
        "running_var is the plain average of the ranks' variances: weigh them by "
        "their counts, and add the spread of the ranks' means (law of total "
        "variance)": variances.mean(0),
        "running_var weighs the variances by count but the spread of the means "
        "equally (1/W): weigh both terms by the counts": within
        + ((means - mean) ** 2).mean(0),
        "running_var treats the ranks' variances as biased (weights count / N): "
        "PyTorch's running_var is unbiased, so (count - 1) * running_var is the "
        "sum of squared deviations; divide the total by N - 1": (
            n * (variances + (means - mean) ** 2)
        ).sum(0)
        / big,
        "running_var is the sum over ranks: weigh each by its count": variances.sum(0),
    }
    return mean, var, mean_msgs, var_msgs


def merge_running_stats(fn, *, seed=0, quiet=False, strict=None):
    """Check ``fn(model, all_reduce, count)``: every BN layer's running
    statistics made equal on all ranks, in place, to the mean and unbiased
    variance of all the values behind them (ranks of 50, 200 and 20)."""
    name = "merge_running_stats"

    def body():
        models = _rank_models(seed)
        layers = [_candidates(models, i) for i in BN_AT]
        buffers = [
            [id(m[i].running_mean), id(m[i].running_var)] for m in models for i in BN_AT
        ]
        params = [[p.detach().clone() for p in m.parameters()] for m in models]
        counts = [[int(m[i].num_batches_tracked) for i in BN_AT] for m in models]

        def on_rank(model, count, all_reduce):
            return fn(model, all_reduce, count)

        per_rank = [(m, n) for m, n in zip(models, SHARES, strict=True)]
        _, _, problem_ = _ranks(name, on_rank, per_rank, copy_inputs=False)
        if problem_ is None:
            problem_ = _unchanged(name, models, buffers, params, counts)
        if problem_ is not None:
            return problem_
        results = [
            result
            for rank, model in enumerate(models)
            for result in _layer_results(f"{name} rank {rank}", model, layers)
        ]
        failed = [r for r in results if not r.passed]
        if failed:  # the first layer that is wrong: its mean and its variance
            where = failed[0].name.rsplit(" ", 1)[0]
            return [r for r in failed if r.name.rsplit(" ", 1)[0] == where]
        worst = max(r.error for r in results)
        return ok(
            name,
            f"all {len(BN_AT)} BN layers (1d, 2d, 3d, SyncBatchNorm) agree on all "
            f"3 ranks (shares {', '.join(map(str, SHARES))}), max rel. error "
            f"{worst:.1e}",
        )

    return run_check(name, body, quiet=quiet, strict=strict)


def _layer_results(label, model, layers) -> list[Result]:
    """running_mean and running_var of every BN layer of one rank's model
    against the merge (``layers``: per layer, ``_candidates``, taken before)."""
    results = []
    for layer, index in enumerate(BN_AT):
        mean, var, mean_msgs, var_msgs = layers[layer]
        bn = model[index]
        name = f"{label}, BN {layer + 1}" + (
            f" ({type(bn).__name__})" if layer > 1 else ""
        )
        results.append(
            compare(
                f"{name} mean",
                bn.running_mean,
                mean,
                tol=TOL,
                what="running_mean",
                diagnoses=mean_msgs,
            )
        )
        results.append(
            compare(
                f"{name} var",
                bn.running_var,
                var,
                tol=TOL,
                what="running_var",
                diagnoses=var_msgs,
            )
        )
    return results


def _unchanged(name, models, buffers, params, counts) -> Result | None:
    """None, or what the function changed that it must not."""
    now = [[id(m[i].running_mean), id(m[i].running_var)] for m in models for i in BN_AT]
    if now != buffers:
        return wrong(
            name,
            "a buffer was replaced by a new tensor: update it in place "
            "(bn.running_mean.copy_(...)) so that the module keeps using it",
        )
    for model, before in zip(models, params, strict=True):
        if any(
            not np.array_equal(p.detach(), q)
            for p, q in zip(model.parameters(), before, strict=True)
        ):
            return wrong(name, "the weights changed: merge the buffers only")
    if [[int(m[i].num_batches_tracked) for i in BN_AT] for m in models] != counts:
        return wrong(
            name,
            "num_batches_tracked changed: it counts this rank's batches; leave it "
            "(only momentum=None reads it)",
        )
    return None
