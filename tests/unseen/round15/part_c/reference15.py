"""The fifteenth set's (part C) additions to the independent reference: round2's
reference.py with round 3's reference3, round 13's reference13 and round 14's
reference14 installed first (all imported, not copied), then what they do not
look at.  No helpers.checks.

- landscape_probe: step sizes that float32 cannot hold (0.1, 0.3, 0.7) on a
  float64 model, against this file's own computation within rtol 1e-12.

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference14).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
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
                p.append(f"extra reference check (15c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def lp_extra(p, space, sol):
        torch.manual_seed(15)
        model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3)).double()
        gen = torch.Generator().manual_seed(15)
        x = torch.randn(16, 5, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=gen)
        etas = [0.1, 0.3, 0.7]
        work = copy.deepcopy(model)
        params = list(work.parameters())
        start = [q.detach().clone() for q in params]
        g = torch.autograd.grad(F.cross_entropy(work(x), y), params)
        want_l, want_c = [], []
        for eta in etas:
            with torch.no_grad():
                for q, q0, d in zip(params, start, g):
                    q.copy_(q0 - eta * d)
            loss = F.cross_entropy(work(x), y)
            g2 = torch.autograd.grad(loss, params)
            want_l.append(loss.item())
            want_c.append(torch.cat([(a - b).reshape(-1) for a, b in zip(g, g2)]).norm().item())
        got, ok = _call(p, "call (15c: float64, step sizes 0.1, 0.3, 0.7)", space["landscape_probe"],
                        model, x, y, list(etas))
        if ok:
            losses, changes = got
            p.close("15c losses at 0.1, 0.3, 0.7", torch.tensor([float(v) for v in losses], dtype=torch.float64),
                    torch.tensor(want_l, dtype=torch.float64), rtol=1e-12, atol=1e-13)
            p.close("15c gradient changes at 0.1, 0.3, 0.7",
                    torch.tensor([float(v) for v in changes], dtype=torch.float64),
                    torch.tensor(want_c, dtype=torch.float64), rtol=1e-12, atol=1e-13)

    V["landscape_probe"] = with_extra("landscape_probe", lp_extra)
