"""The seventh set's (part a) additions to the independent reference: round2's
reference.py with round3's reference3.install (both imported, not copied), plus
the few properties this set's entries break that those do not look at. No
helpers.checks anywhere.

- batch_stats returns NumPy arrays (round2's comparison converts torch tensors
  silently);
- layer_gradient_norms agrees with the course's solution on a model with
  batch-norm layers (round2's model alternates Linear and activation only);
- activation_percentiles leaves the caller's tensor as it was (still requiring
  grad).
"""

from __future__ import annotations

import copy

import numpy as np
import torch


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
                p.append(f"extra reference check (7a) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def stats_are_numpy(p, space, sol):
        x = np.random.default_rng(7).normal(size=(6, 3))
        out, ok = _call(p, "batch_stats (type check)", space["batch_stats"], x)
        if ok and isinstance(out, (tuple, list)):
            p.check("batch_stats: outputs are not all NumPy arrays",
                    all(isinstance(o, np.ndarray) for o in out))

    def gradnorms_bn_model(p, space, sol):
        model = reference._mlp(4, bn=True)
        gen = torch.Generator().manual_seed(8)
        x = torch.randn(12, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (12,), generator=gen)
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        got, ok = _call(p, "batch-norm model", space["layer_gradient_norms"], copy.deepcopy(model), x, y)
        if ok:
            p.close("batch-norm model", [float(v) for v in got] if isinstance(got, (list, tuple)) else got,
                    want, rtol=1e-9)

    def percentiles_leave_tensor(p, space, sol):
        gen = torch.Generator().manual_seed(9)
        t = torch.randn(4, 5, generator=gen, dtype=torch.float64, requires_grad=True) * 2
        _, ok = _call(p, "tensor check", space["activation_percentiles"], t)
        if ok:
            p.check("activation_percentiles: the caller's tensor no longer requires grad", t.requires_grad)

    V["batch_stats"] = with_extra("batch_stats", stats_are_numpy)
    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_bn_model)
    V["activation_percentiles"] = with_extra("activation_percentiles", percentiles_leave_tensor)
