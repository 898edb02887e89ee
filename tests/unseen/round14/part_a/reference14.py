"""This set's additions to the independent reference (round2's reference.py with
round 3's reference3.install already applied; imported, not copied). No
helpers.checks anywhere.

Properties round2's and round3's verifiers do not look at:
- activation_percentiles with fractional percentiles (q = 2.5, 97.5) and with
  integer activations (the percentiles are interpolated, not truncated);
- layernorm_forward with an eps that is not the default.

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
                p.append(f"extra reference check (14) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def percentiles_more(p, space, sol):
        f = space["activation_percentiles"]
        rng = np.random.default_rng(14)
        cases = [(rng.normal(size=(6, 5)), (2.5, 97.5)),
                 (np.arange(10), (15, 50, 85)),
                 (rng.integers(0, 50, size=(4, 7)), (10, 33, 90))]
        for i, (values, q) in enumerate(cases):
            got, ok = _call(p, f"extra case {i}", f, values, q=q)
            if ok:
                p.close(f"extra case {i} (q={q}, dtype {values.dtype})", got,
                        np.percentile(values.astype(np.float64).ravel(), q), rtol=1e-9)

    def layernorm_eps(p, space, sol):
        fw = space["layernorm_forward"]
        rng = np.random.default_rng(15)
        x = rng.normal(1.0, 0.3, (5, 6))
        gamma, beta = rng.normal(1, 0.5, 6), rng.normal(size=6)
        for eps in (0.1, 1e-3):
            res, ok = _call(p, f"layernorm eps={eps}", fw, x.copy(), gamma, beta, eps)
            if ok:
                xc = x - x.mean(1, keepdims=True)
                want = xc / np.sqrt(x.var(1, keepdims=True) + eps) * gamma + beta
                p.close(f"layernorm out eps={eps}", res[0], want, rtol=1e-9)

    V["activation_percentiles"] = with_extra("activation_percentiles", percentiles_more)
    V["layernorm"] = with_extra("layernorm", layernorm_eps)
