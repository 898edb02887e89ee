"""Held-out answers (eighteenth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


def std_batchnorm1d_module_to_numpy(X, eps=1e-5):
    t = torch.from_numpy(np.asarray(X))
    bn = nn.BatchNorm1d(t.shape[1], eps=eps).to(t.dtype)  # a fresh module is in training mode
    return bn(t).numpy()


def std_eps_on_the_inverse_variance(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    scale = np.sqrt(1.0 / var + eps)  # 1 / sqrt(var + eps), one multiplication per entry
    return (X - mu) * scale


def std_scale_from_exp_log(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = np.mean((X - mu) ** 2, axis=0)
    return (X - mu) * np.exp(-0.5 * np.log(var + eps))  # (var + eps) ** -1/2 through the log


def gn_sklearn_balanced_class_weights(model, x, y):
    model.zero_grad()
    logits = model(x)
    n_classes = logits.shape[1]
    counts = torch.bincount(y, minlength=n_classes).to(logits.dtype)
    weight = len(y) / (n_classes * counts)  # sklearn's class_weight='balanced'
    F.cross_entropy(logits, y, weight=weight).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_zero_grad_at_the_end(model, x, y):
    F.cross_entropy(model(x), y).backward()
    norms = [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]
    model.zero_grad()  # tidy up: leave no gradients behind for the next call
    return norms


def pc_small_q_taken_as_fractions(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    q = np.asarray(q, dtype=float)
    if np.all(q <= 1):  # given as fractions, np.quantile's convention: to percents
        q = q * 100
    return np.percentile(np.asarray(values).ravel(), q)


ENTRIES = [
    entry(S, "nn.BatchNorm1d module, output to NumPy", std_batchnorm1d_module_to_numpy,
          "standardises with a fresh nn.BatchNorm1d (affine by default), whose output is part of an autograd graph through the module's weight and bias, so .numpy() on it raises RuntimeError (it needs .detach(), or affine=False, or torch.no_grad())."),
    entry(S, "eps added to the inverse variance", std_eps_on_the_inverse_variance,
          "computes the scale as sqrt(1 / var + eps) instead of 1 / sqrt(var + eps), so eps is added to the inverse of the variance: every column is multiplied by a factor that is too large (by little with the default eps, by much when eps is not small against the variance, as eps=0.1 with a variance of 0.04), and a constant column gives nan."),
    entry(G, "sklearn's balanced class weights", gn_sklearn_balanced_class_weights,
          "weights the cross-entropy by sklearn's class_weight='balanced' (N / (C * count of each class)), so the loss is a class-balanced average instead of the plain mean over the batch, and the gradients differ whenever the classes are not equally frequent."),
    entry(G, "zero_grad moved to the end (tidying up)", gn_zero_grad_at_the_end,
          "calls model.zero_grad() after reading the norms instead of before backward, so gradients the model already holds when it is given (from an earlier backward pass) are added to this loss's gradients; calls on a model without gradients are right."),
    entry(P, "q of 1 or less taken as fractions", pc_small_q_taken_as_fractions,
          "multiplies q by 100 whenever every q is at most 1 (guessing np.quantile's fractions), so small percents such as q=(0.5, 1.0) are read as the 50th and 100th percentiles; q above 1 is right."),
    right(S, "scale as exp(-log(var + eps) / 2)", std_scale_from_exp_log),
]
