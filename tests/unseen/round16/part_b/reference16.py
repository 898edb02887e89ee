"""The sixteenth set's (part b) additions to the independent reference: round2's reference.py,
round 3's reference3.py, round 14 part b's reference14.py and round 15 part b's reference15.py, all
IMPORTED (run.py installs them in that order, then these). No helpers.checks: torch's modules and
the course's solutions are the reference.

Properties added (lessons 03 and 04):
- ScratchBatchNorm: a training batch with one value per channel is refused with a ValueError for
  3-D and 4-D input too ((1, C, 1) and (1, C, 1, 1));
- fold_batchnorm: a Conv2d with padding_mode='reflect' and a batch norm with eps=1e-3, against
  bn(layer(x));
- renorm_schedule: ramps of 0 steps (r, d and both), against the solution.
"""

from __future__ import annotations

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
                p.append(f"extra reference (16b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        for shape in [(1, 3, 1), (1, 3, 1, 1)]:
            m, ok = _call(p, f"16b {shape}: construct", cls, 3)
            if not ok:
                continue
            m = m.double()
            _raises(p, f"16b one value per channel {shape}", ValueError, m,
                    torch.randn(*shape, dtype=torch.float64))

    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        torch.manual_seed(161)
        for tag, layer, bn, shape in [
            ("reflect-padded Conv2d", nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
             nn.BatchNorm2d(4), (2, 3, 6, 6)),
            ("bn eps=1e-3 Linear", nn.Linear(5, 3), nn.BatchNorm1d(3, eps=1e-3), (4, 5)),
            ("bn eps=0.1 Conv2d", nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3, eps=0.1), (2, 2, 4, 4)),
        ]:
            layer, bn = layer.double(), bn.double()
            with torch.no_grad():
                for _ in range(3):
                    bn(layer(torch.randn(8, *shape[1:], dtype=torch.float64) * 0.3 + 1))
                bn.weight.uniform_(0.5, 2.0)
                bn.bias.normal_()
            bn.eval()
            folded, ok = _call(p, f"16b {tag}", fold, layer, bn)
            if not ok:
                continue
            x = torch.randn(*shape, dtype=torch.float64)
            try:
                with torch.no_grad():
                    p.close(f"16b {tag}: output", folded(x), bn(layer(x)), rtol=1e-9, atol=1e-10)
            except Exception as exc:  # noqa: BLE001
                p.append(f"16b {tag}: calling the folded layer raised {type(exc).__name__}")

    def schedule_extra(p, space, sol):
        f, ref = space["renorm_schedule"], sol["renorm_schedule"]
        for args in [(4, 0, 6), (4, 6, 0), (3, 0, 0), (0, 0, 5, 2.0, 3.0)]:
            for step in range(0, 16):
                got, ok = _call(p, f"16b {args} step {step}", f, step, *args)
                if not ok:
                    return
                try:
                    got = tuple(got)
                except TypeError:
                    p.append(f"16b {args} step {step}: not a pair")
                    return
                if not p.close(f"16b step {step} of {args}", got, ref(step, *args), rtol=1e-12):
                    return

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
    V["renorm_schedule"] = with_extra("renorm_schedule", schedule_extra)
