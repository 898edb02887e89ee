"""The tenth set's (part c) additions to the independent reference (no helpers.checks).

``install(reference)`` is called by run.py after round 3's ``reference3.install``:

- first the ninth set part c's additions (``/work/heldout/unseen9c/reference9.py``,
  IMPORTED, not copied): round 4 part b's capstone verifier (graded cell
  ``sync_bn_layer``) loaded from the checkout, NoisyBatchNorm's eval mode with an
  affine map that is not the identity, gradient_change's return types;
- then one property this set's entries break that no earlier verifier looks at:
  NoisyBatchNorm's shift and scale must have a uniform's SPREAD (variance), not only its
  mean and range.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

NINTH = Path("/work/heldout/unseen9c/reference9.py")


def _ninth():
    spec = importlib.util.spec_from_file_location("reference9_unseen9c", NINTH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install(reference):
    _ninth().install(reference)
    P, _call = reference.Problems, reference._call
    V = reference.VERIFIERS
    now = dict(V)

    def plus(name, extra):
        def run(space, sol):
            p = P(now[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference check (set 10c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def noise_variance(p, space, sol):
        torch.manual_seed(31)
        for c, shift_max, spread in [(6, 1.0, 2.0), (5, 0.5, 3.0)]:
            m, ok = _call(p, "construct (noise variance)", space["NoisyBatchNorm"], c, shift=shift_max, spread=spread)
            if not ok:
                return
            m = m.double().train()
            shifts, scales = [], []
            for _ in range(100):
                _, ok = _call(p, "call (noise variance)", m, torch.randn(8, c, dtype=torch.float64))
                noise = getattr(m, "last_noise", None)
                if not ok or not (isinstance(noise, tuple) and len(noise) == 2):
                    return
                shifts.append(torch.as_tensor(noise[0]).detach().double().reshape(-1))
                scales.append(torch.as_tensor(noise[1]).detach().double().reshape(-1))
            s, k = torch.cat(shifts), torch.cat(scales)
            want_s, want_k = (2 * shift_max) ** 2 / 12, (spread - 1) ** 2 / 12
            # n >= 500 draws: the sample variance is within 25 % of a uniform's
            p.check(f"shift variance {float(s.var()):.4f}, a uniform's is {want_s:.4f}",
                    abs(float(s.var()) / want_s - 1) < 0.25)
            p.check(f"scale variance {float(k.var()):.4f}, a uniform's is {want_k:.4f}",
                    abs(float(k.var()) / want_k - 1) < 0.25)

    V["noisy_batchnorm"] = plus("noisy_batchnorm", noise_variance)
