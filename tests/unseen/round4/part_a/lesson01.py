"""Held-out answers (fourth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import statistics

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"

# ---- standardize_columns -----------------------------------------------------


def std_eps_only_for_constant(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    var = np.where(var == 0, eps, var)  # eps is only there to avoid dividing by 0
    return (X - mu) / np.sqrt(var)


def std_eps_as_floor(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = np.maximum(X.var(axis=0), eps)
    return (X - mu) / np.sqrt(var)


def std_precedence(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return X - mu / np.sqrt(var + eps)


def std_sign_lost(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return np.sqrt((X - mu) ** 2 / (var + eps))


def std_relative_eps(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var * (1 + eps))


def std_unit_norm(X, eps=1e-5):
    Z = X - X.mean(axis=0)
    return Z / np.sqrt((Z**2).sum(axis=0) + eps)  # each column to length 1


# ---- layer_gradient_norms ------------------------------------------------------


def gn_mse(model, x, y):
    model.zero_grad()
    out = model(x)
    target = F.one_hot(y, out.shape[1]).to(out.dtype)
    F.mse_loss(out, target).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_zero_grad_after(model, x, y):
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    model.zero_grad()  # "clean up for the next call"
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_relative(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [(m.weight.grad.norm() / m.weight.norm()).item()
            for m in model.modules() if isinstance(m, nn.Linear)]


def gn_eval_mode(model, x, y):
    model.eval()  # "measuring, not training"
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_model_to_float32(model, x, y):
    model.float()
    model.zero_grad()
    F.cross_entropy(model(x.float()), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_every_other_parameter(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    weights = list(model.parameters())[::2]  # weight, bias, weight, bias, ...
    return [w.grad.norm().item() for w in weights]


def gn_output_gradients(model, x, y):
    outputs = []

    def keep(module, inputs, output):
        output.retain_grad()
        outputs.append(output)

    hooks = [m.register_forward_hook(keep) for m in model.modules() if isinstance(m, nn.Linear)]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for h in hooks:
        h.remove()
    return [z.grad.norm().item() for z in outputs]


# ---- activation_percentiles --------------------------------------------------------


def _np(values):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def pc_axis0(values, q=(15, 50, 85)):
    return np.percentile(_np(values), q, axis=0)


def pc_fractions(values, q=(15, 50, 85)):
    return np.percentile(_np(values).ravel(), np.asarray(q) / 100)


def pc_median_unbiased(values, q=(15, 50, 85)):
    return np.percentile(_np(values).ravel(), q, method="median_unbiased")


def pc_unique(values, q=(15, 50, 85)):
    return np.percentile(np.unique(_np(values)), q)  # unique also flattens


def pc_three(values, q=(15, 50, 85)):
    v = _np(values).ravel()
    return np.array([np.percentile(v, q[0]), np.percentile(v, q[1]), np.percentile(v, q[2])])


def pc_normal(values, q=(15, 50, 85)):
    v = _np(values).ravel()
    dist = statistics.NormalDist(float(v.mean()), float(v.std()))
    return np.array([dist.inv_cdf(p / 100) if 0 < p < 100 else (v.min() if p == 0 else v.max())
                     for p in q])


# ---- correct alternatives ------------------------------------------------------


def std_norms(X, eps=1e-5):
    Z = X - X.mean(axis=0)
    var = np.linalg.norm(Z, axis=0) ** 2 / X.shape[0]
    return Z * (var + eps) ** -0.5


def gn_matrix_norm(model, x, y):
    linears = [m for _, m in model.named_modules() if type(m) is nn.Linear or isinstance(m, nn.Linear)]
    for p in model.parameters():
        p.grad = None
    loss = F.cross_entropy(model(x), y, reduction="sum") / len(y)
    loss.backward()
    return [float(torch.linalg.matrix_norm(m.weight.grad, ord="fro")) for m in linears]


def pc_quantile_fractions(values, q=(15, 50, 85)):
    return np.quantile(_np(values).reshape(-1), np.divide(q, 100))


ENTRIES = [
    entry(S, "eps only for constant columns", std_eps_only_for_constant,
          "adds eps only where a column's variance is exactly 0 (np.where(var == 0, eps, var)) instead of always dividing by sqrt(var + eps)."),
    entry(S, "eps as a floor", std_eps_as_floor,
          "divides by sqrt(max(var, eps)) instead of sqrt(var + eps): eps is a lower bound, not added."),
    entry(S, "precedence: X - mu / std", std_precedence,
          "X - mu / np.sqrt(var + eps) divides only the mean (operator precedence): the parentheses around X - mu are missing."),
    entry(S, "sign lost in the square root", std_sign_lost,
          "takes np.sqrt((X - mu)**2 / (var + eps)), which is the absolute value of the standardised column: every negative entry comes out positive."),
    entry(S, "eps relative to the variance", std_relative_eps,
          "divides by sqrt(var * (1 + eps)) instead of sqrt(var + eps)."),
    entry(S, "columns to unit length", std_unit_norm,
          "divides each centred column by its Euclidean norm (sum of squares, not mean), so columns get length 1 and variance 1/N instead of variance 1."),
    entry(G, "mean squared error loss", gn_mse,
          "backpropagates the mean squared error against one-hot targets instead of the cross-entropy."),
    entry(G, "zero_grad after backward", gn_zero_grad_after,
          "calls model.zero_grad() after loss.backward() instead of before, so the gradients are cleared (None) before the norms are read and it raises AttributeError."),
    entry(G, "relative gradient norms", gn_relative,
          "returns ||dL/dW|| / ||W|| for each layer instead of ||dL/dW||."),
    entry(G, "model switched to eval mode", gn_eval_mode,
          "puts the model in eval mode (and leaves it there), so batch-norm layers use their running statistics: the gradients are not those of the model in the mode it was given in."),
    entry(G, "model converted to float32", gn_model_to_float32,
          "calls model.float(), converting the caller's model to float32 in place, so a float64 model changes and its gradient norms lose precision."),
    entry(G, "every other parameter", gn_every_other_parameter,
          "takes list(model.parameters())[::2] as the weights, assuming every layer has exactly a weight and a bias: wrong as soon as a layer has no bias or another layer has parameters."),
    entry(G, "output gradients instead of weight gradients", gn_output_gradients,
          "returns the norms of the gradients of each Linear layer's output (dL/dz, from the lesson's hook code) instead of its weight gradient dL/dW."),
    entry(P, "percentiles along axis 0", pc_axis0,
          "passes axis=0 to np.percentile, so a 2-D or larger input gives per-column percentiles (an array of shape (len(q), ...)) instead of percentiles of all values."),
    entry(P, "q divided by 100", pc_fractions,
          "divides q by 100 before np.percentile, which expects percents, so it returns the 0.15th, 0.5th and 0.85th percentiles."),
    entry(P, "median_unbiased method", pc_median_unbiased,
          "uses np.percentile's method='median_unbiased' instead of the default linear interpolation."),
    entry(P, "duplicates removed", pc_unique,
          "takes the percentiles of np.unique(values), so repeated values (the many exact zeros of ReLU outputs) count once."),
    entry(P, "exactly three percentiles", pc_three,
          "reads q[0], q[1] and q[2] whatever the length of q, so two percentiles raise IndexError and more than three are cut to three."),
    entry(P, "normal approximation", pc_normal,
          "computes the percentiles of a normal distribution with the values' mean and standard deviation instead of the values' own percentiles."),
    right(S, "norms of centred columns, power -1/2", std_norms),
    right(G, "summed loss over N, matrix_norm", gn_matrix_norm),
    right(P, "np.quantile with fractions", pc_quantile_fractions),
]
