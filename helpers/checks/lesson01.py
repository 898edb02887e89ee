"""Checks for notebook 01: standardisation, percentiles, per-layer gradient norms.

References: ``torch.nn.functional.batch_norm`` (column-wise standardisation),
``numpy.percentile`` (linear interpolation) and centred numerical gradients.
"""

from __future__ import annotations

# The public checks: each one has wrong implementations in tests/mutants/.
__all__ = ["activation_percentiles", "layer_gradient_norms", "standardize_columns"]

import copy

import numpy as np

from .. import gradcheck
from ._core import (
    EPS,
    call,
    compare,
    ok,
    real,
    rel_error,
    run_check,
    shape_problem,
    stages,
    wrong,
    wrong_axes,
)

# Library calls that would solve an exercise for the learner: the grader
# flags them in its notes column (tools/grading/flags.py), it does not fail them.
SHORTCUTS = {
    "standardize_columns": (
        r"\bbatch_norm\b",
        r"\bStandardScaler\b",
        r"\blayer_norm\b",
    ),
}

# --------------------------------------------------------------------------
# standardise columns
# --------------------------------------------------------------------------

EXAMPLE_4X6 = np.array(
    [
        [1, -3, 4, -2, 5, 4],
        [2, -6, 9, -1, 8, 2],
        [2, -6, 9, -1, 9, 7],
        [-1, 3, -4, 2, -5, -4],
    ],
    dtype=float,
)


def _read_back(x: np.ndarray, eps: float) -> list:
    """The answer read back (``_core``): over which axis, centred on which mean,
    divided by which scale."""
    mean, var = x.mean(0), x.var(0)

    def axes_used(out):
        return wrong_axes(
            out, x, np.ones(x.shape[1]), np.zeros(x.shape[1]), eps=eps, axes=(0,)
        )

    def read(out):
        return stages(
            out,
            x,
            1.0,
            0.0,
            eps=eps,
            means={
                "the column mean": mean,
                "0: only scaled, subtract the column mean too": 0.0,
            },
            scales={
                "sqrt(var + eps)": np.sqrt(var + eps),
                "1: only centred, divide by sqrt(var + eps) too": 1.0,
            },
        )

    return [axes_used, read]


def standardize_columns(fn, x=None, eps=EPS, quiet=False, strict=None):
    """Check ``fn(X, eps) -> X_std``: each column to mean 0, variance 1."""
    import torch
    import torch.nn.functional as F

    if x is None:
        rng = np.random.default_rng(0)
        loc = np.array([12.0, -3.0, 0.5, 7.0])
        scale = np.array([5.0, 0.01, 2.0, 30.0])  # one tiny spread: eps matters
        x = rng.normal(loc, scale, size=(10, 4))
    x = np.asarray(x, dtype=np.float64)

    def body():
        name = "standardize_columns"
        value, problem = call(name, fn, x, eps=eps)
        if problem is not None:
            return problem
        want = F.batch_norm(torch.from_numpy(x), None, None, training=True, eps=eps)
        rows, columns = x.shape
        result = compare(
            name,
            value,
            want,
            tol=1e-10,
            readers=_read_back(x, eps),
            small=np.flatnonzero(x.var(0) < 100 * eps),  # where eps matters
            shape_hints={
                (columns,): "one value per column: return the whole standardised "
                "matrix, not its statistics",
                (rows,): "one value per row: return the whole standardised matrix",
            },
        )
        if not result.passed:
            return result
        example, problem = call(name, fn, EXAMPLE_4X6, eps=eps)
        if problem is not None:
            return problem
        want = F.batch_norm(
            torch.from_numpy(EXAMPLE_4X6), None, None, training=True, eps=eps
        )
        second = compare(f"{name} 4x6 example", example, want, tol=1e-10)
        other, problem = call(name, fn, x, eps=0.01)  # eps matters: a tiny column
        if problem is not None:
            return [result, second, problem]
        third = compare(
            f"{name} eps=0.01",
            other,
            F.batch_norm(torch.from_numpy(x), None, None, training=True, eps=0.01),
            tol=1e-10,
            diagnoses={"the eps argument is ignored: use the eps passed in": value},
        )
        return [result, second, third]

    return run_check("standardize_columns", body, quiet=quiet, strict=strict)


# --------------------------------------------------------------------------
# percentiles of an activation
# --------------------------------------------------------------------------


# numpy.percentile's methods but its default, "linear"
METHODS = """inverted_cdf averaged_inverted_cdf closest_observation hazen weibull
interpolated_inverted_cdf median_unbiased normal_unbiased lower higher midpoint
nearest""".split()


def activation_percentiles(fn, quiet=False, strict=None):
    """Check ``fn(values, q=(15, 50, 85)) -> array`` against numpy.percentile:
    on a tensor, on a NumPy array, and with the default ``q``."""
    import torch

    def body():
        name = "activation_percentiles"
        values = np.random.default_rng(3).standard_normal((40, 7)) * 2 + 1
        cases = {  # label: (values, keywords): any shape, tensor or array
            "q=3 values": (torch.from_numpy(values), {"q": (15, 50, 85)}),
            "q=5 values": (torch.from_numpy(values), {"q": (5, 25, 50, 75, 95)}),
            "NumPy input": (values[:20], {"q": (10, 90)}),
            "default q": (torch.from_numpy(values[:, :3]), {}),
            # activations straight from a forward pass are in the autograd graph
            "tensor in the graph": (
                torch.from_numpy(values[:10]).requires_grad_(),
                {"q": (15, 50, 85)},
            ),
        }
        seen = []  # per case: label, the answer, the reference, the hypotheses
        for label, (data, keywords) in cases.items():
            got, problem = call(name, fn, data, **keywords)
            if problem is not None:
                return [problem]
            if not isinstance(got, np.ndarray):
                return [
                    wrong(
                        f"{name} {label}",
                        f"returned a {type(got).__name__}: "
                        "return a NumPy array (np.percentile gives one)",
                    )
                ]
            plain = data.detach().numpy() if torch.is_tensor(data) else data
            flat, q = np.asarray(plain).ravel(), keywords.get("q", (15, 50, 85))
            mistakes = {
                "q was used as a fraction: numpy.percentile takes percents (15, "
                "not 0.15)": np.percentile(flat, np.asarray(q) / 100.0),
                **{  # every other method numpy.percentile knows
                    f"these are numpy.percentile's values with method={method!r}; "
                    "use its default, linear interpolation": np.percentile(
                        flat, q, method=method
                    )
                    for method in METHODS
                },
            }
            seen.append((label, data, _numbers(got), np.percentile(flat, q), mistakes))
        # a hypothesis is named only if it reproduces the answer in every case
        kept = {
            message
            for message in seen[0][4]
            if all(rel_error(got, m[message]) <= 1e-9 for *_, got, _, m in seen)
        }
        results = []
        for label, data, got, want, mistakes in seen:
            results.append(
                compare(
                    f"{name} {label}",
                    got,
                    want,
                    tol=1e-12,
                    diagnoses={k: v for k, v in mistakes.items() if k in kept},
                    shape_hints={
                        (len(want), data.shape[1]): "percentiles of each column, "
                        "not of all the values: flatten the tensor first",
                        (len(want), data.shape[0]): "percentiles of each row, not "
                        "of all the values: flatten the tensor first",
                    },
                )
            )
            if not results[-1].passed:
                break
        return results

    return run_check("activation_percentiles", body, quiet=quiet, strict=strict)


def _numbers(value):
    """A tensor, list or array as a float64 array (else as it is, for
    ``compare`` to describe)."""
    try:
        value = value.detach().cpu().numpy() if hasattr(value, "detach") else value
        return value if value is None else np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return value


# --------------------------------------------------------------------------
# per-layer gradient norms
# --------------------------------------------------------------------------


def _tiny_model(seed):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(6, 5), nn.Sigmoid(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)
    ).double()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (8,), generator=gen)
    return model, x, y


def _numeric_norms(model, x, y):
    """||dL/dW|| of each nn.Linear by centred differences (L: mean cross-entropy)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    norms = []
    with torch.no_grad():
        for layer in model:
            if not isinstance(layer, nn.Linear):
                continue
            weight = layer.weight

            def loss_at(w, weight=weight):
                saved = weight.clone()
                weight.copy_(torch.from_numpy(w))
                value = F.cross_entropy(model(x), y).item()
                weight.copy_(saved)
                return np.asarray(value)

            grad = gradcheck.numerical_gradient(
                loss_at, weight.numpy().copy(), np.asarray(1.0)
            )
            norms.append(float(np.linalg.norm(grad)))
    return np.array(norms)


def _statistics(model, x, y) -> dict:
    """Other summaries of each nn.Linear's weight gradient than its norm (by
    autograd), each a hypothesis: name -> one value per layer."""
    import torch.nn.functional as F
    from torch import nn

    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if any(m.weight.grad is None or m.bias.grad is None for m in layers):
        return {}  # the learner's function froze a layer: no hypotheses
    grads = [m.weight.grad for m in layers]
    with_bias = [m.weight.grad.norm() ** 2 + m.bias.grad.norm() ** 2 for m in layers]
    its = "each weight gradient's"
    found = {
        f"{its} squared norm: return ||dL/dW||": [g.norm() ** 2 for g in grads],
        f"{its} mean absolute value: return ||dL/dW||": [g.abs().mean() for g in grads],
        f"{its} largest absolute value: return ||dL/dW||": [
            g.abs().max() for g in grads
        ],
        f"{its} root mean square: return ||dL/dW||": [
            g.norm() / g.numel() ** 0.5 for g in grads
        ],
        "the norm of weight and bias gradients together: return the weight's alone": [
            v**0.5 for v in with_bias
        ],
    }
    return {k: np.array([float(v) for v in values]) for k, values in found.items()}


def layer_gradient_norms(fn, seed=0, quiet=False, strict=None):
    """Check ``fn(model, x, y) -> [||dL/dW|| per nn.Linear, input to output]``."""

    def body():
        name = "layer_gradient_norms"
        model, x, y = _tiny_model(seed)
        before = copy.deepcopy(model.state_dict())
        want = _numeric_norms(copy.deepcopy(model), x, y)
        got, problem = call(name, fn, model, x, y, copy_inputs=False)
        if problem is not None:
            return problem
        if got is None:
            return wrong(name, "returned None: did you forget `return`?")
        try:
            got = np.asarray([real(v) for v in got])
        except (TypeError, ValueError):
            return wrong(
                name,
                f"returned {type(got).__name__}; return one number per nn.Linear "
                "(a list of floats)",
            )
        shaped = shape_problem(name, got, want.shape, "the list of norms")
        if shaped is not None:
            if got.shape == (2 * len(want),):
                shaped.detail = (
                    "one norm per parameter (weights and biases): return one norm per "
                    "nn.Linear, of its weight's gradient"
                )
            return shaped
        state = model.state_dict()
        if any(not np.array_equal(before[k].numpy(), state[k].numpy()) for k in state):
            return wrong(name, "changed the model's weights: only compute gradients")
        mistakes = {
            "the norms are in reverse order: list the layers from input to "
            "output": want[::-1].copy(),
            "these are the weights' norms, not their gradients' norms": np.array(
                [
                    float(np.linalg.norm(layer.weight.detach().numpy()))
                    for layer in model
                    if hasattr(layer, "weight")
                ]
            ),
            "the loss is summed over the batch; use the mean (F.cross_entropy's "
            "default), as training does": want * len(x),
            **_statistics(copy.deepcopy(model), x, y),
        }
        result = compare(name, got, want, tol=1e-6, diagnoses=mistakes)
        if not result.passed:
            return result
        again, problem = call(name, fn, model, x, y, copy_inputs=False)
        if problem is not None:
            return problem
        again = np.asarray([float(v) for v in again])
        if rel_error(again, want) > 1e-6:
            ratio = float(np.median(again / want)) if np.all(want > 0) else float("nan")
            return wrong(
                name,
                f"a second call gives other norms ({ratio:.1f}x the first): the "
                "gradients accumulate; call model.zero_grad() before backward()",
            )
        return [result, ok(f"{name} called twice", "same norms (gradients reset)")]

    return run_check("layer_gradient_norms", body, quiet=quiet, strict=strict)
