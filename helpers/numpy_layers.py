"""NumPy layers wrapped as PyTorch modules (plumbing, not exercises).

``numpy_batchnorm1d`` puts a learner's NumPy forward and backward passes
inside a ``torch.nn.Module`` (through ``torch.autograd.Function``), so lesson
02 can train a real network with them.  Named for what it holds: a module
called ``nn`` would shadow ``torch.nn`` wherever both are imported.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _torch():
    import torch

    return torch


class _NumpyBatchNormFunction:
    """Built lazily so that importing helpers does not import torch."""

    _cls = None

    @classmethod
    def get(cls):
        if cls._cls is None:
            torch = _torch()

            class Function(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, weight, bias, forward, backward, eps):
                    out, cache = forward(
                        x.detach().cpu().numpy(),
                        weight.detach().cpu().numpy(),
                        bias.detach().cpu().numpy(),
                        eps,
                    )
                    ctx.cache, ctx.backward = cache, backward
                    return torch.from_numpy(np.ascontiguousarray(out)).to(x)

                @staticmethod
                def backward(ctx, dout):
                    dx, dgamma, dbeta = ctx.backward(dout.cpu().numpy(), ctx.cache)
                    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(
                        dout
                    )  # noqa: E731
                    return (
                        as_tensor(dx),
                        as_tensor(dgamma),
                        as_tensor(dbeta),
                        None,
                        None,
                        None,
                    )

            cls._cls = Function
        return cls._cls


def numpy_batchnorm1d(
    num_features: int, forward: Callable, backward: Callable, eps=1e-5
):
    """A ``torch.nn.Module`` whose training-mode pass runs NumPy functions.

    ``forward(x, gamma, beta, eps) -> (out, cache)`` and
    ``backward(dout, cache) -> (dx, dgamma, dbeta)`` are the functions of
    lesson 02.  The module always uses batch statistics (it has no running
    statistics: lesson 03 adds them), so evaluate it on large batches.
    """
    torch = _torch()

    class NumpyBatchNorm1d(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(num_features))
            self.bias = torch.nn.Parameter(torch.zeros(num_features))

        def forward(self, x):
            return _NumpyBatchNormFunction.get().apply(
                x, self.weight, self.bias, forward, backward, eps
            )

        def extra_repr(self) -> str:
            return f"{num_features}, eps={eps}, NumPy forward/backward"

    return NumpyBatchNorm1d()
