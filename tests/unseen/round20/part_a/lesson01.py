"""Held-out answers (twentieth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, notebook, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


def std_scale_as_a_column(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    scale = np.sqrt(var + eps)[:, np.newaxis]  # one scale per column
    return (X - mu) / scale


@notebook
def std_eps_remembered(X, eps=None):
    setting = std_eps_remembered.__dict__.setdefault("eps", 1e-5)
    if eps is not None:
        setting = std_eps_remembered.eps = eps  # keep the caller's setting, like a config option
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var + setting)


def gn_logits_squeezed(model, x, y):
    model.zero_grad()
    logits = model(x).squeeze()  # habit from fit_logistic's single-logit model
    F.cross_entropy(logits, y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_autocast_bfloat16(model, x, y):
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision, as for big models
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_backward_with_inputs(model, x, y):
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    for w in weights:
        w.grad = None
    # only the weights asked for receive a gradient
    F.cross_entropy(model(x), y).backward(inputs=weights)
    return [float(torch.linalg.vector_norm(w.grad)) for w in weights]


def pc_exact_type_test(values, q=(15, 50, 85)):
    if type(values) is torch.Tensor:
        values = values.detach().cpu().numpy()
    return np.percentile(np.asarray(values).ravel(), q)


def pc_keyword_named_qs(values, qs=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.percentile(np.asarray(values).ravel(), qs)


ENTRIES = [
    entry(S, "scale made a column with [:, np.newaxis]", std_scale_as_a_column,
          "turns the per-column scale sqrt(var + eps) into a (D, 1) column with [:, np.newaxis], so it broadcasts along the rows: it raises unless N == D (or D == 1), and when N == D row i is divided by column i's scale."),
    entry(S, "eps remembered from the last call that gave one", std_eps_remembered,
          "keeps the last eps given in a module-level setting and uses it when eps is not given, so after a call with eps=0.1 a call without eps uses 0.1 instead of the default 1e-5 (every call that gives eps, and every call before one does, is right)."),
    entry(G, "logits squeezed", gn_logits_squeezed,
          "squeezes the logits (a habit from the single-logit model of fit_logistic), so a batch of one example gives logits of shape (C,) against targets of shape (1,) and cross_entropy raises; batches of 2 or more are right."),
    entry(G, "forward under torch.autocast(bfloat16)", gn_autocast_bfloat16,
          "runs the forward pass under torch.autocast with bfloat16, so for a float32 model the linear layers compute in bfloat16 and the gradient norms are off by about 1e-3 relative (autocast leaves a float64 model alone, which is right)."),
    entry(P, "type(values) is torch.Tensor", pc_exact_type_test,
          "tests type(values) is torch.Tensor instead of isinstance, so an nn.Parameter (a subclass) skips the detach branch and np.asarray raises on a tensor that requires grad; plain tensors and arrays are right."),
    entry(P, "percent argument named qs", pc_keyword_named_qs,
          "names the percent argument qs instead of q, so a call that passes q= by keyword raises TypeError (the default and positional q are right)."),
    right(G, "backward(inputs=the Linear weights)", gn_backward_with_inputs),
]
