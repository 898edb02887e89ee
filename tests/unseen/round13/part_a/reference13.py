"""This set's additions to the independent reference (round2's reference.py with
round 3's reference3.install already applied; imported, not copied). No
helpers.checks anywhere.

Properties round2's and round3's verifiers do not look at:
- layer_gradient_norms leaves the caller's model as it was: every parameter
  still requires grad, and a model given in eval mode (with batch-norm layers)
  stays in eval mode, keeps its running statistics and gets eval-mode gradients.

``install(reference)`` patches ``reference.VERIFIERS`` in place.
"""

from __future__ import annotations

import copy

import torch


def install(reference):
    P, _call = reference.Problems, reference._call
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference check (13) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def gradnorms_model_kept(p, space, sol):
        f = space["layer_gradient_norms"]
        gen = torch.Generator().manual_seed(13)
        x = torch.randn(12, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (12,), generator=gen)
        # a plain MLP: requires_grad flags kept
        model = reference._mlp(3)
        _, ok = _call(p, "gradient norms (flags)", f, model, x, y)
        if ok:
            p.check("a parameter no longer requires grad after the call",
                    all(q.requires_grad for q in model.parameters()))
        # a batch-norm MLP in eval mode: mode, buffers and eval-mode gradients
        model = reference._mlp(4, bn=True)
        with torch.no_grad():
            model(torch.randn(32, 6, generator=gen, dtype=torch.float64) * 2 + 1)  # non-trivial running stats
        model.eval()
        want = sol["layer_gradient_norms"](copy.deepcopy(model), x, y)
        buffers = {k: v.clone() for k, v in model.state_dict().items()}
        got, ok = _call(p, "gradient norms (eval-mode model)", f, model, x, y)
        if ok:
            p.close("gradient norms of an eval-mode model",
                    [float(v) for v in got] if isinstance(got, (list, tuple)) else got, want, rtol=1e-9)
        p.check("the model was switched out of eval mode", not any(m.training for m in model.modules()))
        after = model.state_dict()
        p.check("the model's state (weights or running statistics) changed",
                all(torch.equal(buffers[k], after[k]) for k in buffers))

    V["layer_gradient_norms"] = with_extra("layer_gradient_norms", gradnorms_model_kept)
    return reference
