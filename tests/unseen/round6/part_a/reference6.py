"""The sixth set's (part a) additions to the independent reference: round2's
reference.py with round3's reference3.install (both IMPORTED, not copied), plus a
few properties they do not look at. No helpers.checks anywhere.

- batch_stats: two different batches of the same shape each get their own
  statistics; a batch with exact zeros (ReLU outputs) gets the right ones;
- standardize_columns: the result is a NumPy array;
- layer_gradient_norms: a model with BatchNorm1d layers gives the solution's norms
  (the nn.Linear weights only);
- batchnorm_backward / batchnorm_backward_alt: a second call on the same cache gives
  the same gradients as the first (the cache is not changed).

``install(reference)`` wraps round2's ``reference.VERIFIERS`` in place.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


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
                p.append(f"extra reference check (6a) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def stats_extra(p, space, sol):
        f = space["batch_stats"]
        rng = np.random.default_rng(606)
        batches = [rng.normal(1.0, 2.0, (6, 3)), rng.normal(-3.0, 0.5, (6, 3)),
                   np.maximum(rng.normal(0.0, 1.0, (9, 4)), 0.0)]  # the last: ReLU outputs, exact zeros
        for i, x in enumerate(batches):
            out, ok = _call(p, f"6a batch {i}", f, x.copy())
            if not ok or not isinstance(out, (tuple, list)) or len(out) != 3:
                p.check(f"6a batch {i}: not 3 values", ok and False)
                continue
            p.close(f"6a batch {i} mu", out[0], x.mean(0), rtol=1e-12, atol=1e-12)
            p.close(f"6a batch {i} var", out[1], x.var(0), rtol=1e-12, atol=1e-12)
            p.close(f"6a batch {i} var_unbiased", out[2], x.var(0, ddof=1), rtol=1e-12, atol=1e-12)

    def standardize_extra(p, space, sol):
        x = np.random.default_rng(607).normal(2.0, 3.0, (8, 3))
        out, ok = _call(p, "6a standardize", space["standardize_columns"], x)
        if ok:
            p.check(f"6a standardize returned {type(out).__name__}, not a NumPy array",
                    isinstance(out, np.ndarray))

    def gradnorms_extra(p, space, sol):
        torch.manual_seed(608)
        model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8),
                              nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.weight.uniform_(0.5, 1.5)
        gen = torch.Generator().manual_seed(609)
        x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=gen)
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        got, ok = _call(p, "6a model with BatchNorm1d", space["layer_gradient_norms"], model, x, y)
        if ok:
            p.close("6a model with BatchNorm1d",
                    [float(v) for v in got] if isinstance(got, (list, tuple)) else got, want, rtol=1e-9)

    def backward_twice(name):
        def extra(p, space, sol):
            rng = np.random.default_rng(610)
            x = rng.normal(1.0, 2.0, (6, 4))
            g, b = rng.normal(1, 0.5, 4), rng.normal(size=4)
            res, ok = _call(p, "6a forward (backward twice)", space["batchnorm_forward"], x, g, b)
            if not ok:
                return
            dout = rng.normal(size=(6, 4))
            first, ok1 = _call(p, "6a backward, first call", space[name], dout.copy(), res[1])
            second, ok2 = _call(p, "6a backward, second call", space[name], dout.copy(), res[1])
            if ok1 and ok2:
                for k, what in enumerate(("dx", "dgamma", "dbeta")):
                    p.close(f"6a second backward on the same cache: {what}", second[k], first[k],
                            rtol=1e-12, atol=1e-12)
        return extra

    V["batch_stats"] = with_extra("batch_stats", stats_extra)
    V["standardize_columns"] = with_extra("standardize_columns", standardize_extra)
    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_extra)
    V["batchnorm_backward"] = with_extra("batchnorm_backward", backward_twice("batchnorm_backward"))
    V["batchnorm_backward_alt"] = with_extra("batchnorm_backward_alt", backward_twice("batchnorm_backward_alt"))
