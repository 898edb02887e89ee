"""The fourteenth set's (part C) additions to the independent reference: round2's
reference.py with round 3's reference3 and round 13's reference13 installed first
(all imported, not copied), then these properties that they do not look at.
No helpers.checks.

- NoisyBatchNorm: the drawn noise is a constant for autograd (last_noise does not
  require grad); a last_noise kept from one call is not changed by the next call;
  the layer's state_dict has exactly nn.BatchNorm1d's keys.
- gradient_change: a batch whose labels miss the last class (own computation with
  class-index cross-entropy, compared within rtol 1e-9).

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference13).
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
                p.append(f"extra reference check (14c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def noisy_extra(p, space, sol):
        cls = space["NoisyBatchNorm"]
        torch.manual_seed(14)
        m, ok = _call(p, "construct (14c)", cls, 4)
        if not ok:
            return
        m = m.double().train()
        x = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
        out, ok = _call(p, "call (14c)", m, x)
        noise = getattr(m, "last_noise", None)
        if not ok or not (isinstance(noise, tuple) and len(noise) == 2):
            return
        p.check("last_noise requires grad (the noise is not a constant)",
                not any(isinstance(t, torch.Tensor) and t.requires_grad for t in noise))
        kept = [torch.as_tensor(t).detach().clone() for t in noise]
        held = noise
        _, ok = _call(p, "second call (14c)", m, torch.randn(8, 4, dtype=torch.float64))
        if ok:
            p.check("a kept last_noise changed at the next call (aliased storage)",
                    all(torch.equal(torch.as_tensor(a).detach(), b) for a, b in zip(held, kept)))
        keys = sorted(m.state_dict().keys())
        want = sorted(nn.BatchNorm1d(4).state_dict().keys())
        p.check(f"state_dict keys {keys}, expected {want}", keys == want)

    def gc_extra(p, space, sol):
        import copy
        import torch.nn.functional as F
        torch.manual_seed(5)
        model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4)).double()
        gen = torch.Generator().manual_seed(5)
        x = torch.randn(12, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (12,), generator=gen)  # labels 0..2 of 4 classes
        work = copy.deepcopy(model)
        F.cross_entropy(work(x), y).backward()
        g = work[3].weight.grad.clone()
        with torch.no_grad():
            for q in work[:3].parameters():
                q -= 0.5 * q.grad
        work.zero_grad()
        F.cross_entropy(work(x), y).backward()
        g2 = work[3].weight.grad
        want = [float((g - g2).norm()), float((g * g2).sum() / (g.norm() * g2.norm()))]
        got, ok = _call(p, "call (labels missing the last class)", space["gradient_change"], model, x, y, 3, 0.5)
        if ok:
            p.close("labels missing the last class", torch.tensor([float(v) for v in got], dtype=torch.float64),
                    torch.tensor(want, dtype=torch.float64), rtol=1e-9)

    V["noisy_batchnorm"] = with_extra("noisy_batchnorm", noisy_extra)
    V["gradient_change"] = with_extra("gradient_change", gc_extra)
