"""The thirteenth set's (part b) additions to the independent reference: round2's
reference.py plus round 3's reference3.py, both IMPORTED (run.py installs round 3's
first, then these). No helpers.checks: torch's modules and the course's solutions
(sol) are the reference.

Properties added (lessons 03 and 04):
- ScratchBatchNorm: a training batch of ONE image / sequence (N = 1, several values per
  channel) is normalised as nn.BatchNorm2d / 1d do (output and buffers);
- fold_batchnorm: a float32 Linear and Conv2d (one with reflect padding 3) fold into a
  float32 layer with the right output;
- BatchRenorm: training outputs with a non-trivial weight and bias (against the solution), and
  a module built with eps=1e-2;
- renorm_schedule: a grid of steps and ramp lengths (0 included) against the solution.
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
                p.append(f"extra reference (13b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(131)
        for shape, ref_cls in [((1, 3, 2, 3), nn.BatchNorm2d), ((1, 3, 5), nn.BatchNorm1d)]:
            m, ok = _call(p, f"N=1 {shape}: construct", cls, 3)
            if not ok:
                continue
            m, ref = m.double(), ref_cls(3).double()
            x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 2 + 1
            out, ok = _call(p, f"N=1 {shape}: train", m, x)
            if ok:
                p.close(f"N=1 {shape}: output", out, ref(x), rtol=1e-9)
                p.close(f"N=1 {shape}: running_var", m.running_var, ref.running_var, rtol=1e-9)

    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        torch.manual_seed(132)
        for tag, layer, bn, shape in [
            ("float32 Linear", nn.Linear(4, 6), nn.BatchNorm1d(6), (5, 4)),
            ("float32 Conv2d", nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), (2, 3, 6, 6)),
            ("float32 Conv2d, reflect padding 3", nn.Conv2d(2, 4, 3, padding=3, padding_mode="reflect"),
             nn.BatchNorm2d(4), (2, 2, 7, 7)),
        ]:
            with torch.no_grad():
                for _ in range(3):
                    bn(layer(torch.randn(8, *shape[1:]) * 2 + 1))
                bn.weight.uniform_(0.5, 2.0)
                bn.bias.normal_()
            bn.eval()
            folded, ok = _call(p, tag, fold, layer, bn)
            if not ok:
                continue
            w = getattr(folded, "weight", None)
            p.check(f"{tag}: folded weight dtype {getattr(w, 'dtype', None)}",
                    isinstance(w, torch.Tensor) and w.dtype == torch.float32)
            x = torch.randn(*shape)
            try:
                with torch.no_grad():
                    p.close(f"{tag}: output", folded(x), bn(layer(x)), rtol=1e-4, atol=1e-5)
            except Exception as exc:  # noqa: BLE001
                p.append(f"{tag}: calling the folded layer raised {type(exc).__name__}")

    def renorm_extra(p, space, sol):
        cls, ref_cls = space["BatchRenorm"], sol["BatchRenorm"]
        gen = torch.Generator().manual_seed(133)
        for dim, kw in [(2, dict(momentum=0.3, rmax=2.0, dmax=0.5)), (4, dict(momentum=0.2, rmax=1.5, dmax=1.0)),
                        (2, dict(eps=1e-2, momentum=0.3, rmax=2.0, dmax=0.5))]:
            tag = f"13b {dim}-D {kw}"
            m, ok = _call(p, f"{tag}: construct", cls, 3, **kw)
            if not ok:
                continue
            m, ref = m.double(), ref_cls(3, **kw).double()
            with torch.no_grad():
                wt = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
                bs = torch.randn(3, generator=gen, dtype=torch.float64)
                m.weight.copy_(wt), m.bias.copy_(bs)
                ref.weight.copy_(wt), ref.bias.copy_(bs)
            for step, shift in enumerate([1.5, -2.0, 0.3]):
                shape = (6, 3) if dim == 2 else (3, 3, 2, 2)
                x = torch.randn(*shape, generator=gen, dtype=torch.float64) * (0.3 + step) + shift
                out, ok = _call(p, f"{tag}: step {step}", m, x)
                if not ok or not p.close(f"{tag}: output {step}", out, ref(x), rtol=1e-9):
                    break
                p.close(f"{tag}: running_std {step}", m.running_std, ref.running_std, rtol=1e-9)

    def schedule_extra(p, space, sol):
        f, ref = space["renorm_schedule"], sol["renorm_schedule"]
        for args in [(10, 0, 30), (10, 30, 0), (0, 0, 0), (4, 6, 12, 2.5, 1.5), (3, 0, 5, 4.0, 2.0)]:
            for step in range(0, 50, 2):
                got, ok = _call(p, f"13b {args} step {step}", f, step, *args)
                if not ok:
                    return
                if not p.close(f"13b step {step} of {args}", got, ref(step, *args), rtol=1e-12):
                    return

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
    V["batch_renorm"] = with_extra("batch_renorm", renorm_extra)
    V["renorm_schedule"] = with_extra("renorm_schedule", schedule_extra)
