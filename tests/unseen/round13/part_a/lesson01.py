"""Held-out answers (thirteenth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"

# ---- standardize_columns -----------------------------------------------------


def std_module_in_eval(X, eps=1e-5):
    bn = nn.BatchNorm1d(X.shape[1], eps=eps, affine=False).double()
    bn.eval()  # nothing to train here
    with torch.no_grad():
        return bn(torch.from_numpy(X)).numpy()


def std_whitened(X, eps=1e-5):
    xc = X - X.mean(axis=0)
    cov = xc.T @ xc / X.shape[0]
    vals, vecs = np.linalg.eigh(cov)
    return xc @ (vecs @ np.diag(1.0 / np.sqrt(vals + eps)) @ vecs.T)  # unit variance, whitened


def std_sign_flipped(X, eps=1e-5):
    return (X.mean(axis=0) - X) / np.sqrt(X.var(axis=0) + eps)


def std_eps_typo(X, eps=1e5):
    return (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + eps)


def std_chunks_of_32(X, eps=1e-5):
    out = np.empty(X.shape)
    for start in range(0, X.shape[0], 32):  # mini-batches of 32, as in training
        block = X[start:start + 32]
        out[start:start + 32] = (block - block.mean(axis=0)) / np.sqrt(block.var(axis=0) + eps)
    return out


# ---- layer_gradient_norms ----------------------------------------------------


def gn_zero_existing_grads(model, x, y):
    for p in model.parameters():
        p.grad.zero_()  # reset the gradients first
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_biases_frozen(model, x, y):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for m in linears:
        if m.bias is not None:
            m.bias.requires_grad_(False)  # only the weights' gradients are needed
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in linears]


def gn_train_mode(model, x, y):
    model.train()
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_weight_decay(model, x, y):
    model.zero_grad()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    loss = F.cross_entropy(model(x), y)
    loss = loss + 5e-4 * sum((m.weight**2).sum() for m in linears)  # weight decay, as in training
    loss.backward()
    return [m.weight.grad.norm().item() for m in linears]


def gn_grads_indexed_as_weights(model, x, y):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return [grads[i].norm().item() for i in range(len(linears))]


# ---- activation_percentiles --------------------------------------------------


def pc_of_sigmoid(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    activations = 1.0 / (1.0 + np.exp(-np.asarray(values, dtype=np.float64).ravel()))
    return np.percentile(activations, q)


def pc_sorted_last_axis(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    flat = np.sort(np.asarray(values)).ravel()  # sorted values
    pos = np.asarray(q, dtype=np.float64) / 100 * (flat.size - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, flat.size - 1)
    frac = pos - lo
    return flat[lo] * (1 - frac) + flat[hi] * frac


def pc_torch_sort_pair(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().flatten().sort()  # percentiles need sorted values
    return np.percentile(np.asarray(values), q)


def pc_positions_returned(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    flat = np.sort(np.asarray(values).ravel())
    pos = np.asarray(q, dtype=np.float64) / 100 * (flat.size - 1)
    # TODO interpolate between flat[floor(pos)] and flat[ceil(pos)]
    return pos


# ---- correct alternatives ------------------------------------------------------


def std_scale_then_centre(X, eps=1e-5):
    z = X / np.sqrt(X.var(axis=0) + eps)
    return z - z.mean(axis=0)


def gn_on_a_copy(model, x, y):
    work = copy.deepcopy(model)  # the caller's model and its .grad stay as they are
    work.zero_grad()
    F.cross_entropy(work(x), y).backward()
    return [float(torch.linalg.matrix_norm(m.weight.grad)) for m in work.modules() if isinstance(m, nn.Linear)]


def pc_kthvalue(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        t = values.detach().reshape(-1).to(torch.float64)
    else:
        t = torch.as_tensor(np.asarray(values, dtype=np.float64).reshape(-1))
    n = t.numel()
    out = []
    for p in np.atleast_1d(q):
        pos = float(p) / 100 * (n - 1)
        lo = int(math.floor(pos))
        a = torch.kthvalue(t, lo + 1).values
        b = torch.kthvalue(t, min(lo + 2, n)).values
        out.append(float(a + (b - a) * (pos - lo)))
    return np.array(out) if np.ndim(q) else out[0]


ENTRIES = [
    entry(S, "a fresh nn.BatchNorm1d in eval mode", std_module_in_eval,
          "uses a new nn.BatchNorm1d(affine=False) switched to eval mode, which normalises with its initial running statistics (mean 0, variance 1) instead of the batch's: it returns X / sqrt(1 + eps)."),
    entry(S, "whitened with the covariance matrix", std_whitened,
          "multiplies the centred batch by the inverse square root of the whole covariance matrix (ZCA whitening), which also decorrelates the columns, instead of dividing each column by its own sqrt(var + eps)."),
    entry(S, "centred the wrong way round", std_sign_flipped,
          "computes (mean - X) instead of (X - mean), so every standardised value has the wrong sign."),
    entry(S, "default eps typed 1e5", std_eps_typo,
          "the default eps is 1e5 (a typo for 1e-5), so calls without eps divide by about sqrt(1e5)."),
    entry(S, "standardised in chunks of 32 rows", std_chunks_of_32,
          "standardises each chunk of 32 rows with the chunk's own statistics, so for N > 32 the columns are not standardised with the whole batch's mean and variance."),
    entry(G, "grad.zero_() on gradients that do not exist yet", gn_zero_existing_grads,
          "resets with p.grad.zero_() for every parameter, which raises AttributeError on a fresh model whose .grad is None (model.zero_grad() handles that)."),
    entry(G, "biases frozen to skip their gradients", gn_biases_frozen,
          "sets requires_grad=False on every bias of the caller's model (and leaves it so), so the norms are right but the model's biases no longer train."),
    entry(G, "model.train() called first", gn_train_mode,
          "switches the caller's model to training mode (and leaves it there), so a model given in eval mode gets batch-statistics gradients and its running statistics are updated."),
    entry(G, "weight decay added to the loss", gn_weight_decay,
          "adds an L2 penalty 5e-4 * sum ||W||^2 to the loss (from a training loop), so every gradient has an extra 1e-3 * W."),
    entry(G, "autograd.grad over all parameters indexed as weights", gn_grads_indexed_as_weights,
          "takes the first L gradients of all parameters (W1, b1, W2, ...) as the L weight gradients, so biases' gradients are mixed in and later weights left out."),
    entry(P, "percentiles of the sigmoid of the values", pc_of_sigmoid,
          "applies the sigmoid to the values first, returning percentiles of the sigmoid's outputs instead of its inputs."),
    entry(P, "np.sort sorts only the last axis", pc_sorted_last_axis,
          "interpolates in np.sort(values).ravel(), but np.sort sorts each row (the last axis) only, so for 2-D or larger input the flattened values are not in order."),
    entry(P, "torch.sort's (values, indices) pair taken as the values", pc_torch_sort_pair,
          "for tensors it passes the result of .sort(), a (values, indices) pair, to np.percentile, so the indices 0..n-1 are mixed into the values."),
    entry(P, "interpolation positions returned", pc_positions_returned,
          "unfinished: returns the interpolation positions q/100 * (n - 1) in the sorted values instead of the interpolated values there."),
    right(S, "scale first, then centre", std_scale_then_centre),
    right(G, "on a deep copy, matrix_norm", gn_on_a_copy),
    right(P, "torch.kthvalue neighbours", pc_kthvalue),
]
