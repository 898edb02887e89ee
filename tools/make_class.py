"""Generate a class of submissions of notebook 02 to try (and test) the grader.

    python tools/make_class.py OUT_DIR [--size 30]

Writes ``OUT_DIR/NN_<kind>_<i>.ipynb`` and ``OUT_DIR/expected.json`` (what
each submission deserves).  The kinds mix what a real class hands in: correct
notebooks, partly correct ones, the untouched learner copy, and every kind of
broken notebook: not valid JSON, test cells deleted, cells reordered, a cell
that loops forever, one that kills its kernel, one that allocates memory
without bound, one that prints 100 MB, one that tries to overwrite the
grader's output and the hidden tests, one with a syntax error.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from helpers.contract import grade_id, graded  # noqa: E402

LESSON = "02_bn_forward_backward"
TESTS = [
    "batchnorm_forward",
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "spatial_batchnorm",
    "layernorm",
]

# A partly-correct answer: a right forward pass and closed-form backward, and a
# staged backward pass that forgets the branch through the mean.  They share
# their own cache layout (x_hat, std, gamma), not the solution's.
PARTLY_WRONG = {
    "batchnorm_forward_answer": """def batchnorm_forward(x, gamma, beta, eps=1e-5):
    if x.shape[0] < 2:
        raise ValueError("batch norm needs at least two examples")
    mu, var = x.mean(axis=0), x.var(axis=0)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    return gamma * x_hat + beta, (x_hat, std, gamma)
""",
    "batchnorm_backward_answer": """def batchnorm_backward(dout, cache):
    x_hat, std, gamma = cache
    g = dout * gamma
    dx = (g - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
""",
    "batchnorm_backward_alt_answer": """def batchnorm_backward_alt(dout, cache):
    x_hat, std, gamma = cache
    g = dout * gamma
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
""",
}

SNIPPETS = {
    "loop": "while True:\n    pass",
    "kill": "import os\nos._exit(1)",
    # the hoard is local: once the grader drops IPython's hold on the failed
    # frames (tools/grading/worker.py, FORGET_FAILURE) the MemoryError frees it
    "memory": (
        "def hoard():\n    kept = []\n    while True:\n"
        "        kept.append(bytearray(50_000_000))\n\n\nhoard()"
    ),
    "print": "print('x' * 100_000_000)",
    "evil": (
        "from pathlib import Path\n"
        "for target in TARGETS:\n"
        "    try:\n"
        "        Path(target).write_text('overwritten by a submission')\n"
        "    except OSError:\n"
        "        pass"
    ),
    "syntax": "def broken(:\n    pass",
}


def _answers(solution) -> dict[str, str]:
    """grade_id of each exercise cell -> the solution's source."""
    return {
        grade_id(c): c.source
        for c in solution.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    }


def _with_answers(learner, answers, only=None):
    nb = copy.deepcopy(learner)
    for cell in nb.cells:
        gid = grade_id(cell)
        if gid in answers and (only is None or gid in only):
            cell.source = answers[gid]
    return nb


def _insert_after_test(nb, test_id, source):
    index = next(i for i, c in enumerate(nb.cells) if grade_id(c) == test_id)
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


# Relative paths a submission might try, to reach the grader's output and tests.
EVIL_TARGETS = [
    "grades.csv",
    "../grades.csv",
    "../../grades.csv",
    "solutions/02_bn_forward_backward.ipynb",
    "../solutions/02_bn_forward_backward.ipynb",
]


def build(kind, learner, answers, targets=tuple(EVIL_TARGETS)):
    """(notebook or raw text, deserved points per test, expected note)."""
    full = dict.fromkeys(TESTS, "full")
    if kind == "correct":
        return _with_answers(learner, answers), full, ""
    if kind == "untouched":
        return copy.deepcopy(learner), dict.fromkeys(TESTS, 0), ""
    if kind == "forward_only":
        nb = _with_answers(learner, answers, only={"batchnorm_forward_answer"})
        return nb, {**dict.fromkeys(TESTS, 0), "batchnorm_forward": "full"}, ""
    if kind == "backward_wrong":
        nb = _with_answers(learner, {**answers, **PARTLY_WRONG})
        return nb, {**full, "batchnorm_backward": 0}, ""
    if kind == "invalid_json":
        return '{"cells": [', None, "not a valid notebook"
    if kind == "tests_deleted":
        nb = _with_answers(learner, answers)
        nb.cells = [c for c in nb.cells if not graded(c)]
        return nb, full, ""
    if kind == "reordered":  # the staged backward pass moved after every test
        nb = _with_answers(learner, answers)
        moved = next(c for c in nb.cells if grade_id(c) == "batchnorm_backward_answer")
        nb.cells.remove(moved)
        nb.cells.append(moved)
        return nb, {**full, "batchnorm_backward": 0}, ""
    if kind in ("loop", "memory", "print", "evil", "syntax"):
        snippet = SNIPPETS[kind]
        if kind == "evil":
            snippet = f"TARGETS = {list(targets)!r}\n" + snippet
        nb = _insert_after_test(
            _with_answers(learner, answers), "batchnorm_forward", snippet
        )
        note = {
            "loop": "CellTimeoutError",
            "memory": "MemoryError",
            "print": "",
            "evil": "",
            "syntax": "SyntaxError",
        }[kind]
        return nb, full, note
    if kind == "kill":  # dies after the first test: only that one counts
        nb = _insert_after_test(
            _with_answers(learner, answers), "batchnorm_forward", SNIPPETS["kill"]
        )
        return nb, {**dict.fromkeys(TESTS, 0), "batchnorm_forward": "full"}, "died"
    raise ValueError(f"unknown kind {kind!r}")


BROKEN = [
    "invalid_json",
    "tests_deleted",
    "reordered",
    "loop",
    "kill",
    "memory",
    "print",
    "evil",
    "syntax",
]
PARTIAL = ["forward_only", "backward_wrong"]


ALL_KINDS = ["correct", "untouched", *PARTIAL, *BROKEN]


def kinds_for(size: int) -> list[str]:
    """One of every kind first, then correct and partly correct notebooks."""
    kinds = list(ALL_KINDS)
    filler = ["correct", "correct", "forward_only", "correct", "backward_wrong"]
    i = 0
    while len(kinds) < size:
        kinds.append(filler[i % len(filler)])
        i += 1
    return kinds[:size]


def make_class(out: Path, size: int = 30, extra_targets=()) -> list[dict]:
    """Write the class; ``extra_targets``: more paths the evil one overwrites."""
    out.mkdir(parents=True, exist_ok=True)
    learner = nbformat.read(ROOT / "notebooks" / f"{LESSON}.ipynb", as_version=4)
    solution = nbformat.read(ROOT / "solutions" / f"{LESSON}.ipynb", as_version=4)
    answers = _answers(solution)
    points = {
        grade_id(c): float(c.metadata["nbgrader"]["points"])
        for c in solution.cells
        if graded(c)
    }
    roster = []
    for i, kind in enumerate(kinds_for(size)):
        targets = (*EVIL_TARGETS, *map(str, extra_targets))
        content, deserved, note = build(kind, learner, answers, targets)
        path = out / f"02_{kind}_{i:02d}.ipynb"
        if isinstance(content, str):
            path.write_text(content)
        else:
            nbformat.write(content, path)
        expected = None
        if deserved is not None:
            expected = {
                test: points[test] if value == "full" else 0.0
                for test, value in deserved.items()
            }
        roster.append(
            {"file": str(path), "kind": kind, "points": expected, "note": note}
        )
    (out / "expected.json").write_text(json.dumps(roster, indent=1))
    return roster


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=30)
    args = parser.parse_args(argv)
    roster = make_class(args.out, args.size)
    print(f"wrote {len(roster)} submissions and expected.json to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
