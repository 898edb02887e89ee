"""The eighteenth set's (part b) additions to the independent reference: round2's reference.py and
the additions of round 3, round 14 part b, round 15 part b, round 16 part b and round 17 part b, all
IMPORTED (run.py installs them in that order, then these). No helpers.checks: torch's modules are
the reference.

Properties added (lessons 03 and 04):
- ScratchBatchNorm: a bfloat16 training batch on a float32 module (the exercise's mixed-precision
  case): output in bfloat16 close to nn.BatchNorm1d's, float32 buffers close to torch's; with
  momentum=None, training after reset_running_stats() averages from the reset on (buffers against
  nn.BatchNorm1d);
- fold_batchnorm: a Conv2d with the unequal stride (2, 1), against bn(layer(x)); the same
  (layer, bn) pair folded again after the batch norm's statistics and weight changed, against
  the new bn(layer(x)); an affine=False batch norm keeps its parameters and state_dict keys.
"""

from __future__ import annotations

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
                p.append(f"extra reference (18b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        gen = torch.Generator().manual_seed(181)
        # bfloat16 batches on a float32 module
        m, ok = _call(p, "18b bfloat16: construct", cls, 3)
        if ok:
            ref = nn.BatchNorm1d(3)
            for step in range(2):
                x = (torch.randn(8, 3, generator=gen) * 2 + 1).to(torch.bfloat16)
                out, ok = _call(p, f"18b bfloat16: train step {step}", m, x)
                if not ok:
                    break
                want = ref(x)
                if not p.check(f"18b bfloat16: output dtype {out.dtype}", out.dtype == torch.bfloat16):
                    break
                p.close(f"18b bfloat16: output {step}", out.float(), want.float(), rtol=2e-2, atol=3e-2)
                for name in ("running_mean", "running_var"):
                    buf = getattr(m, name, None)
                    if p.check(f"18b bfloat16: {name} float32",
                               isinstance(buf, torch.Tensor) and buf.dtype == torch.float32):
                        p.close(f"18b bfloat16: {name} {step}", buf, getattr(ref, name), rtol=1e-2, atol=1e-2)
        # momentum=None after reset_running_stats(): the average starts again
        m, ok = _call(p, "18b reset then momentum=None: construct", cls, 3, momentum=None)
        if ok:
            m, ref = m.double(), nn.BatchNorm1d(3, momentum=None).double()
            for step in range(5):
                if step == 2:
                    if not _call(p, "18b reset_running_stats", m.reset_running_stats)[1]:
                        return
                    ref.reset_running_stats()
                x = torch.randn(6, 3, generator=gen, dtype=torch.float64) * (1 + step) + step
                out, ok = _call(p, f"18b reset then momentum=None: train step {step}", m, x)
                if not ok:
                    break
                p.close(f"18b reset then momentum=None: output {step}", out, ref(x), rtol=1e-9)
                for name in ("running_mean", "running_var"):
                    p.close(f"18b reset then momentum=None: {name} after step {step}", getattr(m, name),
                            getattr(ref, name), rtol=1e-9)

    def fold_extra(p, space, sol):
        fold = space["fold_batchnorm"]
        torch.manual_seed(182)

        def trained(layer, bn, shape):
            layer, bn = layer.double(), bn.double()
            with torch.no_grad():
                for _ in range(3):
                    bn(layer(torch.randn(8, *shape[1:], dtype=torch.float64) * 2 + 1))
                if bn.affine:
                    bn.weight.uniform_(0.5, 2.0)
                    bn.bias.normal_()
            return layer, bn.eval()

        # unequal stride
        layer, bn = trained(nn.Conv2d(3, 4, 3, stride=(2, 1), padding=1), nn.BatchNorm2d(4), (2, 3, 9, 8))
        x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
        folded, ok = _call(p, "18b stride (2, 1)", fold, layer, bn)
        if ok:
            try:
                with torch.no_grad():
                    p.close("18b stride (2, 1): output", folded(x), bn(layer(x)), rtol=1e-9)
            except Exception as exc:  # noqa: BLE001
                p.append(f"18b stride (2, 1): calling the folded layer raised {type(exc).__name__}")
        # the same pair, folded again after bn changed
        layer, bn = trained(nn.Linear(4, 3), nn.BatchNorm1d(3), (6, 4))
        x = torch.randn(6, 4, dtype=torch.float64)
        first, ok = _call(p, "18b refold: first", fold, layer, bn)
        if ok:
            with torch.no_grad():
                bn.running_mean.add_(1.5)
                bn.running_var.mul_(2.0)
                bn.weight.mul_(-0.5)
            again, ok = _call(p, "18b refold: second", fold, layer, bn)
            if ok:
                with torch.no_grad():
                    p.close("18b refold after bn changed: output", again(x), bn(layer(x)), rtol=1e-9)
        # affine=False: bn keeps no parameters
        for layer, bn, shape in [(nn.Linear(4, 3), nn.BatchNorm1d(3, affine=False), (5, 4)),
                                 (nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3, affine=False), (2, 2, 5, 5))]:
            layer, bn = trained(layer, bn, shape)
            keys = sorted(bn.state_dict())
            folded, ok = _call(p, "18b affine=False", fold, layer, bn)
            if ok:
                x = torch.randn(*shape, dtype=torch.float64)
                with torch.no_grad():
                    p.close("18b affine=False: output", folded(x), bn(layer(x)), rtol=1e-9)
                p.check(f"18b affine=False: bn now has parameters {[n for n, _ in bn.named_parameters()]}",
                        not list(bn.parameters()))
                p.check(f"18b affine=False: bn's state_dict keys {sorted(bn.state_dict())}, were {keys}",
                        sorted(bn.state_dict()) == keys)

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
