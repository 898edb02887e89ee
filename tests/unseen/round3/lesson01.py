"""Held-out answers (third set), lesson 01: standardize_columns, layer_gradient_norms,
activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"

# ---- standardize_columns -----------------------------------------------------


def std_median(X, eps=1e-5):
    med = np.median(X, axis=0)
    return (X - med) / np.sqrt(X.var(axis=0) + eps)


def std_not_centred(X, eps=1e-5):
    return X / np.sqrt(X.var(axis=0) + eps)


def std_centred_only(X, eps=1e-5):
    return X - X.mean(axis=0)


def std_minmax(X, eps=1e-5):
    lo, hi = X.min(axis=0), X.max(axis=0)
    return (X - lo) / (hi - lo + eps)


def std_returns_stats(X, eps=1e-5):
    mu, var = X.mean(axis=0), X.var(axis=0)
    return (X - mu) / np.sqrt(var + eps), mu, var


def std_global_variance(X, eps=1e-5):
    return (X - X.mean(axis=0)) / np.sqrt(X.var() + eps)


def std_transposed(X, eps=1e-5):
    Xt = X.T  # features as rows, "easier to read"
    mu = Xt.mean(axis=1, keepdims=True)
    var = Xt.var(axis=1, keepdims=True)
    return (Xt - mu) / np.sqrt(var + eps)


def std_default_eps_zero(X, eps=0.0):
    return (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + eps)


def std_eps_squared(X, eps=1e-5):
    return (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + eps**2)


# ---- layer_gradient_norms ----------------------------------------------------


def gn_reversed(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [m.weight.grad.norm().item() for m in reversed(linears)]


def gn_weight_norms(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_max_abs(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.abs().max().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_per_entry(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [(m.weight.grad.norm() / m.weight.numel()).item()
            for m in model.modules() if isinstance(m, nn.Linear)]


def gn_last_dropped(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [m.weight.grad.norm().item() for m in linears[:-1]]  # "hidden layers"


def gn_no_grad(model, x, y):
    model.zero_grad()
    with torch.no_grad():  # "we only measure, no training"
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_row_norms(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm(dim=1).sum().item() for m in model.modules() if isinstance(m, nn.Linear)]


# ---- activation_percentiles --------------------------------------------------


def pc_quantile(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.quantile(np.asarray(values).ravel(), q)


def pc_tensor_only(values, q=(15, 50, 85)):
    flat = values.detach().flatten().double()
    return flat.quantile(torch.tensor(q, dtype=torch.float64) / 100).numpy()


def pc_absolute(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.percentile(np.abs(np.asarray(values)).ravel(), q)


def pc_rounded(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.round(np.percentile(np.asarray(values).ravel(), q), 2)


def pc_float32(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
    return np.percentile(np.asarray(values, dtype=np.float32).ravel(), q)


def pc_first_row(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    return np.percentile(values[0].ravel(), q)  # "one example is enough"


# ---- correct alternatives ----------------------------------------------------


def std_power(X, eps=1e-5):
    centred = X - np.mean(X, axis=0, keepdims=True)
    return centred * (np.mean(centred**2, axis=0) + eps) ** -0.5


def gn_named_parameters(model, x, y):
    for p in model.parameters():
        p.grad = None
    loss = F.cross_entropy(model(x), y)
    linears = [m for m in model.modules() if type(m) is nn.Linear]
    grads = torch.autograd.grad(loss, [m.weight for m in linears])
    return [float(torch.linalg.vector_norm(g)) for g in grads]


def pc_sorted_interpolation(values, q=(15, 50, 85)):
    if torch.is_tensor(values):
        values = values.detach().to("cpu", torch.float64).numpy()
    v = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    pos = np.asarray(q, dtype=np.float64) / 100 * (v.size - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, v.size - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


ENTRIES = [
    entry(S, "centred on the median", std_median,
          "centres each column on its median instead of its mean."),
    entry(S, "not centred", std_not_centred,
          "divides by the standard deviation but never subtracts the column mean."),
    entry(S, "centred only", std_centred_only,
          "subtracts the column mean but never divides by sqrt(var + eps)."),
    entry(S, "min-max scaling", std_minmax,
          "scales each column to [0, 1] with its minimum and maximum instead of standardising with the mean and variance."),
    entry(S, "returns the statistics too", std_returns_stats,
          "returns a tuple (Z, mu, var) instead of the standardised array alone."),
    entry(S, "global variance, column means", std_global_variance,
          "centres per column but divides by the variance of the whole matrix (np.var without an axis)."),
    entry(S, "result left transposed", std_transposed,
          "works on X.T with the right axis but returns the (D, N) result without transposing it back."),
    entry(S, "default eps of 0", std_default_eps_zero,
          "the default eps is 0 instead of 1e-5, so calls without eps get no eps."),
    entry(S, "eps squared", std_eps_squared,
          "adds eps**2 instead of eps to the variance under the square root."),
    entry(G, "input and output order reversed", gn_reversed,
          "returns the norms from the output layer to the input layer instead of input to output."),
    entry(G, "weight norms, not gradient norms", gn_weight_norms,
          "returns the norms of the weights themselves instead of their gradients."),
    entry(G, "largest entry instead of the norm", gn_max_abs,
          "returns the largest absolute gradient entry (the max norm) instead of the Frobenius norm."),
    entry(G, "norm divided by the number of entries", gn_per_entry,
          "divides each gradient norm by the number of weights in the layer."),
    entry(G, "last layer left out", gn_last_dropped,
          "leaves out the last nn.Linear layer (the output layer), returning one norm too few."),
    entry(G, "forward under torch.no_grad", gn_no_grad,
          "computes the loss inside torch.no_grad(), so there is no graph and backward() raises."),
    entry(G, "sum of row norms", gn_row_norms,
          "sums the norms of the weight gradient's rows instead of taking the norm of the whole matrix."),
    entry(P, "np.quantile with percent values", pc_quantile,
          "passes q in percent to np.quantile, which expects fractions in [0, 1], so it raises."),
    entry(P, "tensors only", pc_tensor_only,
          "calls tensor methods (.detach, .quantile) on the input, so a NumPy array raises AttributeError."),
    entry(P, "percentiles of the absolute values", pc_absolute,
          "takes the percentiles of the absolute values, so negative activations are folded over."),
    entry(P, "rounded to two decimals", pc_rounded,
          "rounds the percentiles to two decimals, so they are off by up to 0.005."),
    entry(P, "float32 conversion", pc_float32,
          "converts the values to float32 before taking the percentiles, so float64 activations lose precision (about 1e-7 relative)."),
    entry(P, "first example only", pc_first_row,
          "takes the percentiles of values[0] (the first example, or the first number of a 1-D array) instead of all values."),
    right(S, "centred power -1/2", std_power),
    right(G, "torch.autograd.grad and vector_norm", gn_named_parameters),
    right(P, "sorted values, linear interpolation", pc_sorted_interpolation),
]
