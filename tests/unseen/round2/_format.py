"""The entry format of the held-out set (a copy of tests/unseen's ``Unseen``,
kept here so that the set does not depend on the checkout it measures)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module

LESSONS = ("00", "01", "02", "03", "04", "07", "08")


@dataclass(frozen=True)
class Unseen:
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
    return import_module(f"lesson{number}")


def notebook(fn):
    """Mark ``fn`` as written in the notebook: measure.py re-defines it from its
    source in the notebook's namespace, so that it sees the learner's other
    functions (batchnorm_forward, ...) and the notebook's imports, as it would
    in a kernel."""
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(fn))
    lines = [line for line in source.splitlines() if not line.startswith("@notebook")]
    fn.__notebook_source__ = "\n".join(lines) + "\n"
    return fn


def realise(value, space: dict):
    """``value`` as the notebook would hold it (see :func:`notebook`)."""
    source = getattr(value, "__notebook_source__", None)
    if source is None:
        return value
    exec(compile(source, f"<learner {value.__name__}>", "exec"), space)
    return space[value.__name__]
