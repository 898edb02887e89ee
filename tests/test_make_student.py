"""The learner-copy generator (tools/make_student.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from helpers import contract, course
from tools import make_student as ms

from .conftest import ROOT

LESSONS = [lesson.filename for lesson in course.LESSONS]


def test_stub_keeps_indentation_and_hint():
    source = "\n".join(
        [
            "def f(x):",
            '    """Doc."""',
            "    ### BEGIN SOLUTION hint: use axis=0",
            "    return x.mean(axis=0)",
            "    ### END SOLUTION",
        ]
    )
    out = ms.strip_solutions(source)
    assert "return x.mean" not in out
    assert "    # YOUR CODE HERE" in out
    assert '    raise NotImplementedError("f: use axis=0")' in out
    assert '"""Doc."""' in out


def test_stub_without_hint_and_in_a_method():
    source = (
        "class B:\n"
        "    def forward(self):\n"
        "        ### BEGIN SOLUTION\n"
        "        return 1\n"
        "        ### END SOLUTION\n"
    )
    out = ms.strip_solutions(source)
    assert 'raise NotImplementedError("forward is not implemented yet")' in out


def test_long_hints_are_wrapped_within_88_characters():
    hint = "a fairly long hint " * 5
    source = (
        f"def f(x):\n    ### BEGIN SOLUTION {hint}\n    return x\n    ### END SOLUTION"
    )
    out = ms.strip_solutions(source)
    assert max(len(line) for line in out.splitlines()) <= 88 + len(hint)
    compile(out, "<stub>", "exec")


def test_top_level_solution_is_refused():
    with pytest.raises(ms.AuthoringError, match="outside a function"):
        ms.strip_solutions("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")


@pytest.mark.parametrize(
    "source",
    [
        "def f():\n    ### BEGIN SOLUTION\n    return 1\n",
        "def f():\n    return 1\n    ### END SOLUTION\n",
        "def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n",
    ],
)
def test_unbalanced_markers_are_refused(source):
    with pytest.raises(ms.AuthoringError):
        ms.strip_solutions(source)


def test_hidden_tests_are_removed():
    source = "check(f)\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS"
    assert ms.strip_hidden(source) == "check(f)"
    with pytest.raises(ms.AuthoringError):
        ms.strip_hidden("### BEGIN HIDDEN TESTS\nassert 1")


def test_markdown_solution_becomes_a_prompt():
    out = ms.strip_solutions(
        "Answer:\n### BEGIN SOLUTION\nIt is 4.\n### END SOLUTION", "markdown"
    )
    assert "It is 4" not in out and "_Your answer here._" in out


def _solution_and_learner(filename):
    lesson = course.lesson(filename)
    source = ms.normalise_source(
        nbformat.read(ROOT / "solutions" / filename, 4), lesson
    )
    return source, ms.make_learner(source, lesson)


@pytest.mark.parametrize("filename", LESSONS)
def test_no_solution_text_leaks_into_the_learner_copy(filename):
    """Every line of every solution region and hidden test is absent from the copy.

    Lines the author also wrote *outside* any marked region (a visible
    ``return out`` elsewhere, say) are visible by design and are exempt.
    """
    source, learner = _solution_and_learner(filename)
    learner_lines = {
        line.strip() for cell in learner.cells for line in cell.source.splitlines()
    }
    visible = set()
    secret = []
    for cell in source.cells:
        text = cell.source
        for begin, end in (
            (ms.BEGIN_SOLUTION, ms.END_SOLUTION),
            (ms.BEGIN_HIDDEN, ms.END_HIDDEN),
        ):
            for region in contract.regions(text, begin, end):
                secret += [line.strip() for line in region if line.strip()]
        if ms.SOLUTION_ONLY in ms.tags(cell):
            secret += [line.strip() for line in text.splitlines() if line.strip()]
        else:
            outside = ms.strip_solutions(ms.strip_hidden(text), cell.cell_type)
            visible |= {line.strip() for line in outside.splitlines()}
    assert secret, "a lesson without any exercise?"
    leaked = [line for line in secret if line in learner_lines and line not in visible]
    assert not leaked, f"solution text in the learner copy of {filename}: {leaked[:5]}"


@pytest.mark.parametrize("filename", LESSONS)
def test_learner_copy_shape(filename):
    source, learner = _solution_and_learner(filename)
    lesson = course.lesson(filename)
    header = learner.cells[0]
    assert header.id == ms.HEADER_ID
    assert header.source.startswith(f"# {lesson.number} · {lesson.title}")
    assert course.colab_url("notebooks", lesson) in header.source
    assert course.colab_url("solutions", lesson) in source.cells[0].source
    assert learner.cells[-1].id == ms.NAV_ID
    assert learner.metadata.bncourse == {"lesson": lesson.stem, "copy": "learner"}
    for cell in learner.cells:
        if cell.id == ms.COLAB_ID:
            assert cell.metadata == ms.COLAB_METADATA
        else:
            assert set(cell.metadata) <= set(ms.KEEP_CELL_METADATA)
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    setup = [c for c in learner.cells if ms.SETUP_TAG in ms.tags(c)]
    assert len(setup) == 1 and "helpers.setup(seed=" in setup[0].source
    graded_ids = [ms.grade_id(c) for c in source.cells if ms.graded(c)]
    assert graded_ids == [ms.grade_id(c) for c in learner.cells if ms.graded(c)]


@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
@pytest.mark.parametrize("filename", LESSONS)
def test_the_colab_install_is_a_folded_cell_and_the_imports_stay_in_view(
    folder, filename
):
    """Colab shows the form's title, JupyterLab folds the code; both run it first."""
    nb = nbformat.read(ROOT / folder / filename, 4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    colab, setup = code[0], code[1]
    assert colab.id == ms.COLAB_ID
    title = colab.source.splitlines()[0]
    # Colab's form title; "# @title" as Colab itself writes it (and ruff formats it)
    assert title.startswith("# @title ") and len(title.split("@title ")[1]) > 20
    assert colab.metadata["cellView"] == "form"  # Colab: a form, code folded
    assert colab.metadata["jupyter"]["source_hidden"] is True  # JupyterLab
    assert course.REPO_URL in colab.source and "--no-deps" in colab.source
    pip = [line for line in colab.source.splitlines() if '"pip", "install"' in line]
    assert len(pip) == 1 and "--upgrade" not in pip[0] and '"-U"' not in pip[0]
    assert "torch" not in pip[0] and "ipywidgets" not in pip[0]
    # the lesson's imports: a plain, unfolded cell right after it
    assert ms.SETUP_TAG in ms.tags(setup) and "helpers.setup(seed=" in setup.source
    assert "jupyter" not in setup.metadata and "cellView" not in setup.metadata
    assert ms.COLAB_BEGIN not in setup.source and "pip" not in setup.source
    assert nb.cells.index(setup) == nb.cells.index(colab) + 1


def test_an_old_setup_cell_with_colab_lines_is_split(tmp_path):
    """Sources written before the Colab cell existed are split, not duplicated."""
    old = f"{ms.COLAB_BEGIN}\nimport sys\n{ms.COLAB_END}\n\nimport helpers\n"
    assert ms.without_colab_block(old) == "import helpers"
    assert ms.without_colab_block("import helpers") == "import helpers"


def test_navigation_links_chain_the_lessons():
    for i, lesson in enumerate(course.LESSONS):
        nav = ms.nav_source(lesson)
        if i + 1 < len(course.LESSONS):
            assert course.LESSONS[i + 1].filename in nav
        if i > 0:
            assert course.LESSONS[i - 1].filename in nav


def test_committed_copies_are_up_to_date():
    """The drift check: what is committed is what the generator writes."""
    result = subprocess.run(
        [sys.executable, "tools/make_student.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_check_names_a_stale_copy_and_regeneration_is_deterministic(tmp_path):
    copy = tmp_path / "repo"
    for name in ("solutions", "notebooks", "helpers", "tools"):
        shutil.copytree(
            ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy2(ROOT / "README.md", copy / "README.md")
    shutil.copytree(ROOT / "data" / "reference", copy / "data" / "reference")
    stale = copy / "notebooks" / LESSONS[0]
    stale.write_text(stale.read_text().replace("Learning objectives", "Learning goals"))
    script = [sys.executable, str(copy / "tools" / "make_student.py")]
    result = subprocess.run([*script, "--check"], capture_output=True, text=True)
    assert result.returncode == 1 and LESSONS[0] in result.stderr
    assert subprocess.run(script, capture_output=True).returncode == 0
    first = stale.read_text()
    assert subprocess.run(script, capture_output=True).returncode == 0
    assert stale.read_text() == first
    assert subprocess.run([*script, "--check"], capture_output=True).returncode == 0
    (copy / "notebooks" / "99_orphan.ipynb").write_text("{}")
    result = subprocess.run([*script, "--check"], capture_output=True, text=True)
    assert result.returncode == 1 and "99_orphan" in result.stderr


@pytest.mark.parametrize(
    "repo, release",
    [
        ("https://github.com/bncourse/batchnorm-course", "main"),
        ("bncourse/batchnorm-course.git", "main"),
        ("bncourse", "main"),
        ("bn course/batchnorm", "main"),
        ("-bncourse/batchnorm-course", "main"),
        ("bncourse/batchnorm-course", "main branch"),
        ("bncourse/batchnorm-course", "v1..0"),
        ("bncourse/batchnorm-course", ""),
        ('bncourse/x";rm -rf /;"', "main"),
    ],
)
def test_the_generator_refuses_a_course_location_that_is_not_a_url(
    monkeypatch, repo, release
):
    assert course.location_problems(repo, release)
    monkeypatch.setattr(course, "GITHUB_REPO", repo)
    monkeypatch.setattr(course, "RELEASE", release)
    with pytest.raises(ms.AuthoringError, match="helpers/course.py"):
        ms.colab_block()


@pytest.mark.parametrize(
    "repo, release",
    [
        ("bncourse/batchnorm-course", "main"),
        ("my-uni/bn_course.2027", "v1.0"),
        ("a/b", "release/2027-spring"),
    ],
)
def test_well_formed_course_locations_are_accepted(repo, release):
    assert course.location_problems(repo, release) == []
