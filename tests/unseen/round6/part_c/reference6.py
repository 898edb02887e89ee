"""The sixth set's (part c) additions to the independent reference (no helpers.checks).

``install(reference)`` is called by run.py after round 3's ``reference3.install``:

- the lesson 08 capstone verifier (graded cell ``sync_bn_layer``) is round 4 part b's
  ``_install4`` (tests/unseen/round4/part_b/reference3.py), LOADED from the checkout, not
  copied (it also wraps a few other verifiers with extra properties; all plain torch);
- properties this set's entries touch and the earlier verifiers do not look at:
  NoisyBatchNorm has no parameters but weight and bias, its noise needs no gradient, and
  its output is right with weight != 1 and bias != 0; sync_batchnorm_forward with
  momentum 0 leaves the running statistics as they were and keeps a float32 input's
  dtype; merge_running_stats leaves weights alone when they differ between ranks.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn


def _round4b():
    repo = None
    for i, a in enumerate(sys.argv):
        if a == "--repo" and i + 1 < len(sys.argv):
            repo = sys.argv[i + 1]
        elif a.startswith("--repo="):
            repo = a.split("=", 1)[1]
    candidates = ([Path(repo)] if repo else []) + [Path("/work/main")]
    for root in candidates:
        path = root / "tests/unseen/round4/part_b/reference3.py"
        if path.exists():
            spec = importlib.util.spec_from_file_location("reference3_round4b", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit("tests/unseen/round4/part_b/reference3.py not found")


def install(reference):
    _round4b()._install4(reference)
    _install6(reference)


def _install6(reference):
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
                    p.append(f"extra reference check (set 6c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- lesson 07: NoisyBatchNorm -------------------------------------------------------
    def noisy_params_and_affine(p, space, sol):
        cls = space["NoisyBatchNorm"]
        torch.manual_seed(21)
        m, ok = _call(p, "construct (set 6c)", cls, 3)
        if not ok:
            return
        m = m.double().train()
        x = torch.randn(8, 3, dtype=torch.float64) * 2 + 1
        out, ok = _call(p, "training call (set 6c)", m, x)
        if not ok:
            return
        names = sorted(n for n, _ in m.named_parameters())
        p.check(f"parameters {names}, expected ['bias', 'weight']", names == ["bias", "weight"])
        noise = getattr(m, "last_noise", None)
        if isinstance(noise, tuple) and len(noise) == 2:
            p.check("last_noise requires grad (the noise must be a constant)",
                    not any(isinstance(t, torch.Tensor) and t.requires_grad for t in noise))
        # weight != 1, bias != 0: out = BN(x) * scale + shift with the affine map inside BN
        m, ok = _call(p, "construct (set 6c, affine)", cls, 3)
        if not ok:
            return
        m = m.double().train()
        ref = nn.BatchNorm1d(3).double().train()
        w = torch.rand(3, dtype=torch.float64) + 0.5
        b = torch.randn(3, dtype=torch.float64)
        with torch.no_grad():
            for layer in (m, ref):
                layer.weight.copy_(w), layer.bias.copy_(b)
        x = torch.randn(8, 3, dtype=torch.float64) * 2 + 1
        out, ok = _call(p, "training call with weight != 1 (set 6c)", m, x)
        noise = getattr(m, "last_noise", None)
        if ok and isinstance(noise, tuple) and len(noise) == 2:
            shift, scale = (torch.as_tensor(t).detach().double() for t in noise)
            if shift.shape == (3,) and scale.shape == (3,):
                p.close("training output with weight != 1, bias != 0", out, ref(x) * scale + shift, rtol=1e-9)

    # ---- lesson 08: sync_batchnorm_forward ------------------------------------------------
    def sync_forward_momentum0_dtype(p, space, sol):
        f = space["sync_batchnorm_forward"]
        gen = torch.Generator().manual_seed(23)
        sizes, c = (3, 5), 3
        x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
        gamma, beta = torch.ones(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
        rm0 = torch.randn(c, generator=gen, dtype=torch.float64)
        rv0 = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
        bufs = [(rm0.clone(), rv0.clone()) for _ in sizes]

        def call(part, rm, rv, all_reduce):
            return f(part, gamma, beta, all_reduce, running_mean=rm, running_var=rv, momentum=0.0)

        try:
            _Ranks(len(sizes)).run(call, [(q, rm, rv) for q, (rm, rv) in zip(torch.split(x, list(sizes)), bufs)])
        except Exception as exc:  # noqa: BLE001
            p.append(f"momentum 0: raised {type(exc).__name__}: {str(exc)[:100]}")
        else:
            for rank, (rm, rv) in enumerate(bufs):
                p.close(f"momentum 0 rank {rank} running_mean (must not move)", rm, rm0, rtol=1e-12)
                p.close(f"momentum 0 rank {rank} running_var (must not move)", rv, rv0, rtol=1e-12)
        x32 = x.float()
        g32, b32 = gamma.float(), beta.float()
        try:
            res = _Ranks(len(sizes)).run(lambda q, ar: f(q, g32, b32, ar), [(q,) for q in torch.split(x32, list(sizes))])
        except Exception as exc:  # noqa: BLE001
            p.append(f"float32 input: raised {type(exc).__name__}: {str(exc)[:100]}")
            return
        dtypes = {str(getattr(r[0], "dtype", type(r[0]))) for r in res}
        p.check(f"float32 input: output dtype {dtypes}, expected float32", dtypes == {"torch.float32"})

    # ---- lesson 08: merge_running_stats ---------------------------------------------------
    def merge_weights_differ(p, space, sol):
        f = space["merge_running_stats"]
        torch.manual_seed(29)
        counts = (4, 9, 3)
        models = []
        for r in range(len(counts)):
            m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
            with torch.no_grad():
                m[1].weight.copy_(torch.rand(4) + 0.5 + r)
                m[1].bias.copy_(torch.randn(4) - r)
                m[1].running_mean.copy_(torch.randn(4) + r)
                m[1].running_var.copy_(torch.rand(4) + 0.2)
            models.append(m)
        keep = [copy.deepcopy(m) for m in models]
        try:
            with torch.no_grad():
                _Ranks(len(counts)).run(lambda m, cnt, ar: f(m, ar, cnt), list(zip(models, counts)))
        except Exception as exc:  # noqa: BLE001
            p.append(f"ranks with different weights: raised {type(exc).__name__}: {str(exc)[:100]}")
            return
        for r, (m, k) in enumerate(zip(models, keep)):
            p.check(f"rank {r}: weights changed (ranks with different weights)",
                    all(torch.equal(a, b) for a, b in zip(m.parameters(), k.parameters())))

    V["noisy_batchnorm"] = plus("noisy_batchnorm", noisy_params_and_affine)
    V["sync_batchnorm_forward"] = plus("sync_batchnorm_forward", sync_forward_momentum0_dtype)
    V["merge_running_stats"] = plus("merge_running_stats", merge_weights_differ)
