"""What the grader knows about each lesson before any submission runs.

Read once from the grader's own ``solutions/`` (never from a submission) and
handed to the workers as JSON:

* the graded test cells, hidden tests included;
* how each is judged: ``grader`` (every test but the quiz: it runs in the
  grader's process, and the notebook's functions and classes it names are
  called in the kernel through proxies, ``remote.py``; nothing of the test
  enters the kernel) or ``answers`` (tag ``grade-from-answers``: the quiz,
  scored from the answers file by the grader's own bank);
* the solution's setup code, which gives the grader's process the same
  imports (``np``, ``torch``, ``checks`` ...) as the notebook.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import nbformat

from helpers import contract

ANSWERS_TAG = contract.ANSWERS_TAG
COLAB_END = "# <<< Colab set-up"


def _defined(source: str) -> tuple[set, set, set]:
    """Top-level (functions, classes, other assigned names) of a cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(), set(), set()
    functions, classes, names = set(), set(), set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.add(node.name)
        elif isinstance(node, ast.ClassDef):
            classes.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
    return functions, classes, names


def _used(source: str) -> tuple[set, set]:
    """Names a cell reads, and names it binds itself."""
    tree = ast.parse(source)
    read, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.add((alias.asname or alias.name).split(".")[0])
    return read, bound


def setup_source(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "code" and contract.SETUP_TAG in contract.tags(cell):
            return cell.source.split(COLAB_END, 1)[-1]
    return ""


def lesson_plan(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    setup = setup_source(nb)
    _, _, setup_names = _defined(setup)
    functions, classes, variables = set(), set(), set()
    for cell in nb.cells:
        if cell.cell_type != "code" or contract.graded(cell):
            continue
        f, c, v = _defined(cell.source)
        functions |= f
        classes |= c
        variables |= v
    variables -= setup_names | functions | classes
    tests = []
    for cell in contract.graded_cells(nb):
        read, bound = _used(cell.source)
        free = read - bound - set(dir(builtins)) - setup_names
        tests.append(
            {
                "grade_id": contract.grade_id(cell),
                "points": contract.points(cell, 1.0),
                "source": cell.source,
                "mode": "answers" if ANSWERS_TAG in contract.tags(cell) else "grader",
                # called in the kernel: the notebook's functions and classes
                "functions": sorted(free & (functions | classes)),
                # fetched from the kernel by value: anything else it defines
                "values": sorted(free - functions - classes),
                "tags": contract.tags(cell),
            }
        )
    return {"setup": setup, "tests": tests}


def snapshot(solutions: Path) -> dict:
    """Every lesson's plan, by notebook stem."""
    return {
        path.stem: lesson_plan(path) for path in sorted(Path(solutions).glob("*.ipynb"))
    }
