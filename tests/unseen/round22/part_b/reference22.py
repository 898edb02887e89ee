"""The twenty-second set's (part b) additions to the independent reference (installed after round2's and
rounds 3, 14-21 part b's). No helpers.checks: the solution's own functions are the reference.

Properties added:
- fold_batchnorm: a batch norm built with momentum=None (a cumulative average), trained a few steps and put
  in eval mode, folds like any other (the solution's fold, output against bn(layer(x))), for a Linear and
  a Conv2d.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def install(reference):
    P = reference.Problems
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference (22b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def fold_extra(p, space, sol):
        fn = space["fold_batchnorm"]
        gen = torch.Generator().manual_seed(22)
        cases = [
            (nn.Linear(5, 4), nn.BatchNorm1d(4, momentum=None), (6, 5)),
            (nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4, momentum=None), (3, 3, 5, 5)),
        ]
        for layer, bn, shape in cases:
            layer, bn = layer.double(), bn.double()
            with torch.no_grad():
                for _ in range(3):
                    bn(layer(torch.randn(*shape, generator=gen, dtype=torch.float64) * 2 + 1))
                bn.weight.uniform_(0.5, 2.0, generator=gen)
                bn.bias.normal_(generator=gen)
            bn.eval()
            x = torch.randn(*shape, generator=gen, dtype=torch.float64)
            kind = type(layer).__name__
            try:
                folded = fn(copy.deepcopy(layer), copy.deepcopy(bn))
                with torch.no_grad():
                    got, want = folded(x), bn(layer(x))
            except Exception as exc:  # noqa: BLE001
                p.append(f"22b momentum=None {kind}: raised {type(exc).__name__}: {exc}")
                continue
            if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-9, atol=1e-10):
                p.append(f"22b momentum=None {kind}: output differs from bn(layer(x))")

    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
