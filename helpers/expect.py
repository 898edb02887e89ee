"""The one comparison a graded test makes: strict about everything but round-off.

``np.allclose(answer, reference)`` broadcasts: an empty array of shape
``(0, 1)`` is "close" to any reference, an answer with an extra leading axis
(``answer[None]``) or a list of the right numbers passes, a scalar passes a
reference whose values are all equal, and a complex or boolean array with the
right values passes too.  ``torch.allclose`` broadcasts the same way, and
``answer == 24`` is true for ``np.array([24])``, ``24.0`` and ``torch.tensor(24)``.
The outside review found learners' answers that earned hidden tests' points
this way (GRADER-FINDINGS A02).

:func:`expect` raises :class:`Mismatch` (an ``AssertionError``) unless
``got`` is what ``want`` is:

* the same kind of object: a NumPy array for a NumPy array, a tensor for a
  tensor, a tuple for a tuple (a list for a list) of the same length, compared
  item by item, ``None`` for ``None``, a number for a number;
* for arrays and tensors, the same shape (no broadcasting, so an empty or
  reshaped answer fails) and the same dtype kind (floating, integer, boolean,
  complex: float32 for float64 is round-off, int64 for float64 is not);
* for numbers: an ``int`` (or NumPy integer) where the reference is an
  integer, compared exactly; a real number where it is a float (an ``int``
  is a real number; a ``bool``, a 0-d array or a tensor is not);
* finite wherever the reference is finite, NaN exactly where it is NaN, the
  same infinity where it is infinite;
* close elsewhere: ``|got - want| <= atol + rtol * |want|`` element by element
  (NumPy's ``allclose`` rule and defaults, on arrays of one shape); integer
  and boolean values exactly.

It raises even under ``python -O`` (an ``assert`` statement would vanish), and
its message names what differs (kind, shape, dtype, how many values) without
quoting the answer's or the reference's values, so a hidden test's failure
says what is wrong without telling its inputs.  Every graded test's own
comparison goes through it; ``tests/test_graded_comparisons.py`` reads every
graded cell and refuses any other comparison.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["Mismatch", "expect"]

RTOL, ATOL = 1e-5, 1e-8  # numpy.allclose's and torch.allclose's defaults


class Mismatch(AssertionError):
    """A graded test's answer is not the reference (raised by :func:`expect`)."""


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is always installed here
        return None
    return torch


def _kind_name(kind: str) -> str:
    return {
        "f": "floating-point",
        "i": "integer",
        "u": "integer",
        "b": "boolean",
        "c": "complex",
    }.get(kind, f"non-numeric ({kind})")


def _family(kind: str) -> str:
    return "i" if kind in "iu" else kind


def _describe(value) -> str:
    """What a value is, in words, without its contents."""
    torch = _torch()
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"a NumPy array of shape {value.shape} and dtype {value.dtype}"
    if torch is not None and isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    if isinstance(value, np.generic):
        return f"a NumPy scalar of dtype {value.dtype}"
    return f"a {type(value).__name__}"


def _values(got: np.ndarray, want: np.ndarray, rtol, atol, what: str) -> None:
    """Two arrays of one shape and dtype family: equal, or close for floats."""
    kind = _family(want.dtype.kind)
    if kind in "ib":
        bad = int(np.count_nonzero(got != want))
        if bad:
            raise Mismatch(f"{what}: {bad} of {want.size} value(s) differ")
        return
    if kind == "c":
        got_parts = (got.real, got.imag)
        want_parts = (want.real, want.imag)
    else:
        got_parts, want_parts = (got,), (want,)
    for g, w in zip(got_parts, want_parts, strict=True):
        g = g.astype(np.float64)
        w = w.astype(np.float64)
        finite = np.isfinite(w)
        nan = np.isnan(w)
        if np.any(~np.isfinite(g) & finite):
            count = int(np.count_nonzero(~np.isfinite(g) & finite))
            raise Mismatch(
                f"{what}: {count} NaN or infinite value(s) where the expected "
                "values are finite"
            )
        if np.any(nan & ~np.isnan(g)):
            raise Mismatch(f"{what}: a number where the expected value is NaN")
        infinite = ~finite & ~nan
        if np.any(infinite & (g != w)):
            raise Mismatch(f"{what}: an infinity that is not the expected one")
        with np.errstate(all="ignore"):
            far = np.abs(g[finite] - w[finite]) > atol + rtol * np.abs(w[finite])
        bad = int(np.count_nonzero(far))
        if bad:
            raise Mismatch(
                f"{what}: {bad} of {want.size} value(s) differ from the expected "
                f"ones by more than the tolerance (rtol={rtol:g}, atol={atol:g})"
            )


def _array(got, want, rtol, atol, what: str, array_kind: str) -> None:
    got_shape, want_shape = tuple(got.shape), tuple(want.shape)
    if got_shape != want_shape:
        raise Mismatch(
            f"{what} has shape {got_shape}, expected {want_shape} (the shape must "
            "match exactly: nothing is broadcast)"
        )
    gk, wk = _family(got.dtype.kind), _family(want.dtype.kind)
    if gk != wk:
        raise Mismatch(
            f"{what} is a {_kind_name(gk)} {array_kind}, expected a "
            f"{_kind_name(wk)} one"
        )
    if wk not in "fibc":
        raise TypeError(f"expect() compares numbers, not dtype {want.dtype}")
    _values(got, want, rtol, atol, what)


def _tensor_numpy(tensor) -> np.ndarray:
    torch = _torch()
    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()  # NumPy has no bfloat16; still floating-point
    return tensor.resolve_conj().resolve_neg().numpy()


def _number(got, want, rtol, atol, what: str) -> None:
    if isinstance(want, bool) or isinstance(want, np.bool_):
        if not isinstance(got, (bool, np.bool_)):
            raise Mismatch(f"{what} is {_describe(got)}, expected True or False")
        if bool(got) != bool(want):
            raise Mismatch(f"{what} is the other boolean")
        return
    if isinstance(got, (bool, np.bool_)):
        raise Mismatch(f"{what} is a boolean, expected a number")
    if isinstance(want, numbers.Integral):
        if not isinstance(got, numbers.Integral):
            raise Mismatch(f"{what} is {_describe(got)}, expected an integer")
        if int(got) != int(want):
            raise Mismatch(f"{what} is not the expected integer")
        return
    if not isinstance(want, numbers.Real):
        raise TypeError(f"expect() cannot compare with {_describe(want)}")
    if not isinstance(got, numbers.Real):
        raise Mismatch(f"{what} is {_describe(got)}, expected a real number")
    _values(np.asarray(float(got)), np.asarray(float(want)), rtol, atol, what)


def expect(
    got, want, *, rtol: float = RTOL, atol: float = ATOL, what: str = "the answer"
):
    """Raise :class:`Mismatch` unless ``got`` is ``want`` (see the module doc).

    ``want`` is the test's reference, computed by the test (never the
    learner's); ``rtol`` and ``atol`` apply to floating-point values only.
    Returns None, so ``expect(...)`` is a statement, never a condition.
    """
    torch = _torch()
    if want is None:
        if got is not None:
            raise Mismatch(f"{what} is {_describe(got)}, expected None")
        return
    if isinstance(want, (tuple, list)):
        if type(got) is not type(want):
            raise Mismatch(
                f"{what} is {_describe(got)}, expected a {type(want).__name__} "
                f"of {len(want)} item(s)"
            )
        if len(got) != len(want):
            raise Mismatch(f"{what} has {len(got)} item(s), expected {len(want)}")
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            expect(g, w, rtol=rtol, atol=atol, what=f"{what}[{index}]")
        return
    if isinstance(want, np.ndarray):
        if not isinstance(got, np.ndarray):
            raise Mismatch(f"{what} is {_describe(got)}, expected a NumPy array")
        _array(got, want, rtol, atol, what, "array")
        return
    if torch is not None and isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise Mismatch(f"{what} is {_describe(got)}, expected a tensor")
        if (
            got.is_complex() != want.is_complex()
            or (got.is_floating_point() != want.is_floating_point())
            or ((got.dtype == torch.bool) != (want.dtype == torch.bool))
        ):
            raise Mismatch(
                f"{what} is a tensor of dtype {got.dtype}, expected one of the "
                f"same kind as {want.dtype}"
            )
        _array(_tensor_numpy(got), _tensor_numpy(want), rtol, atol, what, "tensor")
        return
    if isinstance(want, (numbers.Number, np.generic)):
        if isinstance(got, np.ndarray) or (
            torch is not None and isinstance(got, torch.Tensor)
        ):
            raise Mismatch(f"{what} is {_describe(got)}, expected a number")
        _number(got, want, rtol, atol, what)
        return
    raise TypeError(f"expect() cannot compare with {_describe(want)}")
