"""Held-out answers (nineteenth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


def std_variance_over_len_of_first_row(X, eps=1e-5):
    mu = X.sum(axis=0) / len(X)
    var = ((X - mu) ** 2).sum(axis=0) / len(X[0])
    return (X - mu) / np.sqrt(var + eps)


def std_default_eps_machine_epsilon(X, eps=None):
    if eps is None:
        eps = np.finfo(X.dtype).eps  # the small constant that keeps the division finite
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var + eps)


def gn_parameters_frozen_afterwards(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    norms = [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]
    model.requires_grad_(False)  # the exercise must not change the weights: freeze them
    return norms


def gn_norms_in_torch_zeros(model, x, y):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    norms = torch.zeros(len(linears))  # one slot per layer
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for i, m in enumerate(linears):
        norms[i] = m.weight.grad.norm()
    return norms.tolist()


def gn_eval_mode_at_the_end(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    norms = [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]
    model.eval()  # measuring done: leave the model ready for evaluation
    return norms


def gn_clip_grad_norm_as_a_meter(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    clip = torch.nn.utils.clip_grad_norm_  # returns the norm; max_norm=inf clips nothing
    return [float(clip(m.weight, max_norm=float("inf"))) for m in model.modules() if isinstance(m, nn.Linear)]


def pc_q_over_100_on_the_tuple(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.quantile(np.asarray(values).ravel(), q / 100)  # np.quantile wants fractions


def pc_result_squeezed(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.percentile(np.asarray(values).ravel(), q).squeeze()  # plain numbers, no extra axes


ENTRIES = [
    entry(S, "variance divided by len(X[0])", std_variance_over_len_of_first_row,
          "divides the sum of squared deviations by len(X[0]) (the number of columns D) instead of len(X) (the number of rows N), so the variance is N/D times the biased one; right only when N == D."),
    entry(S, "default eps = machine epsilon", std_default_eps_machine_epsilon,
          "defaults eps to the machine epsilon np.finfo(X.dtype).eps (2.2e-16 in float64) instead of 1e-5, so called without eps it divides by sqrt(var) instead of sqrt(var + 1e-5); an eps given explicitly is used as it should be."),
    entry(G, "parameters frozen after the call", gn_parameters_frozen_afterwards,
          "calls model.requires_grad_(False) at the end (to make sure the weights cannot change), so the model's parameters stop requiring gradients: the first call is right, every later call on the same model raises in backward."),
    entry(G, "norms collected in torch.zeros", gn_norms_in_torch_zeros,
          "collects the norms in torch.zeros(len(layers)), which is float32 by default, so each norm is rounded to float32 (about 1e-8 to 1e-7 relative) although the model is float64."),
    entry(G, "model.eval() at the end", gn_eval_mode_at_the_end,
          "calls model.eval() before returning, so the caller's model is left in evaluation mode: with BatchNorm layers the next call normalises with the running statistics instead of the batch's and its gradients differ (a first call, and models without BatchNorm, are right)."),
    entry(P, "q / 100 on the tuple", pc_q_over_100_on_the_tuple,
          "divides q by 100 for np.quantile as q / 100 on the tuple q, which raises TypeError (a tuple cannot be divided), so it never returns; q needed np.asarray(q) / 100 (or np.percentile with q as it is)."),
    entry(P, "result squeezed", pc_result_squeezed,
          "squeezes the result, so a single percentile (q with one value) comes back as a 0-d array instead of an array of shape (1,); several percentiles are right."),
    right(G, "clip_grad_norm_ with max_norm=inf as a meter", gn_clip_grad_norm_as_a_meter),
]
