"""The thirteenth set's (part C) additions to the independent reference: round2's
reference.py with round 3's reference3 installed first (both imported, not copied),
then these properties that round2/round3 do not look at.  No helpers.checks.

- NoisyBatchNorm: the noise is uniform on its ranges (a Kolmogorov-Smirnov distance
  over many draws), a float32 layer returns float32, eval mode is differentiable
  (plain batch norm's gradient), a one-channel layer keeps noise of shape (1,);
- gradient_change returns two Python floats;
- sync_batchnorm_forward: float32 in gives float32 out; the running statistics stay
  out of the autograd graph when x requires grad;
- sync_batchnorm_backward: float32 in gives float32 dx;
- sync_bn_layer (the capstone's graded cell, unknown to round2 and round3): a whole
  verifier (sync_bn_forward's output, saved tensors and running statistics against
  F.batch_norm / nn.BatchNorm1d on the whole batch for slices of 4, 7 and 1;
  sync_bn_backward given the right saved tensors against autograd; the notebook's
  own sync_batch_norm Function end to end).

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference3).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn


def _ks_uniform(values):
    """Kolmogorov-Smirnov distance of values (expected on [0, 1]) from the uniform."""
    v, _ = torch.sort(values.reshape(-1).double())
    n = v.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum(i / n - v, v - (i - 1) / n).max()), n


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
                p.append(f"extra reference check (13c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- NoisyBatchNorm ----------------------------------------------------------------
    def noisy_extra(p, space, sol):
        cls = space["NoisyBatchNorm"]
        torch.manual_seed(21)
        for c, shift_max, spread in [(5, 1.0, 2.0), (4, 0.5, 3.0)]:
            m, ok = _call(p, "construct (uniformity)", cls, c, shift=shift_max, spread=spread)
            if not ok:
                return
            m = m.double().train()
            shifts, scales = [], []
            for _ in range(300):
                _, ok = _call(p, "call (uniformity)", m, torch.randn(8, c, dtype=torch.float64))
                noise = getattr(m, "last_noise", None)
                if not ok or not (isinstance(noise, tuple) and len(noise) == 2):
                    return
                shifts.append(torch.as_tensor(noise[0]).detach().double().reshape(-1))
                scales.append(torch.as_tensor(noise[1]).detach().double().reshape(-1))
            s = (torch.cat(shifts) + shift_max) / (2 * shift_max)
            k = (torch.cat(scales) - 1) / (spread - 1)
            for what, u in [("shift", s), ("scale", k)]:
                d, n = _ks_uniform(u)
                p.check(f"C={c}: {what} not uniform on its range (KS distance {d:.3f} over {n} draws)",
                        d < 1.95 / n**0.5)
        # new noise at every call, even when nothing else draws from the random state in between
        m, ok = _call(p, "construct (consecutive calls)", cls, 4)
        if ok:
            m = m.double().train()
            x = torch.randn(8, 4, dtype=torch.float64)
            draws = []
            for _ in range(2):
                _, ok = _call(p, "call (consecutive calls)", m, x)
                noise = getattr(m, "last_noise", None)
                if not ok or not (isinstance(noise, tuple) and len(noise) == 2):
                    break
                draws.append(torch.as_tensor(noise[0]).detach().clone())
            if len(draws) == 2:
                p.check("two consecutive calls drew the same noise", not torch.equal(draws[0], draws[1]))
        # float32 layer, float32 output
        m, ok = _call(p, "construct (float32)", cls, 3)
        if ok:
            out, ok = _call(p, "call (float32)", m.train(), torch.randn(8, 3))
            if ok:
                p.check(f"float32 layer returned {getattr(out, 'dtype', type(out))}",
                        isinstance(out, torch.Tensor) and out.dtype == torch.float32)
        # one channel: noise of shape (1,)
        m, ok = _call(p, "construct (C=1)", cls, 1)
        if ok:
            m = m.double().train()
            _, ok = _call(p, "call (C=1)", m, torch.randn(8, 1, dtype=torch.float64))
            noise = getattr(m, "last_noise", None)
            if ok and isinstance(noise, tuple) and len(noise) == 2:
                shapes = [tuple(torch.as_tensor(t).shape) for t in noise]
                p.check(f"C=1: noise shapes {shapes}, expected [(1,), (1,)]", shapes == [(1,), (1,)])
        # eval mode is plain (differentiable) batch norm
        m, ok = _call(p, "construct (eval gradient)", cls, 3)
        if ok:
            m = m.double().train()
            with torch.no_grad():
                m.weight.copy_(torch.tensor([0.5, 1.5, 2.0], dtype=torch.float64))
                m.bias.copy_(torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64))
            _, ok = _call(p, "train step (eval gradient)", m, torch.randn(8, 3, dtype=torch.float64) * 2 + 1)
            if ok:
                ref = nn.BatchNorm1d(3).double()
                ref.load_state_dict({k: v for k, v in m.state_dict().items() if k in ref.state_dict()})
                m.eval(), ref.eval()
                x = torch.randn(5, 3, dtype=torch.float64)
                xm, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
                out, ok = _call(p, "eval (gradient)", m, xm)
                if ok:
                    if p.check("eval output has no gradient (not differentiable)",
                               isinstance(out, torch.Tensor) and out.requires_grad):
                        dout = torch.randn(5, 3, dtype=torch.float64)
                        (out * dout).sum().backward()
                        (ref(xr) * dout).sum().backward()
                        p.close("eval dx", xm.grad, xr.grad, rtol=1e-9)

    # ---- gradient_change: Python floats ---------------------------------------------------
    def floats_extra(p, space, sol):
        torch.manual_seed(3)
        model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()
        gen = torch.Generator().manual_seed(3)
        x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=gen)
        got, ok = _call(p, "call (types)", space["gradient_change"], model, x, y, 3, 0.5)
        if ok:
            types = [type(v).__name__ for v in got]
            p.check(f"returned {types}, expected two Python floats",
                    len(got) == 2 and all(isinstance(v, float) for v in got))

    # ---- sync_batchnorm_forward: dtype, buffers out of the graph -------------------------
    def fw_extra(p, space, sol):
        f = space["sync_batchnorm_forward"]
        gen = torch.Generator().manual_seed(31)
        sizes, c = (3, 4), 3
        x = torch.randn(sum(sizes), c, generator=gen) * 2 + 1
        gamma, beta = torch.rand(c, generator=gen) + 0.5, torch.randn(c, generator=gen)
        try:
            res = _Ranks(2).run(lambda part, ar: f(part, gamma, beta, ar), [(part,) for part in torch.split(x, list(sizes))])
            dtypes = {str(torch.as_tensor(r[0]).dtype) for r in res}
            p.check(f"float32 input gave {sorted(dtypes)} output", dtypes == {"torch.float32"})
        except Exception as exc:  # noqa: BLE001
            p.append(f"float32 run raised {type(exc).__name__}: {str(exc)[:100]}")
        xd = x.double()
        bufs = [(torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)) for _ in sizes]

        def call(part, rm, rv, ar):
            return f(part.clone().requires_grad_(), gamma.double(), beta.double(), ar,
                     running_mean=rm, running_var=rv)

        try:
            _Ranks(2).run(call, [(part, rm, rv) for part, (rm, rv) in zip(torch.split(xd, list(sizes)), bufs)])
            p.check("running statistics joined the autograd graph (x requires grad)",
                    all(not t.requires_grad and t.grad_fn is None for pair in bufs for t in pair))
        except Exception as exc:  # noqa: BLE001
            p.append(f"requires_grad run raised {type(exc).__name__}: {str(exc)[:100]}")

    # ---- sync_batchnorm_backward: dtype ---------------------------------------------------
    def bw_extra(p, space, sol):
        fw, bw = space["sync_batchnorm_forward"], space["sync_batchnorm_backward"]
        gen = torch.Generator().manual_seed(32)
        sizes, c = (3, 4), 3
        x = torch.randn(sum(sizes), c, generator=gen)
        dout = torch.randn(sum(sizes), c, generator=gen)
        gamma, beta = torch.rand(c, generator=gen) + 0.5, torch.randn(c, generator=gen)

        def both(xr, dr, ar):
            return bw(dr, fw(xr, gamma, beta, ar)[1], ar)

        try:
            res = _Ranks(2).run(both, list(zip(torch.split(x, list(sizes)), torch.split(dout, list(sizes)))))
            dtypes = {str(torch.as_tensor(r[0]).dtype) for r in res}
            p.check(f"float32 input gave {sorted(dtypes)} dx", dtypes == {"torch.float32"})
        except Exception as exc:  # noqa: BLE001
            p.append(f"float32 backward raised {type(exc).__name__}: {str(exc)[:100]}")

    # ---- sync_bn_layer ---------------------------------------------------------------------
    def v_sync_bn_layer(space, sol):
        p = P()
        fw, bw = space["sync_bn_forward"], space["sync_bn_backward"]
        gen = torch.Generator().manual_seed(41)
        c, eps = 3, 1e-5
        for sizes, momentum in [((4, 7, 1), 0.1), ((3, 5), 0.3)]:
            n = sum(sizes)
            x = torch.randn(n, c, generator=gen, dtype=torch.float64) * 2 + 1
            gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            beta = torch.randn(c, generator=gen, dtype=torch.float64)
            dout = torch.randn(n, c, generator=gen, dtype=torch.float64)
            rm0 = torch.randn(c, generator=gen, dtype=torch.float64)
            rv0 = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            ref = nn.BatchNorm1d(c, momentum=momentum, eps=eps).double()
            with torch.no_grad():
                ref.running_mean.copy_(rm0), ref.running_var.copy_(rv0)
                ref.weight.copy_(gamma), ref.bias.copy_(beta)
                want = ref(x)
            mean, var = x.mean(0), x.var(0, unbiased=False)
            invstd = 1 / torch.sqrt(var + eps)
            parts = [t.clone() for t in torch.split(x, list(sizes))]
            keep = [t.clone() for t in parts]
            bufs = [(rm0.clone(), rv0.clone()) for _ in sizes]
            tag = f"{sizes}"
            try:
                res = _Ranks(len(sizes)).run(
                    lambda part, rm, rv, ar: fw(part, gamma, beta, rm, rv, ar, eps, momentum),
                    [(part, rm, rv) for part, (rm, rv) in zip(parts, bufs)])
            except Exception as exc:  # noqa: BLE001
                p.append(f"{tag} forward raised {type(exc).__name__}: {str(exc)[:100]}")
                res = None
            if res is not None:
                p.close(f"{tag} out", torch.cat([torch.as_tensor(r[0]) for r in res]), want, rtol=1e-9, atol=1e-10)
                for rank, (r, part, kept, (rm, rv)) in enumerate(zip(res, parts, keep, bufs)):
                    p.check(f"{tag} rank {rank}: x changed in place", torch.equal(part, kept))
                    saved = r[1]
                    if not p.check(f"{tag} rank {rank}: saved is not 5 tensors",
                                   isinstance(saved, (tuple, list)) and len(saved) == 5
                                   and all(isinstance(t, torch.Tensor) for t in saved)):
                        continue
                    p.check(f"{tag} rank {rank}: saved x is not x", torch.equal(saved[0], kept))
                    p.check(f"{tag} rank {rank}: saved gamma is not gamma", torch.equal(saved[1], gamma))
                    p.close(f"{tag} rank {rank} saved mean", saved[2], mean, rtol=1e-9)
                    p.close(f"{tag} rank {rank} saved invstd", saved[3], invstd, rtol=1e-9)
                    p.close(f"{tag} rank {rank} saved count", saved[4].reshape(-1), torch.tensor([float(n)]), rtol=1e-12)
                    p.close(f"{tag} rank {rank} running_mean", rm, ref.running_mean, rtol=1e-9)
                    p.close(f"{tag} rank {rank} running_var", rv, ref.running_var, rtol=1e-9)
            # backward alone, from the right saved tensors
            xg = x.clone().requires_grad_()
            F.batch_norm(xg, None, None, gamma, beta, training=True, eps=eps).backward(dout)
            count = torch.tensor([float(n)], dtype=torch.float64)
            try:
                got = _Ranks(len(sizes)).run(
                    lambda xr, dr, ar: bw((xr, gamma, mean, invstd, count), dr, ar),
                    list(zip(torch.split(x, list(sizes)), torch.split(dout, list(sizes)))))
            except Exception as exc:  # noqa: BLE001
                p.append(f"{tag} backward raised {type(exc).__name__}: {str(exc)[:100]}")
                got = None
            if got is not None:
                if p.check(f"{tag} backward did not return 5 values (last two None)",
                           all(isinstance(g, (tuple, list)) and len(g) == 5 and g[3] is None and g[4] is None
                               for g in got)):
                    p.close(f"{tag} dx", torch.cat([g[0] for g in got]), xg.grad, rtol=1e-8, atol=1e-10)
                    xh = (x - mean) * invstd
                    for rank, (g, dr, hr) in enumerate(zip(got, torch.split(dout, list(sizes)),
                                                           torch.split(xh, list(sizes)))):
                        p.close(f"{tag} rank {rank} dgamma", g[1], (dr * hr).sum(0), rtol=1e-8, atol=1e-10)
                        p.close(f"{tag} rank {rank} dbeta", g[2], dr.sum(0), rtol=1e-8, atol=1e-10)
            # end to end, through the notebook's own autograd Function
            make = space.get("sync_batch_norm")
            if make is None:
                continue
            leaves = [(t.clone().requires_grad_(), gamma.clone().requires_grad_(), beta.clone().requires_grad_())
                      for t in torch.split(x, list(sizes))]
            ebufs = [(rm0.clone(), rv0.clone()) for _ in sizes]

            def layer(xl, gl, bl, rm, rv, dr, ar):
                out = make(ar, eps, momentum)(xl, gl, bl, rm, rv)
                out.backward(dr)
                return out.detach()

            try:
                outs = _Ranks(len(sizes)).run(
                    layer, [(*lv, rm, rv, dr) for lv, (rm, rv), dr in
                            zip(leaves, ebufs, torch.split(dout, list(sizes)))])
            except Exception as exc:  # noqa: BLE001
                p.append(f"{tag} layer raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            p.close(f"{tag} layer out", torch.cat(outs), want, rtol=1e-9, atol=1e-10)
            p.close(f"{tag} layer dx", torch.cat([lv[0].grad for lv in leaves]), xg.grad, rtol=1e-8, atol=1e-10)
            gsum = sum(lv[1].grad for lv in leaves)
            bsum = sum(lv[2].grad for lv in leaves)
            xh = (x - mean) * invstd
            p.close(f"{tag} layer dgamma summed", gsum, (dout * xh).sum(0), rtol=1e-8, atol=1e-10)
            p.close(f"{tag} layer dbeta summed", bsum, dout.sum(0), rtol=1e-8, atol=1e-10)
            for rank, (rm, rv) in enumerate(ebufs):
                p.close(f"{tag} layer rank {rank} running_var", rv, ref.running_var, rtol=1e-9)
        return p

    V["noisy_batchnorm"] = with_extra("noisy_batchnorm", noisy_extra)
    V["gradient_change"] = with_extra("gradient_change", floats_extra)
    V["sync_batchnorm_forward"] = with_extra("sync_batchnorm_forward", fw_extra)
    V["sync_batchnorm_backward"] = with_extra("sync_batchnorm_backward", bw_extra)
    V["sync_bn_layer"] = v_sync_bn_layer
