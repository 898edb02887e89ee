"""The twenty-first set's (part C) additions to the independent reference:
round2's reference.py with round 3's, round 13-18 and round 20 part C's additions
installed first (all imported, not copied), then what they do not look at.  No
helpers.checks; every expected value is the course's solution (``sol``) on a copy.

- gradient_change called twice on the SAME model, inputs and targets objects, the
  model trained in place between the calls (as the lesson's ics_run does every 50
  steps with one fixed batch): the second answer must be the trained model's,
  not the first call's (every earlier verifier builds a new model per call).

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference20).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def _net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Linear(8, 3),
    ).double()


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
                p.append(f"extra reference check (21c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def gc_extra(p, space, sol):
        f, ref = space["gradient_change"], sol["gradient_change"]
        model = _net(21).train()
        gen = torch.Generator().manual_seed(21)
        x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=gen)
        for call in range(2):
            want = ref(copy.deepcopy(model), x, y, 3, 0.2)
            got, ok = _call(p, f"21c same objects, call {call + 1}", f, model, x, y, 3, 0.2)
            if ok:
                p.close(f"21c same objects, call {call + 1}", [float(v) for v in got], want,
                        rtol=1e-7, atol=1e-12)
            # a few training steps of the same model object, in place
            opt = torch.optim.SGD(model.parameters(), lr=0.5)
            for _ in range(5):
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            model.zero_grad()

    V["gradient_change"] = with_extra("gradient_change", gc_extra)
