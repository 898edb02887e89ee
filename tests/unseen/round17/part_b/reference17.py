"""The seventeenth set's (part b) additions to the independent reference: round2's reference.py and
the additions of round 3, round 14 part b, round 15 part b and round 16 part b, all IMPORTED (run.py
installs them in that order, then these). No helpers.checks: torch's modules and the course's
solutions are the reference.

Properties added (lessons 03 and 04):
- fold_batchnorm: a layer that is neither nn.Linear nor nn.Conv2d (nn.Conv1d, nn.Identity) is
  refused with a TypeError, as the exercise asks.
"""

from __future__ import annotations

import torch
from torch import nn


def install(reference):
    P, _raises = reference.Problems, reference._raises
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference (17b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        for tag, layer, bn in [("Conv1d", nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4)),
                               ("Identity", nn.Identity(), nn.BatchNorm1d(4))]:
            bn.eval()
            _raises(p, f"17b {tag} layer", TypeError, fold, layer, bn)

    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
