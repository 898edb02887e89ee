"""Measuring a model without changing it.

Batch norm in training mode updates its running statistics on every forward
pass, ``torch.no_grad()`` or not (lesson 03). An experiment that measures a
net in training mode on test batches and then reads its eval-mode accuracy
has therefore already re-estimated the statistics from the test set.  Every
function here leaves the model exactly as it found it: training-mode passes
run on a copy, eval-mode passes restore the mode afterwards.
``tests/test_evaluation.py`` checks that no buffer, parameter or mode changes.
"""

from __future__ import annotations

import copy


def _torch():
    import torch

    return torch


def state(model) -> dict:
    """A copy of every parameter and buffer, and each module's mode."""
    tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}
    modes = {name: m.training for name, m in model.named_modules()}
    return {"tensors": tensors, "modes": modes}


def changes(model, before: dict) -> list[str]:
    """What differs from ``state(model)`` taken earlier (empty: nothing)."""
    torch = _torch()
    now = state(model)
    out = [
        name
        for name, value in before["tensors"].items()
        if not torch.equal(value, now["tensors"][name])
    ]
    out += [
        f"{name or 'model'}.training"
        for name, mode in before["modes"].items()
        if now["modes"][name] != mode
    ]
    return out


def outputs(model, x, batches=None):
    """``model(x)`` in eval mode, or in training mode over ``batches`` (index
    tensors or slices into ``x``) on a copy; the model is not changed."""
    torch = _torch()
    with torch.no_grad():
        if batches is None:
            was_training = model.training
            try:
                return model.eval()(x)
            finally:
                model.train(was_training)
        probe = copy.deepcopy(model).train()  # its statistics change, not the model's
        return torch.cat([probe(x[b]) for b in batches])


def accuracy(model, x, y, batches=None) -> float:
    """Share of ``x`` classified as ``y``: eval mode, or training mode over
    ``batches`` (the answers then depend on the batch-mates)."""
    torch = _torch()
    if batches is not None:
        batches = list(batches)
        index = torch.cat([torch.arange(len(x))[b] for b in batches])
        y = y[index]
    predicted = outputs(model, x, batches).argmax(1)
    return (predicted == y).float().mean().item()
