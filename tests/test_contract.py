"""The contract the generator, the grader and the notebooks share."""

from __future__ import annotations

import pytest

from helpers import contract


@pytest.mark.parametrize(
    "line, expected",
    [
        ("### BEGIN SOLUTION", ""),
        ("    ### BEGIN SOLUTION hint: axis 0", " hint: axis 0"),
        ("# BEGIN SOLUTION", ""),
        ("    x = 1  # BEGIN SOLUTION", None),  # code before the comment
        ("# see the BEGIN SOLUTION marker above", None),  # a mention, not a marker
        ("### BEGIN SOLUTIONS", None),  # another word
        ("print('### BEGIN SOLUTION')", None),
    ],
)
def test_a_marker_is_a_comment_line_that_starts_with_it(line, expected):
    assert contract.marker(line, contract.BEGIN_SOLUTION) == expected


def test_regions_and_without_agree_and_refuse_bad_nesting():
    source = "a\n### BEGIN HIDDEN TESTS\nb\nc\n### END HIDDEN TESTS\nd"
    assert contract.regions(source, contract.BEGIN_HIDDEN, contract.END_HIDDEN) == [
        ["b", "c"]
    ]
    assert (
        contract.without(source, contract.BEGIN_HIDDEN, contract.END_HIDDEN) == "a\nd"
    )
    for bad in (
        "### BEGIN HIDDEN TESTS\nx",
        "### END HIDDEN TESTS",
        ("### BEGIN HIDDEN TESTS\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS"),
    ):
        with pytest.raises(contract.MarkerError):
            contract.without(bad, contract.BEGIN_HIDDEN, contract.END_HIDDEN)


def test_metadata_accessors_tolerate_junk():
    junk = {"metadata": {"nbgrader": "not a dict", "tags": "setup"}}
    assert not contract.graded(junk) and contract.grade_id(junk) is None
    assert contract.tags(junk) == [] and contract.points(junk, 1.0) == 1.0
    cell = {"metadata": {"nbgrader": {"grade": True, "grade_id": "t", "points": "3"}}}
    assert contract.graded(cell) and contract.points(cell) == 3.0


def test_atomic_write_leaves_no_temporary_file_and_replaces_whole(tmp_path):
    path = tmp_path / "out" / "file.json"
    contract.write_json_atomic(path, {"b": 1, "a": [1, 2]})
    assert path.read_text().startswith("{\n") and '"a"' in path.read_text()
    contract.write_atomic(path, "new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.json"]
    assert contract.sha256(path) == (
        "11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437"
    )
