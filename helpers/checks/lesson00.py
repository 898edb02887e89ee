"""Checks for notebook 00 (setup and conventions)."""

__all__ = ["batch_stats"]  # each public check has wrong versions in tests/mutants/

import numpy as np

from ._core import call, compare, expect_raises, ok, run_check, to_numpy, torch

WRAPS = "right on int64, wrong on uint8: uint8 arithmetic wraps: compute in float64"
STATS = """mu = x.mean(axis=0)
var = ((x - mu) ** 2).mean(axis=0)
var_unbiased = ((x - mu) ** 2).sum(axis=0) / (len(x) - 1)"""  # neighbours' reference


def _stats_results(fn, x, label="batch_stats", hint="") -> list:
    """``fn(x)``'s statistics against torch's in float64; the first wrong one blamed."""
    tol = 10 * float(np.finfo(x.dtype).eps) if x.dtype.char in "ef" else 1e-10
    value, problem = call(label, fn, x, returns=(3, "mu, var, var_unbiased"))
    if problem is not None:
        return [problem]
    t, (n, d), results = torch().from_numpy(x.astype(np.float64)), x.shape, []
    biased, unbiased = t.var(0, correction=0), t.var(0, correction=1)
    per = f"one value per example (N={n}), not one per feature (D={d}): "
    over = "statistics of an example's features; take them over axis 0 of x, not x.T"
    bessel, std = f"N/(N-1) = {n}/{n - 1}", "this is a standard deviation: square it"
    why = "this is the {} variance (divides by {}); `var` is the biased one (np.var's "
    why += "default ddof=0), `var_unbiased` divides by N-1 (ddof=1)"
    other = {1: {std: biased.sqrt(), why.format("unbiased", "N-1"): unbiased}}
    other[2] = {std: unbiased.sqrt(), why.format("biased", "N"): biased}
    stats = {"mu": t.mean(0), "var": biased, "var_unbiased": unbiased}
    common = dict(returns=stats, returned=value, known={bessel: n / (n - 1), "N": n})
    causes = {f"factor {bessel}": "the sum is divided by N-1, not N"}  # mu's only
    for i, (what, want) in enumerate(stats.items()):
        statistic = lambda z, i=i: z.var(0, correction=i - 1) if i else z.mean(0)
        across = np.shape(theirs := to_numpy(value[i])) == (n,) and d > 1
        across = across and np.allclose(theirs, to_numpy(statistic(t.T)))
        kwargs = dict(common, what=what, source=(statistic, t), diagnoses=other.get(i))
        hints = {(n,): per + (over if across else "reduce over axis 0, the examples")}
        kwargs |= dict(causes={} if i else causes, shape_hints=hints if n != d else {})
        program = (STATS, {"x": x.astype(np.float64)}, what) if all(results) else None
        kwargs |= dict(hint=hint, program=program)  # one edit: of the first wrong only
        if i:  # a variance: the other one, a standard deviation, about their mu
            centres = {"0 (x is not centred) or 2·mu (the same sums)": 0.0}
            centres["the mean of all the values, not from each feature's"] = t.mean()
            if np.shape(mu := to_numpy(value[0])) == (d,) and not results[0]:
                centres["your mu, which is wrong: fix mu"] = t.new_tensor(mu)
            for centre, c in centres.items():
                spread = ((t - c) ** 2).sum(0) / (n + 1 - i)
                kwargs["diagnoses"][f"the deviations are taken from {centre}"] = spread
        results.append(compare(f"{label} {what}", value[i], want, tol=tol, **kwargs))
    return results


def batch_stats(fn, x=None, quiet: bool = False, strict: bool | None = None):
    """Check ``fn(x) -> (mu, var, var_unbiased)``; also N = 2, one feature, float32."""
    loc, scale = [12.0, -3.0, 0.5, 7.0, 100.0], [5.0, 0.1, 2.0, 30.0, 1.0]
    batch = np.random.default_rng(0).normal(loc, scale, (16, 5))  # very unlike features
    given, x = x is not None, batch if x is None else np.asarray(x)
    x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
    extra = {  # not the graded test's own shapes, which stay hidden
        "batch_stats N=2": (rng := np.random.default_rng(1)).normal(-4.0, 3.0, (2, 5)),
        "batch_stats N=48": rng.normal(-4.0, 3.0, (48, 5)),  # past any small-N rule
        "batch_stats D=1": rng.normal(-4.0, 3.0, (9, 1)),
        "batch_stats float32": rng.normal(size=(6, 3)).astype(np.float32),
        "batch_stats zeros": rng.integers(0, 4, (7, 3)) * [1.0, 1.0, 0.0],  # ReLU
        "batch_stats int64": rng.integers(0, 256, (7, 3)),  # pixels: float statistics
        "batch_stats uint8": rng.integers(0, 256, (7, 3), np.uint8),  # x - c wraps
        "batch_stats again, new values": batch * 2 - 1,  # the first one's shape
    }
    extra["batch_stats zeros"][3] = 0  # an example of zeros is one (not padding)

    def body():
        results = _stats_results(fn, x)
        for label, batch in extra.items() if all(results) and not given else ():
            hint = WRAPS if "uint8" in label and results[-1].passed else ""  # int64 ok
            bad = [r for r in _stats_results(fn, batch, label, hint) if not r]
            results += bad[:1] or [ok(label, "right")]
        why = "with N=1 the unbiased variance divides by N-1 = 0"
        one = expect_raises("batch_stats batch of one", fn, ValueError, why, x[:1])
        why = "N=0: no statistic at all; the exercise asks for a ValueError when N < 2"
        none = expect_raises("batch_stats empty batch", fn, ValueError, why, x[:0])
        return results + [one, none]

    return run_check("batch_stats", body, quiet=quiet, strict=strict)
