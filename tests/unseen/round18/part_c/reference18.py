"""The eighteenth set's (part C) additions to the independent reference: round2's
reference.py with round 3's reference3 and round 13-16 part C's reference13..16
installed first (all imported, not copied), then round 17 part C's additions
(copied here from /work/heldout/unseen17c/reference17.py, which is not in the
repository yet) and this set's own.  No helpers.checks.

Round 17's:

- NoisyBatchNorm with an empty range (shift=0 and spread=1, and each alone): the
  training-mode output is plain batch norm (the noise is the point 0 or 1), in range,
  and nothing raises.  Every earlier verifier uses shift > 0 and spread > 1.
- sync_batchnorm_forward leaves its input alone: each rank's x is the same tensor
  with the same values after the call (with and without running statistics).

Round 18 adds nothing of its own: every entry of this set differs from (or, for
the correct ones, agrees with) the reference above.

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference16).
"""

from __future__ import annotations


import torch
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
                p.append(f"extra reference check (17c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def noisy_extra(p, space, sol):
        cls = space["NoisyBatchNorm"]
        torch.manual_seed(17)
        for kw in (dict(shift=0.0, spread=1.0), dict(shift=0.0), dict(spread=1.0)):
            c = 3
            mine, ok = _call(p, f"17c {kw}: construct", cls, c, **kw)
            if not ok:
                continue
            mine = mine.double().train()
            ref = nn.BatchNorm1d(c).double()
            for step in range(5):
                x = torch.randn(8, c, dtype=torch.float64) * 2 + 1
                out, ok = _call(p, f"17c {kw}: step {step}", mine, x)
                if not ok:
                    break
                noise = getattr(mine, "last_noise", None)
                if not p.check(f"17c {kw}: last_noise is {type(noise).__name__}",
                               isinstance(noise, tuple) and len(noise) == 2):
                    break
                shift, scale = (t.detach().double() for t in noise)
                want = ref(x)
                if kw.get("shift", 1.0) == 0.0:
                    p.check(f"17c {kw}: shift not 0", bool(torch.all(shift == 0)))
                else:
                    p.check(f"17c {kw}: shift out of range", bool(torch.all(shift.abs() <= 1.0)))
                if kw.get("spread", 2.0) == 1.0:
                    p.check(f"17c {kw}: scale not 1", bool(torch.all(scale == 1)))
                else:
                    p.check(f"17c {kw}: scale out of range", bool(torch.all((scale >= 1) & (scale <= 2))))
                if not p.close(f"17c {kw}: output {step}", out, want * scale + shift, rtol=1e-9):
                    break

    def fw_extra(p, space, sol):
        f = space["sync_batchnorm_forward"]
        gen = torch.Generator().manual_seed(17)
        sizes, c = (3, 5), 4
        for running in (False, True):
            x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 3 + 2
            gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            beta = torch.randn(c, generator=gen, dtype=torch.float64)
            parts = [t.clone() for t in torch.split(x, list(sizes))]
            keep = [t.clone() for t in parts]
            bufs = [(torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)) for _ in sizes]

            def call(part, rm, rv, ar):
                if running:
                    return f(part, gamma, beta, ar, running_mean=rm, running_var=rv)
                return f(part, gamma, beta, ar)

            try:
                _Ranks(len(sizes)).run(call, [(part, rm, rv) for part, (rm, rv) in zip(parts, bufs)])
            except Exception as exc:  # noqa: BLE001
                p.append(f"17c input-kept run (running={running}) raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            p.check(f"17c the caller's x changed (running={running})",
                    all(torch.equal(a, b) for a, b in zip(parts, keep)))

    V["noisy_batchnorm"] = with_extra("noisy_batchnorm", noisy_extra)
    V["sync_batchnorm_forward"] = with_extra("sync_batchnorm_forward", fw_extra)
