"""This set's additions (fifth set, part a: lessons 00-03) to round2's independent
reference (installed after reference3 and reference4); no helpers.checks anywhere.
Properties the earlier verifiers do not look at:

- batch_stats: an empty batch (N = 0) is refused with ValueError; an integer batch
  gives the float statistics;
- standardize_columns: an integer X gives the float result;
- layer_gradient_norms: a model whose Linear layers sit in nested containers; the
  norms are Python floats;
- activation_percentiles: called without q uses (15, 50, 85); the caller's array is
  left unchanged; 5000 values give the exact percentiles of every value.

``install(reference)`` patches ``reference.VERIFIERS`` in place.
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
                p.append(f"extra reference check (5) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- lesson 00 -------------------------------------------------------------------
    def stats_empty_and_int(p, space, sol):
        fn = space["batch_stats"]
        try:
            fn(np.zeros((0, 3)))
            p.append("N = 0: not refused")
        except ValueError:
            pass
        except Exception as exc:  # noqa: BLE001
            p.append(f"N = 0: raised {type(exc).__name__}, expected ValueError")
        x = np.random.default_rng(71).integers(-5, 6, size=(7, 3))
        got, ok = _call(p, "integer batch", fn, x.copy())
        if ok:
            xf = x.astype(np.float64)
            mu = xf.mean(0)
            var = ((xf - mu) ** 2).mean(0)
            want = (mu, var, var * 7 / 6)
            if not isinstance(got, (tuple, list)) or len(got) != 3:
                p.append("integer batch: not 3 values")
            elif not all(isinstance(g, np.ndarray) and g.shape == (3,) for g in got):
                p.append("integer batch: results are not arrays of shape (D,)")
            else:
                for what, g, w in zip(("mu", "var", "var_unbiased"), got, want):
                    p.close(f"integer batch {what}", g, w, rtol=1e-12)

    # ---- lesson 01 -------------------------------------------------------------------
    def standardize_int(p, space, sol):
        x = np.random.default_rng(72).integers(-5, 6, size=(9, 3))
        got, ok = _call(p, "integer X", space["standardize_columns"], x.copy())
        if ok:
            xf = x.astype(np.float64)
            p.close("integer X", got, (xf - xf.mean(0)) / np.sqrt(xf.var(0) + 1e-5), rtol=1e-10)

    def gradnorms_nested(p, space, sol):
        torch.manual_seed(73)
        model = nn.Sequential(nn.Sequential(nn.Linear(5, 6), nn.Tanh()),
                              nn.Sequential(nn.Linear(6, 6), nn.Tanh()), nn.Linear(6, 3)).double()
        gen = torch.Generator().manual_seed(74)
        x = torch.randn(10, 5, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (10,), generator=gen)
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        got, ok = _call(p, "nested model", space["layer_gradient_norms"], model, x, y)
        if ok:
            p.check(f"nested model: {len(got) if hasattr(got, '__len__') else '?'} norms, expected {len(want)}",
                    hasattr(got, "__len__") and len(got) == len(want))
            if hasattr(got, "__len__") and len(got) == len(want):
                p.close("nested model", [float(v) for v in got], want, rtol=1e-9)
            p.check("norms are not Python floats",
                    isinstance(got, (list, tuple)) and all(isinstance(v, float) for v in got))

    def percentiles_more(p, space, sol):
        fn = space["activation_percentiles"]
        rng = np.random.default_rng(75)
        a = rng.normal(size=(50, 100))
        keep = a.copy()
        got, ok = _call(p, "5000 values, default q", fn, a)
        if ok:
            p.close("5000 values, default q", got, np.percentile(keep.ravel(), (15, 50, 85)), rtol=1e-12)
        p.check("the caller's array was changed", np.array_equal(a, keep))

    # ---- lesson 02 -------------------------------------------------------------------
    def forward_int(p, space, sol):
        x = np.random.default_rng(76).integers(-5, 6, size=(8, 3))
        g, b = np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -1.0])
        got, ok = _call(p, "integer x", space["batchnorm_forward"], x.copy(), g, b)
        if ok:
            xf = x.astype(np.float64)
            p.close("integer x", got[0], g * (xf - xf.mean(0)) / np.sqrt(xf.var(0) + 1e-5) + b, rtol=1e-10)

    # ---- lesson 03 -------------------------------------------------------------------
    def fold_eps(p, space, sol):
        torch.manual_seed(77)
        layer, bn = nn.Linear(4, 5).double(), nn.BatchNorm1d(5, eps=1e-3).double()
        with torch.no_grad():
            bn.running_mean.normal_()
            bn.running_var.uniform_(1e-3, 1e-2)
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.normal_()
        bn.eval()
        folded, ok = _call(p, "bn with eps=1e-3", space["fold_batchnorm"], layer, bn)
        if ok:
            x = torch.randn(6, 4, dtype=torch.float64)
            with torch.no_grad():
                p.close("bn with eps=1e-3: output", folded(x), bn(layer(x)), rtol=1e-9)

    V["batchnorm_forward"] = with_extra("batchnorm_forward", forward_int)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_eps)
    V["batch_stats"] = with_extra("batch_stats", stats_empty_and_int)
    V["standardize_columns"] = with_extra("standardize_columns", standardize_int)
    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_nested)
    V["activation_percentiles"] = with_extra("activation_percentiles", percentiles_more)
