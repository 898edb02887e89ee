"""This set's additions to the independent reference (round2's reference.py with
round 3's reference3.py, both IMPORTED by run.py, not copied): properties the new
entries of lessons 03 and 04 break that those verifiers do not look at.  No
helpers.checks anywhere: torch's own modules and plain expectations.

- ScratchBatchNorm: momentum=0.0 keeps the running statistics (nn.BatchNorm1d
  with momentum=0.0); a bfloat16 input gives a bfloat16 output and float32
  buffers; reset_parameters() with affine=False and reset_running_stats() with
  track_running_stats=False work (torch's do); eval mode normalises one example;
  one module fed a 2-D batch, then a 3-D one, agrees with nn.BatchNorm1d.
- fold_batchnorm: returns an nn.Linear / nn.Conv2d, as asked.
- BatchRenorm: running_mean and running_std are in state_dict; a 4-D input with
  the wrong channel count raises ValueError; after rmax and dmax are lowered
  (4 -> 1.5), a batch whose sigma_B / sigma is below 1/1.5 is clipped at the NEW
  lower bound (compared with the course's solution).

``install(reference)`` wraps round2's ``reference.VERIFIERS`` (already patched by
round 3) in place.
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
                p.append(f"extra reference check (6b) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- ScratchBatchNorm ---------------------------------------------------------
    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(61)
        # momentum = 0.0: statistics frozen
        mine, ok = _call(p, "momentum 0: construct", cls, 3, momentum=0.0)
        if ok:
            mine = mine.double()
            ref = nn.BatchNorm1d(3, momentum=0.0).double()
            for step in range(3):
                x = torch.randn(5, 3, generator=gen, dtype=torch.float64) * 2 + 1
                with torch.no_grad():
                    _, ok = _call(p, f"momentum 0: step {step}", mine, x)
                    ref(x)
                if not ok:
                    break
            if ok:
                for name in ("running_mean", "running_var"):
                    p.close(f"momentum 0: {name}", getattr(mine, name), getattr(ref, name), rtol=1e-12)
        # bfloat16 in, bfloat16 out, float32 buffers
        mine, ok = _call(p, "bfloat16: construct", cls, 3)
        if ok:
            x = (torch.randn(6, 3, 4, generator=gen) * 2 + 1).to(torch.bfloat16)
            with torch.no_grad():
                out, ok = _call(p, "bfloat16: train step", mine, x)
            if ok:
                p.check(f"bfloat16 input gave a {getattr(out, 'dtype', type(out))} output",
                        isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16)
                p.check("bfloat16 input: buffers no longer float32",
                        mine.running_mean.dtype == torch.float32 and mine.running_var.dtype == torch.float32)
        # the resets in the other configurations
        mine, ok = _call(p, "affine=False: construct", cls, 3, affine=False)
        if ok:
            _call(p, "affine=False: reset_parameters", mine.reset_parameters)
        mine, ok = _call(p, "untracked: construct", cls, 3, track_running_stats=False)
        if ok:
            _call(p, "untracked: reset_running_stats", mine.reset_running_stats)
            _call(p, "untracked: reset_parameters", mine.reset_parameters)
        # eval mode, one example
        mine, ok = _call(p, "eval one example: construct", cls, 3)
        if ok:
            mine, ref = mine.double(), nn.BatchNorm1d(3).double()
            x = torch.randn(8, 3, generator=gen, dtype=torch.float64) * 3 - 1
            with torch.no_grad():
                _, ok = _call(p, "eval one example: train step", mine, x)
                ref(x)
            if ok:
                mine.eval(), ref.eval()
                one = torch.randn(1, 3, generator=gen, dtype=torch.float64)
                with torch.no_grad():
                    out, ok = _call(p, "eval mode, one example", mine, one)
                    if ok:
                        p.close("eval mode, one example: output", out, ref(one), rtol=1e-9)
        # one module, 2-D then 3-D input (nn.BatchNorm1d takes both)
        mine, ok = _call(p, "2-D then 3-D: construct", cls, 3, momentum=0.3)
        if ok:
            mine, ref = mine.double(), nn.BatchNorm1d(3, momentum=0.3).double()
            for i, shape in enumerate([(6, 3), (4, 3, 5), (5, 3)]):
                x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 2 + 1
                with torch.no_grad():
                    out, ok = _call(p, f"2-D then 3-D: call {i} {shape}", mine, x)
                    want = ref(x)
                if not ok or not p.close(f"2-D then 3-D: output {i} {shape}", out, want, rtol=1e-9):
                    break
                p.close(f"2-D then 3-D: running_var after call {i}", mine.running_var, ref.running_var, rtol=1e-9)

    # ---- fold_batchnorm -----------------------------------------------------------
    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        for layer, bn in [(nn.Linear(3, 4), nn.BatchNorm1d(4)), (nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))]:
            bn.eval()
            out, ok = _call(p, f"fold {type(layer).__name__} (type check)", fold, layer, bn)
            if ok:
                p.check(f"fold of a {type(layer).__name__} returned a {type(out).__name__}",
                        type(out) is type(layer))

    # ---- BatchRenorm --------------------------------------------------------------
    def renorm_extra(p, space, sol):
        m, ok = _call(p, "construct (state_dict check)", space["BatchRenorm"], 3)
        if not ok:
            return
        keys = sorted(m.state_dict())
        p.check(f"state_dict keys {keys}, expected bias, running_mean, running_std, weight",
                keys == ["bias", "running_mean", "running_std", "weight"])
        _raises(p, "4-D input with the wrong channel count", ValueError, m, torch.randn(4, 2, 3, 3))
        m.eval()
        _raises(p, "4-D input with the wrong channel count (eval)", ValueError, m, torch.randn(4, 2, 3, 3))
        # bounds changed after construction, with r below the new lower bound
        gen = torch.Generator().manual_seed(62)
        mine, ok = _call(p, "construct (bounds changed)", space["BatchRenorm"], 3, momentum=0.1, rmax=4.0, dmax=2.0)
        if not ok:
            return
        ref = sol["BatchRenorm"](3, momentum=0.1, rmax=4.0, dmax=2.0)
        mine, ref = mine.double(), ref.double()
        mine.rmax, mine.dmax, ref.rmax, ref.dmax = 1.5, 0.5, 1.5, 0.5
        x = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 0.3  # sigma_B / sigma well below 1/1.5
        with torch.no_grad():
            out, ok = _call(p, "train step (bounds changed)", mine, x)
            if ok:
                p.close("output after rmax, dmax changed to 1.5, 0.5 (r at its lower bound)", out, ref(x), rtol=1e-9)

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
    V["batch_renorm"] = with_extra("batch_renorm", renorm_extra)
