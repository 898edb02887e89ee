"""Repository conventions: dependencies, notebook shape, lint, README and CI."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import nbformat
import pytest

from helpers import course
from tools import make_student as ms

from .conftest import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

# PyPI name -> conda-forge name, where they differ
CONDA_NAMES = {"torch": "pytorch", "playwright": "playwright-python"}


def _name_and_spec(requirement: str):
    match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(.*)", requirement)
    name = match.group(1).lower().replace("_", "-")
    return name, match.group(3).replace(" ", "")


def pip_requirements(extras=None) -> dict[str, str]:
    """requirements.txt and pyproject.toml's dependencies, with ``extras`` (all)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        if extras is None or name in extras:
            reqs += extra
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            reqs.append(line)
    return dict(_name_and_spec(r) for r in reqs)


def conda_requirements() -> dict[str, str]:
    deps = {}
    in_pip = False
    text = (ROOT / "environment.yml").read_text()
    for raw in text.split("\ndependencies:", 1)[1].splitlines():
        line = raw.split("#")[0].rstrip()
        if re.match(r"\s*- pip:\s*$", line):
            in_pip = True
            continue
        match = re.match(r"(\s*)- (.+)$", line)
        if not match or in_pip:
            continue
        name, spec = _name_and_spec(match.group(2))
        if name not in {"python", "pip"}:
            deps[name] = spec
    return deps


def test_environment_yml_lists_the_same_packages_and_versions():
    """The learner's environment, as `make lab` installs it (no test tools)."""
    lab = pip_requirements(extras=("lab",))
    pip = {CONDA_NAMES.get(k, k): v for k, v in lab.items()}
    conda = conda_requirements()
    assert pip == conda, {
        "only in pip files": sorted(set(pip) - set(conda)),
        "only in environment.yml": sorted(set(conda) - set(pip)),
        "different versions": sorted(
            k for k in pip if k in conda and pip[k] != conda[k]
        ),
    }


def test_environment_yml_is_conda_forge_only_and_every_line_says_who_needs_it():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"channels:\s*\n\s*- conda-forge\s*\n(?!\s*- )", text + "\n")
    for line in text.splitlines():
        if re.match(r"\s*- ", line) and not line.strip().startswith("- conda-forge"):
            assert "#" in line, f"no comment on: {line}"


def test_torch_is_pinned_exactly_and_there_is_no_torchvision():
    reqs = pip_requirements()
    assert reqs["torch"] == "==2.13.0"
    assert "torchvision" not in reqs
    pins = {name: spec for name, spec in reqs.items() if spec.startswith("==")}
    assert pins == {"torch": "==2.13.0"}, "only torch gets an exact pin"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("torch") for d in project["dependencies"]), (
        "the package itself must not require torch: Colab's own build must stay"
    )
    assert project["name"] != "helpers"


def test_readme_quick_start_has_the_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^make (\w+)", quick, flags=re.M)
    assert commands == ["lab", "test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*make test\b", ci, flags=re.M)


def _notebooks():
    return sorted((ROOT / "solutions").glob("*.ipynb")) + sorted(
        (ROOT / "notebooks").glob("*.ipynb")
    )


@pytest.mark.parametrize(
    "path", _notebooks(), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_every_notebook_has_the_course_shape(path):
    nb = nbformat.read(path, 4)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    text = "\n".join(markdown)
    for heading in (
        "## Learning objectives",
        "## Summary",
        "## Going further",
        "## References",
    ):
        assert heading in text, f"{path.name} lacks {heading}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].id == ms.COLAB_ID, "the first code cell is the Colab set-up"
    assert ms.SETUP_TAG in ms.tags(code[1]), "the second code cell is the setup cell"
    assert "helpers.setup(seed=" in code[1].source
    for cell in code:
        assert "os.environ" not in cell.source, "notebooks ask helpers.config instead"
        assert "%matplotlib" not in cell.source
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "plt.show()" in cell.source:
            after = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
            assert after is not None and after.cell_type == "markdown"
            if "interact(" in cell.source:  # a widget: questions to try instead
                assert after.source.count("?") >= 2, (
                    f"{path.name}: the widget of cell {i} needs questions to try"
                )
                continue
            assert after.source.lstrip().startswith("**What to notice"), (
                f"{path.name}: the figure of cell {i} needs a 'What to notice' note"
            )


def test_every_lesson_is_listed_and_has_both_copies():
    for lesson in course.LESSONS:
        assert (ROOT / "solutions" / lesson.filename).is_file()
        assert (ROOT / "notebooks" / lesson.filename).is_file()


def test_helpers_never_contains_exercise_solutions(learner_mode):
    """No exercise is solved in the package.

    Outside ``helpers/checks`` no function has an exercise's name; inside, a
    function with an exercise's name must be a *check*: given unfinished stubs
    it reports "not yet" (it calls the learner's code, it does not replace it).
    """
    import inspect

    from helpers import checks

    names = set()
    for path in (ROOT / "solutions").glob("*.ipynb"):
        for cell in nbformat.read(path, 4).cells:
            if ms.BEGIN_SOLUTION in cell.source:
                # top-level names only: methods such as forward are not exercises
                found = re.findall(r"^(?:def|class)\s+(\w+)", cell.source, re.M)
                names |= set(found)
    assert names
    for path in (ROOT / "helpers").rglob("*.py"):
        if "checks" in path.parts:
            continue
        defined = set(re.findall(r"^\s*(?:def|class)\s+(\w+)", path.read_text(), re.M))
        assert not names & defined, f"{path} defines {names & defined}"

    def stub(*args, **kwargs):
        raise NotImplementedError("stub")

    for name in sorted(names & set(dir(checks))):
        check = getattr(checks, name)
        required = [
            p
            for p in inspect.signature(check).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        report = check(*[stub] * len(required), quiet=True)
        assert "not yet" in report.verdicts, f"checks.{name} is not a check"


def test_the_checks_know_every_exercise_signature_as_its_notebook_defines_it():
    """contract.SIGNATURES is what a learner's def is read against (order, defaults):
    it must be each exercise's own, with more than one parameter, and none else."""
    import ast

    from helpers import contract

    found = {}
    for path in (ROOT / "solutions").glob("*.ipynb"):
        for cell in nbformat.read(path, 4).cells:
            if ms.BEGIN_SOLUTION not in cell.source:
                continue
            for node in ast.parse(cell.source).body:
                if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    continue
                init = [n for n in node.body if getattr(n, "name", 0) == "__init__"]
                args = (init[0] if isinstance(node, ast.ClassDef) else node).args
                args.args = [a for a in args.args if a.arg != "self"]
                args.kwarg = None
                if len(args.args) > 1:
                    found[node.name] = ast.unparse(args)
    assert found == contract.SIGNATURES


@pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None, reason="ruff is not installed"
)
def test_package_tools_tests_and_notebooks_are_linted_alike():
    ruff = [sys.executable, "-m", "ruff"]
    targets = ["helpers", "tools", "tests", "solutions", "notebooks", "benchmarks"]
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [*ruff, *command, *targets], cwd=ROOT, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------
# readable code: short cells (STYLE.md section 4), short functions
# --------------------------------------------------------------------------

MEDIAN_CELL_LINES = 10  # STYLE.md: "median code cell around 10 lines"
LONGEST_FUNCTION = 80  # lines, in helpers/ and tools/


@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
def test_code_cells_are_short(folder):
    """The median code cell of the course, over every lesson of ``folder``, has at
    most 10 non-blank lines: plot plumbing lives in helpers.plotting."""
    import statistics

    lengths = [
        sum(1 for line in cell.source.splitlines() if line.strip())
        for lesson in course.LESSONS
        for cell in nbformat.read(ROOT / folder / lesson.filename, 4).cells
        if cell.cell_type == "code"
    ]
    assert statistics.median(lengths) <= MEDIAN_CELL_LINES, sorted(lengths)


def test_no_function_in_helpers_or_tools_is_over_80_lines():
    import ast

    long = []
    for path in sorted([*ROOT.glob("helpers/**/*.py"), *ROOT.glob("tools/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > LONGEST_FUNCTION:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({length})")
    assert not long, long


# issue 28: the checks diagnose by one shared mechanism, so the package does not
# grow with every mistake seen; its size at commit 3fd9a5f is the ceiling
CHECKS_CEILING = 4349


def test_the_checks_package_is_no_larger_than_before_the_rewrite():
    sizes = {
        path.name: len(path.read_text().splitlines())
        for path in sorted((ROOT / "helpers" / "checks").glob("*.py"))
    }
    assert sum(sizes.values()) <= CHECKS_CEILING, sizes
