"""Plausible wrong answers to every exercise, as data: one module per lesson.

``tests/mutants/lessonNN.py`` (named by the lesson's ``mutants_module`` in
``helpers/course.py``) defines

* ``MUTANTS``: a list of :class:`Mutant`, each a wrong implementation of one
  exercise with the message the learner-facing check must print and the
  graded test it must zero;
* ``USES`` (optional): graded test -> notebook names it depends on beyond
  the ones its cell mentions (``spatial_batchnorm`` runs the learner's
  ``batchnorm_forward`` through ``spatial_batchnorm_forward``).

``tests/test_mutants.py`` drives every mutant through the learner-facing
check, grading mode and the grader's own test cells, and fails when a public
check (a name in the lesson's ``helpers/checks`` module's ``__all__``) has no
mutant.  Tests may hold correct implementations (``helpers`` never does): the
wrong ones are built from small right ones written here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module


@dataclass(frozen=True)
class Mutant:
    """One wrong implementation and what must happen to it.

    ``wrong`` replaces notebook names with wrong implementations; ``given``
    replaces more names with *right* ones written here, so that a wrong
    backward pass travels with a forward pass whose cache it understands (no
    test depends on the solution's private cache layout).  ``test`` is the
    graded test that must score zero, ``also`` more tests that must; every
    test that neither uses a wrong name nor is listed must keep full marks.
    """

    check: str
    name: str
    wrong: Mapping[str, object]
    message: str
    test: str
    given: Mapping[str, object] = field(default_factory=dict)
    also: frozenset = frozenset()

    @property
    def id(self) -> str:
        return f"{self.check}: {self.name}"

    def substitutions(self) -> dict:
        return {**self.given, **self.wrong}

    @property
    def zeroes(self) -> frozenset:
        return frozenset({self.test, *self.also})


def family(check: str, table: Mapping, test: str, name: str | None = None, **kw):
    """Mutants of one exercise from a table ``{what is wrong: (wrong, message)}``.

    ``name`` is the notebook name they replace (default: ``check``); ``given``
    and ``also`` are passed on to every :class:`Mutant`.
    """
    return [
        Mutant(check, what, {name or check: wrong}, message, test, **kw)
        for what, (wrong, message) in table.items()
    ]


def raise_(exc):
    """Raise ``exc`` where only an expression fits (a lambda's mistaken branch)."""
    raise exc


def load(lesson):
    """The mutants module of a ``helpers.course.Lesson``."""
    return import_module(lesson.mutants_module)
