"""The twelfth set's (part c) additions to round2's independent reference, on top
of round 3's (reference3, imported): no helpers.checks anywhere.

- sync_bn_layer (lesson 08's capstone), which round2/round3 do not verify: the
  forward and backward on simulated ranks, wrapped in a torch.autograd.Function as
  the lesson does, against one process's batch norm on the whole batch (output,
  running statistics, dx, dgamma, dbeta), plus sync_bn_forward called directly on
  tensors that do not require grad (the running statistics are updated);
- NoisyBatchNorm: a training-mode call on a tensor that does not require grad
  still gets noise;
- sync_batchnorm_forward: the cache's x_hat is the normalised input.

``install(reference)`` patches round2's ``reference.VERIFIERS`` in place.
"""

from __future__ import annotations

import torch
from torch import nn


def install(reference):
    P, _Ranks, _call = reference.Problems, reference._Ranks, reference._call
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- NoisyBatchNorm: noise on a plain tensor in training mode ------------------
    def noisy_plain_input(p, space, sol):
        torch.manual_seed(21)
        m, ok = _call(p, "construct (plain input)", space["NoisyBatchNorm"], 3)
        if not ok:
            return
        m = m.double().train()
        ref = nn.BatchNorm1d(3).double()
        x = torch.randn(6, 3, dtype=torch.float64) * 2 + 1
        out, ok = _call(p, "train call on a plain tensor", m, x)
        if not ok:
            return
        noise = getattr(m, "last_noise", None)
        if not p.check("plain tensor in training mode: no last_noise", isinstance(noise, tuple) and len(noise) == 2):
            return
        shift, scale = (torch.as_tensor(t).detach().double() for t in noise)
        p.close("plain tensor in training mode: output", out, ref(x) * scale + shift, rtol=1e-9)

    V["noisy_batchnorm"] = with_extra("noisy_batchnorm", noisy_plain_input)

    # ---- sync_batchnorm_forward: the cache's x_hat ----------------------------------
    def fw_cache(p, space, sol):
        f = space["sync_batchnorm_forward"]
        gen = torch.Generator().manual_seed(31)
        sizes = (3, 5)
        x = torch.randn(sum(sizes), 4, generator=gen, dtype=torch.float64) * 3 + 2
        gamma, beta = torch.rand(4, dtype=torch.float64) + 0.5, torch.randn(4, dtype=torch.float64)
        want = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
        try:
            res = _Ranks(2).run(f, [(part, gamma, beta) for part in torch.split(x, list(sizes))])
        except Exception as exc:  # noqa: BLE001
            p.append(f"cache check: raised {type(exc).__name__}: {str(exc)[:100]}")
            return
        got = torch.cat([torch.as_tensor(r[1][0]).detach().double() for r in res])
        p.close("cache's x_hat", got, want, rtol=1e-9)

    V["sync_batchnorm_forward"] = with_extra("sync_batchnorm_forward", fw_cache)

    # ---- sync_bn_layer ----------------------------------------------------------------
    def v_sync_layer(space, sol):
        p = P()
        fw, bw = space["sync_bn_forward"], space["sync_bn_backward"]
        gen = torch.Generator().manual_seed(41)
        for sizes, momentum in [((3, 5), 0.1), ((4, 1, 6), 0.3), ((6, 6), 0.1)]:
            c = 3
            x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
            gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            beta = torch.randn(c, generator=gen, dtype=torch.float64)
            dout = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64)
            rm0 = torch.randn(c, generator=gen, dtype=torch.float64)
            rv0 = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            ref = nn.BatchNorm1d(c, momentum=momentum).double()
            with torch.no_grad():
                ref.weight.copy_(gamma), ref.bias.copy_(beta)
                ref.running_mean.copy_(rm0), ref.running_var.copy_(rv0)
            xr = x.clone().requires_grad_()
            want = ref(xr)
            want.backward(dout)

            def one(xp, dp, rm, rv, all_reduce, momentum=momentum):
                class Fn(torch.autograd.Function):
                    @staticmethod
                    def forward(ctx, x_, g_, b_, rm_, rv_):
                        out, saved = fw(x_, g_, b_, rm_, rv_, all_reduce, 1e-5, momentum)
                        ctx.save_for_backward(*saved)
                        return out

                    @staticmethod
                    def backward(ctx, d):
                        return bw(ctx.saved_tensors, d, all_reduce)

                xi = xp.clone().requires_grad_()
                gi, bi = gamma.clone().requires_grad_(), beta.clone().requires_grad_()
                out = Fn.apply(xi, gi, bi, rm, rv)
                out.backward(dp)
                return out.detach(), xi.grad, gi.grad, bi.grad

            bufs = [(rm0.clone(), rv0.clone()) for _ in sizes]
            parts = list(torch.split(x, list(sizes)))
            douts = list(torch.split(dout, list(sizes)))
            try:
                res = _Ranks(len(sizes)).run(one, [(a, d, rm, rv) for a, d, (rm, rv) in zip(parts, douts, bufs)])
            except Exception as exc:  # noqa: BLE001
                p.append(f"{sizes}: raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            p.close(f"{sizes} out", torch.cat([r[0] for r in res]), want, rtol=1e-9)
            for r, (rm, rv) in enumerate(bufs):
                p.close(f"{sizes} rank {r} running_mean", rm, ref.running_mean, rtol=1e-9)
                p.close(f"{sizes} rank {r} running_var", rv, ref.running_var, rtol=1e-9)
            if any(r[1] is None or r[2] is None or r[3] is None for r in res):
                p.append(f"{sizes}: a gradient is None")
                continue
            p.close(f"{sizes} dx", torch.cat([r[1] for r in res]), xr.grad, rtol=1e-8)
            p.close(f"{sizes} dgamma (summed over ranks)", sum(r[2] for r in res), ref.weight.grad, rtol=1e-8)
            p.close(f"{sizes} dbeta (summed over ranks)", sum(r[3] for r in res), ref.bias.grad, rtol=1e-8)
        return p

    def layer_plain(p, space, sol):
        """sync_bn_forward called directly on tensors that do not require grad
        updates the running statistics all the same."""
        fw = space["sync_bn_forward"]
        gen = torch.Generator().manual_seed(43)
        sizes, c = (4, 5), 3
        x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
        gamma, beta = torch.ones(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
        ref = nn.BatchNorm1d(c).double()
        with torch.no_grad():
            ref(x)
        bufs = [(torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)) for _ in sizes]
        try:
            _Ranks(2).run(lambda a, rm, rv, ar: fw(a, gamma, beta, rm, rv, ar),
                          [(a, rm, rv) for a, (rm, rv) in zip(torch.split(x, list(sizes)), bufs)])
        except Exception as exc:  # noqa: BLE001
            p.append(f"direct call: raised {type(exc).__name__}: {str(exc)[:100]}")
            return
        for r, (rm, rv) in enumerate(bufs):
            p.close(f"direct call rank {r} running_mean", rm, ref.running_mean, rtol=1e-9)
            p.close(f"direct call rank {r} running_var", rv, ref.running_var, rtol=1e-9)

    def sync_layer(space, sol):
        p = P(v_sync_layer(space, sol))
        try:
            layer_plain(p, space, sol)
        except Exception as exc:  # noqa: BLE001
            p.append(f"extra reference check failed: {type(exc).__name__}: {exc}")
        return p

    V["sync_bn_layer"] = sync_layer
