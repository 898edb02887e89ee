"""The lesson registry: every lesson has its four files, and every list derives from it.

A lesson is ``solutions/NN_topic.ipynb``, ``helpers/checks/lessonNN.py``,
``tests/mutants/lessonNN.py`` and one ``Lesson(...)`` entry in
``helpers/course.py`` (the README's authors' section says so); the learner
copy, the README table, the checks package's names, the quiz's lesson keys
and the grader tests' lists are derived.  These tests fail when a lesson
misses a file, or when a hand-kept list creeps back.
"""

from __future__ import annotations

import importlib
import re

import nbformat
import pytest

from helpers import checks, contract, course, quiz

from .conftest import ROOT


@pytest.mark.parametrize("lesson", course.LESSONS, ids=lambda x: x.number)
def test_each_lesson_has_its_files(lesson):
    assert re.fullmatch(r"\d\d", lesson.number) and re.fullmatch(
        r"[a-z0-9_]+", lesson.slug
    )
    source = ROOT / "solutions" / lesson.filename
    assert source.is_file(), f"{lesson.filename}: no solutions/ notebook"
    assert (ROOT / "notebooks" / lesson.filename).is_file(), "run make notebooks"
    nb = nbformat.read(source, 4)
    tests = contract.graded_cells(nb)
    assert tests, f"{lesson.filename} has no graded test"
    if lesson.has_checks:
        module = importlib.import_module(f"helpers.checks.{lesson.checks_module}")
        assert module.__all__, f"{module.__name__} lists no public check"
        mutants = importlib.import_module(lesson.mutants_module)
        assert mutants.MUTANTS, f"{lesson.mutants_module} has no mutants"
        called = {
            name
            for cell in tests
            for name in re.findall(r"\bchecks\.(\w+)\(", cell.source)
        }
        assert set(module.__all__) <= called, (
            f"{lesson.filename}: public checks no graded cell calls: "
            f"{sorted(set(module.__all__) - called)}"
        )
    for name in lesson.references:
        assert (ROOT / "data" / "reference" / f"{name}.json").is_file(), name


def test_numbers_are_unique_and_in_order():
    numbers = [lesson.number for lesson in course.LESSONS]
    assert numbers == sorted(set(numbers))


def test_no_notebook_or_module_without_a_registry_entry():
    known = {lesson.filename for lesson in course.LESSONS}
    assert {p.name for p in (ROOT / "solutions").glob("*.ipynb")} == known
    modules = {p.stem for p in (ROOT / "helpers" / "checks").glob("lesson*.py")}
    assert modules == {x.checks_module for x in course.checked_lessons()}
    mutant_files = {p.stem for p in (ROOT / "tests" / "mutants").glob("lesson*.py")}
    assert mutant_files == modules


def test_the_checks_package_and_the_quiz_derive_their_lists():
    assert set(checks.BY_LESSON) == {x.number for x in course.checked_lessons()}
    for names in checks.BY_LESSON.values():
        assert all(callable(getattr(checks, name)) for name in names)
    assert quiz.LESSONS == course.quiz_keys()
    keys = {q.lesson for q in quiz.load_bank()}
    for lesson in course.LESSONS:
        if lesson.quiz:
            assert lesson.number in keys, f"no quiz question on lesson {lesson.number}"


def test_no_hand_kept_lesson_lists_in_the_package_or_tools():
    """Lesson numbers are spelled out in the registry, nowhere else."""
    pattern = re.compile(r"""["']0\d["']\s*,\s*["']0\d["']""")  # "02", "03"
    offenders = []
    for folder in ("helpers", "tools"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "course.py":
                continue
            if pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
