"""The twenty-fifth set's (part b) additions to the independent reference (installed after round2's and
rounds 3, 14-24 part b's). No helpers.checks: NumPy is the reference.

Properties added:
- batch_renorm_backward: dx, dgamma and dbeta are NumPy arrays (np.ndarray) for NumPy input, as the NumPy
  exercise asks (their values are checked by round2's reference).
"""

from __future__ import annotations

import numpy as np


def install(reference):
    P = reference.Problems
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference (25b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def backward_extra(p, space, sol):
        fn = space["batch_renorm_backward"]
        rng = np.random.default_rng(25)
        n, d = 6, 3
        x_hat = rng.standard_normal((n, d))
        r = np.array([0.8, 1.0, 1.3])
        dd = np.array([0.1, 0.0, -0.2])
        cache = (x_hat, x_hat * r + dd, np.array([1.5, 0.7, 2.0]), r, np.array([1.2, 0.9, 1.1]))
        try:
            out = fn(rng.standard_normal((n, d)), cache)
        except Exception as exc:  # noqa: BLE001
            p.append(f"25b batch_renorm_backward raised {type(exc).__name__}")
            return
        for name, value in zip(("dx", "dgamma", "dbeta"), out):
            if not isinstance(value, np.ndarray):
                p.append(f"25b {name} is a {type(value).__module__}.{type(value).__name__}, not a NumPy array")

    V["batch_renorm_backward"] = with_extra("batch_renorm_backward", backward_extra)
