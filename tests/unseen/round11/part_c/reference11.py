"""The eleventh set's (part c) additions to the independent reference: round2's
reference.py with round3's reference3.install applied first (both imported, not
copied). No helpers.checks anywhere. New properties this set's entries break:

- NoisyBatchNorm: running_var and num_batches_tracked are batch norm's; a layer
  built with affine=False works; the shift and the scale are uniform (a
  Kolmogorov-Smirnov distance on a few thousand draws, not only their mean).
- gradient_change: the caller's model keeps its parameters' requires_grad flags.
- sync_batchnorm_forward: its cache works with the solution's backward pass.
- sync_bn_layer (no verifier in rounds 2-3): the saved mean, invstd and count,
  and the layer through the notebook's sync_batch_norm Function: output, running
  statistics, dx and this rank's dgamma, dbeta, for several slicings, dtypes,
  eps and momentum.

``install(reference)`` patches ``reference.VERIFIERS`` in place; call it after
reference3.install.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def _ks_uniform(samples, lo, hi):
    u = ((samples - lo) / (hi - lo)).sort().values
    n = u.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum(i / n - u, u - (i - 1) / n).max()), n


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
                p.append(f"extra reference check (11c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- NoisyBatchNorm -------------------------------------------------------------
    def noisy_extra(p, space, sol):
        cls = space["NoisyBatchNorm"]
        torch.manual_seed(21)
        mine, ok = _call(p, "construct (momentum 0.2)", cls, 4, momentum=0.2)
        if ok:
            mine = mine.double().train()
            ref = nn.BatchNorm1d(4, momentum=0.2).double()
            with torch.no_grad():
                for step in range(5):
                    x = torch.randn(8, 4, dtype=torch.float64) * 3 + 2
                    _, ok = _call(p, f"running step {step}", mine, x)
                    if not ok:
                        break
                    ref(x)
            if ok:
                p.close("running_var after 5 steps", mine.running_var, ref.running_var, rtol=1e-9)
                p.check(f"num_batches_tracked {int(mine.num_batches_tracked)}, expected 5",
                        int(mine.num_batches_tracked) == 5)
        # affine=False
        m, ok = _call(p, "construct (affine=False)", cls, 3, affine=False)
        if ok:
            m = m.double().train()
            x = torch.randn(6, 3, dtype=torch.float64) * 2 - 1
            out, ok = _call(p, "affine=False training call", m, x)
            noise = getattr(m, "last_noise", None)
            if ok and isinstance(noise, tuple) and len(noise) == 2:
                want = F.batch_norm(x, None, None, training=True) * noise[1].double() + noise[0].double()
                p.close("affine=False output", out, want, rtol=1e-9)
            m.eval()
            out, ok = _call(p, "affine=False eval call", m, x)
            if ok:
                want = F.batch_norm(x, m.running_mean, m.running_var, training=False, eps=m.eps)
                p.close("affine=False eval output", out, want, rtol=1e-9)
        # the draws are uniform
        torch.manual_seed(22)
        m, ok = _call(p, "construct (distribution)", cls, 64, shift=0.5, spread=3.0)
        if not ok:
            return
        m = m.double().train()
        shifts, scales = [], []
        with torch.no_grad():
            for _ in range(60):
                _, ok = _call(p, "call (distribution)", m, torch.randn(4, 64, dtype=torch.float64))
                noise = getattr(m, "last_noise", None)
                if not ok or not (isinstance(noise, tuple) and len(noise) == 2):
                    return
                shifts.append(torch.as_tensor(noise[0]).double().reshape(-1))
                scales.append(torch.as_tensor(noise[1]).double().reshape(-1))
        for what, s, lo, hi in [("shift", torch.cat(shifts), -0.5, 0.5), ("scale", torch.cat(scales), 1.0, 3.0)]:
            d, n = _ks_uniform(s, lo, hi)
            p.check(f"{what}: KS distance {d:.3f} from uniform on [{lo}, {hi}] (n={n}), limit "
                    f"{1.95 / n ** 0.5:.3f}", d < 1.95 / n ** 0.5)

    V["noisy_batchnorm"] = with_extra("noisy_batchnorm", noisy_extra)

    # ---- gradient_change: requires_grad flags --------------------------------------
    def gc_flags(p, space, sol):
        f = space["gradient_change"]
        for seed, bn, index in [(3, True, 3), (4, False, 2)]:
            model = reference._mlp(seed, bn)
            x, y = reference._data(seed)
            flags = [q.requires_grad for q in model.parameters()]
            _, ok = _call(p, f"flags seed {seed}", f, model, x, y, index, 0.5)
            if ok:
                p.check(f"seed {seed}: requires_grad flags of the model changed",
                        [q.requires_grad for q in model.parameters()] == flags)

    V["gradient_change"] = with_extra("gradient_change", gc_flags)

    # ---- sync_batchnorm_forward: the cache works with the solution's backward ------
    def fw_cache(p, space, sol):
        f, sbw = space["sync_batchnorm_forward"], sol["sync_batchnorm_backward"]
        gen = torch.Generator().manual_seed(17)
        sizes = (3, 5, 4)
        x = torch.randn(sum(sizes), 3, generator=gen, dtype=torch.float64) * 2 + 1
        gamma = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
        beta = torch.randn(3, generator=gen, dtype=torch.float64)
        dout = torch.randn(sum(sizes), 3, generator=gen, dtype=torch.float64)
        xt = x.clone().requires_grad_()
        out = gamma * (xt - xt.mean(0)) / torch.sqrt(xt.var(0, unbiased=False) + 1e-5) + beta
        (out * dout).sum().backward()

        def both(xr, dr, all_reduce):
            return sbw(dr, f(xr, gamma, beta, all_reduce)[1], all_reduce)

        try:
            res = _Ranks(3).run(both, list(zip(torch.split(x, list(sizes)), torch.split(dout, list(sizes)))))
        except Exception as exc:  # noqa: BLE001
            p.append(f"cache with the solution's backward: raised {type(exc).__name__}: {str(exc)[:100]}")
            return
        p.close("dx from this cache and the solution's backward", torch.cat([r[0] for r in res]), xt.grad,
                rtol=1e-8, atol=1e-10)

    V["sync_batchnorm_forward"] = with_extra("sync_batchnorm_forward", fw_cache)

    # ---- sync_bn_layer ----------------------------------------------------------------
    def v_layer(space, sol):
        p = P()
        fw = space["sync_bn_forward"]
        make = space["sync_batch_norm"]
        gen = torch.Generator().manual_seed(13)
        configs = [((4, 7, 1), torch.float64, 0.1, 1e-5, 1e-9),
                   ((3, 5), torch.float64, 0.3, 1e-3, 1e-9),
                   ((2, 2, 6), torch.float32, 0.1, 1e-5, 1e-4)]
        for k, (sizes, dtype, momentum, eps, tol) in enumerate(configs):
            c = 3
            tag = f"{sizes} {dtype} m={momentum} eps={eps}"
            x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
            gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            beta = torch.randn(c, generator=gen, dtype=torch.float64)
            dout = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64)
            rm0 = torch.randn(c, generator=gen, dtype=torch.float64)
            rv0 = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            mean, var = x.mean(0), x.var(0, unbiased=False)
            xhat = (x - mean) / torch.sqrt(var + eps)
            want = gamma * xhat + beta
            xt = x.clone().requires_grad_()
            (((xt - xt.mean(0)) / torch.sqrt(xt.var(0, unbiased=False) + eps) * gamma + beta) * dout).sum().backward()
            ref = nn.BatchNorm1d(c, eps=eps, momentum=momentum).double()
            with torch.no_grad():
                ref.running_mean.copy_(rm0), ref.running_var.copy_(rv0)
                ref(x)
            parts = [t.to(dtype) for t in torch.split(x, list(sizes))]
            douts = [t.to(dtype) for t in torch.split(dout, list(sizes))]
            g, b = gamma.to(dtype), beta.to(dtype)
            if k == 0:  # what the forward saves
                bufs = [(rm0.to(dtype).clone(), rv0.to(dtype).clone()) for _ in sizes]

                def saved_of(part, rm, rv, all_reduce):
                    with torch.no_grad():
                        return fw(part, g, b, rm, rv, all_reduce, eps, momentum)

                try:
                    res = _Ranks(len(sizes)).run(saved_of, [(pt, rm, rv) for pt, (rm, rv) in zip(parts, bufs)])
                    for rank, (_, saved) in enumerate(res):
                        p.check(f"{tag} rank {rank}: saved is not 5 tensors",
                                isinstance(saved, (tuple, list)) and len(saved) == 5
                                and all(isinstance(t, torch.Tensor) for t in saved))
                        if len(saved) == 5:
                            p.close(f"{tag} rank {rank}: saved mean", saved[2], mean, rtol=tol, atol=tol)
                            p.close(f"{tag} rank {rank}: saved invstd", saved[3], 1 / torch.sqrt(var + eps),
                                    rtol=tol, atol=tol)
                            p.close(f"{tag} rank {rank}: saved count", torch.as_tensor(saved[4]).reshape(-1),
                                    torch.tensor([float(sum(sizes))]))
                except Exception as exc:  # noqa: BLE001
                    p.append(f"{tag} saved: raised {type(exc).__name__}: {str(exc)[:100]}")
            bufs = [(rm0.to(dtype).clone(), rv0.to(dtype).clone()) for _ in sizes]

            def layer(part, dr, rm, rv, all_reduce):
                fn = make(all_reduce, eps, momentum)
                xr = part.clone().requires_grad_()
                gr, br = g.clone().requires_grad_(), b.clone().requires_grad_()
                out = fn(xr, gr, br, rm, rv)
                (out * dr).sum().backward()
                return out.detach(), xr.grad, gr.grad, br.grad

            try:
                res = _Ranks(len(sizes)).run(layer, [(pt, dr, rm, rv) for pt, dr, (rm, rv)
                                                     in zip(parts, douts, bufs)])
            except Exception as exc:  # noqa: BLE001
                p.append(f"{tag} layer: raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            p.close(f"{tag} output", torch.cat([r[0].double() for r in res]), want, rtol=tol, atol=tol)
            p.close(f"{tag} dx", torch.cat([r[1].double() for r in res]), xt.grad, rtol=tol, atol=tol)
            for rank, (r, dr, hr) in enumerate(zip(res, torch.split(dout, list(sizes)),
                                                   torch.split(xhat, list(sizes)))):
                p.close(f"{tag} rank {rank} dgamma", r[2], (dr * hr).sum(0), rtol=tol, atol=tol)
                p.close(f"{tag} rank {rank} dbeta", r[3], dr.sum(0), rtol=tol, atol=tol)
                p.check(f"{tag} rank {rank}: output dtype {r[0].dtype}", r[0].dtype == dtype)
            for rank, (rm, rv) in enumerate(bufs):
                p.close(f"{tag} rank {rank} running_mean", rm, ref.running_mean, rtol=tol, atol=tol)
                p.close(f"{tag} rank {rank} running_var", rv, ref.running_var, rtol=tol, atol=tol)
        return p

    V["sync_bn_layer"] = v_layer
