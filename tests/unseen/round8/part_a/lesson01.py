"""Held-out answers (eighth set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, notebook, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


# ---- standardize_columns -------------------------------------------------------


def st_eps_added_to_result(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var) + eps


def st_squeezed(X, eps=1e-5):
    X = np.squeeze(X)  # drop stray axes
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var + eps)


@notebook
def st_first_statistics(X, eps=1e-5, _stats={}):
    if not _stats:  # computed once, reused
        _stats["mu"], _stats["var"] = X.mean(axis=0), X.var(axis=0)
    return (X - _stats["mu"]) / np.sqrt(_stats["var"] + eps)


def st_eps_in_mean(X, eps=1e-5):
    mu = X.mean(axis=0) + eps
    var = X.var(axis=0) + eps
    return (X - mu) / np.sqrt(var)


def st_sqrt_eps_on_std(X, eps=1e-5):
    mu = X.mean(axis=0)
    std = X.std(axis=0)
    return (X - mu) / (std + np.sqrt(eps))


def st_eps_inside_mean_of_squares(X, eps=1e-5):
    d = X - X.mean(axis=0)
    return d / np.sqrt(np.mean(d**2 + eps, axis=0))


# ---- layer_gradient_norms --------------------------------------------------------


@notebook
def gn_backward_twice(model, x, y):
    model.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward(retain_graph=True)
    print("loss", loss.item())
    loss.backward()  # (left from debugging)
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


@notebook
def gn_names(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for name, m in model.named_modules() if "Linear" in name]


@notebook
def gn_detached_output(model, x, y):
    model.zero_grad()
    logits = model(x).detach()
    F.cross_entropy(logits, y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


@notebook
def gn_late_binding(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    getters = [lambda: m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]
    return [get() for get in getters]


@notebook
def gn_log_softmax_dim0(model, x, y):
    model.zero_grad()
    loss = F.nll_loss(F.log_softmax(model(x), dim=0), y)
    loss.backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


@notebook
def gn_torch_func(model, x, y):
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss_of(p):
        return F.cross_entropy(torch.func.functional_call(model, p, (x,)), y)

    grads = torch.func.grad(loss_of)(params)  # no .grad touched, nothing to reset
    return [float(grads[f"{name}.weight"].norm())
            for name, m in model.named_modules() if isinstance(m, nn.Linear)]


# ---- activation_percentiles --------------------------------------------------------


def pc_quantile_float32_q(values, q=(15, 50, 85)):
    t = values.detach() if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values))
    return torch.quantile(t.flatten(), torch.tensor(q) / 100).numpy()


def pc_mutable_default(values, q=[15, 50, 85]):  # noqa: B006
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    for i in range(len(q)):
        q[i] = q[i] / 100
    return np.quantile(np.asarray(values).ravel(), q)


def pc_clipped(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.clip(np.asarray(values).ravel(), -2.5, 2.5)  # SATURATED
    return np.percentile(v, q)


def pc_concatenate(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    flat = np.concatenate(values).ravel()
    return np.percentile(flat, q)


def pc_mean_for_median(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.asarray(values).ravel()
    return np.array([v.mean() if k == 50 else np.percentile(v, k) for k in q])


def pc_partition(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    pos = np.asarray(q, dtype=np.float64) / 100 * (v.size - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, v.size - 1)
    part = np.partition(v, np.unique(np.r_[lo, hi]))  # only the order statistics needed
    return part[lo] + (pos - lo) * (part[hi] - part[lo])


ENTRIES = [
    entry(S, "eps added to the result", st_eps_added_to_result,
          "divides by sqrt(var) without eps and adds eps to the standardised output instead."),
    entry(S, "a single column squeezed away", st_squeezed,
          "np.squeeze(X) first: for D = 1 the column becomes a vector, and the result has shape (N,) instead of (N, 1)."),
    entry(S, "statistics kept from the first call", st_first_statistics,
          "stores the first batch's mean and variance in a mutable default and reuses them for every later batch."),
    entry(S, "eps added to the mean too", st_eps_in_mean,
          "adds eps to the column means as well as to the variance, so every output is shifted by -eps/std."),
    entry(S, "sqrt(eps) added to the std", st_sqrt_eps_on_std,
          "divides by std + sqrt(eps) instead of sqrt(var + eps)."),
    entry(G, "backward called twice", gn_backward_twice,
          "a debugging backward() is left in: the loss is backpropagated twice, so every gradient norm is doubled."),
    entry(G, "'Linear' looked up in module names", gn_names,
          "selects modules whose name contains 'Linear', but nn.Sequential names them '0', '1', ...: the list is empty."),
    entry(G, "logits detached", gn_detached_output,
          "detaches the model's output before the loss, so backward() raises (nothing requires grad)."),
    entry(G, "late-binding lambdas", gn_late_binding,
          "collects lambdas that read m after the loop, so every entry is the last Linear layer's gradient norm."),
    entry(G, "log_softmax over the batch", gn_log_softmax_dim0,
          "normalises the logits with log_softmax over dim=0 (the examples) instead of the classes."),
    entry(P, "float32 q in torch.quantile", pc_quantile_float32_q,
          "torch.quantile gets q as a float32 tensor, which raises for float64 inputs (NumPy arrays, float64 tensors)."),
    entry(P, "mutable default q divided in place", pc_mutable_default,
          "divides q by 100 in place: with a tuple q it raises TypeError, and the default list is divided again on each call."),
    entry(P, "clipped at the saturation level", pc_clipped,
          "clips the values to [-2.5, 2.5] (the saturation threshold) before taking the percentiles."),
    entry(P, "np.concatenate to flatten", pc_concatenate,
          "flattens with np.concatenate(values), which raises ValueError for a 1-D input (zero-dimensional items)."),
    entry(P, "mean for the 50th percentile", pc_mean_for_median,
          "returns the mean instead of the median for q = 50."),
    right(S, "eps inside the mean of squares", st_eps_inside_mean_of_squares),
    right(G, "torch.func.grad with functional_call", gn_torch_func),
    right(P, "np.partition order statistics", pc_partition),
]
