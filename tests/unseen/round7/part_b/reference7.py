"""This set's additions to the independent reference (round2's reference.py with round 3's
reference3.py, both IMPORTED by run.py, not copied): properties the new entries of lessons 03
and 04 break that those verifiers do not look at.  No helpers.checks anywhere: torch's own
modules and plain expectations from the lessons' text.

- ScratchBatchNorm: the input is left unchanged (train and eval mode); copy.deepcopy of
  the module works after a training step on an input that requires grad (the lesson: a
  tensor with autograd history kept on the module makes it fail); with
  track_running_stats=False the three buffers are None (as torch's); with it, the three are
  in state_dict.
- fold_batchnorm: a Conv2d with a non-square (3, 1) kernel folds (compared with bn(conv(x)));
  a batch norm built with track_running_stats=False is refused with ValueError.
- BatchRenorm: the default momentum is 0.01 and a fresh module's running_std is ones.
- renorm_schedule: returns a tuple of two floats; ramps of length 0 (stay at the start value
  until the warm-up ends, then final); a call for an early step after one for a
  late step gives the early step's bounds (no state between calls).

``install(reference)`` wraps round2's ``reference.VERIFIERS`` (already patched by round 3)
in place.
"""

from __future__ import annotations

import copy

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
                p.append(f"extra reference check (7b) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(71)
        m, ok = _call(p, "input unchanged: construct", cls, 3)
        if ok:
            m = m.double()
            for mode in ("train", "eval"):
                m.train(mode == "train")
                x = torch.randn(6, 3, 4, generator=gen, dtype=torch.float64) * 2 + 1
                keep = x.clone()
                with torch.no_grad():
                    _, ok = _call(p, f"input unchanged: {mode} call", m, x)
                p.check(f"{mode} mode changed its input", torch.equal(x, keep))
        m, ok = _call(p, "deepcopy after training: construct", cls, 3)
        if ok:
            x = torch.randn(6, 3, generator=gen, requires_grad=True)
            _, ok = _call(p, "deepcopy after training: train step with grad", m, x)
            if ok:
                _call(p, "copy.deepcopy(module) after a training step", copy.deepcopy, m)
        m, ok = _call(p, "untracked: construct (buffers)", cls, 3, track_running_stats=False)
        if ok:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                p.check(f"track_running_stats=False: {name} is not None", getattr(m, name, None) is None)
        m, ok = _call(p, "state_dict: construct", cls, 3)
        if ok:
            keys = set(m.state_dict())
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                p.check(f"{name} not in state_dict", name in keys)

    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        torch.manual_seed(72)
        conv, bn = nn.Conv2d(3, 4, (3, 1), padding=(1, 0)).double(), nn.BatchNorm2d(4).double()
        with torch.no_grad():
            for _ in range(3):
                bn(conv(torch.randn(5, 3, 6, 6, dtype=torch.float64) * 2 + 1))
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.normal_()
        bn.eval()
        x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
        folded, ok = _call(p, "fold a (3, 1) kernel", fold, copy.deepcopy(conv), copy.deepcopy(bn))
        if ok:
            try:
                with torch.no_grad():
                    p.close("(3, 1) kernel: output", folded(x), bn(conv(x)), rtol=1e-9)
            except Exception as exc:  # noqa: BLE001
                p.append(f"(3, 1) kernel: calling the folded layer raised {type(exc).__name__}")
        untracked = nn.BatchNorm1d(3, track_running_stats=False).eval()
        _raises(p, "bn with track_running_stats=False", ValueError, fold, nn.Linear(2, 3), untracked)

    def renorm_extra(p, space, sol):
        m, ok = _call(p, "construct (defaults)", space["BatchRenorm"], 3)
        if ok:
            p.check(f"default momentum {getattr(m, 'momentum', None)}, expected 0.01",
                    getattr(m, "momentum", None) == 0.01)
            rs = getattr(m, "running_std", None)
            p.check("a fresh running_std is not ones",
                    isinstance(rs, torch.Tensor) and torch.equal(rs, torch.ones(3)))

    def schedule_extra(p, space, sol):
        f, ref = space["renorm_schedule"], sol["renorm_schedule"]
        got, ok = _call(p, "schedule (type)", f, 15, 10, 20, 40)
        if ok:
            p.check(f"returned a {type(got).__name__}, expected a tuple of two floats",
                    isinstance(got, tuple) and len(got) == 2 and all(isinstance(v, float) for v in got))
        for args in [(10, 0, 0), (10, 0, 20), (4, 6, 0, 2.0, 3.0)]:
            for step in (0, 5, 10, 11, 30):
                got, ok = _call(p, f"schedule {args} step {step}", f, step, *args)
                if not ok or not p.close(f"zero-length ramp {args}, step {step}", got, ref(step, *args), rtol=1e-12):
                    break
        for step in (10_000, 0, 25, 3):
            got, ok = _call(p, f"schedule step {step} (out of order)", f, step, 10, 20, 40)
            if not ok or not p.close(f"step {step} called after a later step", got, ref(step, 10, 20, 40), rtol=1e-12):
                break

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
    V["batch_renorm"] = with_extra("batch_renorm", renorm_extra)
    V["renorm_schedule"] = with_extra("renorm_schedule", schedule_extra)
