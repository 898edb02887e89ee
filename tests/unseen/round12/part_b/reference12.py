"""The twelfth set's (part b) additions to the independent reference: round2's
reference.py plus round 3's reference3.py, both IMPORTED (run.py installs round 3's
first, then these). No helpers.checks: torch's modules and the course's solutions
(sol) are the reference.

Properties added (lessons 03 and 04):
- ScratchBatchNorm: torch's positional order (C, eps, momentum); ValueError for a wrong
  channel count in training mode; affine=False has weight / bias None and torch's
  state_dict keys; gradients in eval mode equal torch's; reset_running_stats zeroes the
  counter, reset_parameters restores weight 1 / bias 0; momentum=None over five steps;
- fold_batchnorm: a Conv1d is refused (TypeError / ValueError) or folded exactly; an
  affine=False batch norm folds; a Conv2d with in != out channels folds;
- BatchRenorm: against the solution over several steps with rmax=2, dmax=0.5 and batches
  shifted both ways (outputs, input gradients, buffers, eval output with trained buffers);
  a training batch with one value per channel is refused (2-D and 4-D);
- renorm_schedule: a grid of steps and ramp lengths (0 included) against the solution.
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
                p.append(f"extra reference (12b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(121)
        m, ok = _call(p, "positional (3, 1e-3, 0.2)", cls, 3, 1e-3, 0.2)
        if ok:
            p.check("positional order: eps, momentum", m.eps == 1e-3 and m.momentum == 0.2)
        m, ok = _call(p, "channel count: construct", cls, 4)
        if ok:
            _raises(p, "training mode, wrong channel count", ValueError, m.train(), torch.randn(6, 3))
        m, ok = _call(p, "affine=False: construct", cls, 3, affine=False)
        if ok:
            ref = nn.BatchNorm1d(3, affine=False)
            p.check("affine=False: state_dict keys", sorted(m.state_dict()) == sorted(ref.state_dict()))
            p.check("affine=False: weight/bias None",
                    getattr(m, "weight", 0) is None and getattr(m, "bias", 0) is None)
        # momentum=None, then eval gradients
        for shape, ref_cls in [((5, 3), nn.BatchNorm1d), ((4, 3, 2, 3), nn.BatchNorm2d)]:
            m, ok = _call(p, f"momentum=None {shape}: construct", cls, 3, momentum=None)
            if not ok:
                continue
            m, ref = m.double(), ref_cls(3, momentum=None).double()
            with torch.no_grad():
                m.weight.uniform_(0.5, 2.0), m.bias.normal_()
                ref.weight.copy_(m.weight), ref.bias.copy_(m.bias)
            for step in range(5):
                x = torch.randn(*shape, generator=gen, dtype=torch.float64) * (1 + step) + step
                out, ok = _call(p, f"momentum=None {shape} step {step}", m, x)
                if not ok:
                    break
                p.close(f"momentum=None {shape} step {step}: output", out, ref(x))
                p.close(f"momentum=None {shape} step {step}: running_var", m.running_var, ref.running_var)
            m.eval(), ref.eval()
            x = torch.randn(*shape, generator=gen, dtype=torch.float64)
            xm, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
            out, ok = _call(p, f"eval {shape}", m, xm)
            if ok:
                dout = torch.randn(*shape, generator=gen, dtype=torch.float64)
                (ref(xr) * dout).sum().backward()
                try:
                    (out * dout).sum().backward()
                    p.close(f"eval {shape}: input gradient", xm.grad, xr.grad)
                    p.close(f"eval {shape}: weight gradient", m.weight.grad, ref.weight.grad)
                except Exception as exc:  # noqa: BLE001
                    p.append(f"eval {shape}: backward raised {type(exc).__name__}")
            m.train()
            try:
                m(torch.randn(*shape, generator=gen, dtype=torch.float64))
                with torch.no_grad():
                    m.weight.fill_(3.0), m.bias.fill_(2.0)
                m.reset_running_stats()
                p.check("reset_running_stats: counter 0", int(m.num_batches_tracked) == 0)
                m.reset_parameters()
                p.check("reset_parameters: weight 1, bias 0",
                        bool((m.weight == 1).all()) and bool((m.bias == 0).all()))
            except Exception as exc:  # noqa: BLE001
                p.append(f"reset: raised {type(exc).__name__}")

    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        torch.manual_seed(122)
        conv1, bn1 = nn.Conv1d(3, 4, 3).double(), nn.BatchNorm1d(4).double()
        with torch.no_grad():
            for _ in range(3):
                bn1(conv1(torch.randn(5, 3, 9, dtype=torch.float64)))
        bn1.eval()
        try:
            folded = fold(conv1, bn1)
        except (TypeError, ValueError):
            folded = None
        except Exception as exc:  # noqa: BLE001
            p.append(f"Conv1d: raised {type(exc).__name__}")
            folded = None
        if folded is not None:
            x = torch.randn(2, 3, 9, dtype=torch.float64)
            try:
                with torch.no_grad():
                    p.close("Conv1d folded: output", folded(x), bn1(conv1(x)), rtol=1e-9)
            except Exception as exc:  # noqa: BLE001
                p.append(f"Conv1d folded: calling it raised {type(exc).__name__}")
        cases = [
            ("affine=False, Linear", nn.Linear(4, 5), nn.BatchNorm1d(5, affine=False), (6, 4)),
            ("affine=False, Conv2d", nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, affine=False), (2, 3, 6, 6)),
            ("Conv2d 3 -> 5, kernel 3", nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5), (2, 3, 6, 6)),
            ("Conv2d 2 -> 6, kernel 1", nn.Conv2d(2, 6, 1), nn.BatchNorm2d(6), (2, 2, 4, 4)),
        ]
        for tag, layer, bn, shape in cases:
            layer, bn = layer.double(), bn.double()
            with torch.no_grad():
                for _ in range(3):
                    bn(layer(torch.randn(8, *shape[1:], dtype=torch.float64) * 2 + 1))
                bn.running_var.mul_(1e-4)  # small variances: eps matters
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

    def renorm_extra(p, space, sol):
        cls, ref_cls = space["BatchRenorm"], sol["BatchRenorm"]
        gen = torch.Generator().manual_seed(123)
        for dim in (2, 4):
            m, ok = _call(p, f"{dim}-D: construct", cls, 3, momentum=0.3, rmax=2.0, dmax=0.5)
            if not ok:
                continue
            m, ref = m.double(), ref_cls(3, momentum=0.3, rmax=2.0, dmax=0.5).double()
            shape = (8, 3) if dim == 2 else (3, 3, 2, 2)
            for step, shift in enumerate([2.0, -3.0, 0.5, -1.0]):
                x = torch.randn(*shape, generator=gen, dtype=torch.float64) * (0.5 + step) + shift
                xm, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
                out, ok = _call(p, f"{dim}-D step {step}", m, xm)
                if not ok:
                    break
                want = ref(xr)
                p.close(f"{dim}-D step {step}: output", out, want)
                dout = torch.randn(*shape, generator=gen, dtype=torch.float64)
                (want * dout).sum().backward()
                try:
                    (out * dout).sum().backward()
                    p.close(f"{dim}-D step {step}: dx", xm.grad, xr.grad, rtol=1e-8)
                except Exception as exc:  # noqa: BLE001
                    p.append(f"{dim}-D step {step}: backward raised {type(exc).__name__}")
                    break
                p.close(f"{dim}-D step {step}: running_mean", m.running_mean, ref.running_mean)
                p.close(f"{dim}-D step {step}: running_std", m.running_std, ref.running_std)
            m.eval(), ref.eval()
            x = torch.randn(*shape, generator=gen, dtype=torch.float64)
            out, ok = _call(p, f"{dim}-D eval", m, x)
            if ok:
                p.close(f"{dim}-D eval: output", out, ref(x))
        m, ok = _call(p, "one value: construct", cls, 3)
        if ok:
            _raises(p, "training (1, 3)", ValueError, m.train(), torch.randn(1, 3))
            _raises(p, "training (1, 3, 1, 1)", ValueError, m.train(), torch.randn(1, 3, 1, 1))

    def schedule_extra(p, space, sol):
        f, ref = space["renorm_schedule"], sol["renorm_schedule"]
        for args in [(10, 20, 30), (10, 0, 30), (10, 30, 0), (5, 40, 10, 2.0, 4.0), (0, 0, 0)]:
            for step in range(0, 60, 3):
                got, ok = _call(p, f"{args} step {step}", f, step, *args)
                if not ok:
                    return
                if not p.close(f"step {step} of {args}", np.asarray(got, dtype=float),
                               np.asarray(ref(step, *args), dtype=float), rtol=1e-12):
                    return

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
    V["batch_renorm"] = with_extra("batch_renorm", renorm_extra)
    V["renorm_schedule"] = with_extra("renorm_schedule", schedule_extra)
