"""Held-out answers (seventh set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, notebook, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


# ---- standardize_columns -------------------------------------------------------------


def std_eps_into_momentum(X, eps=1e-5):
    t = torch.from_numpy(X)
    return F.batch_norm(t, None, None, None, None, True, eps).numpy()


def std_batch_norm_eval_default(X, eps=1e-5):
    t = torch.from_numpy(X)
    return F.batch_norm(t, None, None, eps=eps).numpy()


def std_multiplies_by_std(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) * np.sqrt(var + eps)


def std_renormalised(X, eps=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    Z = (X - mu) / np.sqrt(var + eps)
    return Z / Z.std(axis=0)  # make sure the variance is exactly 1


def std_parameter_renamed(X, epsilon=1e-5):
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    return (X - mu) / np.sqrt(var + epsilon)


def std_root_mean_square(X, eps=1e-5):
    mu = X.mean(axis=0)
    rms2 = (X**2).mean(axis=0)  # "variance"
    return (X - mu) / np.sqrt(rms2 + eps)


def std_cov_diagonal(X, eps=1e-5):
    cov = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
    scale = 1.0 / np.sqrt(np.diag(cov) + eps)
    return (X - np.average(X, axis=0)) * scale


# ---- layer_gradient_norms -------------------------------------------------------------


def gn_l1_norm(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm(p=1).item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_float_targets(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y.float()).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


@notebook
def gn_list_outside(model, x, y, norms=[]):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for m in model.modules():
        if isinstance(m, nn.Linear):
            norms.append(m.weight.grad.norm().item())
    return norms


def gn_every_other_module(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [layer.weight.grad.norm().item() for layer in model[::2]]


def gn_divided_by_batch(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() / len(x) for m in model.modules() if isinstance(m, nn.Linear)]


def gn_logsumexp_loss(model, x, y):
    for p in model.parameters():
        p.grad = None
    z = model(x)
    loss = (torch.logsumexp(z, dim=1) - z.gather(1, y[:, None]).squeeze(1)).mean()
    loss.backward()
    out = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            out.append(float(torch.linalg.vector_norm(m.weight.grad.flatten())))
    return out


# ---- activation_percentiles ------------------------------------------------------------


def pct_descending(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().numpy()
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())[::-1]  # largest first
    out = []
    for p in q:
        pos = p / 100 * (len(v) - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, len(v) - 1)
        out.append(v[lo] + (pos - lo) * (v[hi] - v[lo]))
    return np.array(out)


def pct_histogram(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().numpy()
    v = np.asarray(values).ravel()
    counts, edges = np.histogram(v, bins=100)
    cdf = np.cumsum(counts) / counts.sum() * 100
    return np.array([edges[1:][np.searchsorted(cdf, p)] for p in q])


def pct_unit_means(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().numpy()
    per_unit = np.asarray(values).mean(axis=0)  # one activation per unit
    return np.percentile(per_unit.ravel(), q)


def pct_detach_in_place(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach_().numpy()
    return np.percentile(np.asarray(values).ravel(), q)


def pct_interp_on_ranks(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    ranks = np.linspace(0.0, 100.0, len(v))
    return np.interp(np.asarray(q, dtype=np.float64), ranks, v)


ENTRIES = [
    entry(S, "eps passed positionally into momentum", std_eps_into_momentum,
          "F.batch_norm(t, None, None, None, None, True, eps) passes eps in the momentum slot, so eps stays at its default 1e-5 whatever eps is given."),
    entry(S, "F.batch_norm left in evaluation mode", std_batch_norm_eval_default,
          "calls F.batch_norm without training=True, so it runs in evaluation mode and raises because there are no running statistics."),
    entry(S, "multiplies by the standard deviation", std_multiplies_by_std,
          "multiplies the centred columns by sqrt(var + eps) instead of dividing by it."),
    entry(S, "output renormalised to variance 1", std_renormalised,
          "divides the result again by its own standard deviation, which cancels eps: the output is (X - mean) / sqrt(var) instead of (X - mean) / sqrt(var + eps)."),
    entry(S, "eps parameter renamed epsilon", std_parameter_renamed,
          "the parameter is named epsilon instead of eps, so a call with eps=... raises TypeError."),
    entry(S, "scale from the mean of squares", std_root_mean_square,
          "divides by sqrt(mean(X**2) + eps), the root mean square of the uncentred column, instead of sqrt(var + eps)."),
    entry(G, "L1 norm of the gradient", gn_l1_norm,
          "takes norm(p=1), the sum of absolute gradient entries, instead of the Frobenius (2-) norm."),
    entry(G, "targets cast to float", gn_float_targets,
          "passes y.float() (as in the logistic-regression cell) to F.cross_entropy, which needs integer class indices, so it raises."),
    entry(G, "list kept between calls", gn_list_outside,
          "appends to a mutable default list that is never emptied, so every call returns the norms of all previous calls too."),
    entry(G, "every other module taken as a Linear", gn_every_other_module,
          "takes model[::2] (copied from deep_mlp's weight scaling) as the Linear layers, which is wrong when the layers do not alternate Linear/activation (batch-norm models: it reads a BatchNorm's and misses Linears)."),
    entry(G, "norm divided by the batch size", gn_divided_by_batch,
          "divides each gradient norm by the batch size, although F.cross_entropy already averages over the batch."),
    entry(P, "sorted largest first", pct_descending,
          "interpolates in the values sorted in descending order, so the q-th percentile returned is the (100 - q)-th."),
    entry(P, "percentiles read from a histogram", pct_histogram,
          "reads the percentiles off a 100-bin histogram's cumulative counts (an upper bin edge) instead of the values themselves."),
    entry(P, "percentiles of the per-unit means", pct_unit_means,
          "averages over the first axis (per unit) before taking the percentiles, instead of taking them over every value."),
    entry(P, "detach_ on the caller's tensor", pct_detach_in_place,
          "uses values.detach_(), which detaches the caller's tensor in place (it no longer requires grad); the percentiles are right."),
    right(S, "np.cov diagonal with bias=True", std_cov_diagonal),
    right(G, "cross-entropy written with logsumexp", gn_logsumexp_loss),
    right(P, "np.interp on the ranks", pct_interp_on_ranks),
]
