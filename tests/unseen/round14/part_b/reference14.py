"""The fourteenth set's (part b) additions to the independent reference: round2's
reference.py plus round 3's reference3.py, both IMPORTED (run.py installs round 3's
first, then these). No helpers.checks: torch's modules, torch.autograd and the course's
solutions (sol) are the reference.

Properties added (lessons 03 and 04):
- ScratchBatchNorm: float32 input with a large offset (3000) against nn.BatchNorm1d; a module
  with eps=0.5; one channel (C = 1) and one example (N = 1) keep the output's shape and values;
  a training module fed a plain tensor and an eval module fed a tensor that requires grad;
- fold_batchnorm: a Linear without a bias, a grouped and a dilated Conv2d (float64);
- batch_renorm_backward: one feature (D = 1) and one of several shapes against autograd-free
  sol;
- BatchRenorm: train, then eval on 2-D and 4-D input with a non-trivial weight and bias,
  against the solution;
- renorm_schedule: a grid of steps and unequal ramp lengths (7, 3) against the solution.
"""

from __future__ import annotations

import numpy as np
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
                p.append(f"extra reference (14b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(141)
        # float32, large offset
        m, ok = _call(p, "14b float32 offset: construct", cls, 3)
        if ok:
            ref = nn.BatchNorm1d(3)
            x = torch.randn(64, 3, generator=gen) + 3000.0
            out, ok = _call(p, "14b float32 offset: train", m, x)
            if ok:
                p.close("14b float32 offset 3000: output", out, ref(x), rtol=1e-2, atol=2e-2)
        # eps = 0.5
        m, ok = _call(p, "14b eps=0.5: construct", cls, 3, eps=0.5)
        if ok:
            m, ref = m.double(), nn.BatchNorm1d(3, eps=0.5).double()
            x = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 0.3 + 1
            out, ok = _call(p, "14b eps=0.5: train", m, x)
            if ok:
                p.close("14b eps=0.5: output", out, ref(x), rtol=1e-9)
        # shapes with size-1 dimensions
        for c, shape, ref_cls in [(1, (5, 1), nn.BatchNorm1d), (1, (4, 1, 3), nn.BatchNorm1d),
                                  (3, (1, 3, 4), nn.BatchNorm1d), (2, (3, 2, 1, 4), nn.BatchNorm2d)]:
            m, ok = _call(p, f"14b {shape}: construct", cls, c)
            if not ok:
                continue
            m, ref = m.double(), ref_cls(c).double()
            x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 2 + 1
            out, ok = _call(p, f"14b {shape}: train", m, x)
            if ok:
                p.close(f"14b {shape}: output", out, ref(x), rtol=1e-9)
        # mode from self.training, not from x.requires_grad
        m, ok = _call(p, "14b modes: construct", cls, 3)
        if ok:
            m, ref = m.double(), nn.BatchNorm1d(3).double()
            x = torch.randn(8, 3, generator=gen, dtype=torch.float64) * 2 + 1
            out, ok = _call(p, "14b modes: train, plain tensor", m, x)
            if ok:
                p.close("14b modes: training output (plain tensor)", out, ref(x), rtol=1e-9)
            m.eval(), ref.eval()
            xg = (torch.randn(8, 3, generator=gen, dtype=torch.float64) - 1).requires_grad_(True)
            out, ok = _call(p, "14b modes: eval, tensor requiring grad", m, xg)
            if ok:
                p.close("14b modes: eval output (requires_grad)", out, ref(xg), rtol=1e-9)
                p.close("14b modes: running_mean after eval", m.running_mean, ref.running_mean, rtol=1e-9)

    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        torch.manual_seed(142)
        for tag, layer, bn, shape in [
            ("Linear without bias", nn.Linear(4, 6, bias=False), nn.BatchNorm1d(6), (5, 4)),
            ("grouped Conv2d", nn.Conv2d(4, 6, 3, padding=1, groups=2), nn.BatchNorm2d(6), (2, 4, 6, 6)),
            ("dilated Conv2d", nn.Conv2d(3, 4, 3, padding=2, dilation=2), nn.BatchNorm2d(4), (2, 3, 7, 7)),
        ]:
            layer, bn = layer.double(), bn.double()
            with torch.no_grad():
                for _ in range(3):
                    bn(layer(torch.randn(8, *shape[1:], dtype=torch.float64) * 2 + 1))
                bn.weight.uniform_(0.5, 2.0)
                bn.bias.normal_()
            bn.eval()
            folded, ok = _call(p, f"14b {tag}", fold, layer, bn)
            if not ok:
                continue
            x = torch.randn(*shape, dtype=torch.float64)
            try:
                with torch.no_grad():
                    p.close(f"14b {tag}: output", folded(x), bn(layer(x)), rtol=1e-9, atol=1e-10)
            except Exception as exc:  # noqa: BLE001
                p.append(f"14b {tag}: calling the folded layer raised {type(exc).__name__}")

    def renorm_backward_extra(p, space, sol):
        fwd, bw, ref_bw = sol["batch_renorm_forward"], space["batch_renorm_backward"], sol["batch_renorm_backward"]
        rng = np.random.default_rng(143)
        for n, dd in [(6, 1), (5, 3)]:
            x = rng.normal(1, 2, (n, dd))
            g, b = rng.normal(1, 0.5, dd), rng.normal(size=dd)
            rm, rs = rng.normal(size=dd), rng.uniform(0.5, 2, dd)
            _, cache, _ = fwd(x, g, b, rm, rs, 1.5, 0.5)
            dout = rng.normal(size=(n, dd))
            got, ok = _call(p, f"14b backward ({n}, {dd})", bw, dout.copy(), cache)
            if not ok:
                continue
            want = ref_bw(dout.copy(), cache)
            try:
                parts = list(got)
            except TypeError:
                p.append(f"14b backward ({n}, {dd}): not a tuple")
                continue
            if len(parts) != 3:
                p.append(f"14b backward ({n}, {dd}): {len(parts)} values")
                continue
            for nm, a, w in zip(("dx", "dgamma", "dbeta"), parts, want):
                p.close(f"14b ({n}, {dd}) {nm}", a, w, rtol=1e-9)

    def renorm_extra(p, space, sol):
        cls, ref_cls = space["BatchRenorm"], sol["BatchRenorm"]
        gen = torch.Generator().manual_seed(144)
        for dim in (2, 4):
            kw = dict(momentum=0.3, rmax=2.0, dmax=0.5)
            tag = f"14b {dim}-D eval"
            m, ok = _call(p, f"{tag}: construct", cls, 3, **kw)
            if not ok:
                continue
            m, ref = m.double(), ref_cls(3, **kw).double()
            with torch.no_grad():
                wt = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
                bs = torch.randn(3, generator=gen, dtype=torch.float64)
                m.weight.copy_(wt), m.bias.copy_(bs)
                ref.weight.copy_(wt), ref.bias.copy_(bs)
            shape = (6, 3) if dim == 2 else (3, 3, 2, 2)
            okall = True
            for step, shift in enumerate([1.5, -2.0]):
                x = torch.randn(*shape, generator=gen, dtype=torch.float64) * (0.5 + step) + shift
                out, ok = _call(p, f"{tag}: train step {step}", m, x)
                if not ok or not p.close(f"{tag}: train output {step}", out, ref(x), rtol=1e-9):
                    okall = False
                    break
            if not okall:
                continue
            m.eval(), ref.eval()
            x = torch.randn(*shape, generator=gen, dtype=torch.float64) + 0.7
            out, ok = _call(p, f"{tag}: eval", m, x)
            if ok:
                p.close(f"{tag}: eval output", out, ref(x), rtol=1e-9)

    def schedule_extra(p, space, sol):
        f, ref = space["renorm_schedule"], sol["renorm_schedule"]
        for args in [(5, 7, 3), (2, 3, 7, 2.5, 1.5), (0, 11, 6)]:
            for step in range(0, 25):
                got, ok = _call(p, f"14b {args} step {step}", f, step, *args)
                if not ok:
                    return
                try:
                    got = tuple(got)
                except TypeError:
                    p.append(f"14b {args} step {step}: not a pair")
                    return
                if not p.close(f"14b step {step} of {args}", got, ref(step, *args), rtol=1e-12):
                    return

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
    V["batch_renorm_backward"] = with_extra("batch_renorm_backward", renorm_backward_extra)
    V["batch_renorm"] = with_extra("batch_renorm", renorm_extra)
    V["renorm_schedule"] = with_extra("renorm_schedule", schedule_extra)
