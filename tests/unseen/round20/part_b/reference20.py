"""The twentieth set's (part b) additions to the independent reference (installed after round2's and
rounds 3, 14-19 part b's). No helpers.checks: the solution's own functions are the reference.

Properties added:
- renorm_schedule: the arguments as the notebook itself passes them (NumPy integer steps from
  np.arange, float warm-up and ramp lengths from set_bounds' scaling) give the solution's values.
- batch_renorm_backward: the arrays handed in (dout and every array of the cache, gamma included)
  are left unchanged.
- ScratchBatchNorm: parameter and buffer dtypes as nn.BatchNorm1d's, when built and after .double()
  then reset_parameters(); one value per channel refused with ValueError without running statistics
  too (track_running_stats=False, training and eval), as nn.BatchNorm1d does.
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
                p.append(f"extra reference (20b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def schedule_extra(p, space, sol):
        fn, ref = space["renorm_schedule"], sol["renorm_schedule"]
        for args in [(np.int64(0), 5000, 35000, 20000), (np.int64(22_500), 5000, 35000, 20000),
                     (np.arange(0, 45_001, 500)[70], 5000, 35000, 20000),
                     (1200, 5000 * 0.24, 35000 * 0.24, 20000 * 0.24), (np.int64(9000), 1200.0, 8400.0, 4800.0)]:
            got, ok = _call(p, f"20b schedule{tuple(type(a).__name__ for a in args)}", fn, *args)
            if not ok:
                return
            want = ref(*args)
            if not np.allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=1e-12, atol=1e-12):
                p.append(f"20b schedule{args}: {got} != {want}")

    def backward_extra(p, space, sol):
        fwd, bwd = sol["batch_renorm_forward"], space["batch_renorm_backward"]
        rng = np.random.default_rng(201)
        x = rng.normal(size=(9, 4)) * 2 + 1
        gamma, beta = rng.normal(size=4), rng.normal(size=4)
        rm, rs = rng.normal(size=4) * 0.3, rng.uniform(0.5, 2.0, size=4)
        _, cache, _ = fwd(x, gamma, beta, rm, rs, 2.0, 1.0)
        dout = rng.normal(size=(9, 4))
        before = [np.array(a, copy=True) for a in (dout, *cache)]
        gamma0 = gamma.copy()
        if not _call(p, "20b backward call", bwd, dout, cache)[1]:
            return
        for i, (a, b) in enumerate(zip((dout, *cache), before)):
            if not np.array_equal(np.asarray(a), b):
                p.append(f"20b backward changed input array {i} in place")
        if not np.array_equal(gamma, gamma0):
            p.append("20b backward changed gamma in place")

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        m, ok = _call(p, "20b construct", cls, 3)
        if not ok:
            return
        ref = nn.BatchNorm1d(3)
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            a, b = getattr(m, name, None), getattr(ref, name)
            if a is None or a.dtype != b.dtype:
                p.append(f"20b dtype of {name}: {None if a is None else a.dtype}, torch's {b.dtype}")
        m, ok = _call(p, "20b construct (double)", cls, 3)
        if ok:
            m = m.double()
            if _call(p, "20b reset_parameters() after .double()", m.reset_parameters)[1]:
                for name in ("weight", "bias", "running_mean", "running_var"):
                    a = getattr(m, name, None)
                    if a is None or a.dtype != torch.float64:
                        p.append(f"20b after .double() and reset_parameters(): {name} is "
                                 f"{None if a is None else a.dtype}")
        for mode in ("train", "eval"):
            m, ok = _call(p, "20b construct untracked", cls, 3, track_running_stats=False)
            if not ok:
                continue
            getattr(m, mode)()
            try:
                m(torch.randn(1, 3))
            except ValueError:
                pass
            except Exception as exc:  # noqa: BLE001
                p.append(f"20b untracked, {mode}, one value per channel: {type(exc).__name__}, not ValueError")
            else:
                p.append(f"20b untracked, {mode}, one value per channel: not refused (torch raises ValueError)")

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["renorm_schedule"] = with_extra("renorm_schedule", schedule_extra)
    V["batch_renorm_backward"] = with_extra("batch_renorm_backward", backward_extra)
