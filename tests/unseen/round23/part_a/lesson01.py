"""Held-out answers (twenty-third set, part a), lesson 01: standardize_columns,
layer_gradient_norms, activation_percentiles."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _format import entry, right

S, G, P = "standardize_columns", "layer_gradient_norms", "activation_percentiles"


def std_in_place_on_a_copy(X, eps=1e-5):
    X = X.copy()  # the caller's X stays as it was; the rest works in place
    X -= X.mean(axis=0)
    X /= np.sqrt(X.var(axis=0) + eps)
    return X


def gn_labels_from_one_hot(model, x, y):
    model.zero_grad()
    labels = y.argmax(dim=1)  # one-hot targets, as Keras's categorical_crossentropy takes them
    F.cross_entropy(model(x), labels).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_logprobs_indexed_with_a_slice(model, x, y):
    model.zero_grad()
    logprobs = F.log_softmax(model(x), dim=1)
    loss = -logprobs[:, y].mean()  # the log-probability of each example's label
    loss.backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def gn_by_hand_like_makemore(model, x, y):
    for p in model.parameters():
        p.grad = None
    logits = model(x)
    logprobs = logits - logits.logsumexp(dim=1, keepdim=True)
    loss = -logprobs[torch.arange(len(y)), y].mean()
    loss.backward()
    return [float(torch.linalg.vector_norm(m.weight.grad)) for m in model.modules()
            if isinstance(m, nn.Linear)]


def pc_quantile_floor_division(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.quantile(np.ravel(values), np.asarray(q) // 100)


def pc_ceil_floor_weights(values, q=(15, 50, 85)):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.sort(np.ravel(values).astype(np.float64))
    result = []
    for percent in q:
        pos = percent / 100 * (len(v) - 1)
        lo, hi = int(np.floor(pos)), int(np.ceil(pos))
        result.append(v[lo] * (hi - pos) + v[hi] * (pos - lo))
    return np.array(result)


ENTRIES = [
    entry(S, "in place on X.copy() (the copy keeps X's dtype)", std_in_place_on_a_copy,
          "centres and scales in place on X.copy(), which keeps X's dtype, so an integer X raises (UFuncTypeError: the float mean cannot be subtracted in place from an integer array); float X is right."),
    entry(G, "labels from one-hot rows, y.argmax(dim=1)", gn_labels_from_one_hot,
          "takes y as one-hot rows (Keras's categorical_crossentropy habit) and converts it with y.argmax(dim=1), which raises IndexError (dimension out of range) for the vector of class indices the exercise passes, so every call fails."),
    entry(G, "cross-entropy by hand, logprobs[:, y]", gn_logprobs_indexed_with_a_slice,
          "writes the cross-entropy by hand as -logprobs[:, y].mean(), which takes every example's log-probability of every example's label (an (N, N) block) instead of logprobs[range(N), y], so the loss and every gradient norm are wrong."),
    right(G, "makemore style: grads set to None, logsumexp, logprobs[arange(N), y]", gn_by_hand_like_makemore),
    entry(P, "np.quantile with q // 100", pc_quantile_floor_division,
          "converts the percents to fractions with np.asarray(q) // 100, a floor division, so every q below 100 becomes 0 and each result is the smallest value (q = 100 the largest) instead of the q-th percentile."),
    entry(P, "interpolation weights from floor and ceil of the position", pc_ceil_floor_weights,
          "interpolates between v[floor(pos)] and v[ceil(pos)] with the weights ceil(pos) - pos and pos - floor(pos), which are both 0 when pos = q/100 * (n - 1) is a whole number, so such percentiles (the median of an odd count, q = 10 of 101 values) come out as 0; the others are right."),
]
