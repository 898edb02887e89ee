"""The fifth set's (part b: lessons 04, 07, 08) additions to the independent
reference, installed after round 4 part b's reference3.py (imported from
tests/unseen/round4/part_b, no longer copied): see ``install``.  No helpers.checks."""


from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F


# ==========================================================================
# the fifth set's (part b) additions
# ==========================================================================


def install(reference):
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
