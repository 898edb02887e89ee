"""Every wrong implementation in ``tests/mutants/``, through all three judges.

For each lesson with checks (``helpers.course.checked_lessons()``) and each of
its mutants:

1. **the learner's check**: the visible part of the graded cell runs in a
   learner's session, with the mutant in the notebook's namespace in place of
   the solution: it must print the mutant's specific message and not raise;
2. **grading mode**: the same cell with ``BNCOURSE_GRADING=1`` must raise
   ``CheckFailed``;
3. **the grader's tests**: every graded cell of the lesson, hidden tests
   included, as ``tools/grade.py`` reads them from ``solutions/``: the
   mutant's tests score zero, every test that does not use a mutated name
   keeps full marks.

One mutant per lesson also goes through ``tools/grade.py`` itself, end to
end.  A public check (in its module's ``__all__``) without a mutant fails.
"""

from __future__ import annotations

import ast
import re
import warnings

import nbformat
import pytest

from helpers import checks, contract, course
from tools import grade
from tools import make_student as ms

from . import mutants
from .conftest import ROOT, run_grader

LESSONS = course.checked_lessons()
MODULES = {lesson.number: mutants.load(lesson) for lesson in LESSONS}
CASES = [
    (lesson, mutant) for lesson in LESSONS for mutant in MODULES[lesson.number].MUTANTS
]


class MutationReport(UserWarning):
    """Carries the counts of mutations tried and caught into the test output."""


def _is_definitions(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    kinds = (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    return bool(tree.body) and all(isinstance(node, kinds) for node in tree.body)


_CODE: dict = {}
_TESTS: dict = {}


def solution_code(lesson) -> list:
    """The solution's setup, exercise cells and given definitions, compiled."""
    if lesson.number not in _CODE:
        nb = nbformat.read(ROOT / "solutions" / lesson.filename, as_version=4)
        code = []
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            source = cell.source
            if contract.SETUP_TAG in contract.tags(cell):
                source = source.split(ms.COLAB_END, 1)[-1]  # no Colab lines
            elif contract.SKIP_WHEN_GRADING in contract.tags(cell):
                continue  # the grader skips it too
            elif not (contract.is_solution(cell) or _is_definitions(source)):
                continue
            code.append(compile(source, lesson.filename, "exec"))
        _CODE[lesson.number] = code
        _TESTS[lesson.number] = grade.test_cells(ROOT / "solutions" / lesson.filename)
    return _CODE[lesson.number]


def graded_cells(lesson) -> list:
    solution_code(lesson)
    return _TESTS[lesson.number]


def namespace(lesson, substitutions: dict) -> dict:
    """Like a kernel after running the notebook, with some answers replaced.

    Executed afresh each time: the functions' globals are this namespace, so a
    replaced function is the one every other function calls, as in a kernel.
    """
    space: dict = {}
    for code in solution_code(lesson):
        exec(code, space)
    space.update(substitutions)
    return space


def visible(cell) -> str:
    return contract.without(cell.source, contract.BEGIN_HIDDEN, contract.END_HIDDEN)


def cell_for(lesson, grade_id: str):
    for cell in graded_cells(lesson):
        if contract.grade_id(cell) == grade_id:
            return cell
    raise AssertionError(f"lesson {lesson.number} has no graded test {grade_id!r}")


def may_zero(lesson, mutant) -> set:
    """Tests that use a mutated name: named in their cell, or through ``USES``."""
    uses = getattr(MODULES[lesson.number], "USES", {})
    names = set(mutant.wrong)
    found = set()
    for cell in graded_cells(lesson):
        gid = contract.grade_id(cell)
        named = any(re.search(rf"\b{re.escape(n)}\b", cell.source) for n in names)
        if named or names & set(uses.get(gid, ())):
            found.add(gid)
    return found


def grader_outcome(lesson, substitutions: dict, monkeypatch) -> dict:
    """grade_id -> passed, each graded cell run as the grader runs it."""
    monkeypatch.setenv("BNCOURSE_GRADING", "1")
    outcome = {}
    for cell in graded_cells(lesson):
        space = namespace(lesson, substitutions)
        try:
            exec(compile(cell.source, "graded cell", "exec"), space)
        except Exception:  # exactly what the grader scores as zero
            outcome[contract.grade_id(cell)] = False
        else:
            outcome[contract.grade_id(cell)] = True
    return outcome


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda x: x.number)
def test_the_solution_passes_every_graded_test(lesson, monkeypatch):
    outcome = grader_outcome(lesson, {}, monkeypatch)
    assert outcome and all(outcome.values()), outcome


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda x: x.number)
def test_every_public_check_has_a_mutant(lesson):
    public = set(checks.BY_LESSON[lesson.number])
    covered = {m.check for m in MODULES[lesson.number].MUTANTS}
    assert public, f"lesson {lesson.number} declares no public checks"
    assert public <= covered, f"no mutant for {sorted(public - covered)}"
    assert covered <= public, f"mutants of unknown checks {sorted(covered - public)}"
    for mutant in MODULES[lesson.number].MUTANTS:  # each check is called there
        assert f"checks.{mutant.check}(" in visible(cell_for(lesson, mutant.test))


CAUGHT: dict[str, bool] = {}


@pytest.mark.parametrize(
    "lesson, mutant", CASES, ids=[f"{c[0].number}-{c[1].id}" for c in CASES]
)
def test_mutant_is_named_to_the_learner_and_zeroed_by_the_grader(
    lesson, mutant, monkeypatch, capsys
):
    cell = cell_for(lesson, mutant.test)
    code = compile(visible(cell), f"graded cell {mutant.test}", "exec")
    # 1. a learner's session: the specific message, no exception
    monkeypatch.delenv("BNCOURSE_GRADING", raising=False)
    capsys.readouterr()
    exec(code, namespace(lesson, mutant.substitutions()))
    out = capsys.readouterr().out
    assert mutant.message in out, f"{mutant.id}: message not printed:\n{out}"
    assert "Traceback" not in out
    # 2. grading mode: the same call raises
    monkeypatch.setenv("BNCOURSE_GRADING", "1")
    with pytest.raises(checks.CheckFailed):
        exec(code, namespace(lesson, mutant.substitutions()))
    capsys.readouterr()
    # 3. the grader's own tests: this test zeroed, nothing independent of it
    outcome = grader_outcome(lesson, mutant.substitutions(), monkeypatch)
    zeroed = {gid for gid, passed in outcome.items() if not passed}
    possible = may_zero(lesson, mutant) | mutant.zeroes
    CAUGHT[mutant.id] = mutant.zeroes <= zeroed <= possible
    assert mutant.zeroes <= zeroed, f"{sorted(mutant.zeroes - zeroed)} got full marks"
    assert zeroed <= possible, f"{sorted(zeroed - possible)} zeroed without using it"


def test_report_how_many_mutations_were_tried_and_caught():
    """Runs after the cases above (same file, same worker): the summary."""
    per_lesson = {}
    for lesson, mutant in CASES:
        key = f"{lesson.number}:{mutant.check}"
        per_lesson[key] = per_lesson.get(key, 0) + 1
    warnings.warn(
        MutationReport(
            f"mutations tried: {len(CASES)}, caught by all three judges: "
            f"{sum(CAUGHT.values())} (per check: {per_lesson})"
        ),
        stacklevel=1,
    )
    if CAUGHT:  # when the cases ran (not deselected), every one was caught
        assert all(CAUGHT.values())


# --------------------------------------------------------------------------
# the real grader, end to end: one mutant per lesson
# --------------------------------------------------------------------------

INJECT = """\
# A wrong answer from tests/mutants (the grader's kernel imports the course).
from {module} import MUTANTS as _MUTANTS

globals().update(_MUTANTS[{index}].substitutions())
"""


def _submission(lesson, index: int, mutant, folder):
    nb = nbformat.read(ROOT / "solutions" / lesson.filename, as_version=4)
    cells = []
    for cell in nb.cells:
        if contract.grade_id(cell) == mutant.test and contract.graded(cell):
            source = INJECT.format(module=lesson.mutants_module, index=index)
            cells.append(nbformat.v4.new_code_cell(source))
        cells.append(cell)
    nb.cells = cells
    path = folder / lesson.filename
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_one_mutant_per_lesson_through_the_real_grader(tmp_path):
    chosen = {
        lesson.number: (lesson, 0, MODULES[lesson.number].MUTANTS[0])
        for lesson in LESSONS
    }
    paths = {}
    for number, (lesson, index, mutant) in chosen.items():
        folder = tmp_path / number
        folder.mkdir()
        paths[number] = _submission(lesson, index, mutant, folder)
    # --sandbox off: the injected cell imports the mutants from tests/, which a
    # sandboxed kernel cannot see (tests/test_attacks.py grades in the sandbox)
    rows = run_grader(tmp_path / "grades.csv", paths.values(), "--sandbox", "off")
    for number, (lesson, _, mutant) in chosen.items():
        row = rows[str(paths[number])]
        possible = may_zero(lesson, mutant) | mutant.zeroes
        for cell in graded_cells(lesson):
            gid = contract.grade_id(cell)
            score = float(row[f"{number}:{gid}"])
            if gid in mutant.zeroes:
                assert score == 0, (mutant.id, gid, row)
            elif gid not in possible:
                assert score == contract.points(cell, 1.0), (mutant.id, gid, row)
