"""What an instructor should read about a submission, found by reading its code.

Two kinds of notes, for the CSV's ``notes`` column (they cost no points: a
person decides):

* **shortcuts**: an exercise solved by calling the very thing it asks the
  learner to write (``F.batch_norm`` inside the NumPy forward pass,
  ``nn.BatchNorm2d`` inside ``ScratchBatchNorm``).  Each lesson's checks
  module lists them (``SHORTCUTS``: exercise -> patterns); some exercises may
  allow them, which is why they are flagged and not failed.
* **tampering**: code that replaces the checks, NumPy or torch functions,
  ``sys.modules`` entries, or reaches for the network, other processes or
  files outside its folder.  Scores do not depend on any of it (the grader
  compares outside the kernel), but the instructor should know.

Only lines the learner wrote count: a line that is also in the learner copy
handed out (given code) is never flagged.
"""

from __future__ import annotations

import ast
import re

TAMPERING = (
    (
        r"\bchecks\s*\.\s*\w+\s*=[^=]|setattr\(\s*checks\b",
        "replaces helpers.checks functions",
    ),
    (r"\bsys\s*\.\s*modules\b", "edits sys.modules (a fake module?)"),
    (
        r"\b(np|numpy|torch|F|nn)(\s*\.\s*\w+)+\s*=[^=]",
        "replaces NumPy or torch functions",
    ),
    (r"\bbuiltins\b|__builtins__", "touches Python's builtins"),
    (
        r"\bos\s*\.\s*(kill|killpg|fork|forkpty|system|exec\w*)\b|\bsignal\s*\.",
        "signals or starts processes",
    ),
    (
        r"\b(subprocess|multiprocessing|ctypes)\b",
        "starts processes or calls C directly",
    ),
    (r"\b(socket|urllib|requests|http\.client|ftplib)\b", "uses the network"),
    (r"\bsolutions\b|helpers\.__file__|__file__", "looks for the course's files"),
    (
        r"\b(os\s*\.\s*walk|glob|shutil\s*\.\s*rmtree|os\s*\.\s*remove|os\s*\.\s*unlink)\b",
        "walks or deletes files",
    ),
    (r"open\(\s*['\"](/|\.\.)", "opens a file outside its folder"),
    (
        r"\bsettrace\b|\bsetprofile\b|addaudithook|input_transformers|"
        r"ast_transformers|events\s*\.\s*register|set_custom_exc|"
        r"register_magic|__torch_function__|TorchFunctionMode|TorchDispatchMode",
        "hooks the interpreter or torch",
    ),
)


def _given_lines(learner_copy) -> set[str]:
    lines = set()
    for cell in learner_copy.cells if learner_copy is not None else []:
        if cell.cell_type == "code":
            lines |= {line.strip() for line in cell.source.splitlines() if line.strip()}
    return lines


def _own(source: str, given: set[str]) -> list[tuple[int, str]]:
    return [
        (number, line)
        for number, line in enumerate(source.splitlines(), 1)
        if line.strip()
        and line.strip() not in given
        and not line.strip().startswith("#")
    ]


def _definitions(source: str) -> dict[str, tuple[int, int]]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    return {
        node.name: (node.lineno, node.end_lineno or node.lineno)
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.ClassDef))
    }


def notes(cells, learner_copy, shortcuts: dict[str, tuple[str, ...]]) -> list[str]:
    """One note per finding: ``code cell N: what``; ``cells`` are code sources."""
    given = _given_lines(learner_copy)
    found: list[str] = []
    for index, source in enumerate(cells, 1):
        own = _own(source, given)
        if not own:
            continue
        spans = _definitions(source)
        for name, patterns in shortcuts.items():
            if name not in spans:
                continue
            start, end = spans[name]
            body = [line for number, line in own if start <= number <= end]
            hits = []
            for pattern in patterns:  # the most telling pattern first
                for line in body:
                    for found_ in re.finditer(pattern, line):
                        if found_.group(0) not in hits:
                            hits.append(found_.group(0))
            if hits:
                calls = ", ".join(f"`{h}`" for h in hits[:3])
                found.append(
                    f"code cell {index}: {name} calls {calls} (the exercise asks "
                    "for it by hand)"
                )
        for pattern, what in TAMPERING:
            if any(re.search(pattern, line) for _, line in own):
                found.append(f"code cell {index}: {what}")
    return found
