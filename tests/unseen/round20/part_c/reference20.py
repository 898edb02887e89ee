"""The twentieth set's (part C) additions to the independent reference: round2's
reference.py with round 3's reference3 and round 13-18 part C's additions
installed first (all imported, not copied), then what they do not look at.  No
helpers.checks; every expected value is the course's solution (``sol``) on a copy,
or the exercise's own specification.

- NoisyBatchNorm built with positional arguments, NoisyBatchNorm(C, shift, spread),
  as its signature allows: the noise must lie in [-shift, shift] and [1, spread]
  (every earlier verifier passes them by keyword).
- gradient_change on the lesson's own shape of net, a 4-layer batch-norm MLP of
  13 entries (Linear, BatchNorm1d, ReLU four times, then the classifier), measured
  at its third Linear (index 6) as the lesson does; at index 0 (no earlier layers:
  G' = G); and on a model that already holds gradients (as a model in the middle of
  a training loop does): every earlier verifier uses nets of at most 7 entries,
  index >= 2 and models without .grad.
- landscape_probe on a model that already holds gradients, and with a step size of
  0 among the step sizes (the loss at w and a change of 0).

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference18).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def _lesson_mlp(seed):
    torch.manual_seed(seed)
    layers = []
    width = 6
    for _ in range(4):
        layers += [nn.Linear(width, 8), nn.BatchNorm1d(8), nn.ReLU()]
        width = 8
    layers.append(nn.Linear(8, 3))
    return nn.Sequential(*layers).double()


def _data(seed, n=16):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=gen)
    return x, y


def _with_stale_grads(model, seed):
    gen = torch.Generator().manual_seed(seed + 100)
    for q in model.parameters():
        q.grad = torch.randn(q.shape, generator=gen, dtype=q.dtype)
    return model


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


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
                p.append(f"extra reference check (20c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def noisy_extra(p, space, sol):
        cls = space["NoisyBatchNorm"]
        torch.manual_seed(20)
        c, shift_max, spread = 3, 0.5, 3.0
        mine, ok = _call(p, "20c positional (C, 0.5, 3.0): construct", cls, c, shift_max, spread)
        if not ok:
            return
        mine = mine.double().train()
        shifts, scales = [], []
        for step in range(60):
            x = torch.randn(8, c, dtype=torch.float64) * 2 + 1
            _, ok = _call(p, f"20c positional: step {step}", mine, x)
            if not ok:
                return
            noise = getattr(mine, "last_noise", None)
            if not p.check("20c positional: last_noise not a pair", isinstance(noise, tuple) and len(noise) == 2):
                return
            shifts.append(noise[0].detach().double())
            scales.append(noise[1].detach().double())
        s, k = torch.stack(shifts), torch.stack(scales)
        p.check(f"20c positional: shift outside [-{shift_max}, {shift_max}] or not spread over it",
                bool(s.min() >= -shift_max and s.max() <= shift_max and s.max() > 0.5 * shift_max))
        p.check(f"20c positional: scale outside [1, {spread}] or not spread over it",
                bool(k.min() >= 1 and k.max() <= spread and k.max() > 1 + 0.75 * (spread - 1)))

    def gc_extra(p, space, sol):
        f, ref = space["gradient_change"], sol["gradient_change"]
        cases = [("lesson net, index 6", lambda: _lesson_mlp(7), 6, 0.3, False),
                 ("lesson net, index 0", lambda: _lesson_mlp(8), 0, 0.3, False),
                 ("lesson net, index 3, model holding gradients", lambda: _lesson_mlp(9), 3, 0.3, True)]
        for what, make, index, lr, stale in cases:
            model = make().train()
            x, y = _data(index + 20)
            want = ref(copy.deepcopy(model), x, y, index, lr)
            if stale:
                _with_stale_grads(model, index)
            keep = copy.deepcopy(model)
            got, ok = _call(p, f"20c {what}", f, model, x, y, index, lr)
            if ok:
                p.close(f"20c {what}", [float(v) for v in got], want, rtol=1e-7, atol=1e-12)
            p.check(f"20c {what}: the model changed", _same_state(model, keep))

    def lp_extra(p, space, sol):
        f, ref = space["landscape_probe"], sol["landscape_probe"]
        cases = [("model holding gradients", [0.05, 0.2, 0.6], True),
                 ("step sizes 0, 0.1, 0.4", [0.0, 0.1, 0.4], False)]
        for i, (what, etas, stale) in enumerate(cases):
            model = reference._mlp(30 + i, True).train()
            x, y = _data(30 + i)
            want = ref(copy.deepcopy(model), x, y, list(etas))
            if stale:
                _with_stale_grads(model, i)
            keep = copy.deepcopy(model)
            got, ok = _call(p, f"20c {what}", f, model, x, y, list(etas))
            if ok:
                p.close(f"20c {what}: losses", [float(v) for v in got[0]], want[0], rtol=1e-7)
                p.close(f"20c {what}: changes", [float(v) for v in got[1]], want[1], rtol=1e-7, atol=1e-12)
            p.check(f"20c {what}: the model changed", _same_state(model, keep))

    V["noisy_batchnorm"] = with_extra("noisy_batchnorm", noisy_extra)
    V["gradient_change"] = with_extra("gradient_change", gc_extra)
    V["landscape_probe"] = with_extra("landscape_probe", lp_extra)
