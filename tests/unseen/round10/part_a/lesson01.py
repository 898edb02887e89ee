"""Held-out answers (tenth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


# ---- standardize_columns ------------------------------------------------------


def std_row_variance(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=1, keepdims=True)  # the variance "of the data", kept 2-D
    return (X - mu) / np.sqrt(var + eps)


def std_covariance_row(X, eps=1e-5):
    mu = X.mean(axis=0)
    cov = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
    var = cov[0]  # meant the diagonal
    return (X - mu) / np.sqrt(var + eps)


def std_variance_about_grand_mean(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = ((X - X.mean()) ** 2).mean(axis=0)
    return (X - mu) / np.sqrt(var + eps)


# ---- layer_gradient_norms -----------------------------------------------------


def gn_deep_copy(model, x, y):
    work = copy.deepcopy(model)  # do not disturb the caller's model
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_first_layer_zeroed(model, x, y):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    linears[0].zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in linears]


def gn_sorted_by_name(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    named = sorted((name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear))
    return [m.weight.grad.norm().item() for _, m in named]


def gn_per_example_mean(model, x, y):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    totals = [0.0] * len(linears)
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for k, m in enumerate(linears):
            totals[k] += m.weight.grad.norm().item()
    return [t / len(x) for t in totals]


def gn_bias_gradient(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.bias.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_input_standardised(model, x, y):
    x = (x - x.mean()) / x.std()  # normalise the inputs first
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


# ---- activation_percentiles ---------------------------------------------------


def pc_first_unit(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    return np.percentile(values[:, 0], q)  # as in the checkpoint code: one unit


def pc_tensor_todo(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        raise NotImplementedError("tensors: TODO")
    return np.percentile(np.asarray(values).ravel(), q)


def pc_set_of_q(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    qs = list(set(q))  # no duplicate work
    return np.percentile(np.asarray(values).ravel(), qs)


def pc_keepdims(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.percentile(np.asarray(values), q, keepdims=True)


def pc_centred(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    flat = np.asarray(values).ravel()
    return np.percentile(flat - flat.mean(), q)  # spread around the mean


# ---- correct alternatives -----------------------------------------------------


def std_reduce_reciprocal(X, eps=1e-5):
    n = X.shape[0]
    mu = np.add.reduce(X, axis=0) / n
    centred = X - mu
    var = np.add.reduce(centred * centred, axis=0) / n
    return centred * np.reciprocal(np.sqrt(var + eps))


def gn_tensor_hooks(model, x, y):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    seen = {}
    handles = [m.weight.register_hook(lambda g, k=k: seen.__setitem__(k, g.detach().clone()))
               for k, m in enumerate(linears)]
    model.zero_grad()
    try:
        F.cross_entropy(model(x), y).backward()
    finally:
        for h in handles:
            h.remove()
    return [float(torch.sqrt((seen[k] ** 2).sum())) for k in range(len(linears))]


def pc_torch_quantile_float64(values, q=(15, 50, 85)):
    t = torch.as_tensor(values).detach().reshape(-1).to(torch.float64)
    qs = torch.tensor([v / 100 for v in q], dtype=torch.float64)
    return torch.quantile(t, qs).numpy()


ENTRIES = [
    entry(S, "variance of the rows", std_row_variance,
          "centres each column on its mean but divides by each row's variance (axis=1, keepdims) instead of each column's."),
    entry(S, "first row of the covariance matrix", std_covariance_row,
          "takes the first row of the covariance matrix (the covariances with column 0) instead of its diagonal as the column variances."),
    entry(S, "variance about the grand mean", std_variance_about_grand_mean,
          "computes each column's variance around the mean of the whole matrix instead of around the column's own mean (the centring itself is per column)."),
    entry(G, "gradients computed on a deep copy", gn_deep_copy,
          "runs backward on a deep copy of the model but reads the gradients of the original model, whose .grad is None (or stale)."),
    entry(G, "only the first layer zeroed", gn_first_layer_zeroed,
          "calls zero_grad on the first nn.Linear only, so the other layers' gradients accumulate from one call to the next."),
    entry(G, "layers sorted by name", gn_sorted_by_name,
          "sorts the layers by their module names as strings, so in a model with ten or more modules '10' comes before '2' and the norms are out of input-to-output order."),
    entry(G, "mean of per-example gradient norms", gn_per_example_mean,
          "averages the norms of the per-example gradients instead of taking the norm of the batch gradient (the gradient of the mean loss)."),
    entry(G, "bias gradients instead of weight gradients", gn_bias_gradient,
          "returns the norms of each nn.Linear's bias gradient instead of its weight gradient."),
    entry(G, "inputs standardised first", gn_input_standardised,
          "standardises the input batch before the forward pass, so the gradients are those of other inputs than the ones given."),
    entry(P, "first unit only", pc_first_unit,
          "takes the percentiles of values[:, 0] (one unit, as the checkpoint code does) instead of every number of values; it raises for 1-D input."),
    entry(P, "tensor branch left as a TODO", pc_tensor_todo,
          "raises NotImplementedError for torch tensors: the tensor branch was never written."),
    entry(P, "q deduplicated with a set", pc_set_of_q,
          "passes list(set(q)) to np.percentile, so the percentiles come back in the set's order instead of the order of q."),
    entry(P, "keepdims=True", pc_keepdims,
          "calls np.percentile on the unflattened values with keepdims=True, so the result has shape (len(q), 1, ..., 1) instead of (len(q),)."),
    entry(P, "centred on the mean", pc_centred,
          "subtracts the mean of the values before taking the percentiles, so every percentile is shifted by the mean."),
    right(S, "np.add.reduce and np.reciprocal", std_reduce_reciprocal),
    right(G, "tensor hooks on the weights", gn_tensor_hooks),
    right(P, "torch.quantile in float64", pc_torch_quantile_float64),
]
