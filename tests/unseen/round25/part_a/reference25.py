"""Round 25 part a: round 24 part a's reference24.py copied unchanged, plus round 25 part a's
additions at the end of install() (properties the verifiers above do not look at):

- standardize_columns on a single row (N = 1: every output 0, the row is its own mean);
- batchnorm_backward(_alt) called twice on the same cache (same results both times).

Below, reference24.py's docstring as it was.

Round 24 part a: round 23 part a's reference23.py copied unchanged (no additions of its own:
every wrong entry of this set already differs from the verifiers below). Below, its docstring as it was.

Round 23 part a: round 22 part a's reference22.py copied unchanged, plus round 23 part a's
additions at the end of install() (properties the verifiers above do not look at):

- batch_stats on a batch of ReLU outputs with one all-zero example (every statistic counts it);
- standardize_columns on an integer matrix (the lesson's 4 x 6 example without dtype=float);
- batchnorm_forward on a batch whose features lie far from 0 against their spread
  (mean 1e4, std 0.1: as exact as float64 allows, rtol 1e-9).

Below, reference22.py's docstring as it was.

Round 22 part a: round 21 part a's reference21.py copied unchanged, plus round 22 part a's
additions at the end of install() (properties the verifiers above do not look at):

- layer_gradient_norms must leave a float32 model in float32 (every parameter's dtype unchanged).

Below, reference21.py's docstring as it was.

Round 21 part a: round 20 part a's reference20.py copied unchanged, plus round 21 part a's
additions at the end of install() (properties the verifiers above do not look at):

- batch_stats on a uint8 batch (pixel values 0..255: every statistic as for float64);
- layer_gradient_norms must leave the caller's input alone (x.requires_grad unchanged);
- activation_percentiles must leave the caller's values alone (array and tensor);
- batchnorm_backward(_alt) with one feature (D = 1): dgamma and dbeta of shape (1,);
- batchnorm_backward(_alt) as exact as float64 allows (rtol 1e-10 on a small batch);
- layernorm_backward called twice on the same cache (same results both times).

Below, reference20.py's docstring as it was.

Round 20 part a: round 19 part a's reference19.py copied unchanged, plus round 20 part a's
additions at the end of install() (properties the verifiers above do not look at):

- standardize_columns called with eps=0.1, then without eps (the default 1e-5 must be used);
- layer_gradient_norms on a batch of one example (model without BatchNorm);
- layer_gradient_norms on a float32 model (norms as exact as float32 allows);
- activation_percentiles of an nn.Parameter (a tensor subclass that requires grad);
- batchnorm_forward's cache read by the course's staged backward (the cache must hold x_hat);
- batchnorm_backward(_alt) called twice with the same width: the first call's results
  must not change afterwards.

Below, reference19.py's docstring as it was.

Round 19 part a: round 18 part a's reference18.py copied unchanged, plus round 19 part a's
additions at the end of install() (properties the verifiers above do not look at):

- batchnorm_forward on a batch of 8 with one constant feature (its variance is 0 but N >= 2:
  no error, and that feature's output is beta);
- layer_gradient_norms called twice on the same model with BatchNorm1d layers (the model
  must be left in training mode: the second call gives the same norms);
- layernorm_backward on the cache of a first forward call after a second forward call on
  another batch (a cache, with dout, must be enough).

Below, reference18.py's docstring as it was.

Round 18 part a: round 17 part a's reference17.py copied unchanged, plus round 18 part a's
additions at the end of install() (properties the verifiers above do not look at):

- layer_gradient_norms on a model that already holds gradients from an earlier backward
  pass (the norms are those of this loss alone);
- activation_percentiles with percents of 1 or less (q=(0.5, 1.0) and q=(0.1,) are
  percents, not fractions);
- spatial_batchnorm_backward on the cache of a first forward call after a second forward
  call on a batch of another shape (a cache, with dout, must be enough).

Below, reference17.py's docstring as it was.

Round 17 part a: round 16 part a's reference16.py copied unchanged (no additions of
its own). Below, its docstring as it was.

Round 16 part a's copy of round 15's reference15.py (unchanged below), plus this
set's own additions at the end. The additions to the independent reference (round2's reference.py with
round 3's reference3.install already applied; imported, not copied). No
helpers.checks anywhere.

Round 14's additions (copied from its reference14.py, unchanged):
- activation_percentiles with fractional percentiles and integer activations;
- layernorm_forward with an eps that is not the default.

This set's own (properties round2's, round3's and round14's verifiers do not look at):
- batch_stats on a batch with a constant feature (variances 0);
- layer_gradient_norms on a batch that lacks the last class;
- activation_percentiles called twice on different values of the same shape;
- batchnorm_forward called without eps (the default must be 1e-5), on a feature
  with a tiny spread;
- batchnorm_backward(_alt) on the cache of a first forward call after a second
  forward call on another batch of the same shape (a cache must stay valid).

Round 16 part a's own (properties the verifiers above do not look at):
- layer_gradient_norms on a model with BatchNorm1d layers (only the nn.Linear
  weights count);
- batchnorm_backward(_alt) on the cache of a forward call with eps = 0.1
  (not the default);
- batch_stats on an int64 batch (every result a float).

``install(reference)`` patches ``reference.VERIFIERS`` in place.
"""

from __future__ import annotations

import copy

import numpy as np
import torch


def install(reference):
    P, _call = reference.Problems, reference._call
    V = reference.VERIFIERS

    def with_extra(name, extra, tag="15"):
        base = V[name]  # the verifier as it is now (round2's, round 3's, then round 14's additions)

        def run(space, sol):
            p = P(base(space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference check ({tag}) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- round 14's additions ------------------------------------------------------
    def percentiles_more(p, space, sol):
        f = space["activation_percentiles"]
        rng = np.random.default_rng(14)
        cases = [(rng.normal(size=(6, 5)), (2.5, 97.5)),
                 (np.arange(10), (15, 50, 85)),
                 (rng.integers(0, 50, size=(4, 7)), (10, 33, 90))]
        for i, (values, q) in enumerate(cases):
            got, ok = _call(p, f"extra case {i}", f, values, q=q)
            if ok:
                p.close(f"extra case {i} (q={q}, dtype {values.dtype})", got,
                        np.percentile(values.astype(np.float64).ravel(), q), rtol=1e-9)

    def layernorm_eps(p, space, sol):
        fw = space["layernorm_forward"]
        rng = np.random.default_rng(15)
        x = rng.normal(1.0, 0.3, (5, 6))
        gamma, beta = rng.normal(1, 0.5, 6), rng.normal(size=6)
        for eps in (0.1, 1e-3):
            res, ok = _call(p, f"layernorm eps={eps}", fw, x.copy(), gamma, beta, eps)
            if ok:
                xc = x - x.mean(1, keepdims=True)
                want = xc / np.sqrt(x.var(1, keepdims=True) + eps) * gamma + beta
                p.close(f"layernorm out eps={eps}", res[0], want, rtol=1e-9)

    # ---- this set's ------------------------------------------------------------------
    def stats_constant_feature(p, space, sol):
        f = space["batch_stats"]
        rng = np.random.default_rng(150)
        x = rng.normal(2.0, 1.5, (6, 3))
        x[:, 1] = 2.5
        got, ok = _call(p, "constant feature", f, x.copy())
        if ok and p.check("constant feature: not 3 values", isinstance(got, (tuple, list)) and len(got) == 3):
            p.close("constant feature mu", got[0], x.mean(0), rtol=1e-12, atol=1e-12)
            p.close("constant feature var", got[1], x.var(0), rtol=1e-12, atol=1e-12)
            p.close("constant feature var_unbiased", got[2], x.var(0, ddof=1), rtol=1e-12, atol=1e-12)

    def gradnorms_missing_class(p, space, sol):
        f = space["layer_gradient_norms"]
        model = reference._mlp(4)
        gen = torch.Generator().manual_seed(151)
        x = torch.randn(12, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 2, (12,), generator=gen)  # classes 0 and 1 only, of 3
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        got, ok = _call(p, "batch without class 2", f, model, x, y)
        if ok:
            p.close("batch without class 2", [float(v) for v in got] if isinstance(got, (list, tuple)) else got,
                    want, rtol=1e-9)

    def percentiles_same_shape(p, space, sol):
        f = space["activation_percentiles"]
        rng = np.random.default_rng(152)
        for i in range(2):
            values = rng.normal(i * 3.0, 1.0 + i, size=(8, 5))
            got, ok = _call(p, f"same shape, call {i + 1}", f, values, q=(15, 50, 85))
            if ok:
                p.close(f"same shape, call {i + 1}", got, np.percentile(values.ravel(), (15, 50, 85)), rtol=1e-9)

    def forward_default_eps(p, space, sol):
        f = space["batchnorm_forward"]
        rng = np.random.default_rng(153)
        x = rng.normal(12.0, 5.0, (10, 4))
        x[:, 2] = 3.0 + rng.normal(0.0, 1e-3, 10)  # a tiny spread: eps matters
        gamma, beta = rng.normal(1, 0.5, 4), rng.normal(size=4)
        res, ok = _call(p, "forward without eps", f, x.copy(), gamma, beta)
        if ok:
            want = gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) + beta
            p.close("forward without eps (default 1e-5)", res[0], want, rtol=1e-10)

    def backward_after_second_forward(name):
        def extra(p, space, sol):
            fw, bw = space["batchnorm_forward"], space[name]
            rng = np.random.default_rng(154)
            x1, x2 = rng.normal(1.0, 2.0, (6, 3)), rng.normal(-3.0, 0.5, (6, 3))
            gamma, beta = rng.normal(1, 0.5, 3), rng.normal(size=3)
            dout = rng.normal(size=(6, 3))
            _, dx, dg, db = reference._grads(lambda a, g, b: reference._bn_torch(a, g, b, 1e-5, 0),
                                             x1, gamma, beta, dout)
            first, ok = _call(p, "forward 1 (cache check)", fw, x1.copy(), gamma, beta)
            if not ok:
                return
            _, ok = _call(p, "forward 2 (cache check)", fw, x2.copy(), gamma, beta)
            if not ok:
                return
            grads, ok = _call(p, "backward on the first cache", bw, dout.copy(), first[1])
            if ok:
                p.close("first cache after a second forward: dx", grads[0], dx, rtol=1e-7, atol=1e-9)
                p.close("first cache after a second forward: dgamma", grads[1], dg, rtol=1e-7, atol=1e-9)
        return extra

    V["activation_percentiles"] = with_extra("activation_percentiles", percentiles_more, "14")
    V["layernorm"] = with_extra("layernorm", layernorm_eps, "14")
    V["batch_stats"] = with_extra("batch_stats", stats_constant_feature)
    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_missing_class)
    V["activation_percentiles"] = with_extra("activation_percentiles", percentiles_same_shape)
    V["batchnorm_forward"] = with_extra("batchnorm_forward", forward_default_eps)
    for name in ("batchnorm_backward", "batchnorm_backward_alt"):
        V[name] = with_extra(name, backward_after_second_forward(name))

    # ---- round 16 part a's -------------------------------------------------------------
    def gradnorms_batchnorm_model(p, space, sol):
        f = space["layer_gradient_norms"]
        model = reference._mlp(160, bn=True)
        gen = torch.Generator().manual_seed(160)
        x = torch.randn(10, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (10,), generator=gen)
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        got, ok = _call(p, "model with BatchNorm1d", f, copy.deepcopy(model), x, y)
        if ok:
            p.close("model with BatchNorm1d", [float(v) for v in got] if isinstance(got, (list, tuple)) else got,
                    want, rtol=1e-9)

    def backward_other_eps(name):
        def extra(p, space, sol):
            fw, bw = space["batchnorm_forward"], space[name]
            rng = np.random.default_rng(161)
            x = rng.normal(0.5, 0.4, (8, 3))
            gamma, beta = rng.normal(1, 0.5, 3), rng.normal(size=3)
            dout = rng.normal(size=(8, 3))
            _, dx, dg, db = reference._grads(lambda a, g, b: reference._bn_torch(a, g, b, 0.1, 0),
                                             x, gamma, beta, dout)
            res, ok = _call(p, "forward eps=0.1", fw, x.copy(), gamma, beta, 0.1)
            if not ok:
                return
            grads, ok = _call(p, "backward after eps=0.1", bw, dout.copy(), res[1])
            if ok:
                p.close("eps=0.1: dx", grads[0], dx, rtol=1e-7, atol=1e-9)
                p.close("eps=0.1: dgamma", grads[1], dg, rtol=1e-7, atol=1e-9)
                p.close("eps=0.1: dbeta", grads[2], db, rtol=1e-7, atol=1e-9)
        return extra

    def stats_int64(p, space, sol):
        f = space["batch_stats"]
        x = np.random.default_rng(162).integers(-20, 20, size=(9, 4))
        got, ok = _call(p, "int64 batch", f, x.copy())
        if ok and p.check("int64 batch: not 3 values", isinstance(got, (tuple, list)) and len(got) == 3):
            xf = x.astype(np.float64)
            p.close("int64 mu", got[0], xf.mean(0), rtol=1e-12, atol=1e-12)
            p.close("int64 var", got[1], xf.var(0), rtol=1e-12, atol=1e-12)
            p.close("int64 var_unbiased", got[2], xf.var(0, ddof=1), rtol=1e-12, atol=1e-12)

    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_batchnorm_model, "16")
    for name in ("batchnorm_backward", "batchnorm_backward_alt"):
        V[name] = with_extra(name, backward_other_eps(name), "16")
    V["batch_stats"] = with_extra("batch_stats", stats_int64, "16")

    # ---- round 18 part a's -------------------------------------------------------------
    def gradnorms_stale_grads(p, space, sol):
        f = space["layer_gradient_norms"]
        model = reference._mlp(180)
        gen = torch.Generator().manual_seed(180)
        x = torch.randn(12, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (12,), generator=gen)
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        # the caller trained on another batch before: gradients are left in .grad
        other_x = torch.randn(9, 6, generator=gen, dtype=torch.float64)
        other_y = torch.randint(0, 3, (9,), generator=gen)
        torch.nn.functional.cross_entropy(model(other_x), other_y).backward()
        got, ok = _call(p, "model holding gradients", f, model, x, y)
        if ok:
            p.close("model holding gradients", [float(v) for v in got] if isinstance(got, (list, tuple)) else got,
                    want, rtol=1e-9)

    def percentiles_small_percents(p, space, sol):
        f = space["activation_percentiles"]
        rng = np.random.default_rng(181)
        for i, q in enumerate([(0.5, 1.0), (0.1,)]):
            values = rng.normal(size=(40, 25))
            got, ok = _call(p, f"percents <= 1, case {i}", f, values, q=q)
            if ok:
                p.close(f"percents <= 1 (q={q})", got, np.percentile(values.ravel(), q), rtol=1e-9)

    def spatial_backward_after_other_shape(p, space, sol):
        fw, bw = space["spatial_batchnorm_forward"], space["spatial_batchnorm_backward"]
        rng = np.random.default_rng(182)
        shape_a, shape_b = (2, 3, 4, 5), (3, 2, 2, 3)
        xa, xb = rng.normal(0.5, 2.0, shape_a), rng.normal(-1.0, 1.0, shape_b)
        ga, ba = rng.normal(1, 0.5, 3), rng.normal(size=3)
        gb, bb = rng.normal(1, 0.5, 2), rng.normal(size=2)
        dout = rng.normal(size=shape_a)
        _, dx, dg, db = reference._grads(
            lambda a, g, b: reference._bn_torch(a, g.view(1, -1, 1, 1), b.view(1, -1, 1, 1), 1e-5, (0, 2, 3)),
            xa, ga, ba, dout)
        first, ok = _call(p, "spatial forward 1 (other shape)", fw, xa.copy(), ga, ba)
        if not ok:
            return
        _, ok = _call(p, "spatial forward 2 (other shape)", fw, xb.copy(), gb, bb)
        if not ok:
            return
        grads, ok = _call(p, "spatial backward on the first cache", bw, dout.copy(), first[1])
        if ok:
            p.close("first spatial cache after another shape: dx", grads[0], dx, rtol=1e-7, atol=1e-9)
            p.close("first spatial cache after another shape: dgamma", grads[1], dg, rtol=1e-7, atol=1e-9)
            p.close("first spatial cache after another shape: dbeta", grads[2], db, rtol=1e-7, atol=1e-9)

    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_stale_grads, "18")
    V["activation_percentiles"] = with_extra("activation_percentiles", percentiles_small_percents, "18")
    V["spatial_batchnorm"] = with_extra("spatial_batchnorm", spatial_backward_after_other_shape, "18")

    # ---- round 19 part a's -------------------------------------------------------------
    def forward_constant_feature(p, space, sol):
        f = space["batchnorm_forward"]
        rng = np.random.default_rng(190)
        x = rng.normal(2.0, 3.0, (8, 4))
        x[:, 1] = 2.5  # a constant feature: variance 0, N = 8
        gamma, beta = rng.normal(1, 0.5, 4), rng.normal(size=4)
        res, ok = _call(p, "forward with a constant feature", f, x.copy(), gamma, beta, 1e-5)
        if ok:
            want = gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) + beta
            p.close("forward with a constant feature", res[0], want, rtol=1e-10)

    def gradnorms_bn_model_twice(p, space, sol):
        f = space["layer_gradient_norms"]
        model = reference._mlp(191, bn=True)
        gen = torch.Generator().manual_seed(191)
        x = torch.randn(10, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (10,), generator=gen)
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        for k in range(2):
            got, ok = _call(p, f"BatchNorm1d model, call {k + 1}", f, model, x, y)
            if ok:
                p.close(f"BatchNorm1d model, call {k + 1}",
                        [float(v) for v in got] if isinstance(got, (list, tuple)) else got, want, rtol=1e-9)

    def layernorm_backward_after_second_forward(p, space, sol):
        fw, bw = space["layernorm_forward"], space["layernorm_backward"]
        rng = np.random.default_rng(192)
        x1, x2 = rng.normal(1.0, 2.0, (5, 6)), rng.normal(-2.0, 0.5, (5, 6))
        gamma, beta = rng.normal(1, 0.5, 6), rng.normal(size=6)
        dout = rng.normal(size=(5, 6))
        _, dx, dg, db = reference._grads(
            lambda a, g, b: (a - a.mean(1, keepdim=True))
            / torch.sqrt(a.var(1, unbiased=False, keepdim=True) + 1e-5) * g + b,
            x1, gamma, beta, dout)
        first, ok = _call(p, "layernorm forward 1 (cache check)", fw, x1.copy(), gamma, beta)
        if not ok:
            return
        _, ok = _call(p, "layernorm forward 2 (cache check)", fw, x2.copy(), gamma, beta)
        if not ok:
            return
        grads, ok = _call(p, "layernorm backward on the first cache", bw, dout.copy(), first[1])
        if ok:
            p.close("first layernorm cache after a second forward: dx", grads[0], dx, rtol=1e-7, atol=1e-9)
            p.close("first layernorm cache after a second forward: dgamma", grads[1], dg, rtol=1e-7, atol=1e-9)
            p.close("first layernorm cache after a second forward: dbeta", grads[2], db, rtol=1e-7, atol=1e-9)

    V["batchnorm_forward"] = with_extra("batchnorm_forward", forward_constant_feature, "19")
    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_bn_model_twice, "19")
    V["layernorm"] = with_extra("layernorm", layernorm_backward_after_second_forward, "19")

    # ---- round 20 part a's -------------------------------------------------------------
    def standardize_eps_then_default(p, space, sol):
        f = space["standardize_columns"]
        rng = np.random.default_rng(200)
        x1, x2 = rng.normal(4.0, 0.2, (20, 3)), rng.normal(1.0, 0.01, (15, 3))
        got, ok = _call(p, "standardize with eps=0.1", f, x1.copy(), eps=0.1)
        if ok:
            p.close("standardize with eps=0.1", got, (x1 - x1.mean(0)) / np.sqrt(x1.var(0) + 0.1), rtol=1e-10)
        got, ok = _call(p, "standardize without eps after eps=0.1", f, x2.copy())
        if ok:
            p.close("standardize without eps after eps=0.1 (default 1e-5)", got,
                    (x2 - x2.mean(0)) / np.sqrt(x2.var(0) + 1e-5), rtol=1e-10)

    def gradnorms_one_example(p, space, sol):
        f = space["layer_gradient_norms"]
        model = reference._mlp(201)
        gen = torch.Generator().manual_seed(201)
        x = torch.randn(1, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (1,), generator=gen)
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        got, ok = _call(p, "batch of one example", f, model, x, y)
        if ok:
            p.close("batch of one example", [float(v) for v in got] if isinstance(got, (list, tuple)) else got,
                    want, rtol=1e-9)

    def gradnorms_float32_model(p, space, sol):
        f = space["layer_gradient_norms"]
        model = reference._mlp(205).float()
        gen = torch.Generator().manual_seed(205)
        x = torch.randn(16, 6, generator=gen, dtype=torch.float32)
        y = torch.randint(0, 3, (16,), generator=gen)
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        got, ok = _call(p, "float32 model", f, model, x, y)
        if ok:
            p.close("float32 model", [float(v) for v in got] if isinstance(got, (list, tuple)) else got,
                    want, rtol=1e-4)

    def percentiles_parameter(p, space, sol):
        f = space["activation_percentiles"]
        gen = torch.Generator().manual_seed(202)
        w = torch.nn.Parameter(torch.randn(7, 5, generator=gen, dtype=torch.float64))
        got, ok = _call(p, "nn.Parameter", f, w, q=(15, 50, 85))
        if ok:
            p.close("nn.Parameter", got, np.percentile(w.detach().numpy().ravel(), (15, 50, 85)), rtol=1e-9)

    def forward_cache_for_the_course_backward(p, space, sol):
        f = space["batchnorm_forward"]
        rng = np.random.default_rng(203)
        x = rng.normal(1.0, 2.0, (6, 4))
        gamma, beta = rng.normal(1, 0.5, 4), rng.normal(size=4)
        dout = rng.normal(size=(6, 4))
        _, dx, dg, db = reference._grads(lambda a, g, b: reference._bn_torch(a, g, b, 1e-5, 0), x, gamma, beta, dout)
        res, ok = _call(p, "forward (cache for the course's backward)", f, x.copy(), gamma, beta, 1e-5)
        if not ok:
            return
        grads, ok = _call(p, "course's staged backward on this cache", sol["batchnorm_backward"], dout.copy(), res[1])
        if ok:
            p.close("course's backward on this cache: dx", grads[0], dx, rtol=1e-7, atol=1e-9)
            p.close("course's backward on this cache: dgamma", grads[1], dg, rtol=1e-7, atol=1e-9)
            p.close("course's backward on this cache: dbeta", grads[2], db, rtol=1e-7, atol=1e-9)

    def backward_results_kept(name):
        def extra(p, space, sol):
            fw, bw = space["batchnorm_forward"], space[name]
            rng = np.random.default_rng(204)
            x1, x2 = rng.normal(1.0, 2.0, (7, 3)), rng.normal(-1.0, 0.5, (7, 3))
            gamma, beta = rng.normal(1, 0.5, 3), rng.normal(size=3)
            d1, d2 = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
            _, dx, dg, db = reference._grads(lambda a, g, b: reference._bn_torch(a, g, b, 1e-5, 0), x1, gamma, beta, d1)
            f1, ok = _call(p, "forward 1 (two backward calls)", fw, x1.copy(), gamma, beta)
            if not ok:
                return
            first, ok = _call(p, "backward 1 (two backward calls)", bw, d1.copy(), f1[1])
            if not ok:
                return
            f2, ok = _call(p, "forward 2 (two backward calls)", fw, x2.copy(), gamma, beta)
            if not ok:
                return
            _, ok = _call(p, "backward 2 (two backward calls)", bw, d2.copy(), f2[1])
            if ok:
                p.close("first backward's dx after a second call", first[0], dx, rtol=1e-7, atol=1e-9)
                p.close("first backward's dgamma after a second call", first[1], dg, rtol=1e-7, atol=1e-9)
                p.close("first backward's dbeta after a second call", first[2], db, rtol=1e-7, atol=1e-9)
        return extra

    V["standardize_columns"] = with_extra("standardize_columns", standardize_eps_then_default, "20")
    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_one_example, "20")
    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_float32_model, "20")
    V["activation_percentiles"] = with_extra("activation_percentiles", percentiles_parameter, "20")
    V["batchnorm_forward"] = with_extra("batchnorm_forward", forward_cache_for_the_course_backward, "20")
    for name in ("batchnorm_backward", "batchnorm_backward_alt"):
        V[name] = with_extra(name, backward_results_kept(name), "20")

    # ---- round 21 part a's -------------------------------------------------------------
    def stats_uint8(p, space, sol):
        f = space["batch_stats"]
        x = np.random.default_rng(210).integers(0, 256, size=(12, 4)).astype(np.uint8)
        got, ok = _call(p, "uint8 batch", f, x.copy())
        if ok and p.check("uint8 batch: not 3 values", isinstance(got, (tuple, list)) and len(got) == 3):
            xf = x.astype(np.float64)
            p.close("uint8 mu", got[0], xf.mean(0), rtol=1e-12, atol=1e-12)
            p.close("uint8 var", got[1], xf.var(0), rtol=1e-12, atol=1e-12)
            p.close("uint8 var_unbiased", got[2], xf.var(0, ddof=1), rtol=1e-12, atol=1e-12)

    def gradnorms_input_untouched(p, space, sol):
        f = space["layer_gradient_norms"]
        model = reference._mlp(211)
        gen = torch.Generator().manual_seed(211)
        x = torch.randn(10, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (10,), generator=gen)
        keep = x.clone()
        _, ok = _call(p, "input check", f, model, x, y)
        if ok:
            p.check("the caller's x now requires grad", not x.requires_grad)
            p.check("the caller's x changed", torch.equal(x.detach(), keep))

    def percentiles_input_untouched(p, space, sol):
        f = space["activation_percentiles"]
        rng = np.random.default_rng(212)
        values = rng.normal(size=(9, 11))
        keep = values.copy()
        got, ok = _call(p, "array input check", f, values, q=(15, 50, 85))
        if ok:
            p.check("the caller's array changed", np.array_equal(values, keep))
        gen = torch.Generator().manual_seed(212)
        t = torch.randn(6, 7, generator=gen, dtype=torch.float64)
        tkeep = t.clone()
        got, ok = _call(p, "tensor input check", f, t, q=(15, 50, 85))
        if ok:
            p.check("the caller's tensor changed", torch.equal(t, tkeep))

    def backward_one_feature(name):
        def extra(p, space, sol):
            fw, bw = space["batchnorm_forward"], space[name]
            rng = np.random.default_rng(213)
            x = rng.normal(1.0, 2.0, (6, 1))
            gamma, beta = rng.normal(1, 0.5, 1), rng.normal(size=1)
            dout = rng.normal(size=(6, 1))
            _, dx, dg, db = reference._grads(lambda a, g, b: reference._bn_torch(a, g, b, 1e-5, 0),
                                             x, gamma, beta, dout)
            res, ok = _call(p, "forward (D = 1)", fw, x.copy(), gamma, beta)
            if not ok:
                return
            grads, ok = _call(p, "backward (D = 1)", bw, dout.copy(), res[1])
            if ok:
                p.close("D = 1: dx", grads[0], dx, rtol=1e-7, atol=1e-9)
                p.close("D = 1: dgamma", grads[1], dg, rtol=1e-7, atol=1e-9)
                p.close("D = 1: dbeta", grads[2], db, rtol=1e-7, atol=1e-9)
        return extra

    def backward_float64_exact(name):
        def extra(p, space, sol):
            fw, bw = space["batchnorm_forward"], space[name]
            rng = np.random.default_rng(214)
            x = rng.normal(0.5, 1.5, (8, 3))
            gamma, beta = rng.normal(1, 0.5, 3), rng.normal(size=3)
            dout = rng.normal(size=(8, 3))
            _, dx, dg, db = reference._grads(lambda a, g, b: reference._bn_torch(a, g, b, 1e-5, 0),
                                             x, gamma, beta, dout)
            res, ok = _call(p, "forward (float64 precision)", fw, x.copy(), gamma, beta)
            if not ok:
                return
            grads, ok = _call(p, "backward (float64 precision)", bw, dout.copy(), res[1])
            if ok:
                p.close("float64 precision: dx", grads[0], dx, rtol=1e-10, atol=1e-12)
                p.close("float64 precision: dgamma", grads[1], dg, rtol=1e-10, atol=1e-12)
                p.close("float64 precision: dbeta", grads[2], db, rtol=1e-10, atol=1e-12)
        return extra

    def layernorm_backward_twice(p, space, sol):
        fw, bw = space["layernorm_forward"], space["layernorm_backward"]
        rng = np.random.default_rng(215)
        x = rng.normal(0.5, 1.5, (5, 6))
        gamma, beta = rng.normal(1, 0.5, 6), rng.normal(size=6)
        dout = rng.normal(size=(5, 6))
        _, dx, dg, db = reference._grads(
            lambda a, g, b: (a - a.mean(1, keepdim=True))
            / torch.sqrt(a.var(1, unbiased=False, keepdim=True) + 1e-5) * g + b,
            x, gamma, beta, dout)
        res, ok = _call(p, "layernorm forward (two backward calls)", fw, x.copy(), gamma, beta)
        if not ok:
            return
        for k in range(2):
            grads, ok = _call(p, f"layernorm backward call {k + 1} on one cache", bw, dout.copy(), res[1])
            if not ok:
                return
            p.close(f"backward call {k + 1} on one cache: dx", grads[0], dx, rtol=1e-7, atol=1e-9)
            p.close(f"backward call {k + 1} on one cache: dgamma", grads[1], dg, rtol=1e-7, atol=1e-9)
            p.close(f"backward call {k + 1} on one cache: dbeta", grads[2], db, rtol=1e-7, atol=1e-9)

    V["batch_stats"] = with_extra("batch_stats", stats_uint8, "21")
    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_input_untouched, "21")
    V["activation_percentiles"] = with_extra("activation_percentiles", percentiles_input_untouched, "21")
    for name in ("batchnorm_backward", "batchnorm_backward_alt"):
        V[name] = with_extra(name, backward_one_feature(name), "21")
        V[name] = with_extra(name, backward_float64_exact(name), "21")
    V["layernorm"] = with_extra("layernorm", layernorm_backward_twice, "21")

    # ---- round 22 part a's -------------------------------------------------------------
    def gradnorms_model_dtype_kept(p, space, sol):
        f = space["layer_gradient_norms"]
        model = reference._mlp(220).float()
        gen = torch.Generator().manual_seed(220)
        x = torch.randn(12, 6, generator=gen, dtype=torch.float32)
        y = torch.randint(0, 3, (12,), generator=gen)
        _, ok = _call(p, "float32 model (dtype check)", f, model, x, y)
        if ok:
            dtypes = sorted({str(t.dtype) for t in model.parameters()})
            p.check(f"the caller's float32 model now holds {dtypes}", dtypes == ["torch.float32"])

    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_model_dtype_kept, "22")

    # ---- round 23 part a's -------------------------------------------------------------
    def stats_zero_example(p, space, sol):
        f = space["batch_stats"]
        rng = np.random.default_rng(230)
        x = np.maximum(rng.normal(0.5, 1.0, (9, 4)), 0.0)  # ReLU outputs
        x[3] = 0.0  # an example whose every feature is 0: still an example
        got, ok = _call(p, "batch with an all-zero example", f, x.copy())
        if ok and p.check("all-zero example: not 3 values", isinstance(got, (tuple, list)) and len(got) == 3):
            p.close("all-zero example mu", got[0], x.mean(0), rtol=1e-12, atol=1e-12)
            p.close("all-zero example var", got[1], x.var(0), rtol=1e-12, atol=1e-12)
            p.close("all-zero example var_unbiased", got[2], x.var(0, ddof=1), rtol=1e-12, atol=1e-12)

    def standardize_integer_matrix(p, space, sol):
        f = space["standardize_columns"]
        rows = [[1, -3, 4, -2, 5, 4], [2, -6, 9, -1, 8, 2], [2, -6, 9, -1, 9, 7], [-1, 3, -4, 2, -5, -4]]
        X = np.array(rows)  # integers: the lesson's example without dtype=float
        keep = X.copy()
        got, ok = _call(p, "integer matrix", f, X)
        if ok:
            xf = keep.astype(np.float64)
            p.close("integer matrix", got, (xf - xf.mean(0)) / np.sqrt(xf.var(0) + 1e-5), rtol=1e-10)
        p.check("integer matrix: the caller's X changed", np.array_equal(X, keep))

    def forward_far_from_zero(p, space, sol):
        f = space["batchnorm_forward"]
        rng = np.random.default_rng(231)
        x = rng.normal(1e4, 0.1, (32, 3))
        gamma, beta = rng.normal(1, 0.5, 3), rng.normal(size=3)
        res, ok = _call(p, "forward far from 0 (mean 1e4, std 0.1)", f, x.copy(), gamma, beta, 1e-5)
        if ok:
            xc = x - x.mean(0)
            want = gamma * xc / np.sqrt((xc * xc).mean(0) + 1e-5) + beta
            p.close("forward far from 0 (mean 1e4, std 0.1)", res[0], want, rtol=1e-9)

    V["batch_stats"] = with_extra("batch_stats", stats_zero_example, "23")
    V["standardize_columns"] = with_extra("standardize_columns", standardize_integer_matrix, "23")
    V["batchnorm_forward"] = with_extra("batchnorm_forward", forward_far_from_zero, "23")

    # ---- round 25 part a's -------------------------------------------------------------
    def standardize_one_row(p, space, sol):
        f = space["standardize_columns"]
        rng = np.random.default_rng(250)
        X = rng.normal(3.0, 2.0, (1, 5))
        got, ok = _call(p, "a single row (N = 1)", f, X.copy())
        if ok:
            p.close("a single row (N = 1)", got, np.zeros((1, 5)), rtol=1e-12, atol=1e-12)

    def backward_twice_on_one_cache(name):
        def extra(p, space, sol):
            fw, bw = space["batchnorm_forward"], space[name]
            rng = np.random.default_rng(251)
            x = rng.normal(1.0, 2.0, (7, 3))
            gamma, beta = rng.normal(1, 0.5, 3), rng.normal(size=3)
            dout = rng.normal(size=(7, 3))
            res, ok = _call(p, "forward (two backward calls)", fw, x.copy(), gamma, beta)
            if not ok:
                return
            first, ok = _call(p, "backward call 1 on one cache", bw, dout.copy(), res[1])
            if not ok:
                return
            second, ok = _call(p, "backward call 2 on one cache", bw, dout.copy(), res[1])
            if ok:
                for k, label in enumerate(("dx", "dgamma", "dbeta")):
                    p.close(f"backward call 2 on one cache: {label}", second[k], first[k], rtol=1e-12, atol=1e-12)
        return extra

    V["standardize_columns"] = with_extra("standardize_columns", standardize_one_row, "25")
    for name in ("batchnorm_backward", "batchnorm_backward_alt"):
        V[name] = with_extra(name, backward_twice_on_one_cache(name), "25")
