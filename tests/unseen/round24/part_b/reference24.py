"""The twenty-fourth set's (part b) additions to the independent reference (installed after round2's and
rounds 3, 14-23 part b's). No helpers.checks: torch's modules are the reference.

Properties added:
- ScratchBatchNorm: with affine=False, weight and bias exist and are None (as nn.BatchNorm1d(affine=False)'s);
- ScratchBatchNorm: after a training step with gradients on (and a backward pass), copy.deepcopy of the
  module works and no tensor attribute of the module carries autograd history;
- fold_batchnorm: the layer's mode flag (layer.training) is left as it was, for a layer in training mode
  and one in eval mode.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def install(reference):
    P = reference.Problems
    V = reference.VERIFIERS
    old = dict(V)

    def with_extra(name, extra):
        def run(space, sol):
            p = P(old[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference (24b) check failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def scratch_extra(p, space, sol):
        cls = space["ScratchBatchNorm"]
        try:
            bare = cls(3, affine=False)
        except Exception as exc:  # noqa: BLE001
            p.append(f"24b affine=False: construct raised {type(exc).__name__}")
        else:
            for name in ("weight", "bias"):
                if getattr(bare, name, "missing") is not None:
                    p.append(f"24b affine=False: {name} is {getattr(bare, name, 'missing')!r}, expected None")
        try:
            m = cls(3).double().train()
            x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(24),
                            requires_grad=True)
            m(x).sum().backward()
        except Exception as exc:  # noqa: BLE001
            p.append(f"24b training step raised {type(exc).__name__}")
            return
        for key, value in vars(m).items():
            if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                p.append(f"24b attribute {key} carries autograd history")
        try:
            copy.deepcopy(m)
        except Exception as exc:  # noqa: BLE001
            p.append(f"24b copy.deepcopy after a training step raised {type(exc).__name__}")

    def fold_extra(p, space, sol):
        fn = space["fold_batchnorm"]
        for mode in (True, False):
            layer = nn.Linear(2, 3).train(mode)
            bn = nn.BatchNorm1d(3).eval()
            try:
                fn(layer, bn)
            except Exception as exc:  # noqa: BLE001
                p.append(f"24b fold raised {type(exc).__name__}")
                return
            if layer.training is not mode:
                p.append(f"24b layer.training changed from {mode} to {layer.training}")

    V["scratch_batchnorm"] = with_extra("scratch_batchnorm", scratch_extra)
    V["fold_batchnorm"] = with_extra("fold_batchnorm", fold_extra)
