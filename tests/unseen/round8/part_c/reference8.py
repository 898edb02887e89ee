"""The eighth set's (part c) additions to the independent reference (no helpers.checks).

``install(reference)`` is called by run.py after round 3's ``reference3.install``
(imported from tests/unseen/round3, not copied):

- the lesson 08 capstone verifier (graded cell ``sync_bn_layer``) is round 4 part b's
  ``_install4`` (tests/unseen/round4/part_b/reference3.py), LOADED from the checkout, not
  copied (as the sixth and seventh sets did);
- the properties this set's entries break that no earlier verifier looks at:
  * NoisyBatchNorm with a weight and a bias that are not 1 and 0 (earlier verifiers use a
    fresh layer, bias 0, where a noise that leaves beta unscaled is invisible), and the
    shift and the scale drawn independently (no correlation over many draws);
  * landscape_probe leaves the caller's step_sizes list as it was;
  * merge_running_stats leaves the model's mode (train / eval) as it was;
  * sync_batchnorm_forward's OUTPUT is batch norm with the whole batch's statistics also
    when running_mean and running_var are given (the earlier verifiers compare the output
    only in calls without running statistics, and only the buffers in calls with them).
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
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
    P, _call = reference.Problems, reference._call
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference check (8c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    # ---- NoisyBatchNorm: weight and bias not 1 and 0; shift and scale independent ----
    def noisy_affine_and_independence(p, space, sol):
        gen = torch.Generator().manual_seed(21)
        c = 4
        m, ok = _call(p, "construct (affine check)", space["NoisyBatchNorm"], c)
        if not ok:
            return
        m = m.double().train()
        w = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
        b = torch.randn(c, generator=gen, dtype=torch.float64) * 2
        with torch.no_grad():
            m.weight.copy_(w), m.bias.copy_(b)
        rm, rv = m.running_mean.clone(), m.running_var.clone()
        x = torch.randn(8, c, generator=gen, dtype=torch.float64) * 2 + 1
        out, ok = _call(p, "call (affine check)", m, x)
        noise = getattr(m, "last_noise", None)
        if ok and isinstance(noise, tuple) and len(noise) == 2:
            shift, scale = (torch.as_tensor(t).detach().double().reshape(-1) for t in noise)
            want = F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5) * scale + shift
            p.close("output with weight != 1 and bias != 0", out, want, rtol=1e-9)
        torch.manual_seed(22)
        m2, ok = _call(p, "construct (independence check)", space["NoisyBatchNorm"], 6, shift=1.0, spread=3.0)
        if not ok:
            return
        m2 = m2.double().train()
        shifts, scales = [], []
        for _ in range(100):
            _, ok = _call(p, "call (independence check)", m2, torch.randn(8, 6, dtype=torch.float64))
            noise = getattr(m2, "last_noise", None)
            if not ok or not (isinstance(noise, tuple) and len(noise) == 2):
                return
            shifts.append(torch.as_tensor(noise[0]).detach().double().reshape(-1))
            scales.append(torch.as_tensor(noise[1]).detach().double().reshape(-1))
        s, k = torch.cat(shifts), torch.cat(scales)
        if s.numel() != k.numel() or s.numel() < 10:
            return
        r = float(torch.corrcoef(torch.stack([s, k]))[0, 1])
        # 600 independent pairs: |r| < 0.2 is more than 4.5 standard errors
        p.check(f"shift and scale correlated (r = {r:.2f}): not drawn independently", abs(r) < 0.2)

    # ---- landscape_probe leaves step_sizes alone ----------------------------------------
    def landscape_keeps_steps(p, space, sol):
        torch.manual_seed(5)
        model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()
        gen = torch.Generator().manual_seed(5)
        x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=gen)
        etas = [0.05, 0.2, 1.0]
        keep = list(etas)
        _call(p, "call (step_sizes check)", space["landscape_probe"], model, x, y, etas)
        p.check(f"step_sizes changed by the call: {etas}, was {keep}", etas == keep)

    # ---- merge_running_stats leaves the model's mode alone ---------------------------
    def merge_keeps_mode(p, space, sol):
        f = space["merge_running_stats"]
        for train in (True, False):
            models = []
            for r in range(2):
                m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train(train)
                with torch.no_grad():
                    m[1].running_mean.fill_(float(r))
                models.append(m)
            try:
                with torch.no_grad():
                    reference._Ranks(2).run(lambda m, cnt, ar: f(m, ar, cnt), [(m, c) for m, c in zip(models, (3, 5))])
            except Exception:  # noqa: BLE001 - reported by the other verifiers
                return
            p.check(f"model's mode changed by the merge (was training={train})",
                    all(m.training == train and m[1].training == train for m in models))

    # ---- sync forward: the output with running statistics given -------------------------
    def sync_output_with_running(p, space, sol):
        f = space["sync_batchnorm_forward"]
        gen = torch.Generator().manual_seed(23)
        sizes, c = (3, 5, 4), 3
        x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
        gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
        beta = torch.randn(c, generator=gen, dtype=torch.float64)
        want = gamma * (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5) + beta
        rm0 = torch.randn(c, generator=gen, dtype=torch.float64)
        rv0 = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
        bufs = [(rm0.clone(), rv0.clone()) for _ in sizes]

        def call(part, rm, rv, all_reduce):
            return f(part, gamma, beta, all_reduce, running_mean=rm, running_var=rv, momentum=0.1)

        try:
            res = reference._Ranks(len(sizes)).run(call, [(part, rm, rv) for part, (rm, rv)
                                                          in zip(torch.split(x, list(sizes)), bufs)])
        except Exception:  # noqa: BLE001 - reported by the other verifiers
            return
        got = torch.cat([torch.as_tensor(r[0]).detach().double() for r in res])
        p.close("output with running statistics given", got, want, rtol=1e-9, atol=1e-9)

    V["sync_batchnorm_forward"] = with_extra("sync_batchnorm_forward", sync_output_with_running)
    V["noisy_batchnorm"] = with_extra("noisy_batchnorm", noisy_affine_and_independence)
    V["landscape_probe"] = with_extra("landscape_probe", landscape_keeps_steps)
    V["merge_running_stats"] = with_extra("merge_running_stats", merge_keeps_mode)
