"""The nineteenth set's (part D) additions to the independent reference: round2's
reference.py with round 3's reference3, round 13-16 part C's reference13..16 and
round 18 part C's reference18 (round 17's additions) installed first (all imported,
not copied), then these properties, which no earlier verifier looks at.  No
helpers.checks.

- sync_batchnorm_forward with an eps other than the default (0.5 and 1e-3, float64):
  the output against F.batch_norm on the whole batch with that eps.  Every earlier
  verifier leaves eps at 1e-5.
- sync_batchnorm_forward from fresh buffers (running_mean zeros, running_var ones,
  the start values of nn.BatchNorm1d): every rank's buffers after one call against
  nn.BatchNorm1d after one training step on the whole batch (momentum 0.1 and 0.3).
  round3 starts from random buffers; round16 starts from fresh ones but compares only
  the output.

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference18).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def install(reference):
    P, _Ranks = reference.Problems, reference._Ranks
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference check (19d) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def fw_extra(p, space, sol):
        f = space["sync_batchnorm_forward"]
        gen = torch.Generator().manual_seed(19)
        sizes, c = (3, 5, 2), 4
        for eps in (0.5, 1e-3):
            x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 0.7 + 1
            gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            beta = torch.randn(c, generator=gen, dtype=torch.float64)
            want = F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
            try:
                res = _Ranks(len(sizes)).run(lambda part, ar, eps=eps: f(part, gamma, beta, ar, eps=eps),
                                             [(part,) for part in torch.split(x, list(sizes))])
            except Exception as exc:  # noqa: BLE001
                p.append(f"19d eps={eps}: raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            got = torch.cat([torch.as_tensor(r[0]).detach().double() for r in res])
            p.close(f"19d eps={eps} out", got, want, rtol=1e-9, atol=1e-10)
        for sizes, momentum in [((4, 7, 1), 0.1), ((3, 5), 0.3)]:
            c = 3
            x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
            gamma, beta = torch.ones(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
            ref = nn.BatchNorm1d(c, momentum=momentum).double()
            with torch.no_grad():
                ref(x)
            bufs = [(torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)) for _ in sizes]

            def call(part, rm, rv, ar, momentum=momentum):
                return f(part, gamma, beta, ar, running_mean=rm, running_var=rv, momentum=momentum)

            try:
                _Ranks(len(sizes)).run(call, [(part, rm, rv) for part, (rm, rv) in
                                              zip(torch.split(x, list(sizes)), bufs)])
            except Exception as exc:  # noqa: BLE001
                p.append(f"19d {sizes} fresh buffers: raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            for rank, (rm, rv) in enumerate(bufs):
                p.close(f"19d {sizes} fresh buffers rank {rank} running_mean", rm, ref.running_mean, rtol=1e-9)
                p.close(f"19d {sizes} fresh buffers rank {rank} running_var", rv, ref.running_var, rtol=1e-9)

    V["sync_batchnorm_forward"] = with_extra("sync_batchnorm_forward", fw_extra)
