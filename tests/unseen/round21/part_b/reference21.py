"""The twenty-first set's (part b) additions to the independent reference (installed after round2's and
rounds 3, 14-20 part b's). No helpers.checks: the solution's own functions are the reference.

Properties added:
- renorm_schedule: fractional warm-up and ramp lengths, as set_bounds' scaling makes them for the
  notebook's batches of 32 (0.8 * 125 / 40000 = 0.0025: 12.5, 87.5, 50.0), give the solution's values.
"""

from __future__ import annotations

import numpy as np


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
                p.append(f"extra reference (21b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def schedule_extra(p, space, sol):
        fn, ref = space["renorm_schedule"], sol["renorm_schedule"]
        scale = 0.8 * 125 / 40_000
        lengths = (5000 * scale, 35_000 * scale, 20_000 * scale)
        for step in range(0, 126):
            got, ok = _call(p, f"21b schedule({step}, {lengths})", fn, step, *lengths)
            if not ok:
                return
            want = ref(step, *lengths)
            if not np.allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=1e-12, atol=1e-12):
                p.append(f"21b schedule({step}, {lengths}): {got} != {want}")
                return

    V["renorm_schedule"] = with_extra("renorm_schedule", schedule_extra)
