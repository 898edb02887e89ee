"""The learner release (tools/make_release.py): the course without its answers.

A course whose grades count publishes only the release; the full repository,
with ``solutions/`` and every hidden test, stays private.  These tests hold the
release to that: no solutions, tests or grader, no hidden test or solution
cell anywhere in it, every Colab link and install URL pointing into it, and
its package installable from it.  Its notebooks run on the simulated Colab in
``tests/test_colab.py``, which installs the course from a mirror of the release.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile

import nbformat
import pytest

from helpers import contract, course
from tools import make_release

from . import colab_sim
from .conftest import ROOT


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release") / "course"
    make_release.write(folder)
    return folder


def _texts(folder):
    """Every text file of ``folder``: path -> its text."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix in (".npz", ".png", ".jpg"):
            continue
        out[path.relative_to(folder)] = path.read_text(errors="replace")
    return out


def test_the_release_holds_the_course_and_nothing_of_the_grader(release):
    tops = {p.name for p in release.iterdir()}
    assert tops == {
        ".gitignore",
        "LICENSE",
        "README.md",
        "data",
        "environment.yml",
        "helpers",
        "notebooks",
        "pyproject.toml",
        "requirements.txt",
        "setup.py",
    }, tops
    names = {p.name for p in (release / "notebooks").glob("*.ipynb")}
    assert names == {lesson.filename for lesson in course.LESSONS}
    assert not [p for p in release.rglob("*") if p.name in ("grade.py", "grading")]
    readme = (release / "README.md").read_text()
    assert "solutions/" not in readme and "## Grading" not in readme
    assert "grade" not in readme.lower()


def test_no_hidden_test_and_no_solution_anywhere(release):
    texts = _texts(release)
    notebooks = {p: t for p, t in texts.items() if p.suffix == ".ipynb"}
    for path, text in notebooks.items():
        assert contract.BEGIN_HIDDEN not in text, path
        assert contract.BEGIN_SOLUTION not in text, path
    for path, text in texts.items():
        for line in text.splitlines():
            for words in make_release.MARKERS:
                assert not contract.is_marker(line, words), (path, line)
    cells = {
        c.source.strip()
        for p in (release / "notebooks").glob("*.ipynb")
        for c in nbformat.read(p, 4).cells
    }
    everything = "\n".join(texts.values())
    hidden_seen = 0
    for source in sorted((ROOT / "solutions").glob("*.ipynb")):
        for cell in nbformat.read(source, 4).cells:
            if contract.is_solution(cell):
                assert cell.source.strip() not in cells, (source.name, cell.source)
            for begin, end in (
                (contract.BEGIN_SOLUTION, contract.END_SOLUTION),
                (contract.BEGIN_HIDDEN, contract.END_HIDDEN),
            ):
                for region in contract.regions(cell.source, begin, end):
                    body = "\n".join(region).strip()
                    if len(body) >= 40:  # long enough to be the answer, not an idiom
                        hidden_seen += begin == contract.BEGIN_HIDDEN
                        assert body not in everything, (source.name, body[:200])
    assert hidden_seen > 0  # the solutions do have hidden tests to leak


def test_every_colab_link_and_install_url_points_into_the_release(release):
    prefix = f"https://colab.research.google.com/github/{course.GITHUB_REPO}/blob/"
    for path, text in _texts(release).items():
        for link in re.findall(re.escape(prefix) + r"[^)\s\"'\\]+", text):
            rest = link[len(prefix) :]
            assert rest.startswith(course.RELEASE + "/"), (path, link)
            target = rest[len(course.RELEASE) + 1 :]
            assert (release / target).is_file(), (path, link)
    for path in (release / "notebooks").glob("*.ipynb"):
        assert course.install_url() in path.read_text(), path


def test_the_leak_check_finds_a_solution_and_a_hidden_test(release, tmp_path):
    """The guard ``write`` runs before it writes: it must be able to fail."""
    assert make_release.leaks(release) == []
    leaky = tmp_path / "leaky"
    shutil.copytree(release, leaky)
    name = "02_bn_forward_backward.ipynb"
    shutil.copyfile(ROOT / "solutions" / name, leaky / "notebooks" / name)
    found = make_release.leaks(leaky)
    assert any("solution cell" in f for f in found), found
    assert any("BEGIN HIDDEN TESTS" in f for f in found), found
    (leaky / "tools").mkdir()
    assert any(f.startswith("tools/") for f in make_release.leaks(leaky))


def test_a_stale_release_folder_is_refused(release):
    with pytest.raises(make_release.ReleaseError, match="not empty"):
        make_release.write(release, check_copies=False)


def test_the_package_builds_from_the_release(release, tmp_path):
    """pip install git+<release>: setup.py, pyproject.toml (its readme), LICENSE."""
    mirror = colab_sim.make_mirror(tmp_path / "repo", course.RELEASE, root=release)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path)]
        + [str(mirror)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("bncourse_helpers-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "helpers/checks/__init__.py" in names
    assert "helpers/_data/quiz_bank.json" in names


def test_the_release_goes_on_a_branch_without_touching_the_checkout(release, tmp_path):
    repo = tmp_path / "repo"
    env = colab_sim.git_env(tmp_path)
    (tmp_path / "gitconfig").touch()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    (repo / "private.txt").write_text("the full course\n")
    for args in (["add", "private.txt"], ["commit", "-q", "-m", "full"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    make_release.commit_branch(release, "learners", root=repo)
    listed = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "learners"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "notebooks/00_setup_and_conventions.ipynb" in listed
    assert "private.txt" not in listed and not any(
        n.startswith("solutions/") for n in listed
    )
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
    ).stdout
    assert status == "" and (repo / "private.txt").is_file()  # checkout untouched
