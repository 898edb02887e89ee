"""The eleventh set's (part a) additions to the independent reference (round2's
reference.py with round 3's reference3 installed; both imported, not copied): no
helpers.checks anywhere.

- batchnorm_forward leaves the caller's gamma and beta alone;
- batchnorm_backward / batchnorm_backward_alt give the same gradients when called a
  second time on the same cache (a backward pass must not change the cache).

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference3).
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
                p.append(f"extra reference check (11a) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def params_kept(p, space, sol):
        rng = np.random.default_rng(111)
        x = rng.normal(1, 2, (6, 4))
        g, b = rng.normal(1, 0.5, 4), rng.normal(size=4)
        gk, bk = g.copy(), b.copy()
        _call(p, "forward (parameter check)", space["batchnorm_forward"], x, g, b)
        p.check("forward changed gamma in place", np.array_equal(g, gk))
        p.check("forward changed beta in place", np.array_equal(b, bk))

    def second_call(name):
        def extra(p, space, sol):
            rng = np.random.default_rng(112)
            x = rng.normal(1, 2, (7, 3))
            g, b = rng.normal(1, 0.5, 3), rng.normal(size=3)
            res, ok = _call(p, "forward (second-call check)", space["batchnorm_forward"], x, g, b)
            if not ok:
                return
            dout = rng.normal(size=(7, 3))
            first, ok = _call(p, "backward, first call", space[name], dout.copy(), res[1])
            if not ok:
                return
            first = [np.array(a, dtype=np.float64, copy=True) for a in first]
            again, ok = _call(p, "backward, second call on the same cache", space[name], dout.copy(), res[1])
            if not ok:
                return
            for what, a, b2 in zip(("dx", "dgamma", "dbeta"), first, again):
                p.close(f"second call on the same cache: {what}", b2, a, rtol=1e-12, atol=1e-14)
        return extra

    V["batchnorm_forward"] = with_extra("batchnorm_forward", params_kept)
    V["batchnorm_backward"] = with_extra("batchnorm_backward", second_call("batchnorm_backward"))
    V["batchnorm_backward_alt"] = with_extra("batchnorm_backward_alt", second_call("batchnorm_backward_alt"))
