"""This set's additions to round2's independent reference (after round3's
reference3.install, imported from /work/main/tests/unseen/round3): properties the
entries of lessons 03 and 04 break that the verifiers do not look at. NumPy/torch
and the course's solutions only; no helpers.checks anywhere.

- ScratchBatchNorm: eval mode after more training follows the new running
  statistics; eval mode passes gradients (to the input and the weight) as
  nn.BatchNorm's does; the buffers stay float32 after a bfloat16 batch; a 5-D input
  is refused with ValueError; reset_parameters() keeps the same (float64)
  Parameter objects after .double(); weight and bias require grad.
- BatchRenorm: eval mode takes a single example (1, C).
- renorm_schedule: ramps of 0 steps, compared with the solution.

``install(reference)`` patches round2's ``reference.VERIFIERS`` in place.
"""

from __future__ import annotations

import torch
from torch import nn


def install(reference):
    P, _call = reference.Problems, reference._call
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, *extras):
        def run(space, sol):
            p = P(old[name](space, sol))
            for extra in extras:
                try:
                    extra(p, space, sol)
                except Exception as exc:  # noqa: BLE001
                    p.append(f"extra reference check ({extra.__name__}) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- ScratchBatchNorm -------------------------------------------------------------
    def scratch_eval_after_more_training(p, space, sol):
        gen = torch.Generator().manual_seed(81)
        mine, ok = _call(p, "construct (eval twice)", space["ScratchBatchNorm"], 3)
        if not ok:
            return
        mine, ref = mine.double(), nn.BatchNorm1d(3).double()
        for rounds in range(2):
            mine.train(), ref.train()
            for _ in range(3):
                x = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 2 + 1 + rounds
                _, ok = _call(p, "train (eval twice)", mine, x)
                ref(x)
                if not ok:
                    return
            mine.eval(), ref.eval()
            x = torch.randn(4, 3, generator=gen, dtype=torch.float64)
            out, ok = _call(p, "eval (eval twice)", mine, x)
            if not ok:
                return
            p.close(f"eval output after training round {rounds}", out, ref(x), rtol=1e-9)

    def scratch_eval_gradients(p, space, sol):
        gen = torch.Generator().manual_seed(82)
        mine, ok = _call(p, "construct (eval grad)", space["ScratchBatchNorm"], 3)
        if not ok:
            return
        mine, ref = mine.double(), nn.BatchNorm1d(3).double()
        with torch.no_grad():
            for m in (mine, ref):
                m.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
                m.running_var.copy_(torch.tensor([2.0, 0.5, 1.5]))
                m.weight.copy_(torch.tensor([1.5, 0.7, 2.0]))
        mine.eval(), ref.eval()
        x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
        xm, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, ok = _call(p, "eval (eval grad)", mine, xm)
        if not ok:
            return
        ref(xr).sum().backward()
        try:
            out.sum().backward()
        except Exception as exc:  # noqa: BLE001
            p.append(f"eval-mode backward raised {type(exc).__name__}: {str(exc)[:80]}")
            return
        p.check("eval mode: no input gradient", xm.grad is not None)
        if xm.grad is not None:
            p.close("eval-mode input gradient", xm.grad, xr.grad, rtol=1e-9)
        p.check("eval mode: no weight gradient", mine.weight.grad is not None)

    def scratch_bf16_buffers(p, space, sol):
        mine, ok = _call(p, "construct (bf16)", space["ScratchBatchNorm"], 3)
        if not ok:
            return
        x = (torch.randn(8, 3) * 2 + 1).to(torch.bfloat16)
        _, ok = _call(p, "bfloat16 train step", mine, x)
        if not ok:
            return
        for name in ("running_mean", "running_var"):
            buf = getattr(mine, name, None)
            p.check(f"{name} is {getattr(buf, 'dtype', None)} after a bfloat16 batch, expected float32",
                    isinstance(buf, torch.Tensor) and buf.dtype == torch.float32)

    def scratch_five_d(p, space, sol):
        mine, ok = _call(p, "construct (5-D)", space["ScratchBatchNorm"], 3)
        if not ok:
            return
        try:
            mine(torch.randn(2, 3, 2, 2, 2))
        except ValueError:
            return
        except Exception as exc:  # noqa: BLE001
            p.append(f"5-D input raised {type(exc).__name__}, expected ValueError")
            return
        p.append("5-D input accepted, expected ValueError")

    def scratch_reset_parameters(p, space, sol):
        mine, ok = _call(p, "construct (reset)", space["ScratchBatchNorm"], 3)
        if not ok:
            return
        mine = mine.double()
        w, b = mine.weight, mine.bias
        with torch.no_grad():
            w.mul_(3.0), b.add_(2.0)
        _, ok = _call(p, "reset_parameters", mine.reset_parameters)
        if not ok:
            return
        p.check("reset_parameters replaced the weight/bias Parameter objects", mine.weight is w and mine.bias is b)
        p.check(f"weight dtype after .double() and reset: {mine.weight.dtype}", mine.weight.dtype == torch.float64)
        p.close("weight after reset", mine.weight, torch.ones(3, dtype=torch.float64), rtol=0)
        p.close("bias after reset", mine.bias, torch.zeros(3, dtype=torch.float64), rtol=0)

    def scratch_params_trainable(p, space, sol):
        mine, ok = _call(p, "construct (trainable)", space["ScratchBatchNorm"], 3)
        if not ok:
            return
        names = {n for n, q in mine.named_parameters() if q.requires_grad}
        p.check(f"parameters that require grad: {sorted(names)}, expected ['bias', 'weight']",
                names == {"weight", "bias"})

    V["scratch_batchnorm"] = with_extra(
        "scratch_batchnorm", scratch_eval_after_more_training, scratch_eval_gradients,
        scratch_bf16_buffers, scratch_five_d, scratch_reset_parameters, scratch_params_trainable)

    # ---- BatchRenorm: eval of one example ------------------------------------------------
    def renorm_eval_single(p, space, sol):
        gen = torch.Generator().manual_seed(83)
        mine, ok = _call(p, "construct (eval one)", space["BatchRenorm"], 3, momentum=0.3)
        if not ok:
            return
        ref = sol["BatchRenorm"](3, momentum=0.3)
        mine, ref = mine.double(), ref.double()
        x = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 2 + 1
        with torch.no_grad():
            _, ok = _call(p, "train (eval one)", mine, x)
            ref(x)
        if not ok:
            return
        mine.eval(), ref.eval()
        for shape in [(1, 3), (1, 3, 1, 1)]:
            x = torch.randn(*shape, generator=gen, dtype=torch.float64)
            with torch.no_grad():
                out, ok = _call(p, f"eval of one example {shape}", mine, x)
                if ok:
                    p.close(f"eval of one example {shape}", out, ref(x), rtol=1e-9)

    V["batch_renorm"] = with_extra("batch_renorm", renorm_eval_single)

    # ---- renorm_schedule: ramps of 0 steps ----------------------------------------------
    def schedule_zero_ramps(p, space, sol):
        f, ref = space["renorm_schedule"], sol["renorm_schedule"]
        for args in [(10, 0, 20), (10, 30, 0), (4, 0, 0, 2.0, 6.0)]:
            for step in (0, args[0] - 1, args[0], args[0] + 1, args[0] + 5, args[0] + 50):
                got, ok = _call(p, f"{args} step {step}", f, step, *args)
                if not ok:
                    return
                if not p.close(f"zero-length ramp, step {step} of {args}", got, ref(step, *args), rtol=1e-12):
                    return

    V["renorm_schedule"] = with_extra("renorm_schedule", schedule_zero_ramps)
