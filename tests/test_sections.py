"""Every "section N" a lesson's prose points to is a heading of that lesson.

Lesson 04 lost its section 2 in an edit and kept "Section 2 argued ..." (outside
review 2026-12-06, part B, B1): a reference to a heading that no longer exists.
References to sections of papers and books (a numbered subsection such as
"section 4.3", or anything under "## References") are not the lesson's own.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from helpers import course

from .conftest import ROOT

COPIES = [
    (folder, lesson)
    for lesson in course.LESSONS
    for folder in ("solutions", "notebooks")
]

ONE = r"\d+(?:\([a-z]\))?(?![.\d]\d)"
REFERENCE = re.compile(
    rf"(?:\blesson (?P<lesson>\d\d)(?:'s|,)?\s+)?"
    rf"\b[Ss]ections?\s+(?P<refs>{ONE}(?:(?:,\s*|,?\s+and\s+){ONE})*)"
)


def headings(cells) -> set[str]:
    """'2' for '## 2. ...', '1(b)' for '### (b) ...' inside '## 1. ...'."""
    found, current = set(), None
    for cell in cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            top = re.match(r"##\s+(\d+)\.\s", line)
            if top:
                current = top.group(1)
                found.add(current)
            elif line.startswith("## "):
                current = None
            sub = re.match(r"###\s+\(([a-z])\)\s", line)
            if sub and current:
                found.add(f"{current}({sub.group(1)})")
    return found


def references(cells):
    """(cell index, lesson number or None, 'N' or 'N(x)', context) in the prose."""
    for index, cell in enumerate(cells):
        text = cell.source
        if cell.cell_type == "markdown":
            text = text.split("## References")[0]
        for match in REFERENCE.finditer(text):
            for ref in re.findall(ONE, match.group("refs")):
                context = text[max(0, match.start() - 40) : match.end() + 20]
                yield index, match.group("lesson"), ref, " ".join(context.split())


def _cells(folder, lesson):
    return nbformat.read(ROOT / folder / lesson.filename, 4).cells


def test_the_pattern_finds_references_and_skips_papers():
    text = (
        "Section 2 argued; see sections 1 and 6, section 1(b), lesson 03's "
        "section 5(c); Ioffe 2017, section 4.3; the end of section 4."
    )
    cell = nbformat.v4.new_markdown_cell(text)
    found = [(lesson, ref) for _, lesson, ref, _ in references([cell])]
    assert found == [
        (None, "2"),
        (None, "1"),
        (None, "6"),
        (None, "1(b)"),
        ("03", "5(c)"),
        (None, "4"),
    ]
    sections = headings(
        [nbformat.v4.new_markdown_cell("## 1. A\n### (b) B\n## Exercise\n### (c) C")]
    )
    assert sections == {"1", "1(b)"}


@pytest.mark.parametrize(
    "folder, lesson", COPIES, ids=[f"{f}/{x.number}" for f, x in COPIES]
)
def test_every_section_reference_resolves_to_a_heading(folder, lesson):
    cells = _cells(folder, lesson)
    own = headings(cells)
    broken = []
    for index, other, ref, context in references(cells):
        target = (
            own
            if other in (None, lesson.number)
            else headings(_cells(folder, course.lesson(other)))
        )
        if ref not in target:
            broken.append(f"cell {index}: section {ref} ({context!r})")
    assert not broken, f"{lesson.filename}: no such heading for " + "; ".join(broken)


def misplaced_pointers(cells) -> list[str]:
    """Markdown cells saying 'the cell below/above' whose neighbour is no code cell."""
    wrong = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        text = " ".join(cell.source.split()).lower()
        for word, step in (("below", 1), ("above", -1)):
            near = index + step
            if f"the cell {word}" in text and (
                not 0 <= near < len(cells) or cells[near].cell_type != "code"
            ):
                wrong.append(f"cell {index}: 'the cell {word}'")
    return wrong


def test_a_pointer_to_prose_is_caught():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    assert misplaced_pointers([md("The cell below runs it."), code("x = 1")]) == []
    assert misplaced_pointers([md("The cell below runs it."), md("## 2. Next")])
    assert misplaced_pointers([md("## 1."), md("As the cell above shows")])


@pytest.mark.parametrize(
    "folder, lesson", COPIES, ids=[f"{f}/{x.number}" for f, x in COPIES]
)
def test_the_cell_below_or_above_is_a_code_cell(folder, lesson):
    """'The cell below checks ...' points at code, not at more prose."""
    wrong = misplaced_pointers(_cells(folder, lesson))
    assert not wrong, f"{lesson.filename}: " + "; ".join(wrong)
