"""Checks for notebook 05: parameters, reading gamma and beta, time to accuracy."""

__all__ = ["active_fraction", "count_parameters", "time_to_accuracy"]  # with mutants
import numpy as np

from ._core import _match, call, compare, ok, real, run_check, torch, wrong

WHY = (  # time_to_accuracy's single mistakes: epoch index, >, last epoch, per epoch
    "epochs count from 1 (use history['epoch'], not the list index)",
    "an accuracy equal to the target counts: use >=, not >",
    "that is the last epoch; return the first that reaches the target",
    "seconds are cumulative: take history['seconds'] at that epoch",
)


def count_parameters(fn, quiet=False, strict=None):
    """Check ``fn(model) -> int``: the number of trainable parameter values."""
    name, nn = "count_parameters", torch().nn

    def body():  # small models, their trainable-parameter counts worked out by hand
        S, C, L = nn.Sequential, nn.Conv2d, nn.Linear
        models = [  # with the BN buffers' counts: buffers are not parameters
            ("conv with bias", S(C(3, 8, 3), nn.ReLU()), 8 * 3 * 3 * 3 + 8, 0),
            ("conv + BN", S(C(3, 8, 3, bias=False), nn.BatchNorm2d(8)), 216 + 16, 17),
            ("MLP with BN", S(L(10, 5), nn.BatchNorm1d(5), L(5, 2)), 77, 5 + 5 + 1),
            ("first layer frozen", S(L(4, 3).requires_grad_(False), L(3, 2)), 8, 0),
        ]
        for label, model, want, bufs in models:
            got, problem = call(name, fn, model, copy_inputs=False)
            if problem is not None:
                return problem
            if not isinstance(got, (int, np.integer)) or isinstance(got, bool):
                return wrong(name, f"returned a {type(got).__name__}; return an int")
            if got != want:
                tot = sum(p.numel() for p in model.parameters())
                tensors = sum(p.requires_grad for p in model.parameters())
                gives = {  # what each single mistake gives: named where it alone fits
                    "counts the BN buffers (not trained, not parameters)": want + bufs,
                    "counts frozen parameters too: count those with requires_grad": tot,
                    "counts tensors, not their values: add up p.numel()": tensors,
                }
                why = _match(np.asarray(float(got)), gives, 0) or f"got {got:,}"
                return wrong(name, f"{label}: expected {want:,}; {why}")
        return ok(name, f"{len(models)} models counted right, BN buffers excluded")

    return run_check(name, body, quiet=quiet, strict=strict)


def active_fraction(fn, quiet=False, strict=None):
    """Check ``fn(gamma, beta) -> fraction`` = P(gamma * z + beta > 0), z ~ N(0, 1)."""
    name, gamma = "active_fraction", np.array([1.0, 0.5, 2.0, -1.5, 0.8, 1.2])
    beta = np.array([0.0, -1.0, 1.0, 0.6, 0.3, -2.5])

    def body():
        got, problem = call(name, fn, gamma, beta)
        if problem is not None:
            return problem
        normal, half = torch().distributions.Normal(0.0, 1.0), np.full_like(gamma, 0.5)
        phi = lambda z: normal.cdf(torch().as_tensor(z)).numpy()  # the reference
        w, kwargs = phi(beta / np.abs(gamma)), dict(metric="abs", what="the fractions")
        mistakes = {
            "a negative gamma flips the distribution: use |gamma| (P(gamma z + "
            "beta > 0) = Phi(beta / |gamma|))": phi(beta / gamma),
            "this is the share of values *below* zero: 1 - Phi(beta / |gamma|)": 1 - w,
            "divided by gamma squared: the standard deviation of gamma * z is "
            "|gamma|, not gamma^2": phi(beta / gamma**2),
            "beta is ignored: the shift decides how much passes the ReLU": half,
        }
        return compare(name, got, w, tol=1e-6, diagnoses=mistakes, **kwargs)

    return run_check(name, body, quiet, strict, **{name: fn})


def time_to_accuracy(fn, quiet=False, strict=None):
    """Check ``fn(history, target) -> (epoch, seconds)`` or None if never reached."""
    name = "time_to_accuracy"
    acc, sec = [0.30, 0.52, 0.61, 0.60, 0.70], [12.0, 24.5, 36.0, 48.2, 60.0]
    history = {"epoch": [1, 2, 3, 4, 5], "test_accuracy": acc, "seconds": sec}
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
            if want is None and got is not None:
                return wrong(name, f"target {target}: got {got!r}; {what}")
            if want is None:
                continue
            try:
                epoch, seconds = got
                pair = (real(epoch, integer=True), real(seconds))
            except (TypeError, ValueError):
                why = f"returned {got!r}, expected (epoch, seconds)"
                return wrong(name, f"target {target}: {why}")
            if pair == want:
                continue
            i = want[0] - 1
            above = [(j + 1, sec[j]) for j, a in enumerate(acc) if a > target]
            values = [(i, want[1]), above[0] if above else np.nan, (len(acc), sec[-1])]
            values.append((want[0], sec[i] - (sec[i - 1] if i else 0.0)))
            gives = dict(zip(WHY, values, strict=True))  # named where one alone fits
            why = _match(np.asarray(pair, dtype=float), gives, 0) or what
            return wrong(name, f"target {target}: got {pair}, expected {want}; {why}")
        return ok(name, f"{len(cases)} targets, including an exact tie and 'never'")

    return run_check(name, body, quiet, strict, **{name: fn})
