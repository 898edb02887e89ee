"""This set's additions to the independent reference (round2's reference.py with
round 3's reference3.install already applied; imported, not copied). No
helpers.checks anywhere.

Properties round2's and round3's verifiers do not look at:
- batch_stats of an integer batch gives the true (float) mean and variances;
- standardize_columns honours eps=0 (unit variance exactly);
- standardize_columns standardises outliers too (no clipping of |z| > 3);
- batchnorm_forward's cache gives, through the learner's batchnorm_backward_alt,
  the float64 closed-form gradient (the cache must hold the float64 x_hat and
  1/sqrt(var + eps));
- activation_percentiles takes a non-contiguous tensor and a single q, and
  returns a NumPy array;
- layernorm_forward normalises a single example (N = 1): layer norm has no
  batch-size limit.

``install(reference)`` patches ``reference.VERIFIERS`` in place.
"""

from __future__ import annotations

import numpy as np


def install(reference):
    P, _call = reference.Problems, reference._call
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference check (12) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def stats_int(p, space, sol):
        x = np.array([[1, 2, 0], [2, 3, 5], [4, 4, 7], [0, 9, 1]], dtype=np.int64)
        res, ok = _call(p, "batch_stats(int batch)", space["batch_stats"], x.copy())
        if not ok:
            return
        xf = x.astype(np.float64)
        mu, var = xf.mean(axis=0), xf.var(axis=0)
        p.close("batch_stats(int) mu", res[0], mu)
        p.close("batch_stats(int) var", res[1], var)
        p.close("batch_stats(int) var_unbiased", res[2], xf.var(axis=0, ddof=1))

    def standardize_eps0(p, space, sol):
        rng = np.random.default_rng(12)
        X = rng.normal(3, 0.01, (9, 3))  # small variance: eps matters
        res, ok = _call(p, "standardize_columns(eps=0)", space["standardize_columns"], X.copy(), eps=0.0)
        if not ok:
            return
        p.close("standardize_columns(eps=0)", res, (X - X.mean(axis=0)) / X.std(axis=0))

    def layernorm_single(p, space, sol):
        rng = np.random.default_rng(13)
        x = rng.normal(1, 2, (1, 5))
        g, b = rng.normal(1, 0.5, 5), rng.normal(size=5)
        res, ok = _call(p, "layernorm_forward(N=1)", space["layernorm_forward"], x.copy(), g, b)
        if not ok:
            return
        mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
        p.close("layernorm_forward(N=1)", res[0], g * (x - mu) / np.sqrt(var + 1e-5) + b)

    def standardize_outlier(p, space, sol):
        rng = np.random.default_rng(14)
        X = rng.normal(0, 1, (40, 2))
        X[0, 0] = 60.0  # |z| about 6
        res, ok = _call(p, "standardize_columns(outlier)", space["standardize_columns"], X.copy())
        if not ok:
            return
        p.close("standardize_columns(outlier)", res, (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + 1e-5))

    def forward_cache(p, space, sol):
        rng = np.random.default_rng(15)
        x = rng.normal(2, 3, (7, 4))
        g, b = rng.normal(1, 0.5, 4), rng.normal(size=4)
        res, ok = _call(p, "forward (cache check)", space["batchnorm_forward"], x.copy(), g, b)
        if not ok:
            return
        dout = rng.normal(size=(7, 4))
        back, ok = _call(p, "backward_alt on the forward's cache", space["batchnorm_backward_alt"], dout.copy(), res[1])
        if not ok:
            return
        n = x.shape[0]
        x_hat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
        inv = 1 / np.sqrt(x.var(axis=0) + 1e-5)
        dx = g * inv * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).sum(axis=0) / n)
        p.close("dx from the forward's cache", back[0], dx, rtol=1e-10, atol=1e-12)

    def percentiles_more(p, space, sol):
        import torch

        t = torch.arange(24, dtype=torch.float64).reshape(4, 6).T  # non-contiguous
        res, ok = _call(p, "percentiles(non-contiguous tensor)", space["activation_percentiles"], t)
        if ok:
            p.close("percentiles(non-contiguous tensor)", res, np.percentile(np.arange(24.0), (15, 50, 85)))
            p.check("percentiles return a NumPy array", isinstance(res, np.ndarray))
        v = np.linspace(-1, 3, 11)
        res, ok = _call(p, "percentiles(q=50)", space["activation_percentiles"], v, 50)
        if ok:
            p.close("percentiles(q=50)", res, np.percentile(v, 50))

    V["batch_stats"] = with_extra("batch_stats", stats_int)
    V["standardize_columns"] = with_extra("standardize_columns", standardize_eps0)
    old["standardize_columns"] = V["standardize_columns"]
    V["standardize_columns"] = with_extra("standardize_columns", standardize_outlier)
    V["batchnorm_forward"] = with_extra("batchnorm_forward", forward_cache)
    V["activation_percentiles"] = with_extra("activation_percentiles", percentiles_more)
    V["layernorm"] = with_extra("layernorm", layernorm_single)
    return reference
