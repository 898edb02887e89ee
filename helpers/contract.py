"""What the generator, the grader and the notebooks agree on, said once.

* **Cell markers** (nbgrader's): ``### BEGIN SOLUTION``, ``### END SOLUTION``,
  ``### BEGIN HIDDEN TESTS``, ``### END HIDDEN TESTS``.  A marker is a comment
  line that *starts* with the marker words (any number of ``#``, as nbgrader
  allows); a line that merely mentions them, such as ``# see END SOLUTION``,
  is not a marker.  Text after ``BEGIN SOLUTION`` is the learner's hint.
* **Cell tags**: ``setup``, ``solution-only``, ``skip-when-grading`` and the
  generated cells' ids.
* **nbgrader metadata** read through the accessors below (``graded``,
  ``grade_id``, ``points``, ``is_solution``), never by hand.
* Each exercise's parameters (``SIGNATURES``), which the checks read a learner's
  own def against.
* Atomic writes and file hashing.

The learner's kernel imports this module too (the quiz writes its answers
file with it), so it depends on the standard library alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"

SETUP_TAG = "setup"
SOLUTION_ONLY = "solution-only"
SKIP_WHEN_GRADING = "skip-when-grading"
ANSWERS_TAG = "grade-from-answers"  # the quiz: scored from the answers file
HEADER_ID = "bncourse-header"
NAV_ID = "bncourse-nav"
COLAB_ID = "bncourse-colab"  # the Colab set-up cell, collapsed (tools/make_student.py)


# Each exercise's parameters, as its notebook defines them (tests/test_repo.py reads
# solutions/ to keep them so): the checks read a learner's own def against them
# (helpers.checks._core.run_check and order_problem: order, defaults).
SIGNATURES = {
    "standardize_columns": "X, eps=1e-05",
    "layer_gradient_norms": "model, x, y",
    "activation_percentiles": "values, q=(15, 50, 85)",
    "batchnorm_forward": "x, gamma, beta, eps=1e-05",
    "spatial_batchnorm_forward": "x, gamma, beta, eps=1e-05",
    "layernorm_forward": "x, gamma, beta, eps=1e-05",
    "batchnorm_backward": "dout, cache",
    "batchnorm_backward_alt": "dout, cache",
    "spatial_batchnorm_backward": "dout, cache",
    "layernorm_backward": "dout, cache",
    "ScratchBatchNorm": "num_features, eps=1e-05, momentum=0.1, affine=True, "
    "track_running_stats=True",
    "fold_batchnorm": "layer, bn",
    "batch_renorm_backward": "dout, cache",
    "BatchRenorm": "num_features, eps=1e-05, momentum=0.01, rmax=1.0, dmax=0.0",
    "renorm_schedule": "step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0",
    "time_to_accuracy": "history, target",
    "active_fraction": "gamma, beta",
    "NoisyBatchNorm": "num_features, shift=1.0, spread=2.0",
    "gradient_change": "model, x, y, index, lr",
    "landscape_probe": "model, x, y, step_sizes",
    "sync_batchnorm_forward": "x, gamma, beta, all_reduce, eps=1e-05, "
    "running_mean=None, running_var=None, momentum=0.1",
    "sync_batchnorm_backward": "dout, cache, all_reduce",
    "sync_bn_forward": "x, gamma, beta, running_mean, running_var, all_reduce, "
    "eps=1e-05, momentum=0.1",
    "sync_bn_backward": "saved, dout, all_reduce",
    "merge_running_stats": "model, all_reduce, count",
}


def marker(line: str, words: str) -> str | None:
    """The text after ``words`` if ``line`` is that marker line, else None.

    ``marker("    ### BEGIN SOLUTION hint: axis 0", BEGIN_SOLUTION)`` gives
    ``" hint: axis 0"``; a line that only mentions the words gives None.
    """
    match = re.match(r"\s*#+\s*" + re.escape(words) + r"\b(.*)$", line)
    return match.group(1) if match else None


def is_marker(line: str, words: str) -> bool:
    return marker(line, words) is not None


class MarkerError(ValueError):
    """Markers that do not pair up (nested, unopened or unclosed regions)."""


def walk(source: str, begin: str, end: str):
    """Each line of ``source`` with its role: ``"begin"``, ``"end"``, ``"inside"``
    or ``"outside"``; raises :class:`MarkerError` when the markers do not pair."""
    inside = False
    for line in source.splitlines():
        if is_marker(line, begin):
            if inside:
                raise MarkerError(f"nested {begin}")
            inside = True
            yield "begin", line
        elif is_marker(line, end):
            if not inside:
                raise MarkerError(f"{end} without a {begin}")
            inside = False
            yield "end", line
        else:
            yield ("inside" if inside else "outside"), line
    if inside:
        raise MarkerError(f"{begin} without an {end}")


def regions(source: str, begin: str, end: str) -> list[list[str]]:
    """The lines inside each ``begin``/``end`` region (markers excluded)."""
    found: list[list[str]] = []
    for role, line in walk(source, begin, end):
        if role == "begin":
            found.append([])
        elif role == "inside":
            found[-1].append(line)
    return found


def without(source: str, begin: str, end: str) -> str:
    """``source`` with every ``begin``/``end`` region removed, markers included."""
    kept = [line for role, line in walk(source, begin, end) if role == "outside"]
    return "\n".join(kept)


# --------------------------------------------------------------------------
# cell metadata
# --------------------------------------------------------------------------


def _nbgrader(cell) -> dict:
    value = cell.get("metadata", {}).get("nbgrader", {})
    return value if isinstance(value, dict) else {}


def graded(cell) -> bool:
    return bool(_nbgrader(cell).get("grade"))


def is_solution(cell) -> bool:
    return bool(_nbgrader(cell).get("solution"))


def grade_id(cell) -> str | None:
    value = _nbgrader(cell).get("grade_id")
    return value if isinstance(value, str) else None


def points(cell, default: float = 0.0) -> float:
    try:
        return float(_nbgrader(cell).get("points", default))
    except (TypeError, ValueError):
        return default


def tags(cell) -> list[str]:
    value = cell.get("metadata", {}).get("tags", [])
    return [t for t in value if isinstance(t, str)] if isinstance(value, list) else []


def graded_cells(nb) -> list:
    """A notebook's graded code cells (with a grade id), in order."""
    return [c for c in nb.cells if c.cell_type == "code" and graded(c) and grade_id(c)]


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------


def write_atomic(path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` so that the file is complete or untouched.

    The text goes to a temporary file in the same folder, which is then renamed
    over ``path`` (``os.replace`` is atomic on POSIX and Windows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path, data, **dumps) -> Path:
    dumps = {"indent": 1, "sort_keys": True, **dumps}
    return write_atomic(path, json.dumps(data, **dumps) + "\n")


def sha256(path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file, read in chunks (data files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
