"""The twenty-fifth set's (part C) addition to the independent reference (after
round 2's, 3's, 13-18 and 20-23 part C's, all imported, not copied).  No
helpers.checks; the expected values are the course's solution (``sol``) on a copy.

- landscape_probe with step sizes not in increasing order: the losses and changes
  must come back in the caller's order (every earlier verifier passes sorted
  step sizes).

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference23).
"""

from __future__ import annotations

import copy

import torch


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
                p.append(f"extra reference check (25c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def lp_extra(p, space, sol):
        f, ref = space["landscape_probe"], sol["landscape_probe"]
        model = reference._mlp(25, True).train()
        gen = torch.Generator().manual_seed(25)
        x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=gen)
        etas = [0.5, 0.01, 0.2]
        want = ref(copy.deepcopy(model), x, y, list(etas))
        got, ok = _call(p, "25c unsorted step sizes", f, model, x, y, list(etas))
        if ok:
            p.close("25c unsorted step sizes: losses", [float(v) for v in got[0]], want[0], rtol=1e-7)
            p.close("25c unsorted step sizes: changes", [float(v) for v in got[1]], want[1],
                    rtol=1e-7, atol=1e-12)

    V["landscape_probe"] = with_extra("landscape_probe", lp_extra)
