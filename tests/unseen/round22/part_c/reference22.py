"""The twenty-second set's (part C) additions to the independent reference:
round2's reference.py with round 3's, round 13-18, 20 and 21 part C's additions
installed first (all imported, not copied), then what they do not look at.  No
helpers.checks; every expected value is torch's own nn.BatchNorm1d.

- NoisyBatchNorm built with a non-default eps and momentum (eps=0.1,
  momentum=0.3, passed on through **kwargs) and with a trained-looking gamma and
  beta (not 1 and 0): the training-mode output must be nn.BatchNorm1d's with the
  same eps, momentum, weight and bias, times the layer's own last_noise scale plus
  its shift; the running statistics nn.BatchNorm1d's; and eval mode plain
  nn.BatchNorm1d.  Every earlier verifier uses a fresh layer (weight 1, bias 0)
  and the default eps.

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference21).
"""

from __future__ import annotations

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
                p.append(f"extra reference check (22c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def noisy_extra(p, space, sol):
        cls = space["NoisyBatchNorm"]
        torch.manual_seed(22)
        c = 3
        mine, ok = _call(p, "22c construct (eps=0.1, momentum=0.3)", cls, c, eps=0.1, momentum=0.3)
        if not ok:
            return
        mine = mine.double()
        ref = nn.BatchNorm1d(c, eps=0.1, momentum=0.3).double()
        with torch.no_grad():
            w = torch.rand(c, dtype=torch.float64) + 0.5
            b = torch.randn(c, dtype=torch.float64)
            for m in (mine, ref):
                m.weight.copy_(w)
                m.bias.copy_(b)
        for step in range(3):
            x = torch.randn(8, c, dtype=torch.float64) * 0.3 + 1
            out, ok = _call(p, f"22c step {step}", mine, x)
            if not ok:
                return
            shift, scale = (t.detach().double() for t in mine.last_noise)
            want = ref(x) * scale + shift
            if not p.close(f"22c (eps 0.1, gamma, beta) output {step}", out, want, rtol=1e-9):
                return
            p.close(f"22c running_mean {step}", mine.running_mean, ref.running_mean, rtol=1e-9)
            p.close(f"22c running_var {step}", mine.running_var, ref.running_var, rtol=1e-9)
        mine.eval()
        ref.eval()
        x = torch.randn(6, c, dtype=torch.float64) * 0.3 + 1
        out, ok = _call(p, "22c eval", mine, x)
        if ok:
            p.close("22c eval output (eps 0.1, gamma, beta)", out, ref(x), rtol=1e-9)

    V["noisy_batchnorm"] = with_extra("noisy_batchnorm", noisy_extra)
