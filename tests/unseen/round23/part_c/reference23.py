"""The twenty-third set's (part C) additions to the independent reference:
round2's reference.py with round 3's, round 13-18 and 20-22 part C's additions
installed first (all imported, not copied), then what they do not look at.  No
helpers.checks; every expected value is torch's own nn.BatchNorm1d or the
course's solution (``sol``) on a copy.

- NoisyBatchNorm in bfloat16 (a layer of a low-precision net): its training-mode
  and eval-mode outputs must keep the layer's dtype, and its training output be
  nn.BatchNorm1d's (bfloat16) times its own last_noise plus shift, to bfloat16
  rounding.  Every earlier verifier uses float64 or float32 layers.
- NoisyBatchNorm built with track_running_stats=False: training mode is batch
  norm times the noise, eval mode plain nn.BatchNorm1d(track_running_stats=False)
  (the batch's statistics).
- landscape_probe on a model holding gradients: the caller's .grad tensors must be
  left as they were (round 20 checks the state_dict only).

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference22).
"""

from __future__ import annotations

import copy

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
                p.append(f"extra reference check (23c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def noisy_extra(p, space, sol):
        cls = space["NoisyBatchNorm"]
        torch.manual_seed(23)
        c = 4
        # bfloat16 layer
        mine, ok = _call(p, "23c construct (bfloat16)", cls, c)
        if ok:
            mine = mine.to(torch.bfloat16).train()
            ref = nn.BatchNorm1d(c).to(torch.bfloat16).train()
            for step in range(2):
                x = (torch.randn(8, c) * 2 + 1).to(torch.bfloat16)
                out, ok = _call(p, f"23c bfloat16 step {step}", mine, x)
                if not ok:
                    break
                if not p.check(f"23c bfloat16 training output dtype {getattr(out, 'dtype', None)}",
                               getattr(out, "dtype", None) == torch.bfloat16):
                    break
                shift, scale = mine.last_noise
                want = ref(x).double() * scale.detach().double() + shift.detach().double()
                if not p.close(f"23c bfloat16 output {step}", out.double(), want, rtol=3e-2, atol=3e-2):
                    break
            mine.eval()
            out, ok = _call(p, "23c bfloat16 eval", mine, torch.randn(6, c).to(torch.bfloat16))
            if ok:
                p.check(f"23c bfloat16 eval output dtype {getattr(out, 'dtype', None)}",
                        getattr(out, "dtype", None) == torch.bfloat16)
        # track_running_stats=False
        mine, ok = _call(p, "23c construct (track_running_stats=False)", cls, c,
                         track_running_stats=False)
        if ok:
            mine = mine.double().train()
            ref = nn.BatchNorm1d(c, track_running_stats=False).double().train()
            x = torch.randn(8, c, dtype=torch.float64) * 2 + 1
            out, ok = _call(p, "23c no running stats: training", mine, x)
            if ok:
                shift, scale = (t.detach().double() for t in mine.last_noise)
                p.close("23c no running stats: training output", out, ref(x) * scale + shift, rtol=1e-9)
            mine.eval()
            ref.eval()
            x = torch.randn(6, c, dtype=torch.float64) * 2 + 1
            out, ok = _call(p, "23c no running stats: eval", mine, x)
            if ok:
                p.close("23c no running stats: eval output", out, ref(x), rtol=1e-9)

    def lp_extra(p, space, sol):
        f, ref = space["landscape_probe"], sol["landscape_probe"]
        model = reference._mlp(23, True).train()
        gen = torch.Generator().manual_seed(23)
        x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=gen)
        etas = [0.05, 0.3]
        want = ref(copy.deepcopy(model), x, y, list(etas))
        for q in model.parameters():
            q.grad = torch.randn(q.shape, generator=gen, dtype=q.dtype)
        grads = [q.grad.clone() for q in model.parameters()]
        got, ok = _call(p, "23c model holding gradients", f, model, x, y, list(etas))
        if ok:
            p.close("23c model holding gradients: losses", [float(v) for v in got[0]], want[0], rtol=1e-7)
            p.close("23c model holding gradients: changes", [float(v) for v in got[1]], want[1],
                    rtol=1e-7, atol=1e-12)
        p.check("23c: the caller's gradients changed",
                all(q.grad is not None and torch.equal(q.grad, k) for q, k in zip(model.parameters(), grads)))

    V["noisy_batchnorm"] = with_extra("noisy_batchnorm", noisy_extra)
    V["landscape_probe"] = with_extra("landscape_probe", lp_extra)
