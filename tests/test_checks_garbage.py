"""No learner answer can crash a check (issue 28, item 3).

Every name a lesson's mutants replace (each exercise's function or class) is
replaced in turn by garbage built from the solution: its results cast to
float32, scaled by a random factor per position (the review's B1), transposed,
NaN, None, a string, a list, one item short, raising inside the learner's code
... The visible part of the exercise's graded cell then runs as in a learner's
session: it must print its lines without raising, and never blame the course.
"""

from __future__ import annotations

import numpy as np
import pytest

from . import test_mutants as tm


def _map(value, fn):
    """``fn`` applied to every array or tensor in ``value`` (tuples kept)."""
    import torch

    if isinstance(value, (tuple, list)):
        return type(value)(_map(v, fn) for v in value)
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return fn(value)
    return value


def _factor(a):
    import torch

    rng = np.random.default_rng(0)
    if isinstance(a, torch.Tensor):
        return a * torch.from_numpy(rng.uniform(0.5, 2, tuple(a.shape))).to(a.dtype)
    return a * rng.uniform(0.5, 2, a.shape)


def _f32(a):
    return a.float() if hasattr(a, "float") else a.astype(np.float32)


TRANSFORMS = {
    "float32": lambda v: _map(v, _f32),
    "factor per position": lambda v: _map(v, _factor),
    "transposed": lambda v: _map(v, lambda a: a.T if a.ndim >= 2 else a),
    "NaN": lambda v: _map(v, lambda a: a * float("nan")),
    "ints": lambda v: _map(
        v, lambda a: (a * 0).astype(int) if isinstance(a, np.ndarray) else a.long()
    ),
    "one item short": lambda v: v[:-1] if isinstance(v, tuple) else v,
    "as a list": lambda v: list(v) if isinstance(v, tuple) else [v],
    "None": lambda v: None,
    "a string": lambda v: "answer",
    "an object": lambda v: object(),
}


def _garbage_function(right, transform):
    def learner(*args, **kwargs):
        return transform(right(*args, **kwargs))

    return learner


def _raising(*args, **kwargs):
    return {}["key"]  # a KeyError inside the learner's code


def _garbage_class(right, transform):
    class Learner(right):
        def forward(self, *args, **kwargs):
            return transform(super().forward(*args, **kwargs))

    return Learner


def cases():
    out = []
    for lesson in tm.LESSONS:
        names = {}
        for mutant in tm.MODULES[lesson.number].MUTANTS:
            for name in mutant.wrong:
                names.setdefault(name, mutant)
        for name, mutant in names.items():
            for kind in [*TRANSFORMS, "raises"]:
                out.append((lesson, name, mutant.test, kind))
    return out


CASES = cases()


@pytest.mark.parametrize(
    "lesson, name, test, kind",
    CASES,
    ids=[f"{c[0].number}-{c[1]}-{c[3]}" for c in CASES],
)
def test_garbage_never_crashes_a_check(lesson, name, test, kind, monkeypatch, capsys):
    monkeypatch.delenv("BNCOURSE_GRADING", raising=False)
    right = tm.namespace(lesson, {})[name]
    if kind == "raises":
        garbage = (
            _raising
            if not isinstance(right, type)
            else _garbage_class(right, lambda v: {}["key"])
        )
    elif isinstance(right, type):
        garbage = _garbage_class(right, TRANSFORMS[kind])
    else:
        garbage = _garbage_function(right, TRANSFORMS[kind])
    code = compile(tm.visible(tm.cell_for(lesson, test)), f"graded cell {test}", "exec")
    capsys.readouterr()
    exec(code, tm.namespace(lesson, {name: garbage}))  # raises: a crash
    out = capsys.readouterr().out
    assert "the check itself failed" not in out and "a bug in the course" not in out, (
        out
    )
    assert "Traceback" not in out, out
