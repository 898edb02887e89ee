"""The instructor's side of the grader: feedback, class report, gradebooks, shards."""

from __future__ import annotations

import csv
import json
import os
import shutil

import nbformat
import pytest

from tools import make_class

from .conftest import ROOT, run_grader

LESSON = "02_bn_forward_backward"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Three learners of lesson 02, each in a folder of their own, fully graded."""
    top = tmp_path_factory.mktemp("class")
    learner = nbformat.read(ROOT / "notebooks" / f"{LESSON}.ipynb", 4)
    solution = nbformat.read(ROOT / "solutions" / f"{LESSON}.ipynb", 4)
    answers = make_class._answers(solution)
    notebooks = {
        "ada": make_class.build("correct", learner, answers)[0],
        "bob": make_class.build("backward_wrong", learner, answers)[0],
        "cy": make_class.build("untouched", learner, answers)[0],
    }
    paths = []
    for name, nb in notebooks.items():
        (top / name).mkdir()
        nbformat.write(nb, top / name / f"{LESSON}.ipynb")
        paths.append(top / name / f"{LESSON}.ipynb")
    out = top / "out" / "grades.csv"
    out.parent.mkdir()
    rows = run_grader(
        out,
        paths,
        "--feedback",
        str(top / "feedback"),
        "--report",
        str(top / "report"),
        "--format",
        "canvas",
        "--format",
        "moodle",
        "--format",
        "gradescope",
    )
    return {"top": top, "out": out, "rows": rows, "paths": paths}


def _feedback_pages(graded):
    return sorted((graded["top"] / "feedback").glob("*.html"))


def test_each_learner_gets_a_feedback_page_with_the_checks_words(graded):
    pages = _feedback_pages(graded)
    assert len(pages) == 3  # same file name in three folders: made unique
    text = {p.name: p.read_text() for p in pages}
    bob = next(t for t in text.values() if "9 / 12 points" in t)
    assert "the branch through the mean" in bob  # the mistake the check named
    assert "Test <code>batchnorm_backward</code>: 0 / 3 points" in bob


def test_feedback_shows_no_hidden_test_and_no_solution(graded):
    solution = nbformat.read(ROOT / "solutions" / f"{LESSON}.ipynb", 4)
    hidden = [
        line.strip()
        for cell in solution.cells
        for line in cell.source.split("### BEGIN HIDDEN TESTS")[-1].splitlines()
        if "### BEGIN HIDDEN TESTS" in cell.source and "seed=" in line
    ]
    assert hidden, "lesson 02 has hidden tests with their own seeds"
    for page in _feedback_pages(graded):
        text = page.read_text()
        assert "BEGIN HIDDEN TESTS" not in text and "strict=True" not in text
        assert not any(line in text for line in hidden)
        untouched = "0 / 12 points" in text
        if untouched:  # the learner copy's stubs, not the solution's code
            assert "x_hat = (x - mu) / np.sqrt(var + eps)" not in text


def test_feedback_opens_offline(graded):
    import re

    for page in _feedback_pages(graded):
        text = page.read_text()
        assert not re.search(r"<script[^>]*src=\"https?://", text)
        assert not re.search(r"<link[^>]*href=\"https?://[^\"]*\.css", text)


def test_the_class_report_counts_what_the_rows_say(graded):
    rows = graded["rows"]
    with open(graded["top"] / "report" / "report.csv", newline="") as f:
        table = list(csv.reader(f))
    passed = {r[1]: (int(r[2]), int(r[3])) for r in table if r[0] == "test passed"}
    for key, (n_passed, n_graded) in passed.items():
        assert n_graded == 3
        counted = sum(
            float(row[key]) > 0
            for row in rows.values()
            if row.get(key) not in ("", None)
        )
        assert n_passed == counted, key
    mistakes = [r[1] for r in table if r[0] == "mistake"]
    assert any("the branch through the mean" in m for m in mistakes), mistakes
    page = (graded["top"] / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2  # figures, not only tables


def test_gradebooks_for_canvas_and_moodle_and_gradescope_results(graded):
    out = graded["out"]
    with open(out.with_name("grades-canvas.csv"), newline="") as f:
        canvas = list(csv.reader(f))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[1][0] == "Points Possible" and float(canvas[1][5]) == 12
    learners = {row[0]: row[5] for row in canvas[2:]}
    assert learners == {"ada": "12", "bob": "9", "cy": "0"}  # ids from the folders
    with open(out.with_name("grades-moodle.csv"), newline="") as f:
        moodle = list(csv.reader(f))
    assert moodle[0][0] == "username" and len(moodle) == 4
    results = sorted((out.parent / "gradescope").glob("*.json"))
    assert results
    data = json.loads(results[0].read_text())
    assert set(data) >= {"score", "tests", "output"}
    assert all(
        {"name", "score", "max_score", "output"} <= set(t) for t in data["tests"]
    )


@pytest.mark.skipif(not shutil.which("chromium"), reason="Chromium is not installed")
def test_the_report_renders_in_a_real_browser(graded, tmp_path):
    from playwright.sync_api import sync_playwright

    from .test_browser import CHROMIUM, CHROMIUM_FLAGS

    page_path = graded["top"] / "report" / "report.html"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(f"file://{page_path}")
        assert page.locator("h1").inner_text() == "Class report"
        widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert len(widths) >= 2 and all(w > 100 for w in widths), widths
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()


def test_three_shards_merged_equal_one_run(tmp_path):
    learner = nbformat.read(ROOT / "notebooks" / "00_setup_and_conventions.ipynb", 4)
    good = (
        "def batch_stats(x):\n    if len(x) < 2:\n        raise ValueError('N < 2')\n"
        "    return x.mean(0), x.var(0), x.var(0, ddof=1)\n"
    )
    bad = "def batch_stats(x):\n    return x.mean(1), x.var(1), x.var(1)\n"
    paths = []
    for index in range(7):
        nb = nbformat.read(ROOT / "notebooks" / "00_setup_and_conventions.ipynb", 4)
        for cell in nb.cells:
            if "raise NotImplementedError" in cell.source:
                cell.source = (good, bad, cell.source)[index % 3]
        paths.append(tmp_path / f"00_learner{index}.ipynb")
        nbformat.write(nb, paths[-1])
    assert learner.cells
    outputs = ("--format", "canvas", "--format", "moodle")
    single = run_grader(
        tmp_path / "one.csv", paths, "--report", str(tmp_path / "one"), *outputs
    )
    shards = []
    for k in (1, 2, 3):
        shards.append(tmp_path / f"shard{k}.csv")
        run_grader(shards[-1], paths, "--shard", f"{k}/3")
    sizes = [sum(1 for _ in csv.DictReader(open(s))) for s in shards]
    assert sum(sizes) == 7 and max(sizes) < 7  # the work really was split
    merged = tmp_path / "merged.csv"
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "grade.py"),
            "merge",
            "--out",
            str(merged),
            "--report",
            str(tmp_path / "report"),
            *outputs,
            *map(str, shards),
        ],
        check=True,
        capture_output=True,
        env=dict(os.environ),
    )
    with open(merged, newline="") as f:
        joined = {row["file"]: row for row in csv.DictReader(f)}
    keep = ("total", "maximum", "00:batch_stats", "learner", "mistakes")
    assert {f: {k: r[k] for k in keep} for f, r in joined.items()} == {
        f: {k: r[k] for k in keep} for f, r in single.items()
    }
    assert (tmp_path / "report" / "report.html").is_file()
    for one, other in [
        (tmp_path / "one" / "report.csv", tmp_path / "report" / "report.csv"),
        (tmp_path / "one-canvas.csv", tmp_path / "merged-canvas.csv"),
        (tmp_path / "one-moodle.csv", tmp_path / "merged-moodle.csv"),
    ]:
        assert one.read_text() == other.read_text(), other.name
