"""Checks for notebook 00 (setup and conventions)."""

from __future__ import annotations

# The public checks: each one has wrong implementations in tests/mutants/.
__all__ = ["batch_stats"]

import numpy as np

from ._core import call, compare, expect_raises, run_check, unpack


def default_batch(seed: int = 0, n: int = 16) -> np.ndarray:
    """A batch of 5 features with very different means and scales."""
    rng = np.random.default_rng(seed)
    loc = np.array([12.0, -3.0, 0.5, 7.0, 100.0])
    scale = np.array([5.0, 0.1, 2.0, 30.0, 1.0])
    return rng.normal(loc, scale, size=(n, loc.size))


def batch_stats(fn, x=None, quiet: bool = False, strict: bool | None = None):
    """Check ``fn(x) -> (mu, var, var_unbiased)``: per-feature statistics of (N, D)."""
    import torch

    # the learner's function gets x in its own dtype (a float32 batch stays
    # float32); the reference is computed from it in float64
    x = default_batch() if x is None else np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    tol = 1e-10 if x.dtype == np.float64 else 10 * float(np.finfo(x.dtype).eps)
    n, d = x.shape

    def body():
        name = "batch_stats"
        value, problem = call(name, fn, x)
        if problem is not None:
            return problem
        items, problem = unpack(name, value, 3, "mu, var, var_unbiased")
        if problem is not None:
            return problem
        mu, var, var_u = items
        t = torch.from_numpy(x.astype(np.float64))
        ref_mu, ref_var = t.mean(0), t.var(0, correction=0)
        ref_var_u = t.var(0, correction=1)
        per_row = {
            (n,): f"one value per example (N={n}) instead of one per feature "
            f"(D={d}): reduce over axis=0, the batch axis",
            (1, d): "keepdims=True left a (1, D) array: return shape (D,)",
        }
        results = [
            compare(
                "batch_stats mu",
                mu,
                ref_mu,
                tol=tol,
                what="mu",
                shape_hints=per_row,
            ),
            compare(
                "batch_stats var",
                var,
                ref_var,
                tol=tol,
                what="var",
                shape_hints=per_row,
                diagnoses={
                    "this is the unbiased variance (divides by N-1); `var` is "
                    "the biased one that BN normalises with (divide by N, "
                    "np.var's default ddof=0)": ref_var_u,
                    "this is the standard deviation; the variance is its "
                    "square": ref_var.sqrt(),
                },
            ),
            compare(
                "batch_stats var_unbiased",
                var_u,
                ref_var_u,
                tol=tol,
                what="var_unbiased",
                shape_hints=per_row,
                diagnoses={
                    "this is the biased variance (divides by N); the unbiased "
                    "one divides by N-1 (ddof=1)": ref_var,
                    "this is a standard deviation; the variance is its "
                    "square": ref_var_u.sqrt(),
                },
            ),
            expect_raises(
                "batch_stats batch of one",
                fn,
                ValueError,
                "with N=1 the unbiased variance divides by N-1 = 0",
                x[:1],
            ),
        ]
        return results

    return run_check("batch_stats", body, quiet=quiet, strict=strict)
