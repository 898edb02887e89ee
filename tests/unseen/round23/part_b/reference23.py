"""The twenty-third set's (part b) additions to the independent reference (installed after round2's and
rounds 3, 14-22 part b's). No helpers.checks: torch's modules and the solution's own functions are the
reference.

Properties added:
- ScratchBatchNorm: a module with affine=False, trained two steps, then reset_parameters(): its running
  statistics and counter as nn.BatchNorm1d(affine=False)'s after its own reset_parameters();
- fold_batchnorm: the two refusals (training mode, track_running_stats=False) raise a ValueError whose
  message is not empty (the exercise asks for one "that says why");
- renorm_schedule: ramps of 0 steps with a fractional warm-up (12.5, as set_bounds' scaling makes it),
  against the solution.
"""

from __future__ import annotations

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
                p.append(f"extra reference (23b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(23)
        try:
            mine = cls(3, affine=False).double()
        except Exception as exc:  # noqa: BLE001
            p.append(f"23b affine=False: construct raised {type(exc).__name__}")
            return
        ref = nn.BatchNorm1d(3, affine=False).double()
        for n in (5, 4):
            x = torch.randn(n, 3, generator=gen, dtype=torch.float64) * 2 + 1
            with torch.no_grad():
                mine(x), ref(x)
        try:
            mine.reset_parameters()
        except Exception as exc:  # noqa: BLE001
            p.append(f"23b affine=False: reset_parameters raised {type(exc).__name__}")
            return
        ref.reset_parameters()
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            got = getattr(mine, name, None)
            if not isinstance(got, torch.Tensor) or got.shape != getattr(ref, name).shape \
                    or not torch.equal(got.to(getattr(ref, name).dtype), getattr(ref, name)):
                p.append(f"23b affine=False: {name} after reset_parameters() is {got}")

    def fold_extra(p, space, sol):
        fn = space["fold_batchnorm"]
        training = nn.BatchNorm1d(3)  # training mode
        untracked = nn.BatchNorm1d(3, track_running_stats=False).eval()
        for tag, bn in (("training-mode bn", training), ("untracked bn", untracked)):
            try:
                fn(nn.Linear(2, 3), bn)
            except ValueError as exc:
                if not str(exc).strip():
                    p.append(f"23b {tag}: ValueError without a message")
            except Exception as exc:  # noqa: BLE001
                p.append(f"23b {tag}: raised {type(exc).__name__}, expected ValueError")
            else:
                p.append(f"23b {tag}: not refused")

    def schedule_extra(p, space, sol):
        f, ref = space["renorm_schedule"], sol["renorm_schedule"]
        for args in [(12.5, 0, 0), (12.5, 0, 50.0), (12.5, 87.5, 0)]:
            for step in list(range(0, 30)) + [100, 200]:
                try:
                    got = f(step, *args)
                except Exception as exc:  # noqa: BLE001
                    p.append(f"23b step {step} of {args}: raised {type(exc).__name__}")
                    return
                if not p.close(f"23b step {step} of {args}", got, ref(step, *args), rtol=1e-12):
                    return

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
    V["renorm_schedule"] = with_extra("renorm_schedule", schedule_extra)
