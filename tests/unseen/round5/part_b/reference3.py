"""The independent reference of the fifth set, part b (lessons 04, 07, 08): a copy of
round 4 part b's reference3.py, unchanged except for this docstring.  Round 4 part b's
docstring follows.

The fourth set's (part b: lessons 04, 07, 08) additions to round2's independent
reference.  A copy of round 3's reference3.py (its additions are kept as they were)
with this set's own at the end (``_install4``, called by ``install``): the lesson 08
capstone (graded cell ``sync_bn_layer``: ``sync_bn_forward`` / ``sync_bn_backward``,
checked stage by stage against ``nn.BatchNorm1d`` and autograd on the whole batch,
and end to end through the notebook's ``torch.autograd.Function``), and properties
the new entries touch that the earlier verifiers do not look at (see
``_install4``).  Round 3's docstring follows.

The third set's additions to round2's independent reference (reference.py of
tests/unseen/round2, imported, not copied): no helpers.checks anywhere.

- lesson 08 at its CURRENT signatures (round2's verifiers call
  merge_running_stats(model, all_reduce, world_size) and know no running
  statistics in sync_batchnorm_forward): v_sync_forward, v_sync_backward, v_merge
  below replace them;
- extra properties round2's verifiers do not look at: a backward pass must leave
  dout alone; a fresh ScratchBatchNorm has weight 1 and bias 0; BatchRenorm's
  running statistics must be buffers, not parameters, and its eval mode must use
  a weight that is not 1;
  NoisyBatchNorm's noise must be spread like a uniform draw (mean, point masses).

``install(reference)`` patches round2's ``reference.VERIFIERS`` in place.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
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

    # ---- a backward pass leaves dout alone -------------------------------------
    def dout_kept_02(name):
        def extra(p, space, sol):
            rng = np.random.default_rng(3)
            x = rng.normal(1, 2, (6, 4))
            g, b = rng.normal(1, 0.5, 4), rng.normal(size=4)
            res, ok = _call(p, "forward (dout check)", space["batchnorm_forward"], x.copy(), g, b)
            if not ok:
                return
            dout = rng.normal(size=(6, 4))
            keep = dout.copy()
            _call(p, "backward (dout check)", space[name], dout, res[1])
            p.check("backward changed dout in place", np.array_equal(dout, keep))
        return extra

    def dout_kept_04(p, space, sol):
        rng = np.random.default_rng(4)
        x = rng.normal(1, 2, (7, 3))
        g, b = rng.normal(1, 0.5, 3), rng.normal(size=3)
        res, ok = _call(p, "forward (dout check)", space["batch_renorm_forward"], x.copy(), g, b,
                        rng.normal(size=3), rng.uniform(0.8, 3.0, 3), 2.0, 1.0)
        if not ok:
            return
        dout = rng.normal(size=(7, 3))
        keep = dout.copy()
        _call(p, "backward (dout check)", space["batch_renorm_backward"], dout, res[1])
        p.check("backward changed dout in place", np.array_equal(dout, keep))

    # ---- BatchRenorm: buffers are buffers ----------------------------------------
    def renorm_buffers(p, space, sol):
        m, ok = _call(p, "construct (buffer check)", space["BatchRenorm"], 3)
        if not ok:
            return
        params = sorted(n for n, _ in m.named_parameters())
        bufs = sorted(n for n, _ in m.named_buffers())
        p.check(f"parameters {params}, expected ['bias', 'weight']", params == ["bias", "weight"])
        p.check(f"buffers {bufs}, expected ['running_mean', 'running_std']",
                bufs == ["running_mean", "running_std"])

    # ---- NoisyBatchNorm: the noise's spread ---------------------------------------
    def noise_spread(p, space, sol):
        torch.manual_seed(11)
        for c, shift_max, spread in [(5, 1.0, 2.0), (4, 0.5, 3.0)]:
            m, ok = _call(p, "construct (noise check)", space["NoisyBatchNorm"], c, shift=shift_max, spread=spread)
            if not ok:
                return
            m = m.double().train()
            shifts, scales = [], []
            for _ in range(80):
                _, ok = _call(p, "call (noise check)", m, torch.randn(8, c, dtype=torch.float64))
                noise = getattr(m, "last_noise", None)
                if not ok or not (isinstance(noise, tuple) and len(noise) == 2):
                    return
                shifts.append(torch.as_tensor(noise[0]).detach().double().reshape(-1))
                scales.append(torch.as_tensor(noise[1]).detach().double().reshape(-1))
            s, k = torch.cat(shifts), torch.cat(scales)
            n = s.numel()
            tol_s = 6 * (2 * shift_max) * 0.2887 / n**0.5
            tol_k = 6 * (spread - 1) * 0.2887 / n**0.5
            p.check(f"shift mean {float(s.mean()):.3f}, expected 0 +- {tol_s:.3f}", abs(float(s.mean())) < tol_s)
            p.check(f"scale mean {float(k.mean()):.3f}, expected {(1 + spread) / 2} +- {tol_k:.3f}",
                    abs(float(k.mean()) - (1 + spread) / 2) < tol_k)
            ends = float(((k - 1).abs() < 1e-12).double().mean())
            p.check(f"{ends:.0%} of the scales are exactly 1", ends < 0.05)

    # ---- a fresh ScratchBatchNorm is the identity affine map --------------------
    def scratch_fresh(p, space, sol):
        m, ok = _call(p, "construct (fresh parameters)", space["ScratchBatchNorm"], 4)
        if not ok:
            return
        w, b = getattr(m, "weight", None), getattr(m, "bias", None)
        p.check("fresh weight is not all ones", isinstance(w, torch.Tensor) and torch.equal(w.detach(), torch.ones(4)))
        p.check("fresh bias is not all zeros", isinstance(b, torch.Tensor) and torch.equal(b.detach(), torch.zeros(4)))

    # ---- BatchRenorm in eval mode with a weight that is not 1 ----------------------
    def renorm_eval_weight(p, space, sol):
        gen = torch.Generator().manual_seed(12)
        mine, ok = _call(p, "construct (eval weight)", space["BatchRenorm"], 3, momentum=0.3, rmax=2.0, dmax=1.0)
        if not ok:
            return
        ref = sol["BatchRenorm"](3, momentum=0.3, rmax=2.0, dmax=1.0)
        mine, ref = mine.double(), ref.double()
        w = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
        b = torch.randn(3, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            for m in (mine, ref):
                m.weight.copy_(w), m.bias.copy_(b)
        x = torch.randn(8, 3, generator=gen, dtype=torch.float64) * 2 + 1
        with torch.no_grad():
            _, ok = _call(p, "train step (eval weight)", mine, x)
            ref(x)
        if not ok:
            return
        mine.eval(), ref.eval()
        x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            out, ok = _call(p, "eval (eval weight)", mine, x)
            if ok:
                p.close("eval output with weight != 1", out, ref(x), rtol=1e-9)

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_fresh)

    V["batchnorm_backward"] = with_extra("batchnorm_backward", dout_kept_02("batchnorm_backward"))
    V["batchnorm_backward_alt"] = with_extra("batchnorm_backward_alt", dout_kept_02("batchnorm_backward_alt"))
    V["batch_renorm_backward"] = with_extra("batch_renorm_backward", dout_kept_04)
    V["batch_renorm"] = with_extra("batch_renorm", lambda p, sp, so: (renorm_buffers(p, sp, so), renorm_eval_weight(p, sp, so)))
    V["noisy_batchnorm"] = with_extra("noisy_batchnorm", noise_spread)

    # ---- lesson 08 at the current signatures ----------------------------------------

    def v_sync_forward(space, sol):
        p = P()
        f = space["sync_batchnorm_forward"]
        gen = torch.Generator().manual_seed(5)
        for sizes, dtype, loc, spread, tol in [((3, 5, 4), torch.float64, 1.0, 2.0, 1e-9),
                                               ((4, 4), torch.float64, -2.0, 0.5, 1e-9),
                                               ((2, 6, 3), torch.float32, 1e4, 1.0, 2e-2)]:
            c = 4
            x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * spread + loc
            gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            beta = torch.randn(c, generator=gen, dtype=torch.float64)
            want = gamma * (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5) + beta
            parts = list(torch.split(x.to(dtype), list(sizes)))
            try:
                res = _Ranks(len(sizes)).run(f, [(part, gamma.to(dtype), beta.to(dtype)) for part in parts])
            except Exception as exc:  # noqa: BLE001
                p.append(f"{sizes}: raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            got = torch.cat([torch.as_tensor(r[0]).detach().double() for r in res])
            p.close(f"{sizes} {dtype} out", got, want, rtol=tol, atol=tol)
        # running statistics: one step of nn.BatchNorm1d on the whole batch
        for sizes, momentum in [((4, 7, 1), 0.1), ((3, 5), 0.3), ((2, 2, 6), None)]:
            c = 3
            x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
            gamma, beta = torch.ones(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
            ref = nn.BatchNorm1d(c, momentum=momentum if momentum is not None else 0.1).double()
            rm0 = torch.randn(c, generator=gen, dtype=torch.float64)
            rv0 = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            with torch.no_grad():
                ref.running_mean.copy_(rm0), ref.running_var.copy_(rv0)
                ref(x)
            bufs = [(rm0.clone(), rv0.clone()) for _ in sizes]
            parts = list(torch.split(x, list(sizes)))

            def call(part, rm, rv, all_reduce, momentum=momentum):
                if momentum is None:
                    return f(part, gamma, beta, all_reduce, running_mean=rm, running_var=rv)
                return f(part, gamma, beta, all_reduce, running_mean=rm, running_var=rv, momentum=momentum)

            try:
                _Ranks(len(sizes)).run(call, [(part, rm, rv) for part, (rm, rv) in zip(parts, bufs)])
            except Exception as exc:  # noqa: BLE001
                p.append(f"{sizes} running: raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            for rank, (rm, rv) in enumerate(bufs):
                p.close(f"{sizes} momentum {momentum} rank {rank} running_mean", rm, ref.running_mean, rtol=1e-9)
                p.close(f"{sizes} momentum {momentum} rank {rank} running_var", rv, ref.running_var, rtol=1e-9)
        return p

    def v_sync_backward(space, sol):
        p = P(old["sync_batchnorm_backward"](space, sol))
        fw, bw = space["sync_batchnorm_forward"], space["sync_batchnorm_backward"]
        gen = torch.Generator().manual_seed(8)
        sizes = (3, 4)
        x = torch.randn(sum(sizes), 3, generator=gen, dtype=torch.float64)
        dout = torch.randn(sum(sizes), 3, generator=gen, dtype=torch.float64)
        gamma, beta = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        ds = [d.clone() for d in torch.split(dout, list(sizes))]
        keep = [d.clone() for d in ds]

        def both(xr, dr, all_reduce):
            return bw(dr, fw(xr, gamma, beta, all_reduce)[1], all_reduce)

        try:
            _Ranks(2).run(both, list(zip(torch.split(x, list(sizes)), ds)))
            p.check("backward changed dout in place", all(torch.equal(a, b) for a, b in zip(ds, keep)))
        except Exception:  # noqa: BLE001 - reported by round2's verifier already
            pass
        return p

    def v_merge(space, sol):
        p = P()
        f = space["merge_running_stats"]
        torch.manual_seed(3)
        for counts in [(5, 9), (3, 1, 7), (6, 6, 6, 6)]:
            world = len(counts)
            base = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(),
                                 nn.Sequential(nn.Unflatten(1, (5, 1, 1)), nn.Conv2d(5, 3, 1), nn.BatchNorm2d(3)))
            models = []
            for r in range(world):
                m = copy.deepcopy(base)
                with torch.no_grad():
                    for bn in m.modules():
                        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                            bn.running_mean.copy_(torch.randn(bn.num_features) * 2 + r)
                            bn.running_var.copy_(torch.rand(bn.num_features) * 3 + 0.1)
                            bn.num_batches_tracked.fill_(10 + r)
                models.append(m)
            keep = [copy.deepcopy(m) for m in models]
            ptrs = [[b.data_ptr() for b in m.buffers()] for m in models]
            try:
                with torch.no_grad():
                    _Ranks(world).run(lambda m, cnt, ar: f(m, ar, cnt), [(m, cnt) for m, cnt in zip(models, counts)])
            except Exception as exc:  # noqa: BLE001
                p.append(f"counts {counts}: raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            n = float(sum(counts))
            cnt = torch.tensor(counts, dtype=torch.float64)[:, None]
            bns = [[b for b in m.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)] for m in keep]
            for layer in range(len(bns[0])):
                means = torch.stack([bns[r][layer].running_mean.double() for r in range(world)])
                vars_ = torch.stack([bns[r][layer].running_var.double() for r in range(world)])
                mean = (cnt * means).sum(0) / n
                var = ((cnt - 1) * vars_ + cnt * (means - mean) ** 2).sum(0) / (n - 1)
                for r in range(world):
                    got = [b for b in models[r].modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)][layer]
                    p.close(f"counts {counts} rank {r} layer {layer} mean", got.running_mean, mean, rtol=1e-5, atol=1e-6)
                    p.close(f"counts {counts} rank {r} layer {layer} var", got.running_var, var, rtol=1e-5, atol=1e-6)
                    p.check(f"counts {counts}: running_mean dtype {got.running_mean.dtype}",
                            got.running_mean.dtype == torch.float32 and got.running_var.dtype == torch.float32)
                    p.check(f"counts {counts}: num_batches_tracked changed",
                            int(got.num_batches_tracked) == int(bns[r][layer].num_batches_tracked))
            for r in range(world):
                p.check(f"counts {counts} rank {r}: weights changed", all(
                    torch.equal(a, b) for a, b in zip(models[r].parameters(), keep[r].parameters())))
                p.check(f"counts {counts} rank {r}: buffers replaced, not changed in place",
                        [b.data_ptr() for b in models[r].buffers()] == ptrs[r])
        return p

    V["sync_batchnorm_forward"] = v_sync_forward
    V["sync_batchnorm_backward"] = v_sync_backward
    V["merge_running_stats"] = v_merge

    _install4(reference)
    _install5(reference)


# ==========================================================================
# the fourth set's (part b) additions
# ==========================================================================


def _install4(reference):
    """Extra properties for lessons 04, 07, 08 and the capstone verifier; wraps the
    verifiers as they are after round 3's install (plain torch / NumPy only)."""
    P, _Ranks, _call, _raises = reference.Problems, reference._Ranks, reference._call, reference._raises
    V = reference.VERIFIERS
    now = dict(V)

    def plus(name, *extras):
        def run(space, sol):
            p = P(now[name](space, sol))
            for extra in extras:
                try:
                    extra(p, space, sol)
                except Exception as exc:  # noqa: BLE001
                    p.append(f"extra reference check (set 4b) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- lesson 04 ------------------------------------------------------------------
    def renorm_shapes_dtypes(p, space, sol):
        cls = space["BatchRenorm"]
        m, ok = _call(p, "construct (set 4b)", cls, 3)
        if not ok:
            return
        m.train()
        _raises(p, "training with one value per channel (1, 3)", ValueError, m, torch.randn(1, 3))
        _raises(p, "training with one value per channel (1, 3, 1, 1)", ValueError, m, torch.randn(1, 3, 1, 1))
        m, ok = _call(p, "construct (set 4b, W != C)", cls, 3, momentum=0.2, rmax=2.0, dmax=1.0)
        ref = sol["BatchRenorm"](3, momentum=0.2, rmax=2.0, dmax=1.0)
        if ok:
            gen = torch.Generator().manual_seed(41)
            x = torch.randn(4, 3, 2, 5, generator=gen) * 2 + 1
            out, ok = _call(p, "4-D input with W = 5 != C = 3", m, x)
            if ok:
                p.close("4-D input with W != C: output", out, ref(x), rtol=1e-5, atol=1e-6)
        m, ok = _call(p, "construct (set 4b, float32)", cls, 3)
        if ok:
            x = torch.randn(6, 3) * 3 + 1
            out, ok = _call(p, "float32 training step", m, x)
            if ok:
                p.check(f"float32 module and input: output {getattr(out, 'dtype', type(out))}",
                        isinstance(out, torch.Tensor) and out.dtype == torch.float32)
                bufs = {n: b.dtype for n, b in m.named_buffers()}
                p.check(f"float32 module: buffer dtypes {bufs}", all(d == torch.float32 for d in bufs.values()))
            m.eval()
            out, ok = _call(p, "float32 eval step", m, x)
            if ok:
                p.check("float32 module and input: eval output not float32",
                        isinstance(out, torch.Tensor) and out.dtype == torch.float32)

    def schedule_zero_length(p, space, sol):
        f, ref = space["renorm_schedule"], sol["renorm_schedule"]
        for args in [(10, 0, 6), (10, 6, 0), (0, 0, 0, 2.0, 4.0), (5, 1, 1)]:
            for step in range(0, 20):
                got, ok = _call(p, f"{args} step {step}", f, step, *args)
                if not ok:
                    return
                if not p.close(f"zero/one-length ramp: step {step} of {args}", got, ref(step, *args), rtol=1e-12):
                    return

    # ---- lesson 07 ------------------------------------------------------------------
    def noisy_counter(p, space, sol):
        m, ok = _call(p, "construct (counter)", space["NoisyBatchNorm"], 4)
        if not ok:
            return
        m.train()
        for _ in range(3):
            _, ok = _call(p, "training call (counter)", m, torch.randn(8, 4))
            if not ok:
                return
        n = getattr(m, "num_batches_tracked", None)
        p.check(f"num_batches_tracked {None if n is None else int(n)} after 3 training calls, expected 3",
                n is not None and int(n) == 3)

    def landscape_unsorted(p, space, sol):
        f, ref = space["landscape_probe"], sol["landscape_probe"]
        model = reference._mlp(5, True).train()
        x, y = reference._data(5)
        etas = [0.5, 0.01, 1.0, 0.1]
        want = ref(copy.deepcopy(model), x, y, etas)
        got, ok = _call(p, "unsorted step sizes", f, model, x, y, etas)
        if ok:
            p.close("unsorted step sizes: losses", [float(v) for v in got[0]], want[0], rtol=1e-7)
            p.close("unsorted step sizes: changes", [float(v) for v in got[1]], want[1], rtol=1e-7, atol=1e-12)

    # ---- lesson 08 ------------------------------------------------------------------
    def sync_forward_side_effects(p, space, sol):
        f = space["sync_batchnorm_forward"]
        gen = torch.Generator().manual_seed(17)
        sizes, c = (3, 5), 3
        x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
        gamma, beta = torch.ones(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
        plain = [q.clone() for q in torch.split(x, list(sizes))]
        keep = [q.clone() for q in plain]
        try:
            _Ranks(len(sizes)).run(lambda q, ar: f(q, gamma, beta, ar), [(q,) for q in plain])
        except Exception:  # noqa: BLE001 - reported by the verifiers above
            return
        p.check("forward changed its input x in place", all(torch.equal(a, b) for a, b in zip(plain, keep)))

    def merge_sync_and_3d(p, space, sol):
        f = space["merge_running_stats"]
        torch.manual_seed(19)
        counts = (5, 9, 2)
        base = nn.Sequential(nn.BatchNorm1d(4), nn.Sequential(nn.Unflatten(1, (4, 1, 1, 1)), nn.BatchNorm3d(4)),
                             nn.Sequential(nn.Flatten(), nn.SyncBatchNorm(4)))
        models = []
        for r in range(len(counts)):
            m = copy.deepcopy(base)
            with torch.no_grad():
                for bn in m.modules():
                    if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                        bn.running_mean.copy_(torch.randn(4) * 2 + r)
                        bn.running_var.copy_(torch.rand(4) * 3 + 0.1)
            models.append(m)
        keep = [copy.deepcopy(m) for m in models]
        try:
            with torch.no_grad():
                _Ranks(len(counts)).run(lambda m, cnt, ar: f(m, ar, cnt), list(zip(models, counts)))
        except Exception as exc:  # noqa: BLE001
            p.append(f"BatchNorm3d / SyncBatchNorm model: raised {type(exc).__name__}: {str(exc)[:100]}")
            return
        n = float(sum(counts))
        cnt = torch.tensor(counts, dtype=torch.float64)[:, None]
        layers = [[b for b in m.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)] for m in keep]
        for k in range(len(layers[0])):
            means = torch.stack([layers[r][k].running_mean.double() for r in range(len(counts))])
            vars_ = torch.stack([layers[r][k].running_var.double() for r in range(len(counts))])
            mean = (cnt * means).sum(0) / n
            var = ((cnt - 1) * vars_ + cnt * (means - mean) ** 2).sum(0) / (n - 1)
            kind = type(layers[0][k]).__name__
            for r in range(len(counts)):
                got = [b for b in models[r].modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)][k]
                p.close(f"{kind} rank {r} mean", got.running_mean, mean, rtol=1e-5, atol=1e-6)
                p.close(f"{kind} rank {r} var", got.running_var, var, rtol=1e-5, atol=1e-6)

    # ---- lesson 08 capstone: sync_bn_forward / sync_bn_backward ----------------------
    def v_sync_bn_layer(space, sol):
        p = P()
        fw, bw = space["sync_bn_forward"], space["sync_bn_backward"]
        gen = torch.Generator().manual_seed(13)
        for sizes, momentum, eps in [((4, 7, 1), 0.1, None), ((3, 5), 0.3, 1e-3), ((2, 2, 6), None, None)]:
            c, tag = 3, f"{sizes} momentum {momentum} eps {eps}"
            x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
            gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            beta = torch.randn(c, generator=gen, dtype=torch.float64)
            dout = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64)
            rm0 = torch.randn(c, generator=gen, dtype=torch.float64)
            rv0 = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            e = 1e-5 if eps is None else eps
            ref = nn.BatchNorm1d(c, eps=e, momentum=0.1 if momentum is None else momentum).double().train()
            with torch.no_grad():
                ref.weight.copy_(gamma), ref.bias.copy_(beta)
                ref.running_mean.copy_(rm0), ref.running_var.copy_(rv0)
            xt = x.clone().requires_grad_()
            want = ref(xt)
            (want * dout).sum().backward()
            mean, invstd = x.mean(0), 1.0 / torch.sqrt(x.var(0, unbiased=False) + e)
            xs = [q.clone() for q in torch.split(x, list(sizes))]
            ds = [q.clone() for q in torch.split(dout, list(sizes))]
            keep_x, keep_d = [q.clone() for q in xs], [q.clone() for q in ds]
            bufs = [(rm0.clone(), rv0.clone()) for _ in sizes]
            kw = {}
            if eps is not None:
                kw["eps"] = eps
            if momentum is not None:
                kw["momentum"] = momentum

            def call(xr, dr, rm, rv, all_reduce):
                out, saved = fw(xr, gamma, beta, rm, rv, all_reduce, **kw)
                return out, tuple(saved), bw(tuple(saved), dr, all_reduce)

            try:
                res = _Ranks(len(sizes)).run(call, [(xr, dr, rm, rv) for xr, dr, (rm, rv) in zip(xs, ds, bufs)])
            except Exception as exc:  # noqa: BLE001
                p.append(f"{tag}: raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            p.close(f"{tag}: out", torch.cat([torch.as_tensor(r[0]).detach() for r in res]), want, rtol=1e-9, atol=1e-10)
            for rank, ((out, saved, grads), xr, dr, (rm, rv)) in enumerate(zip(res, xs, ds, bufs)):
                if not p.check(f"{tag} rank {rank}: saved has {len(saved)} items, expected 5", len(saved) == 5):
                    continue
                p.check(f"{tag} rank {rank}: saved[0] is not this rank's x",
                        isinstance(saved[0], torch.Tensor) and saved[0].shape == xr.shape
                        and torch.allclose(saved[0], keep_x[rank], rtol=0, atol=0))
                p.check(f"{tag} rank {rank}: saved[1] is not gamma",
                        isinstance(saved[1], torch.Tensor) and torch.equal(saved[1], gamma))
                p.close(f"{tag} rank {rank}: saved mean", saved[2], mean, rtol=1e-9, atol=1e-12)
                p.close(f"{tag} rank {rank}: saved invstd", saved[3], invstd, rtol=1e-9)
                p.check(f"{tag} rank {rank}: saved count {saved[4]!r} is not a tensor holding N = {sum(sizes)}",
                        isinstance(saved[4], torch.Tensor) and saved[4].numel() == 1
                        and float(saved[4]) == float(sum(sizes)))
                p.close(f"{tag} rank {rank}: running_mean", rm, ref.running_mean, rtol=1e-9)
                p.close(f"{tag} rank {rank}: running_var", rv, ref.running_var, rtol=1e-9)
                if not p.check(f"{tag} rank {rank}: backward returned {len(grads)} values, expected 5 "
                               "(dx, dgamma, dbeta, None, None)",
                               isinstance(grads, (tuple, list)) and len(grads) == 5):
                    continue
                p.check(f"{tag} rank {rank}: the running statistics' gradients are not None",
                        grads[3] is None and grads[4] is None)
            try:
                p.close(f"{tag}: dx", torch.cat([r[2][0] for r in res]), xt.grad, rtol=1e-8, atol=1e-10)
                p.close(f"{tag}: sum of dgamma over ranks", sum(r[2][1] for r in res), ref.weight.grad, rtol=1e-8, atol=1e-10)
                p.close(f"{tag}: sum of dbeta over ranks", sum(r[2][2] for r in res), ref.bias.grad, rtol=1e-8, atol=1e-10)
                xhat = (x - mean) * invstd
                for rank, (r, dr, hr) in enumerate(zip(res, keep_d, torch.split(xhat, list(sizes)))):
                    p.close(f"{tag} rank {rank}: dgamma (this rank's share)", r[2][1], (dr * hr).sum(0), rtol=1e-8, atol=1e-10)
                    p.close(f"{tag} rank {rank}: dbeta (this rank's share)", r[2][2], dr.sum(0), rtol=1e-8, atol=1e-10)
            except Exception as exc:  # noqa: BLE001
                p.append(f"{tag}: gradients unusable: {type(exc).__name__}: {str(exc)[:100]}")
            p.check(f"{tag}: x changed in place", all(torch.equal(a, b) for a, b in zip(xs, keep_x)))
            p.check(f"{tag}: dout changed in place", all(torch.equal(a, b) for a, b in zip(ds, keep_d)))
        # end to end: the notebook's autograd Function (ctx.save_for_backward, gradient count)
        maker = space.get("sync_batch_norm")
        if maker is None:
            p.append("the notebook's sync_batch_norm is missing")
            return p
        sizes, c = (4, 7, 1), 3
        x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 3 - 1
        gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
        beta = torch.randn(c, generator=gen, dtype=torch.float64)
        dout = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64)
        xt, gt, bt = (t.clone().requires_grad_() for t in (x, gamma, beta))
        want = F.batch_norm(xt, None, None, gt, bt, training=True)
        (want * dout).sum().backward()

        def e2e(xr, dr, all_reduce):
            rm, rv = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
            xg, g, b = xr.clone().requires_grad_(), gamma.clone().requires_grad_(), beta.clone().requires_grad_()
            out = maker(all_reduce)(xg, g, b, rm, rv)
            out.backward(dr)
            return out.detach(), xg.grad, g.grad, b.grad

        try:
            res = _Ranks(len(sizes)).run(e2e, list(zip(torch.split(x, list(sizes)), torch.split(dout, list(sizes)))))
        except Exception as exc:  # noqa: BLE001
            p.append(f"autograd Function end to end: raised {type(exc).__name__}: {str(exc)[:120]}")
            return p
        p.close("autograd Function: out", torch.cat([r[0] for r in res]), want, rtol=1e-9, atol=1e-10)
        p.close("autograd Function: dx", torch.cat([r[1] for r in res]), xt.grad, rtol=1e-8, atol=1e-10)
        p.close("autograd Function: dgamma summed over ranks", sum(r[2] for r in res), gt.grad, rtol=1e-8, atol=1e-10)
        p.close("autograd Function: dbeta summed over ranks", sum(r[3] for r in res), bt.grad, rtol=1e-8, atol=1e-10)
        return p

    V["batch_renorm"] = plus("batch_renorm", renorm_shapes_dtypes)
    V["renorm_schedule"] = plus("renorm_schedule", schedule_zero_length)
    V["noisy_batchnorm"] = plus("noisy_batchnorm", noisy_counter)
    V["landscape_probe"] = plus("landscape_probe", landscape_unsorted)
    V["sync_batchnorm_forward"] = plus("sync_batchnorm_forward", sync_forward_side_effects)
    V["merge_running_stats"] = plus("merge_running_stats", merge_sync_and_3d)
    V["sync_bn_layer"] = v_sync_bn_layer


# ==========================================================================
# the fifth set's (part b) additions
# ==========================================================================


def _install5(reference):
    """Extra properties for lessons 04, 07, 08 that this set's entries touch and the
    earlier verifiers do not look at (plain torch / NumPy only, no helpers.checks):
    the renorm backward leaves its cache alone; BatchRenorm trains on one image with
    several values per channel; renorm_schedule with a negative ramp length (the
    solution's length <= 0 branch); NoisyBatchNorm passes its keyword arguments on;
    gradient_change and landscape_probe return Python floats, gradient_change with a
    parameterised layer just before index, landscape_probe on a model that arrives
    with gradients; sync_batchnorm_forward's cache is (x_hat, rho, gamma, count);
    sync_batchnorm_backward returns three gradients."""
    P, _Ranks, _call = reference.Problems, reference._Ranks, reference._call
    V = reference.VERIFIERS
    now = dict(V)

    def plus(name, *extras):
        def run(space, sol):
            p = P(now[name](space, sol))
            for extra in extras:
                try:
                    extra(p, space, sol)
                except Exception as exc:  # noqa: BLE001
                    p.append(f"extra reference check (set 5b) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def renorm_bw_cache(p, space, sol):
        fw, bw = sol["batch_renorm_forward"], space["batch_renorm_backward"]
        rng = np.random.default_rng(5)
        x = rng.normal(size=(7, 4)) * 2 + 1
        gamma, beta = rng.random(4) + 0.5, rng.normal(size=4)
        _, cache, _ = fw(x, gamma, beta, np.zeros(4), np.ones(4), 2.0, 1.0)
        keep = [np.array(c, copy=True) for c in cache]
        dout = rng.normal(size=(7, 4))
        _, ok = _call(p, "backward (cache kept)", bw, dout, cache)
        if ok:
            p.check("backward changed its cache in place",
                    all(np.array_equal(a, b) for a, b in zip(cache, keep)))

    def renorm_one_image(p, space, sol):
        m, ok = _call(p, "construct (set 5b)", space["BatchRenorm"], 3, rmax=2.0, dmax=1.0)
        if not ok:
            return
        ref = sol["BatchRenorm"](3, rmax=2.0, dmax=1.0)
        m.train(), ref.train()
        x = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(51)) * 2 + 1
        out, ok = _call(p, "training on one image (1, 3, 2, 2): 4 values per channel", m, x)
        if ok:
            p.close("one image (1, 3, 2, 2): output", out, ref(x), rtol=1e-5, atol=1e-6)

    def schedule_negative(p, space, sol):
        f, ref = space["renorm_schedule"], sol["renorm_schedule"]
        for args in [(10, -3, 6), (10, 6, -2)]:
            for step in range(0, 20):
                got, ok = _call(p, f"{args} step {step}", f, step, *args)
                if not ok:
                    return
                if not p.close(f"negative-length ramp: step {step} of {args}", got, ref(step, *args), rtol=1e-12):
                    return

    def noisy_kwargs(p, space, sol):
        m, ok = _call(p, "construct with momentum=0.5, eps=0.1", space["NoisyBatchNorm"], 4, momentum=0.5, eps=0.1)
        if not ok:
            return
        p.check(f"momentum {getattr(m, 'momentum', None)}, eps {getattr(m, 'eps', None)}: the keyword "
                "arguments were not passed on", getattr(m, "momentum", None) == 0.5 and getattr(m, "eps", None) == 0.1)

    def floats_gc(p, space, sol):
        f, ref = space["gradient_change"], sol["gradient_change"]
        model = reference._mlp(7, True).train()
        x, y = reference._data(7)
        want = ref(copy.deepcopy(model), x, y, 4, 0.5)
        got, ok = _call(p, "index 4 (a Linear just before it)", f, model, x, y, 4, 0.5)
        if ok:
            p.close("index 4 (a Linear just before it)", [float(v) for v in got], want, rtol=1e-7, atol=1e-12)
            p.check(f"returned {[type(v).__name__ for v in got]}, expected two Python floats",
                    isinstance(got, tuple) and len(got) == 2 and all(type(v) is float for v in got))

    def floats_lp(p, space, sol):
        f, ref = space["landscape_probe"], sol["landscape_probe"]
        model = reference._mlp(8, True).train()
        x, y = reference._data(8)
        F.cross_entropy(model(x * 3), y).backward()  # the model arrives with gradients
        etas = [0.05, 0.3]
        want = ref(copy.deepcopy(model), x, y, etas)
        got, ok = _call(p, "model with gradients in it", f, model, x, y, etas)
        if ok:
            p.close("model with gradients: losses", [float(v) for v in got[0]], want[0], rtol=1e-7)
            p.close("model with gradients: changes", [float(v) for v in got[1]], want[1], rtol=1e-7, atol=1e-12)
            p.check("losses and changes are not lists of Python floats",
                    all(type(v) is float for v in list(got[0]) + list(got[1])))

    def sync_cache(p, space, sol):
        f = space["sync_batchnorm_forward"]
        gen = torch.Generator().manual_seed(23)
        sizes, c = (3, 5), 3
        x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
        gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
        beta = torch.randn(c, generator=gen, dtype=torch.float64)
        try:
            res = _Ranks(len(sizes)).run(lambda q, ar: f(q, gamma, beta, ar), [(q,) for q in torch.split(x, list(sizes))])
        except Exception:  # noqa: BLE001 - reported by the verifiers above
            return
        rho = 1.0 / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
        xhat = torch.split((x - x.mean(0)) * rho, list(sizes))
        for r, (out, cache) in enumerate(res):
            cache = tuple(cache)
            if not p.check(f"rank {r}: cache has {len(cache)} items, expected 4", len(cache) == 4):
                continue
            p.close(f"rank {r}: cache[0] (x_hat)", cache[0], xhat[r], rtol=1e-9, atol=1e-12)
            p.close(f"rank {r}: cache[1] (rho)", cache[1], rho, rtol=1e-9)
            p.close(f"rank {r}: cache[2] (gamma)", cache[2], gamma, rtol=0, atol=0)
            p.check(f"rank {r}: cache[3] is not the global count", float(torch.as_tensor(cache[3]).reshape(-1)[0]) == 8.0)

    def sync_bw_three(p, space, sol):
        fw, bw = sol["sync_batchnorm_forward"], space["sync_batchnorm_backward"]
        gen = torch.Generator().manual_seed(29)
        sizes = (2, 4)
        x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
        dout = torch.randn(6, 3, generator=gen, dtype=torch.float64)
        gamma, beta = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        try:
            res = _Ranks(2).run(lambda xr, dr, ar: bw(dr, fw(xr, gamma, beta, ar)[1], ar),
                                list(zip(torch.split(x, list(sizes)), torch.split(dout, list(sizes)))))
        except Exception:  # noqa: BLE001 - reported by the verifiers above
            return
        p.check(f"backward returned {len(res[0]) if isinstance(res[0], (tuple, list)) else type(res[0]).__name__} "
                "values, expected 3 (dx, dgamma, dbeta)", isinstance(res[0], (tuple, list)) and len(res[0]) == 3)

    V["batch_renorm_backward"] = plus("batch_renorm_backward", renorm_bw_cache)
    V["batch_renorm"] = plus("batch_renorm", renorm_one_image)
    V["renorm_schedule"] = plus("renorm_schedule", schedule_negative)
    V["noisy_batchnorm"] = plus("noisy_batchnorm", noisy_kwargs)
    V["gradient_change"] = plus("gradient_change", floats_gc)
    V["landscape_probe"] = plus("landscape_probe", floats_lp)
    V["sync_batchnorm_forward"] = plus("sync_batchnorm_forward", sync_cache)
    V["sync_batchnorm_backward"] = plus("sync_batchnorm_backward", sync_bw_three)
