"""A held-out set of learner answers the checks were never tuned on.

``tests/unseen/lessonNN.py`` defines ``ENTRIES``: a list of :class:`Unseen`,
each an answer to one exercise that a learner could plausibly write and that
``tests/mutants/`` does not hold.  Most are wrong (``cause`` says, in one plain
sentence, what is really wrong); some are *correct* alternatives written
differently from the solution (``correct=True``), which every judge must
accept.  ``tests/unseen/measure.py`` drives them through the learner-facing
check and the grader's hidden tests and only records what happens; nothing
here is collected by pytest (see ``README.md``: the checks must not be tuned
on this set).

The format follows ``tests.mutants.Mutant``: ``wrong`` replaces notebook names
with the answer under test, ``given`` replaces more names with right ones
written here (a backward pass travels with a forward pass whose cache it
reads), ``test`` is the graded cell whose visible part calls the check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module

LESSONS = ("00", "01", "02", "03", "04", "07", "08")


@dataclass(frozen=True)
class Unseen:
    """One answer to one exercise, and the truth about it.

    ``wrong`` holds the notebook names the answer replaces (for a correct
    alternative too: the names under test); ``given`` right implementations
    of further names; ``cause`` what is really wrong (empty for a correct one).
    """

    check: str
    name: str
    wrong: Mapping[str, object]
    test: str
    cause: str = ""
    given: Mapping[str, object] = field(default_factory=dict)
    correct: bool = False

    @property
    def id(self) -> str:
        return f"{self.check}: {self.name}"

    def substitutions(self) -> dict:
        return {**self.given, **self.wrong}


def entry(check, name, fn, cause="", *, test=None, replaces=None, **kw) -> Unseen:
    """An :class:`Unseen` replacing one name (default: ``check``) with ``fn``."""
    return Unseen(check, name, {replaces or check: fn}, test or check, cause, **kw)


def right(check, name, fn, **kw) -> Unseen:
    """A correct alternative implementation."""
    return entry(check, name, fn, correct=True, **kw)


def load(number: str):
    """The entries module of lesson ``number`` ("00", "01", ...)."""
    return import_module(f"tests.unseen.lesson{number}")
