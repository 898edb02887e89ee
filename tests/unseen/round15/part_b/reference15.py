"""The fifteenth set's (part b) additions to the independent reference: round2's reference.py,
round 3's reference3.py and round 14 part b's reference14.py, all IMPORTED (run.py installs them
in that order, then these). No helpers.checks: torch's modules and torch.autograd are the
reference.

Properties added (lessons 03 and 04):
- ScratchBatchNorm: a module used in its default dtype (float32, no .double() or .to(), which
  would re-create its tensors): two training steps with backward, against nn.BatchNorm1d
  (outputs, input gradients, running statistics, weight);
- fold_batchnorm: the folded Linear and Conv2d used with autograd (an input that requires grad,
  backward), against bn(layer(x));
- BatchRenorm: after training steps on an input that requires grad, the buffers carry no
  autograd history and the module can be deep-copied.
"""

from __future__ import annotations

import copy

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
                p.append(f"extra reference (15b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(151)
        m, ok = _call(p, "15b float32: construct", cls, 3)
        if not ok:
            return
        ref = nn.BatchNorm1d(3)
        for step, n in enumerate((6, 9)):
            x = torch.randn(n, 3, generator=gen) * 2 + 1
            xm, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
            out, ok = _call(p, f"15b float32: train step {step}", m, xm)
            if not ok:
                return
            want = ref(xr)
            if not p.close(f"15b float32: output {step}", out, want, rtol=1e-4, atol=1e-5):
                return
            dout = torch.randn(n, 3, generator=gen)
            (want * dout).sum().backward()
            try:
                (out * dout).sum().backward()
            except Exception as exc:  # noqa: BLE001
                p.append(f"15b float32: backward {step} raised {type(exc).__name__}: {str(exc)[:100]}")
                return
            if not p.close(f"15b float32: dx {step}", xm.grad, xr.grad, rtol=1e-4, atol=1e-5):
                return
            for name in ("running_mean", "running_var", "weight", "bias"):
                if not p.close(f"15b float32: {name} after step {step}", getattr(m, name),
                               getattr(ref, name), rtol=1e-5, atol=1e-6):
                    return

    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        torch.manual_seed(152)
        for tag, layer, bn, shape in [
            ("Linear", nn.Linear(5, 4), nn.BatchNorm1d(4), (6, 5)),
            ("Conv2d", nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), (2, 3, 5, 5)),
        ]:
            layer, bn = layer.double(), bn.double()
            with torch.no_grad():
                for _ in range(3):
                    bn(layer(torch.randn(8, *shape[1:], dtype=torch.float64) * 2 + 1))
                bn.weight.uniform_(0.5, 2.0)
                bn.bias.normal_()
            bn.eval()
            folded, ok = _call(p, f"15b {tag} with autograd", fold, layer, bn)
            if not ok:
                continue
            x = torch.randn(*shape, dtype=torch.float64)
            xf, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
            try:
                got = folded(xf)
                dout = torch.randn_like(got)
                (got * dout).sum().backward()
            except Exception as exc:  # noqa: BLE001
                p.append(f"15b {tag}: the folded layer with autograd raised {type(exc).__name__}: "
                         f"{str(exc)[:80]}")
                continue
            want = bn(layer(xr))
            (want * dout).sum().backward()
            p.close(f"15b {tag}: output with autograd", got, want, rtol=1e-9, atol=1e-10)
            p.close(f"15b {tag}: dx through the folded layer", xf.grad, xr.grad, rtol=1e-9, atol=1e-10)

    def renorm_extra(p, space, sol):
        cls = space["BatchRenorm"]
        gen = torch.Generator().manual_seed(153)
        for dim in (2, 4):
            tag = f"15b {dim}-D buffers"
            m, ok = _call(p, f"{tag}: construct", cls, 3, momentum=0.2, rmax=2.0, dmax=1.0)
            if not ok:
                continue
            m = m.double()
            shape = (6, 3) if dim == 2 else (4, 3, 2, 2)
            failed = False
            for step in range(2):
                x = (torch.randn(*shape, generator=gen, dtype=torch.float64) + step).requires_grad_()
                out, ok = _call(p, f"{tag}: train step {step}", m, x)
                if not ok:
                    failed = True
                    break
                try:
                    out.sum().backward()
                except Exception as exc:  # noqa: BLE001
                    p.append(f"{tag}: backward {step} raised {type(exc).__name__}")
                    failed = True
                    break
            if failed:
                continue
            for name in ("running_mean", "running_std"):
                buf = getattr(m, name, None)
                if isinstance(buf, torch.Tensor):
                    p.check(f"{tag}: {name} carries autograd history (requires_grad="
                            f"{buf.requires_grad}, grad_fn={type(buf.grad_fn).__name__})",
                            not buf.requires_grad and buf.grad_fn is None)
            try:
                copy.deepcopy(m)
            except Exception as exc:  # noqa: BLE001
                p.append(f"{tag}: copy.deepcopy raised {type(exc).__name__}: {str(exc)[:80]}")

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
    V["batch_renorm"] = with_extra("batch_renorm", renorm_extra)
