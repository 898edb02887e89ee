"""Checks for notebook 05: parameters, reading gamma and beta, time to accuracy.

References: parameter counts worked out by hand for small layers (data, not
code), the normal distribution's CDF from ``torch.distributions`` and
histories built by the check itself.
"""

from __future__ import annotations

# The public checks: each one has wrong implementations in tests/mutants/.
__all__ = ["active_fraction", "count_parameters", "time_to_accuracy"]

import math

import numpy as np

from ._core import call, compare, ok, real, run_check, wrong

# --------------------------------------------------------------------------
# counting parameters
# --------------------------------------------------------------------------


def _models():
    """Small models with their trainable-parameter counts, worked out by hand."""
    import torch
    from torch import nn

    conv_bias = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())  # 8*3*3*3 + 8 = 224
    conv_bn = nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU()
    )  # 216 + 2*8 = 232 (the BN buffers are not parameters)
    mlp = nn.Sequential(nn.Linear(10, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    # 10*5+5 + 2*5 + 5*2+2 = 77
    frozen = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))  # 15 + 8, first frozen
    for p in frozen[0].parameters():
        p.requires_grad_(False)
    return [
        ("conv with bias", conv_bias, 224, 0),
        ("conv + BN", conv_bn, 232, 8 + 8 + 1),
        ("MLP with BN", mlp, 77, 5 + 5 + 1),
        ("first layer frozen", frozen, 8, 0),
    ], torch


def count_parameters(fn, quiet=False, strict=None):
    """Check ``fn(model) -> int``: the number of trainable parameter values."""
    name = "count_parameters"

    def body():
        models, torch = _models()
        for label, model, want, buffers in models:
            got, problem = call(name, fn, model, copy_inputs=False)
            if problem is not None:
                return problem
            if not isinstance(got, (int, np.integer)) or isinstance(got, bool):
                return wrong(name, f"returned a {type(got).__name__}; return an int")
            if got == want:
                continue
            total_all = sum(p.numel() for p in model.parameters())
            tensors = sum(1 for p in model.parameters() if p.requires_grad)
            if got == want + buffers and buffers:
                why = "counts the BN buffers (running statistics): they are not trained"
            elif got == total_all and total_all != want:
                why = "counts frozen parameters too: count those with requires_grad"
            elif got == tensors:
                why = "counts tensors, not their values: add up p.numel()"
            else:
                why = f"got {got:,}"
            return wrong(name, f"{label}: expected {want:,}; {why}")
        return ok(name, f"{len(models)} models counted right, BN buffers excluded")

    return run_check(name, body, quiet=quiet, strict=strict)


# --------------------------------------------------------------------------
# reading gamma and beta
# --------------------------------------------------------------------------


def _normal_cdf(z):
    import torch

    return torch.distributions.Normal(0.0, 1.0).cdf(torch.as_tensor(z)).numpy()


def active_fraction(fn, quiet=False, strict=None):
    """Check ``fn(gamma, beta) -> fraction`` = P(gamma * z + beta > 0), z ~ N(0, 1)."""
    name = "active_fraction"

    def body():
        gamma = np.array([1.0, 0.5, 2.0, -1.5, 0.8, 1.2])
        beta = np.array([0.0, -1.0, 1.0, 0.6, 0.3, -2.5])
        got, problem = call(name, fn, gamma, beta)
        if problem is not None:
            return problem
        want = _normal_cdf(beta / np.abs(gamma))
        half = np.full_like(want, 0.5)
        return compare(
            name,
            got,
            want,
            tol=1e-6,
            metric="abs",
            what="the fractions",
            diagnoses={
                "a negative gamma flips the distribution: use |gamma| "
                "(P(gamma z + beta > 0) = Phi(beta / |gamma|))": _normal_cdf(
                    beta / gamma
                ),
                "this is the share of values *below* zero: 1 - Phi(beta / |gamma|)": 1
                - want,
                "divided by gamma squared: the standard deviation of gamma * z is "
                "|gamma|, not gamma^2": _normal_cdf(beta / gamma**2),
                "beta is ignored: the shift decides how much passes the ReLU": half,
            },
        )

    return run_check(name, body, quiet=quiet, strict=strict)


# --------------------------------------------------------------------------
# time to accuracy
# --------------------------------------------------------------------------


def _history(accuracies, seconds):
    return {
        "epoch": list(range(1, len(accuracies) + 1)),
        "test_accuracy": list(accuracies),
        "seconds": list(seconds),
    }


def time_to_accuracy(fn, quiet=False, strict=None):
    """Check ``fn(history, target) -> (epoch, seconds)`` or None if never reached."""
    name = "time_to_accuracy"
    history = _history([0.30, 0.52, 0.61, 0.60, 0.70], [12.0, 24.5, 36.0, 48.2, 60.0])
    cases = [
        (0.6, (3, 36.0), "the first epoch at or above the target"),
        (0.52, (2, 24.5), "exactly equal to the target counts as reached"),
        (0.25, (1, 12.0), "reached after the first epoch"),
        (0.75, None, "never reached: return None"),
    ]

    def body():
        for target, want, what in cases:
            got, problem = call(name, fn, history, target)
            if problem is not None:
                return problem
            if want is None:
                if got is not None:
                    return wrong(name, f"target {target}: got {got!r}; {what}")
                continue
            try:
                epoch, seconds = got
                pair = (real(epoch, integer=True), real(seconds))
            except (TypeError, ValueError):
                return wrong(
                    name,
                    f"target {target}: returned {got!r}, expected (epoch, seconds)",
                )
            if pair == want:
                continue
            if pair == (want[0] - 1, want[1]) or pair[0] == want[0] - 1:
                why = "epochs count from 1 (use history['epoch'], not the list index)"
            elif target == 0.52 and pair == (3, 36.0):
                why = "an accuracy equal to the target counts: use >=, not >"
            elif pair == (5, 60.0):
                why = "that is the last epoch; return the first that reaches the target"
            elif pair[0] == want[0] and math.isclose(
                pair[1], want[1] - history["seconds"][max(want[0] - 2, 0)], abs_tol=0.1
            ):
                why = "seconds are cumulative: take history['seconds'] at that epoch"
            else:
                why = what
            return wrong(name, f"target {target}: got {pair}, expected {want}; {why}")
        return ok(name, f"{len(cases)} targets, including an exact tie and 'never'")

    return run_check(name, body, quiet=quiet, strict=strict)
