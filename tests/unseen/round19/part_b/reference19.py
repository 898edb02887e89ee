"""The nineteenth set's (part b) additions to the independent reference: round2's reference.py and
the additions of round 3, round 14 part b, round 15 part b, round 16 part b, round 17 part b and
round 18 part b, all IMPORTED (run.py installs them in that order, then these). No helpers.checks:
torch's modules and the solution's own classes are the reference.

Properties added (lessons 03 and 04):
- ScratchBatchNorm: reset_parameters() after training and after weight and bias changed: weight 1,
  bias 0, buffers reset, and the next training step's output and buffers as nn.BatchNorm1d's after
  its own reset_parameters();
- BatchRenorm: only one bound relaxed (rmax > 1 with dmax = 0, and rmax = 1 with dmax > 0): outputs
  and buffers over a few training steps against the solution's BatchRenorm with the same settings.
"""

from __future__ import annotations

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
                p.append(f"extra reference (19b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(191)
        m, ok = _call(p, "19b reset_parameters: construct", cls, 4)
        if not ok:
            return
        m, ref = m.double(), nn.BatchNorm1d(4).double()
        for step in range(3):
            x = torch.randn(7, 4, generator=gen, dtype=torch.float64) * 2 + 1
            if not _call(p, f"19b reset_parameters: train step {step}", m, x)[1]:
                return
            ref(x)
        with torch.no_grad():
            for mod in (m, ref):
                mod.weight.mul_(3.0).add_(0.5)
                mod.bias.add_(-2.0)
        if not _call(p, "19b reset_parameters()", m.reset_parameters)[1]:
            return
        ref.reset_parameters()
        p.close("19b after reset_parameters: weight", m.weight, ref.weight, rtol=1e-12)
        p.close("19b after reset_parameters: bias", m.bias, ref.bias, rtol=1e-12, atol=1e-12)
        for name in ("running_mean", "running_var"):
            p.close(f"19b after reset_parameters: {name}", getattr(m, name), getattr(ref, name), rtol=1e-12)
        x = torch.randn(6, 4, generator=gen, dtype=torch.float64) * 3 - 1
        out, ok = _call(p, "19b after reset_parameters: train step", m, x)
        if ok:
            p.close("19b after reset_parameters: output", out, ref(x), rtol=1e-9, atol=1e-12)

    def renorm_extra(p, space, sol):
        cls, ref_cls = space["BatchRenorm"], sol["BatchRenorm"]
        gen = torch.Generator().manual_seed(192)
        for kw, shape in [({"rmax": 2.0, "dmax": 0.0, "momentum": 0.3}, (6, 3)),
                          ({"rmax": 1.0, "dmax": 1.0, "momentum": 0.3}, (5, 3, 2, 2)),
                          ({"rmax": 1.5, "dmax": 0.0, "momentum": 0.2}, (4, 3, 3, 2))]:
            m, ok = _call(p, f"19b one bound relaxed {kw}: construct", cls, 3, **kw)
            if not ok:
                continue
            m, ref = m.double(), ref_cls(3, **kw).double()
            for step in range(4):
                x = torch.randn(*shape, generator=gen, dtype=torch.float64) * (1.5 + step) + 0.7 * step
                out, ok = _call(p, f"19b one bound relaxed {kw}: step {step}", m, x)
                if not ok:
                    break
                want = ref(x)
                if p.close(f"19b one bound relaxed {kw}: output {step}", out, want, rtol=1e-9, atol=1e-12) is False:
                    break
                for name in ("running_mean", "running_std"):
                    p.close(f"19b one bound relaxed {kw}: {name} {step}", getattr(m, name), getattr(ref, name),
                            rtol=1e-9, atol=1e-12)

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["batch_renorm"] = with_extra("batch_renorm", renorm_extra)
