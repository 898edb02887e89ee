"""The tenth set's (part b) additions to the independent reference: round2's
reference.py with round3's reference3.install applied, both IMPORTED (no copy).
No helpers.checks anywhere; torch's own modules and the module contract are the
reference.

Properties added (round2's and round3's verifiers do not look at them):
- ScratchBatchNorm: train() and eval() return the module (nn.Module's contract);
  weight and bias have shape (C,), as nn.BatchNorm's; reset_running_stats leaves
  weight and bias alone; a training batch refused for one value per channel
  leaves the buffers unchanged;
- ScratchBatchNorm: a bfloat16 input gives a bfloat16 output, buffers float32;
- fold_batchnorm: the given layer's parameters keep requires_grad; affine=False
  folds as gamma = 1, beta = 0; a batch norm
  with track_running_stats=False is refused with ValueError (both stated in
  lesson 03's text);
- batch_renorm_backward: a second backward call with the same cache gives the
  same gradients and leaves the cache's arrays unchanged.

``install(reference)`` patches ``reference.VERIFIERS`` in place; call it after
reference3.install.
"""

from __future__ import annotations

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
                p.append(f"extra reference check (10b) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        m, ok = _call(p, "construct (10b)", cls, 3)
        if not ok:
            return
        p.check("eval() did not return the module", m.eval() is m)
        p.check("train() did not return the module", m.train() is m)
        m.train()
        w, b = getattr(m, "weight", None), getattr(m, "bias", None)
        p.check(f"weight/bias shapes {getattr(w, 'shape', None)}, {getattr(b, 'shape', None)}, expected (3,)",
                isinstance(w, torch.Tensor) and isinstance(b, torch.Tensor)
                and tuple(w.shape) == (3,) and tuple(b.shape) == (3,))
        if not (isinstance(w, torch.Tensor) and tuple(w.shape) == (3,)):
            return
        m = m.double()
        with torch.no_grad():
            m.weight.copy_(torch.tensor([0.5, 2.0, 1.5], dtype=torch.float64))
            m.bias.copy_(torch.tensor([0.1, -0.3, 0.7], dtype=torch.float64))
        _, ok = _call(p, "train step (10b)", m, torch.randn(6, 3, dtype=torch.float64))
        if not ok:
            return
        _, ok = _call(p, "reset_running_stats (10b)", m.reset_running_stats)
        if ok:
            p.check("reset_running_stats changed weight or bias",
                    torch.equal(m.weight.detach(), torch.tensor([0.5, 2.0, 1.5], dtype=torch.float64))
                    and torch.equal(m.bias.detach(), torch.tensor([0.1, -0.3, 0.7], dtype=torch.float64)))
        # a refused batch leaves the buffers alone
        m2, ok = _call(p, "construct (10b refused batch)", cls, 4)
        if not ok:
            return
        before = {k: v.clone() for k, v in m2.state_dict().items()}
        try:
            m2(torch.randn(1, 4))
        except Exception:  # noqa: BLE001 - refusing is right; its type is round2's concern
            pass
        after = m2.state_dict()
        p.check("a refused one-value batch changed the buffers",
                all(torch.equal(before[k], after[k]) for k in before))
        # bfloat16 in, bfloat16 out, buffers stay float32 (lesson 03's stated contract, as torch's)
        m3, ok = _call(p, "construct (10b bfloat16)", cls, 4)
        if ok:
            out, ok = _call(p, "bfloat16 train step (10b)", m3, torch.randn(16, 4).to(torch.bfloat16))
            if ok:
                p.check(f"bfloat16 input gave {getattr(out, 'dtype', type(out).__name__)}",
                        isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16)
                p.check("bfloat16 input changed the buffers' dtype",
                        m3.running_mean.dtype == torch.float32 and m3.running_var.dtype == torch.float32)

    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        for layer, bn in [(nn.Linear(4, 3), nn.BatchNorm1d(3)), (nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))]:
            bn.eval()
            flags = [q.requires_grad for q in layer.parameters()]
            _call(p, "fold (10b)", fold, layer, bn)
            p.check("the given layer's requires_grad changed",
                    [q.requires_grad for q in layer.parameters()] == flags)
        # affine=False folds as gamma = 1, beta = 0 (the exercise's text)
        for layer, bn, shape in [(nn.Linear(4, 3).double(), nn.BatchNorm1d(3, affine=False).double(), (5, 4)),
                                 (nn.Conv2d(2, 3, 3).double(), nn.BatchNorm2d(3, affine=False).double(), (2, 2, 5, 5))]:
            with torch.no_grad():
                bn.train()
                bn(layer(torch.randn(*shape, dtype=torch.float64) * 2 + 1))
            bn.eval()
            x = torch.randn(*shape, dtype=torch.float64)
            folded, ok = _call(p, "fold affine=False (10b)", fold, layer, bn)
            if ok:
                try:
                    with torch.no_grad():
                        p.close("affine=False fold output (10b)", folded(x), bn(layer(x)), rtol=1e-9)
                except Exception as exc:  # noqa: BLE001
                    p.append(f"affine=False folded layer raised {type(exc).__name__}")
        # an untracked batch norm has no statistics to fold: ValueError (the exercise's text)
        reference._raises(p, "untracked bn (10b)", ValueError, fold, nn.Linear(2, 3),
                          nn.BatchNorm1d(3, track_running_stats=False).eval())

    def renorm_backward_twice(p, space, sol):
        fw, bw = space["batch_renorm_forward"], space["batch_renorm_backward"]
        rng = np.random.default_rng(10)
        x = rng.normal(1, 2, (6, 3))
        g, b = rng.normal(1, 0.5, 3), rng.normal(size=3)
        res, ok = _call(p, "forward (10b twice)", fw, x, g, b, rng.normal(size=3), rng.uniform(0.8, 3.0, 3), 2.0, 1.0)
        if not ok:
            return
        cache = res[1]
        keep = [np.array(c, copy=True) for c in cache]
        dout = rng.normal(size=(6, 3))
        first, ok = _call(p, "backward 1 (10b)", bw, dout.copy(), cache)
        if not ok:
            return
        p.check("backward changed the cache's arrays",
                all(np.array_equal(np.asarray(a), k) for a, k in zip(cache, keep)))
        second, ok = _call(p, "backward 2 (10b)", bw, dout.copy(), cache)
        if ok:
            for name, a, c in zip(("dx", "dgamma", "dbeta"), first, second):
                p.close(f"second backward, same cache: {name}", c, a, rtol=1e-12, atol=1e-14)

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
    V["batch_renorm_backward"] = with_extra("batch_renorm_backward", renorm_backward_twice)
