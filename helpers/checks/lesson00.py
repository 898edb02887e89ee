"""Checks for notebook 00 (setup and conventions)."""

from __future__ import annotations

# The public checks: each one has wrong implementations in tests/mutants/.
__all__ = ["batch_stats"]

import numpy as np

from ._core import Result, call, compare, expect_raises, ok, run_check, unpack


def default_batch(seed: int = 0, n: int = 16) -> np.ndarray:
    """A batch of 5 features with very different means and scales."""
    rng = np.random.default_rng(seed)
    loc = np.array([12.0, -3.0, 0.5, 7.0, 100.0])
    scale = np.array([5.0, 0.1, 2.0, 30.0, 1.0])
    return rng.normal(loc, scale, size=(n, loc.size))


def _stats_results(fn, x, label="batch_stats") -> list[Result]:
    """``fn(x)``'s three statistics against torch's, computed in float64 from
    ``x`` in its own dtype (a float32 batch stays float32 for the learner)."""
    import torch

    tol = 1e-10 if x.dtype == np.float64 else 10 * float(np.finfo(x.dtype).eps)
    n, d = x.shape
    value, problem = call(label, fn, x)
    if problem is None:
        value, problem = unpack(label, value, 3, "mu, var, var_unbiased")
    if problem is not None:
        return [problem]
    t = torch.from_numpy(x.astype(np.float64))
    biased, unbiased = t.var(0, correction=0), t.var(0, correction=1)
    refs = {"mu": t.mean(0), "var": biased, "var_unbiased": unbiased}
    other = {
        "var": ("unbiased", "N-1", unbiased),
        "var_unbiased": ("biased", "N", biased),
    }
    hints = {
        (n,): f"one value per example (N={n}) instead of one per feature "
        f"(D={d}): reduce over axis=0, the batch axis",
        (1, d): "keepdims=True left a (1, D) array: return shape (D,)",
    }
    results = []
    for (what, want), got in zip(refs.items(), value, strict=True):
        kind, by, twin = other.get(what, (None, None, None))
        diagnoses = (
            {}
            if twin is None
            else {
                f"this is the {kind} variance (divides by {by}); `var` is the biased "
                "one (np.var's default ddof=0), `var_unbiased` divides by N-1 "
                "(ddof=1)": twin,
                "this is a standard deviation; the variance is its square": want.sqrt(),
            }
        )
        results.append(
            compare(
                f"{label} {what}",
                got,
                want,
                tol=tol,
                what=what,
                shape_hints=hints,
                diagnoses=diagnoses,
            )
        )
    return results


def batch_stats(fn, x=None, quiet: bool = False, strict: bool | None = None):
    """Check ``fn(x) -> (mu, var, var_unbiased)``: per-feature statistics of
    (N, D).  Without ``x``, also on the smallest batch (N = 2), one feature
    and a float32 batch, as the graded test does."""
    given = x is not None
    x = default_batch() if x is None else np.asarray(x)
    x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
    rng = np.random.default_rng(1)
    extra = {  # not the graded test's own shapes, which stay hidden
        "N=2": rng.normal(-4.0, 3.0, (2, 5)),
        "D=1": rng.normal(-4.0, 3.0, (9, 1)),
        "float32": rng.normal(size=(6, 3)).astype(np.float32),
    }

    def body():
        results = _stats_results(fn, x)
        if all(r.passed for r in results) and not given:
            for label, batch in extra.items():
                found = _stats_results(fn, batch, f"batch_stats {label}")
                bad = [r for r in found if not r.passed]
                results += bad[:1] or [ok(f"batch_stats {label}", "right")]
        return results + [
            expect_raises(
                "batch_stats batch of one",
                fn,
                ValueError,
                "with N=1 the unbiased variance divides by N-1 = 0",
                x[:1],
            )
        ]

    return run_check("batch_stats", body, quiet=quiet, strict=strict)
