"""The eighth set's (part a) additions to the independent reference: round2's
reference.py plus round3's reference3.py (both imported, not copied); no
helpers.checks anywhere. Only properties this set's entries break and the earlier
verifiers do not look at:

- standardize_columns on a single column (D = 1) keeps shape (N, 1);
- batchnorm_backward / batchnorm_backward_alt called twice on the same cache give
  the same gradients (a backward pass must not change the cache).

``install(reference)`` patches ``reference.VERIFIERS`` in place, after
reference3.install has run.
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
                p.append(f"extra reference check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def one_column(p, space, sol):
        rng = np.random.default_rng(8)
        x = rng.normal(3.0, 2.0, (9, 1))
        keep = x.copy()
        out, ok = _call(p, "(9, 1)", space["standardize_columns"], x)
        if ok:
            p.close("(9, 1) single column", out, (keep - keep.mean(0)) / np.sqrt(keep.var(0) + 1e-5), rtol=1e-10)

    def cache_kept(name):
        def extra(p, space, sol):
            rng = np.random.default_rng(81)
            x = rng.normal(1, 2, (6, 4))
            g, b = rng.normal(1, 0.5, 4), rng.normal(size=4)
            res, ok = _call(p, "forward (cache check)", space["batchnorm_forward"], x.copy(), g, b)
            if not ok or not isinstance(res, tuple) or len(res) != 2:
                return
            dout = rng.normal(size=(6, 4))
            first, ok1 = _call(p, "backward 1 (cache check)", space[name], dout.copy(), res[1])
            second, ok2 = _call(p, "backward 2 (cache check)", space[name], dout.copy(), res[1])
            if ok1 and ok2:
                for k, what in enumerate(("dx", "dgamma", "dbeta")):
                    p.close(f"second backward on the same cache: {what}", second[k], first[k], rtol=1e-12)
        return extra

    V["standardize_columns"] = with_extra("standardize_columns", one_column)
    V["batchnorm_backward"] = with_extra("batchnorm_backward", cache_kept("batchnorm_backward"))
    V["batchnorm_backward_alt"] = with_extra("batchnorm_backward_alt", cache_kept("batchnorm_backward_alt"))
