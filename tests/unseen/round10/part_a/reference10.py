"""The tenth set's (part a) additions to the independent reference (round2's
reference.py with round 3's reference3 already installed; no helpers.checks):

- batch_stats: a constant feature is valid (var 0, no error), and a second call
  with the same width leaves the first call's results alone;
- layer_gradient_norms: a deep model (more than ten modules, so that module names
  sort differently as strings) must give the solution's norms, input to output;
- spatial_batchnorm: one image (N = 1) is a valid batch (H * W values a channel).
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
                p.append(f"extra reference check (10a) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def stats_extra(p, space, sol):
        f = space["batch_stats"]
        rng = np.random.default_rng(1010)
        x = rng.normal(size=(6, 3))
        x[:, 1] = 2.5
        out, ok = _call(p, "constant feature", f, x.copy())
        if ok:
            p.close("constant feature var", out[1], x.var(0), rtol=1e-12, atol=1e-12)
            p.close("constant feature var_unbiased", out[2], x.var(0, ddof=1), rtol=1e-12, atol=1e-12)
        a, b = rng.normal(size=(5, 4)), rng.normal(size=(8, 4))
        first, ok = _call(p, "first call", f, a.copy())
        if not ok:
            return
        kept = [np.array(v, dtype=np.float64, copy=True) for v in first]
        _call(p, "second call", f, b.copy())
        p.check("a second call changed the first call's results",
                all(np.array_equal(np.asarray(v, dtype=np.float64), k) for v, k in zip(first, kept)))

    def gradnorms_extra(p, space, sol):
        f = space["layer_gradient_norms"]
        torch.manual_seed(7)
        layers = []
        for a, b in [(6, 8), (8, 8), (8, 8), (8, 8), (8, 8), (8, 8)]:
            layers += [nn.Linear(a, b), nn.Tanh()]
        model = nn.Sequential(*layers, nn.Linear(8, 3)).double()  # 13 modules, Linear at 0..12
        gen = torch.Generator().manual_seed(8)
        x = torch.randn(12, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (12,), generator=gen)
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        got, ok = _call(p, "deep model", f, model, x, y)
        if ok:
            p.close("deep model", [float(v) for v in got] if isinstance(got, (list, tuple)) else got,
                    want, rtol=1e-9)

    def spatial_extra(p, space, sol):
        fw = space["spatial_batchnorm_forward"]
        rng = np.random.default_rng(4141)
        x = rng.normal(1.0, 2.0, (1, 3, 4, 5))
        gamma, beta = rng.normal(1, 0.5, 3), rng.normal(size=3)
        res, ok = _call(p, "one image forward", fw, x.copy(), gamma, beta)
        if ok:
            mu = x.mean(axis=(0, 2, 3), keepdims=True)
            var = x.var(axis=(0, 2, 3), keepdims=True)
            want = gamma.reshape(1, -1, 1, 1) * (x - mu) / np.sqrt(var + 1e-5) + beta.reshape(1, -1, 1, 1)
            p.close("one image out", res[0], want, rtol=1e-9)

    V["batch_stats"] = with_extra("batch_stats", stats_extra)
    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_extra)
    V["spatial_batchnorm"] = with_extra("spatial_batchnorm", spatial_extra)
