"""The sixteenth set's (part C) additions to the independent reference: round2's
reference.py with round 3's reference3, round 13's reference13, round 14's
reference14 and round 15's reference15 installed first (all imported, not
copied), then what they do not look at.  No helpers.checks.

- landscape_probe: a float32 model (the lesson's own nets are float32; every
  earlier probe is float64), against the course's solution on a copy, within
  rtol 1e-4 (float32 round-off of two different reduction orders is far below).
- sync_batchnorm_forward: the output when running statistics are given (the
  earlier verifiers compare the output only without them, and the buffers only
  with them), on ranks of 4, 7 and 1 and of 3 and 5 examples, against batch norm
  on the whole batch (float64, 1e-9).

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference15).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def install(reference):
    P, _call, _Ranks = reference.Problems, reference._call, reference._Ranks
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference check (16c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def lp_extra(p, space, sol):
        for train in (True, False):
            torch.manual_seed(16)
            model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3))  # float32
            model.train(train)
            gen = torch.Generator().manual_seed(16)
            x = torch.randn(16, 5, generator=gen)
            y = torch.randint(0, 3, (16,), generator=gen)
            etas = [0.05, 0.2, 0.8]
            want = sol["landscape_probe"](copy.deepcopy(model), x, y, list(etas))
            got, ok = _call(p, f"call (16c: float32 model, train={train})", space["landscape_probe"],
                            model, x, y, list(etas))
            if ok:
                p.close(f"16c float32 losses (train={train})", [float(v) for v in got[0]],
                        [float(v) for v in want[0]], rtol=1e-4, atol=1e-6)
                p.close(f"16c float32 gradient changes (train={train})", [float(v) for v in got[1]],
                        [float(v) for v in want[1]], rtol=1e-4, atol=1e-6)

    def fw_extra(p, space, sol):
        f = space["sync_batchnorm_forward"]
        gen = torch.Generator().manual_seed(16)
        for sizes, momentum in [((4, 7, 1), 0.1), ((3, 5), 0.3)]:
            c = 3
            x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
            gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            beta = torch.randn(c, generator=gen, dtype=torch.float64)
            want = F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)
            bufs = [(torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)) for _ in sizes]

            def call(part, rm, rv, ar, momentum=momentum):
                return f(part, gamma, beta, ar, running_mean=rm, running_var=rv, momentum=momentum)

            try:
                res = _Ranks(len(sizes)).run(call, [(part, rm, rv) for part, (rm, rv) in
                                                    zip(torch.split(x, list(sizes)), bufs)])
            except Exception as exc:  # noqa: BLE001
                p.append(f"16c {sizes} with running statistics: raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            got = torch.cat([torch.as_tensor(r[0]).detach().double() for r in res])
            p.close(f"16c {sizes} out with running statistics given", got, want, rtol=1e-9, atol=1e-10)

    V["landscape_probe"] = with_extra("landscape_probe", lp_extra)
    V["sync_batchnorm_forward"] = with_extra("sync_batchnorm_forward", fw_extra)
