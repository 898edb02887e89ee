"""This set's additions (lessons 00-03) to round2's independent reference
(tests/unseen/round2/reference.py, imported; round3's reference3.py installed
first): no helpers.checks anywhere.  Properties round2's verifiers do not look at:

- batchnorm_forward called WITHOUT eps must use the default 1e-5 (data with a
  small spread, so that eps matters);
- batchnorm_backward / _alt: a second backward pass on the same cache gives the
  same gradients, and the cache's arrays are left unchanged;
- spatial batch norm with eps = 1e-2 (the eps is passed on);
- layer_gradient_norms on a model with batch norm in training mode and a Linear
  without a bias (agrees with the course's solution on a copy; the model's mode,
  dtype and weights stay as they were);
- activation_percentiles of values with many repeated values (ReLU zeros);
- ScratchBatchNorm: after .double(), reset_running_stats keeps float64 buffers
  and a training step still matches nn.BatchNorm1d at float64 precision;
  reset_parameters sets weight 1, bias 0 and resets the running statistics;
  bfloat16 input gives bfloat16 output (as torch's);
- fold_batchnorm returns an nn.Linear / nn.Conv2d (the layer's own type), and
  folds a 'reflect'-padded convolution and a batch norm with affine=False.

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference3).
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
                p.append(f"extra reference check (4) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- lesson 02 ---------------------------------------------------------------
    def forward_default_eps(p, space, sol):
        rng = np.random.default_rng(61)
        x = rng.normal(0.5, 0.01, (6, 3))
        gamma, beta = rng.normal(1, 0.5, 3), rng.normal(size=3)
        res, ok = _call(p, "forward without eps", space["batchnorm_forward"], x.copy(), gamma.copy(), beta.copy())
        if ok:
            want = gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) + beta
            p.close("forward without eps (default 1e-5)", res[0], want, rtol=1e-10)

    def backward_twice(name):
        def extra(p, space, sol):
            rng = np.random.default_rng(62)
            x = rng.normal(1, 2, (6, 4))
            g, b = rng.normal(1, 0.5, 4), rng.normal(size=4)
            res, ok = _call(p, "forward (twice check)", space["batchnorm_forward"], x.copy(), g, b)
            if not ok:
                return
            cache = res[1]
            keep = [np.array(c, copy=True) if isinstance(c, np.ndarray) else c for c in cache] \
                if isinstance(cache, (tuple, list)) else None
            dout = rng.normal(size=(6, 4))
            first, ok1 = _call(p, "backward call 1", space[name], dout.copy(), cache)
            second, ok2 = _call(p, "backward call 2 (same cache)", space[name], dout.copy(), cache)
            if ok1 and ok2:
                for i, what in enumerate(("dx", "dgamma", "dbeta")):
                    p.close(f"second backward on the same cache: {what}", second[i], first[i], rtol=1e-12, atol=1e-14)
            if keep is not None:
                p.check("backward changed the cache in place", all(
                    not isinstance(a, np.ndarray) or np.array_equal(a, c) for a, c in zip(keep, cache)))
        return extra

    def spatial_eps(p, space, sol):
        rng = np.random.default_rng(63)
        x = rng.normal(0.3, 0.1, (2, 3, 2, 4))
        gamma, beta = rng.normal(1, 0.5, 3), rng.normal(size=3)
        res, ok = _call(p, "spatial forward eps=1e-2", space["spatial_batchnorm_forward"], x.copy(), gamma, beta, 1e-2)
        if ok:
            mu = x.mean((0, 2, 3), keepdims=True)
            var = x.var((0, 2, 3), keepdims=True)
            want = gamma.reshape(1, -1, 1, 1) * (x - mu) / np.sqrt(var + 1e-2) + beta.reshape(1, -1, 1, 1)
            p.close("spatial forward eps=1e-2", res[0], want, rtol=1e-10)

    # ---- lesson 01 -----------------------------------------------------------------
    def gradnorms_bn(p, space, sol):
        torch.manual_seed(64)
        model = nn.Sequential(nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(),
                              nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.weight.uniform_(0.5, 2.0)
                    m.running_mean.normal_()
                    m.running_var.uniform_(0.5, 3.0)
        model.train()
        gen = torch.Generator().manual_seed(65)
        x = torch.randn(12, 6, generator=gen, dtype=torch.float64) * 2 + 1
        y = torch.randint(0, 3, (12,), generator=gen)
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
        modes = [m.training for m in model.modules()]
        got, ok = _call(p, "bn model", space["layer_gradient_norms"], model, x, y)
        if ok:
            p.close("bn model (training mode, a Linear without bias)",
                    [float(v) for v in got] if isinstance(got, (list, tuple)) else got, want, rtol=1e-9)
        p.check("bn model: modes changed", [m.training for m in model.modules()] == modes)
        now = model.state_dict()
        p.check("bn model: weights changed (dtype or values)", all(
            now[k].dtype == v.dtype and torch.equal(now[k], v) for k, v in weights.items()))

    def percentiles_repeated(p, space, sol):
        gen = torch.Generator().manual_seed(66)
        t = torch.relu(torch.randn(40, 6, generator=gen, dtype=torch.float64))
        for what, values in [("relu tensor", t), ("relu array", t.numpy().copy())]:
            got, ok = _call(p, what, space["activation_percentiles"], values, q=(15, 50, 85))
            if ok:
                p.close(f"{what} (many zeros)", got, np.percentile(t.numpy().ravel(), (15, 50, 85)), rtol=1e-9)

    # ---- lesson 03 -------------------------------------------------------------------
    def scratch_resets(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(67)
        mine, ok = _call(p, "construct (reset check)", cls, 3, momentum=0.3)
        if not ok:
            return
        ref = nn.BatchNorm1d(3, momentum=0.3).double()
        mine = mine.double()
        for step in range(2):
            x = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 2 + 1
            with torch.no_grad():
                _call(p, f"train step {step} (reset check)", mine, x)
                ref(x)
        _, ok = _call(p, "reset_running_stats after .double()", mine.reset_running_stats)
        ref.reset_running_stats()
        if ok:
            for name in ("running_mean", "running_var"):
                buf = getattr(mine, name, None)
                p.check(f"{name} after .double() and reset: dtype {getattr(buf, 'dtype', None)}",
                        isinstance(buf, torch.Tensor) and buf.dtype == torch.float64)
            x = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 2 + 1
            with torch.no_grad():
                _call(p, "train step after reset", mine, x)
                ref(x)
            for name in ("running_mean", "running_var"):
                p.close(f"{name} one step after reset", getattr(mine, name), getattr(ref, name), rtol=1e-12)
        # bfloat16 in, bfloat16 out (as torch's batch norm)
        m16, ok = _call(p, "construct (bfloat16 check)", cls, 4)
        if ok:
            out, ok = _call(p, "bfloat16 input", m16, torch.randn(8, 4, generator=gen).to(torch.bfloat16))
            if ok:
                p.check(f"bfloat16 input gave {getattr(out, 'dtype', None)}",
                        isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16)
        # reset_parameters
        with torch.no_grad():
            if getattr(mine, "weight", None) is not None:
                mine.weight.mul_(3.0).add_(0.5)
                mine.bias.add_(2.0)
        _, ok = _call(p, "reset_parameters", mine.reset_parameters)
        if ok:
            w, b = getattr(mine, "weight", None), getattr(mine, "bias", None)
            p.check("reset_parameters: weight not all ones",
                    isinstance(w, torch.Tensor) and torch.equal(w.detach(), torch.ones(3, dtype=w.dtype)))
            p.check("reset_parameters: bias not all zeros",
                    isinstance(b, torch.Tensor) and torch.equal(b.detach(), torch.zeros(3, dtype=b.dtype)))
            rm, rv = getattr(mine, "running_mean", None), getattr(mine, "running_var", None)
            p.check("reset_parameters: running statistics not reset",
                    isinstance(rm, torch.Tensor) and torch.equal(rm, torch.zeros_like(rm))
                    and torch.equal(rv, torch.ones_like(rv)) and int(mine.num_batches_tracked) == 0)

    def fold_types(p, space, sol):
        fold = space["fold_batchnorm"]
        torch.manual_seed(68)
        cases = [(nn.Linear(5, 7), nn.BatchNorm1d(7), (6, 5)),
                 (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), nn.BatchNorm2d(4), (2, 3, 6, 6)),
                 (nn.Linear(4, 6), nn.BatchNorm1d(6, affine=False), (5, 4))]
        for i, (layer, bn, shape) in enumerate(cases):
            layer, bn = layer.double(), bn.double()
            with torch.no_grad():
                for _ in range(3):
                    bn(layer(torch.randn(8, *shape[1:], dtype=torch.float64) * 2 + 1))
                if bn.affine:
                    bn.weight.uniform_(0.5, 2.0)
                    bn.bias.normal_()
            bn.eval()
            folded, ok = _call(p, f"type case {i}", fold, layer, bn)
            if not ok:
                continue
            p.check(f"type case {i}: returned {type(folded).__name__}, not {type(layer).__name__}",
                    type(folded) is type(layer))
            x = torch.randn(*shape, dtype=torch.float64)
            try:
                with torch.no_grad():
                    p.close(f"type case {i}: output", folded(x), bn(layer(x)), rtol=1e-9)
            except Exception as exc:  # noqa: BLE001
                p.append(f"type case {i}: calling the folded layer raised {type(exc).__name__}")

    V["batchnorm_forward"] = with_extra("batchnorm_forward", forward_default_eps)
    V["batchnorm_backward"] = with_extra("batchnorm_backward", backward_twice("batchnorm_backward"))
    V["batchnorm_backward_alt"] = with_extra("batchnorm_backward_alt", backward_twice("batchnorm_backward_alt"))
    V["spatial_batchnorm"] = with_extra("spatial_batchnorm", spatial_eps)
    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_bn)
    V["activation_percentiles"] = with_extra("activation_percentiles", percentiles_repeated)
    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_resets)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_types)
