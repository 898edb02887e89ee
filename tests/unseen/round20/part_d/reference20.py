"""The twentieth set's (part D) additions to the independent reference: round2's
reference.py with round 3's reference3, round 13-16 part C's reference13..16, round 18
part C's reference18 and round 19 part D's reference19 installed first (all imported,
not copied), then these properties, which no earlier verifier looks at.  No
helpers.checks.

- sync_batchnorm_backward on ranks holding 4, 7 and **1** examples, and 1 and 5
  (float64): dx against autograd on the whole batch, every rank's dgamma and dbeta
  against its share.  Every earlier backward verifier gives each rank 2 or more.
- merge_running_stats on models in **eval mode** (PreciseBN's copies are evaluated,
  ``precise()`` returns ``model.eval()``): the merged statistics of every layer on
  every rank against the counts and the law of total variance.  Every earlier
  verifier merges models left in training mode.

``install(reference)`` patches ``reference.VERIFIERS`` in place (after reference19).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def install(reference):
    P, _Ranks = reference.Problems, reference._Ranks
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference check (20d) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def bw_extra(p, space, sol):
        fw, bw = space["sync_batchnorm_forward"], space["sync_batchnorm_backward"]
        gen = torch.Generator().manual_seed(20)
        for sizes in [(4, 7, 1), (1, 5)]:
            c = 3
            x = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64) * 2 + 1
            gamma = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
            beta = torch.randn(c, generator=gen, dtype=torch.float64)
            dout = torch.randn(sum(sizes), c, generator=gen, dtype=torch.float64)
            xg = x.clone().requires_grad_()
            F.batch_norm(xg, None, None, gamma, beta, training=True, eps=1e-5).backward(dout)

            def both(xr, dr, ar):
                return bw(dr, fw(xr, gamma, beta, ar)[1], ar)

            xs, ds = torch.split(x, list(sizes)), torch.split(dout, list(sizes))
            try:
                res = _Ranks(len(sizes)).run(both, list(zip(xs, ds)))
            except Exception as exc:  # noqa: BLE001
                p.append(f"20d {sizes} backward raised {type(exc).__name__}: {str(exc)[:100]}")
                continue
            p.close(f"20d {sizes} dx", torch.cat([torch.as_tensor(r[0]) for r in res]), xg.grad,
                    rtol=1e-8, atol=1e-10)
            xhat = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
            for rank, (r, dr, hr) in enumerate(zip(res, ds, torch.split(xhat, list(sizes)))):
                p.close(f"20d {sizes} rank {rank} dgamma", r[1], (dr * hr).sum(0), rtol=1e-8, atol=1e-10)
                p.close(f"20d {sizes} rank {rank} dbeta", r[2], dr.sum(0), rtol=1e-8, atol=1e-10)

    def mg_extra(p, space, sol):
        f = space["merge_running_stats"]
        torch.manual_seed(20)
        for counts in [(5, 9, 1), (30, 12)]:
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
                models.append(m.eval())
            keep = [copy.deepcopy(m) for m in models]
            try:
                with torch.no_grad():
                    _Ranks(world).run(lambda m, cnt, ar: f(m, ar, cnt), [(m, cnt) for m, cnt in zip(models, counts)])
            except Exception as exc:  # noqa: BLE001
                p.append(f"20d eval-mode counts {counts}: raised {type(exc).__name__}: {str(exc)[:100]}")
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
                    p.close(f"20d eval-mode counts {counts} rank {r} layer {layer} mean", got.running_mean, mean,
                            rtol=1e-5, atol=1e-6)
                    p.close(f"20d eval-mode counts {counts} rank {r} layer {layer} var", got.running_var, var,
                            rtol=1e-5, atol=1e-6)

    V["sync_batchnorm_backward"] = with_extra("sync_batchnorm_backward", bw_extra)
    V["merge_running_stats"] = with_extra("merge_running_stats", mg_extra)
