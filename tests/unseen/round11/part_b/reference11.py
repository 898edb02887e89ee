"""The eleventh set's (part b) additions to the independent reference: round2's
reference.py plus round 3's reference3.py, both IMPORTED (run.py installs round 3's
first, then these). No helpers.checks anywhere: torch's own modules and the course's
solutions are the reference.

Properties added (lessons 03 and 04 only):
- ScratchBatchNorm: eval mode of a module that has seen no training batch uses the
  running statistics (0, 1) as nn.BatchNorm does; with affine=False the state_dict
  keys are torch's and weight / bias are None; a wrong channel count is a ValueError
  in eval mode too;
- fold_batchnorm: a batch norm that has seen no batch (eval mode, statistics 0 and 1,
  a weight that is not 1) folds; an affine=False batch norm folds;
- BatchRenorm: with bounds so wide that nothing is clipped, input gradients equal the
  solution's; a training batch with one value per channel (N = 1, C = 3) is refused;
- renorm_schedule: ramps of 0 steps (either, both), against the solution.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def install(reference):
    P, _call, _raises = reference.Problems, reference._call, reference._raises
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference (11b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- ScratchBatchNorm ------------------------------------------------------------
    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(111)
        for shape, ref_cls in [((6, 3), nn.BatchNorm1d), ((4, 3, 2, 5), nn.BatchNorm2d)]:
            mine, ok = _call(p, f"untrained eval {shape}: construct", cls, 3)
            if not ok:
                continue
            mine, ref = mine.double().eval(), ref_cls(3).double().eval()
            x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 3 + 2
            out, ok = _call(p, f"untrained eval {shape}", mine, x)
            if ok:
                p.close(f"untrained eval {shape}: output", out, ref(x), rtol=1e-9)
        mine, ok = _call(p, "affine=False: construct", cls, 3, affine=False)
        if ok:
            ref = nn.BatchNorm1d(3, affine=False)
            p.check(f"affine=False: state_dict keys {sorted(mine.state_dict())}",
                    sorted(mine.state_dict()) == sorted(ref.state_dict()))
            p.check("affine=False: weight or bias is not None",
                    getattr(mine, "weight", 0) is None and getattr(mine, "bias", 0) is None)
        mine, ok = _call(p, "eval channel count: construct", cls, 4)
        if ok:
            mine.eval()
            _raises(p, "eval mode, wrong channel count", ValueError, mine, torch.randn(5, 3))

    # ---- fold_batchnorm ---------------------------------------------------------------
    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        torch.manual_seed(112)
        cases = [
            ("untrained bn, Linear", nn.Linear(4, 5), nn.BatchNorm1d(5), (6, 4), False),
            ("untrained bn, Conv2d", nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), (2, 3, 5, 5), False),
            ("affine=False bn, Linear", nn.Linear(4, 5), nn.BatchNorm1d(5, affine=False), (6, 4), True),
            ("affine=False bn, Conv2d", nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4, affine=False),
             (2, 3, 6, 6), True),
        ]
        for tag, layer, bn, shape, trained in cases:
            layer, bn = layer.double(), bn.double()
            with torch.no_grad():
                if trained:
                    for _ in range(3):
                        bn(layer(torch.randn(8, *shape[1:], dtype=torch.float64) * 2 + 1))
                if bn.affine:
                    bn.weight.uniform_(0.5, 2.0)
                    bn.bias.normal_()
            bn.eval()
            x = torch.randn(*shape, dtype=torch.float64)
            folded, ok = _call(p, tag, fold, layer, bn)
            if ok:
                try:
                    with torch.no_grad():
                        p.close(f"{tag}: output", folded(x), bn(layer(x)), rtol=1e-9)
                except Exception as exc:  # noqa: BLE001
                    p.append(f"{tag}: calling the folded layer raised {type(exc).__name__}")

    # ---- BatchRenorm ------------------------------------------------------------------
    def renorm_extra(p, space, sol):
        cls, ref_cls = space["BatchRenorm"], sol["BatchRenorm"]
        gen = torch.Generator().manual_seed(113)
        for dim in (2, 4):
            mine, ok = _call(p, f"wide bounds {dim}-D: construct", cls, 3, momentum=0.2, rmax=1e3, dmax=1e3)
            if not ok:
                continue
            mine, ref = mine.double(), ref_cls(3, momentum=0.2, rmax=1e3, dmax=1e3).double()
            for step in range(3):
                shape = (7, 3) if dim == 2 else (3, 3, 2, 2)
                x = torch.randn(*shape, generator=gen, dtype=torch.float64) * (1 + step) + step
                xm, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
                out, ok = _call(p, f"wide bounds {dim}-D step {step}", mine, xm)
                if not ok:
                    break
                want = ref(xr)
                dout = torch.randn(*shape, generator=gen, dtype=torch.float64)
                (want * dout).sum().backward()
                try:
                    (out * dout).sum().backward()
                    p.close(f"wide bounds {dim}-D dx {step}", xm.grad, xr.grad, rtol=1e-8)
                except Exception as exc:  # noqa: BLE001
                    p.append(f"wide bounds {dim}-D: backward raised {type(exc).__name__}")
                    break
        m, ok = _call(p, "one value per channel: construct", cls, 3)
        if ok:
            _raises(p, "training (1, 3) input", ValueError, m.train(), torch.randn(1, 3))

    # ---- renorm_schedule --------------------------------------------------------------
    def schedule_extra(p, space, sol):
        f, ref = space["renorm_schedule"], sol["renorm_schedule"]
        for args in [(10, 20, 0), (10, 0, 5, 2.0, 4.0), (0, 0, 0), (7, 0, 0, 4.0, 2.0)]:
            for step in range(0, 40):
                got, ok = _call(p, f"{args} step {step}", f, step, *args)
                if not ok:
                    return
                if not p.close(f"zero-length ramp: step {step} of {args}", np.asarray(got, dtype=float),
                               ref(step, *args), rtol=1e-12):
                    return

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
    V["batch_renorm"] = with_extra("batch_renorm", renorm_extra)
    V["renorm_schedule"] = with_extra("renorm_schedule", schedule_extra)
