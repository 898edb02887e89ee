"""The ninth set's (part b) additions to the independent reference: round2's
reference.py with round3's reference3.install applied, both IMPORTED (no copy).
No helpers.checks anywhere; torch's own modules are the reference.

Properties added (round2's and round3's verifiers do not look at them):
- ScratchBatchNorm: weight and bias gradients equal torch's; a momentum changed
  after construction (None for a cumulative average, as lesson 03's recalibrate
  does, or a number) is honoured as torch does; reset_parameters resets the
  running statistics too; reset_running_stats works in place (same tensors); a
  1-D input raises ValueError;
- fold_batchnorm: a batch norm with affine=False folds (gamma 1, beta 0);
- BatchRenorm: weight and bias have shape (C,).

``install(reference)`` patches ``reference.VERIFIERS`` in place; call it after
reference3.install.
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
                p.append(f"extra reference check (9b) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- ScratchBatchNorm ---------------------------------------------------------------
    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(91)
        # parameter gradients, 2-D and 4-D
        for dim, bn_cls in [(2, nn.BatchNorm1d), (4, nn.BatchNorm2d)]:
            mine, ok = _call(p, f"{dim}-D construct (param grads)", cls, 3)
            if not ok:
                return
            mine, ref = mine.double(), bn_cls(3).double()
            with torch.no_grad():
                w = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
                b = torch.randn(3, generator=gen, dtype=torch.float64)
                mine.weight.copy_(w), mine.bias.copy_(b), ref.weight.copy_(w), ref.bias.copy_(b)
            shape = (6, 3) if dim == 2 else (4, 3, 2, 3)
            x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 2 + 1
            dout = torch.randn(*shape, generator=gen, dtype=torch.float64)
            out, ok = _call(p, f"{dim}-D train (param grads)", mine, x)
            if not ok:
                continue
            (ref(x) * dout).sum().backward()
            try:
                (out * dout).sum().backward()
            except Exception as exc:  # noqa: BLE001
                p.append(f"{dim}-D backward (param grads) raised {type(exc).__name__}")
                continue
            for name in ("weight", "bias"):
                g = getattr(mine, name).grad
                if g is None:
                    p.append(f"{dim}-D: {name}.grad is None")
                else:
                    p.close(f"{dim}-D: {name}.grad", g, getattr(ref, name).grad, rtol=1e-8)
        # momentum changed after construction
        for first, later in [(0.1, None), (None, 0.3)]:
            mine, ok = _call(p, f"construct momentum={first} (later {later})", cls, 3, momentum=first)
            if not ok:
                return
            mine, ref = mine.double(), nn.BatchNorm1d(3, momentum=first).double()
            mine.momentum, ref.momentum = later, later
            if hasattr(mine, "reset_running_stats"):
                _call(p, "reset_running_stats (momentum later)", mine.reset_running_stats)
            ref.reset_running_stats()
            for step, n in enumerate((5, 3, 8)):
                x = torch.randn(n, 3, generator=gen, dtype=torch.float64) * 2 + 1
                with torch.no_grad():
                    _, ok = _call(p, f"momentum {first} -> {later}: step {step}", mine, x)
                    ref(x)
                if not ok:
                    break
            else:
                for name in ("running_mean", "running_var"):
                    p.close(f"momentum {first} -> {later}: {name}", getattr(mine, name), getattr(ref, name), rtol=1e-9)
        # reset_parameters and in-place reset_running_stats
        mine, ok = _call(p, "construct (resets)", cls, 3)
        if not ok:
            return
        mine, ref = mine.double(), nn.BatchNorm1d(3).double()
        with torch.no_grad():
            for _ in range(2):
                x = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 3 + 2
                _call(p, "train (resets)", mine, x)
                ref(x)
            mine.weight.fill_(2.0), mine.bias.fill_(-1.0)
        if hasattr(mine, "reset_parameters"):
            _, ok = _call(p, "reset_parameters", mine.reset_parameters)
            ref.reset_parameters()
            if ok:
                for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                    p.close(f"after reset_parameters: {name}", getattr(mine, name), getattr(ref, name))
        m2, ok = _call(p, "construct (in-place reset)", cls, 3)
        if ok:
            held = [m2.running_mean, m2.running_var, m2.num_batches_tracked]
            with torch.no_grad():
                _call(p, "train (in-place reset)", m2, torch.randn(5, 3, generator=gen) * 2 + 1)
            _call(p, "reset_running_stats (in place)", m2.reset_running_stats)
            p.check("reset_running_stats replaced the buffers instead of resetting them in place",
                    m2.running_mean is held[0] and m2.running_var is held[1] and m2.num_batches_tracked is held[2])
            p.check("a buffer held from before the reset was not reset",
                    torch.equal(held[0], torch.zeros(3)) and torch.equal(held[1], torch.ones(3)) and int(held[2]) == 0)
            _raises(p, "1-D input", ValueError, m2, torch.randn(5))

    # ---- fold_batchnorm: affine=False ---------------------------------------------------
    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        gen = torch.Generator().manual_seed(92)
        for i, (layer, bn, shape) in enumerate([
            (nn.Linear(4, 5), nn.BatchNorm1d(5, affine=False), (6, 4)),
            (nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, affine=False), (2, 3, 5, 5)),
        ]):
            layer, bn = layer.double(), bn.double()
            with torch.no_grad():
                for _ in range(3):
                    bn(layer(torch.randn(8, *shape[1:], generator=gen, dtype=torch.float64) * 2 + 1))
            bn.eval()
            folded, ok = _call(p, f"affine=False case {i}", fold, layer, bn)
            if ok:
                x = torch.randn(*shape, generator=gen, dtype=torch.float64)
                try:
                    with torch.no_grad():
                        p.close(f"affine=False case {i}: output", folded(x), bn(layer(x)), rtol=1e-9)
                except Exception as exc:  # noqa: BLE001
                    p.append(f"affine=False case {i}: calling the folded layer raised {type(exc).__name__}")

    # ---- BatchRenorm: parameter shapes ----------------------------------------------------
    def renorm_extra(p, space, sol):
        m, ok = _call(p, "construct (parameter shapes)", space["BatchRenorm"], 5)
        if ok:
            for name in ("weight", "bias"):
                t = getattr(m, name, None)
                p.check(f"{name} shape {getattr(t, 'shape', None)}, expected (5,)",
                        isinstance(t, torch.Tensor) and tuple(t.shape) == (5,))

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
    V["batch_renorm"] = with_extra("batch_renorm", renorm_extra)
