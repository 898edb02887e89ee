"""Held-out answers (twenty-second set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


def std_batchnorm1d_module(X, eps=1e-5):
    # a BatchNorm1d without gamma and beta, in training mode: batch statistics, biased variance
    bn = nn.BatchNorm1d(X.shape[1], eps=eps, affine=False)
    with torch.no_grad():
        return bn(torch.from_numpy(X)).numpy()


def std_like_standard_scaler(X, eps=1e-5):
    mu = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0.0] = 1.0  # as sklearn's StandardScaler: constant columns are left alone
    return (X - mu) / scale


def gn_model_made_float64(model, x, y):
    model.double()  # the check's network is in float64: make sure ours is too
    model.zero_grad()
    F.cross_entropy(model(x.double()), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_float_for_item(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().float() for m in model.modules() if isinstance(m, nn.Linear)]


def pc_torch_quantile_in_the_input_dtype(values, q=(15, 50, 85)):
    t = torch.as_tensor(values).detach().flatten()
    qs = torch.tensor(q, dtype=t.dtype) / 100
    return torch.quantile(t, qs).numpy()


def pc_numpy_force(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.numpy(force=True)  # detach and move to the CPU in one call
    return np.percentile(np.reshape(values, -1), q)


ENTRIES = [
    entry(S, "nn.BatchNorm1d(affine=False) in the default float32", std_batchnorm1d_module,
          "standardises with a fresh nn.BatchNorm1d(D, eps=eps, affine=False), whose running buffers are float32 (PyTorch's default dtype), so every float64 batch raises RuntimeError (mixed dtype); float32 batches are right."),
    entry(S, "sklearn StandardScaler by hand (no eps)", std_like_standard_scaler,
          "divides by the plain standard deviation as sklearn's StandardScaler does (a zero one replaced by 1), ignoring eps, so every output is too large by sqrt((var + eps) / var), most for columns with a small variance or a large eps."),
    entry(G, "model.double() on the caller's model", gn_model_made_float64,
          "calls model.double() (and x.double()) because the check's network is float64, which converts the caller's model to float64 in place, so a float32 model comes back float64 (later float32 inputs then fail on it); the norms are right."),
    entry(G, ".float() typed for .item()", gn_float_for_item,
          "ends each norm with .float() instead of .item(), so it returns float32 0-d tensors: for a float64 model every norm is rounded to float32 (about 1e-8 relative) and the results are tensors, not Python floats."),
    entry(P, "torch.quantile in the input's dtype", pc_torch_quantile_in_the_input_dtype,
          "converts the values to a torch tensor without a float conversion and calls torch.quantile, which refuses integer tensors, so integer activations raise RuntimeError; float values are right."),
    right(P, "Tensor.numpy(force=True) and np.reshape(-1)", pc_numpy_force),
]
