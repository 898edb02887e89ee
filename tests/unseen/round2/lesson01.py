"""Held-out answers, lesson 01: standardize_columns, layer_gradient_norms,
activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


# ---- standardize_columns --------------------------------------------------------


def std_ddof1(X, eps=1e-5):
    return (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0, ddof=1) + eps)


def eps_outside(X, eps=1e-5):
    return (X - X.mean(axis=0)) / (X.std(axis=0) + eps)


def rows(X, eps=1e-5):
    mu = X.mean(axis=1, keepdims=True)
    var = X.var(axis=1, keepdims=True)
    return (X - mu) / np.sqrt(var + eps)


def no_sqrt(X, eps=1e-5):
    return (X - X.mean(axis=0)) / (X.var(axis=0) + eps)


def in_place(X, eps=1e-5):
    X -= X.mean(axis=0)
    X /= np.sqrt((X**2).mean(axis=0) + eps)
    return X


def eps_hardcoded(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var + 1e-5)


def float32_standardize(X, eps=1e-5):
    X32 = np.asarray(X, dtype=np.float32)
    return (X32 - X32.mean(axis=0)) / np.sqrt(X32.var(axis=0) + eps)


# ---- layer_gradient_norms ------------------------------------------------------


def no_zero_grad(model, x, y):
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def biases_too(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [p.grad.norm().item() for p in model.parameters()]


def summed_loss(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y, reduction="sum").backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def weight_norms(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def nll_on_logits(model, x, y):
    model.zero_grad()
    F.nll_loss(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def squared_norm(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [
        (m.weight.grad**2).sum().item() for m in model.modules() if isinstance(m, nn.Linear)
    ]


def output_to_input(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [m.weight.grad.norm().item() for m in reversed(linears)]


# ---- activation_percentiles ------------------------------------------------------


def numpy_of_grad_tensor(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.numpy()
    return np.percentile(values.ravel(), q)


def per_column(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    columns = np.asarray(values).reshape(len(values), -1)  # (examples, units)
    return np.percentile(columns, q, axis=0).mean(axis=1)  # each unit, then averaged


def quantile_percent(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.quantile(np.ravel(values), q)


def nearest_rank(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.sort(np.ravel(values))
    return np.array([v[int(len(v) * p / 100)] if p < 100 else v[-1] for p in q])


def float32_percentiles(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy()
    return np.percentile(np.asarray(values, dtype=np.float32).ravel(), q)


# ---- correct alternatives ------------------------------------------------------


def standardize_reciprocal(X, eps=1e-5):
    centred = X - X.sum(axis=0) / X.shape[0]
    scale = 1.0 / np.sqrt(np.einsum("nd,nd->d", centred, centred) / X.shape[0] + eps)
    centred *= scale  # our own array
    return centred


def autograd_grad(model, x, y):
    model.zero_grad()
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    return [float(torch.linalg.vector_norm(g)) for g in grads]


def torch_quantile(values, q=(15, 50, 85)):
    t = torch.as_tensor(values).detach().flatten().to(torch.float64)
    return torch.quantile(t, torch.tensor(q, dtype=torch.float64) / 100).numpy()


ENTRIES = [
    entry(S, "unbiased variance", std_ddof1,
          "divides by the unbiased variance (ddof=1) instead of the biased one."),
    entry(S, "eps outside the square root", eps_outside,
          "adds eps to the standard deviation instead of to the variance under the square root."),
    entry(S, "normalises rows", rows,
          "standardises each row (axis 1) instead of each column (axis 0)."),
    entry(S, "divides by the variance", no_sqrt,
          "divides by var + eps without the square root."),
    entry(S, "standardises X in place", in_place,
          "modifies the caller's X in place (X -= mean; X /= std) and returns it."),
    entry(S, "eps ignored", eps_hardcoded,
          "ignores the eps argument and always uses 1e-5."),
    entry(S, "float32 arithmetic", float32_standardize,
          "converts X to float32, so float64 inputs come back with float32 precision (about 1e-7 relative error)."),
    entry(G, "gradients never reset", no_zero_grad,
          "does not zero the gradients first, so a second call adds to the first call's gradients."),
    entry(G, "bias gradients included", biases_too,
          "returns the norm of every parameter's gradient, biases included, not only the Linear weights."),
    entry(G, "summed loss", summed_loss,
          "backpropagates the summed cross-entropy (reduction='sum') instead of the mean, scaling every norm by the batch size."),
    entry(G, "norms of the weights", weight_norms,
          "returns the norms of the weights themselves, not of their gradients."),
    entry(G, "nll_loss on logits", nll_on_logits,
          "uses F.nll_loss on raw logits (no log_softmax), which is not cross-entropy."),
    entry(G, "squared norms", squared_norm,
          "returns the squared Frobenius norm (sum of squares) without the square root."),
    entry(G, "output to input", output_to_input,
          "lists the layers from output to input instead of input to output."),
    entry(P, "numpy() on a tensor that needs grad", numpy_of_grad_tensor,
          "calls .numpy() without .detach(), which raises for a tensor that requires grad."),
    entry(P, "percentiles per column", per_column,
          "takes the percentiles of each unit (column) and averages them over units instead of the percentiles of all values together (right only for 1-D input)."),
    entry(P, "np.quantile with percents", quantile_percent,
          "passes percents (0-100) to np.quantile, which wants fractions, so it raises ValueError."),
    entry(P, "nearest rank", nearest_rank,
          "indexes the sorted values at int(n*q/100) without interpolation, so the percentiles are off between ranks."),
    entry(P, "float32 conversion", float32_percentiles,
          "converts the values to float32 first, so float64 inputs lose precision (about 1e-7 relative error)."),
    right(S, "reciprocal scale, einsum variance", standardize_reciprocal),
    right(G, "torch.autograd.grad", autograd_grad),
    right(P, "torch.quantile", torch_quantile),
]
