"""Numbers the prose quotes, taken from the shipped reference records.

A lesson's markdown (or a quiz explanation) marks each number it quotes from a
run, as an HTML comment that Jupyter, Colab and GitHub do not show::

    BN reaches <!--= mean(R["04_renorm"]["batch 2"]["bn"]) | .1% -->31.2%<!--/-->

A qualitative claim the prose makes about a run ("larger than the spread",
"falls below") is written next to it as ``<!--? EXPR -->``, an expression
that must be true of the records; the generator refuses a notebook whose
claim is false, and the test names it.

``EXPR`` is a Python expression over ``R`` (the records in ``data/reference/``,
by name: each record's ``results``) and the functions below (``mean``,
``spread``, ``std``, ``lo``, ``hi``, ...); ``SPEC`` is a format spec
(``.1%``, ``.1f``, ``,d``).  ``tools/make_student.py`` rewrites the text
between the markers from the records in both copies of every lesson (and
``--check`` names a stale one); ``tests/test_quotes.py`` fails when a marked
number disagrees with its record, so a changed experiment cannot leave old
numbers in the prose.  Why a comment and not a template: the committed
notebook must read correctly as it is, in any viewer, with no build step.

Expressions are written by the course's authors (solutions/ and helpers/ are
trusted); they are evaluated with no builtins beyond those listed here.
"""

from __future__ import annotations

import json
import math
import re
import statistics

from . import config

PATTERN = re.compile(
    r"<!--=\s*(?P<expr>.+?)\s*\|\s*(?P<spec>[^|>]*?)\s*-->(?P<text>.*?)<!--/-->",
    re.S,
)


CLAIM = re.compile(r"<!--\?\s*(?P<expr>.+?)\s*-->", re.S)


class QuoteError(ValueError):
    """A marked number whose expression or record is wrong."""


def mean(values) -> float:
    return statistics.fmean(values)


def std(values) -> float:
    """Sample standard deviation (n - 1), as the lessons report spreads."""
    return statistics.stdev(values)


def spread(values) -> float:
    """Half the range: the '±' the lessons print beside a mean over seeds."""
    return (max(values) - min(values)) / 2


def diff(a, b) -> list[float]:
    """Paired differences a[i] - b[i] (one seed each: same start, same batches)."""
    if len(a) != len(b):
        raise QuoteError(f"paired differences of {len(a)} and {len(b)} values")
    return [x - y for x, y in zip(a, b, strict=True)]


def reach(history: dict, target: float):
    """Training seconds (cumulative) at the first epoch whose test accuracy
    reaches ``target``; None if none does (lesson 05's histories)."""
    for accuracy, seconds in zip(
        history["test_accuracy"], history["seconds"], strict=True
    ):
        if accuracy >= target:
            return seconds
    return None


def lo(values) -> float:
    return min(values)


def hi(values) -> float:
    return max(values)


class Records(dict):
    """``R["name"]``: the ``results`` of ``data/reference/name.json``, loaded once."""

    def __missing__(self, name):
        path = config.data_dir() / "reference" / f"{name}.json"
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            raise QuoteError(
                f"no reference record {name!r} ({path}); make it with "
                "`python tools/make_reference.py`"
            ) from None
        self[name] = record["results"]
        return self[name]


NAMES = {
    "mean": mean,
    "std": std,
    "spread": spread,
    "diff": diff,
    "reach": reach,
    "lo": lo,
    "hi": hi,
    "abs": abs,
    "min": min,
    "max": max,
    "len": len,
    "round": round,
    "sum": sum,
    "log10": math.log10,
    "all": all,
    "any": any,
    "zip": zip,
    "sorted": sorted,
}


def value(expr: str, records: Records | None = None):
    """The value of one marked expression."""
    namespace = {"__builtins__": {}, "R": Records() if records is None else records}
    namespace.update(NAMES)
    try:
        return eval(expr, namespace)  # noqa: S307 - authors' text, see module doc
    except QuoteError:
        raise
    except Exception as exc:
        raise QuoteError(
            f"quoted number {expr!r}: {type(exc).__name__}: {exc}"
        ) from None


def render(expr: str, spec: str, records: Records | None = None) -> str:
    number = value(expr, records)
    try:
        return format(number, spec)
    except (TypeError, ValueError) as exc:
        raise QuoteError(f"quoted number {expr!r}: format {spec!r}: {exc}") from None


def marks(text: str) -> list[tuple[str, str, str]]:
    """Every marked number of ``text``: (expression, spec, the text written)."""
    return [(m["expr"], m["spec"], m["text"]) for m in PATTERN.finditer(text)]


def fill(text: str, records: Records | None = None) -> str:
    """``text`` with every marked number written from its record."""
    records = Records() if records is None else records

    def one(match):
        new = render(match["expr"], match["spec"], records)
        return f"<!--= {match['expr']} | {match['spec']} -->{new}<!--/-->"

    return PATTERN.sub(one, text)


def stale(text: str, records: Records | None = None) -> list[str]:
    """One line per marked number whose text disagrees with its record."""
    records = Records() if records is None else records
    return [
        f"{expr} | {spec}: the text says {written!r}, the record {expected!r}"
        for expr, spec, written in marks(text)
        if (expected := render(expr, spec, records)) != written
    ]


def claims(text: str) -> list[str]:
    """Every claim marked in ``text`` (its expression)."""
    return [m["expr"] for m in CLAIM.finditer(text)]


def false_claims(text: str, records: Records | None = None) -> list[str]:
    """The claims of ``text`` that its records do not bear out."""
    records = Records() if records is None else records
    return [expr for expr in claims(text) if not value(expr, records)]


def plain(text: str) -> str:
    """``text`` with the markers removed, as written (``fill`` it first)."""
    return CLAIM.sub("", PATTERN.sub(lambda m: m["text"], text))
