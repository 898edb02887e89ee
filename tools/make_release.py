"""Write the learner release: the course without its solutions, tests or grader.

    python tools/make_release.py DEST            # a new (or empty) folder
    python tools/make_release.py --branch NAME   # a commit on branch NAME here
    make release                                 # the folder release/

A course whose grades count keeps this repository **private** (``solutions/``
holds every exercise's answer and every hidden test) and publishes only the
release, as the public repository that Colab installs from: ``GITHUB_REPO``
and ``RELEASE`` in ``helpers/course.py`` name it, and the learner copies'
Colab badges and setup cells already point there (``tools/make_student.py``).

The release holds what a learner needs and nothing else:

* ``notebooks/``: the learner copies, as generated (run ``make notebooks``
  first: a stale copy is refused);
* ``helpers/`` and ``data/``: the course package and its data, with the
  packaging files ``pip install git+<release>`` needs (``setup.py``,
  ``pyproject.toml``, ``LICENSE``);
* a learner ``README.md`` (the lessons, how to run them: no solutions, no
  grading), ``requirements.txt`` and ``environment.yml`` without the test
  tools, and ``.gitignore``.

Not in it: ``solutions/``, ``tests/``, ``tools/`` (the grader included),
``benchmarks/``, CI files.  Before anything is written the release is checked
(``leaks``): no nbgrader solution or hidden-test marker anywhere, and no
learner cell equal to a solution cell.  With ``--branch`` the files are
committed on that branch of this repository (created without a parent, or on
top of the branch's last release), without touching the working tree, the
index or the current branch; push that branch to the public repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from helpers import contract, course  # noqa: E402

COPIED = ("helpers", "data", "notebooks", "setup.py", "pyproject.toml", "LICENSE")
COPIED += (".gitignore",)
NEVER = ("solutions", "tests", "tools", "benchmarks", ".ci", ".github")
MARKERS = (
    contract.BEGIN_SOLUTION,
    contract.END_SOLUTION,
    contract.BEGIN_HIDDEN,
    contract.END_HIDDEN,
)
TEST_ONLY = ("tests:",)  # environment.yml lines for the test suite alone


class ReleaseError(RuntimeError):
    """The release would leak something, or cannot be made from this checkout."""


# --------------------------------------------------------------------------
# what goes in
# --------------------------------------------------------------------------


def _files(root: Path) -> list[str]:
    """The checkout's publishable files (tracked and untracked, not ignored)."""
    if (root / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        names = [n for n in listed.split("\0") if n]
    else:  # an unpacked archive
        names = [
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ]
    return sorted(n for n in names if (root / n).is_file())


def selected(root: Path = ROOT) -> list[str]:
    """The files of ``root`` copied as they are."""
    return [
        name
        for name in _files(root)
        if name.split("/", 1)[0] in COPIED and not name.endswith(".pyc")
    ]


def lesson_table() -> str:
    """The lessons, each with its learner copy here and in Colab (no solutions)."""
    rows = [
        "| # | lesson | what you learn | time | open in Colab |",
        "|---|---|---|---|---|",
    ]
    for lesson in course.LESSONS:
        rows.append(
            f"| {lesson.number} | [{lesson.title}](notebooks/{lesson.filename}) "
            f"| {lesson.purpose} | {lesson.minutes} min "
            f"| [open]({course.colab_url('notebooks', lesson)}) |"
        )
    return "\n".join(rows)


def readme() -> str:
    return f"""# Batch Normalization, hands-on

A course on batch normalization in Jupyter notebooks: from covariate shift to a
NumPy forward and backward pass checked against PyTorch, running statistics and
the bugs of train/eval mode, batch renormalization for small and non-i.i.d.
batches, a CIFAR-10 comparison that is fast on a GPU and honest on a CPU, and a
quiz. Every exercise has a check that explains wrong answers.

## The lessons

{lesson_table()}

## How to run them

**On Colab:** open a lesson from the table and run its first cell: it installs
the course package (code and data) from this repository, about 10 s, and
changes nothing else. Colab forgets everything when the runtime ends: download
your notebook (File > Download > .ipynb) and, for the quiz, the answers file it
offers you, and hand those in.

**On your machine** (Python 3.10 or newer):

```bash
python3 -m venv .venv
.venv/bin/pip install -r requirements.txt
.venv/bin/jupyter lab notebooks/
```

(on Linux without an NVIDIA GPU, add `--extra-index-url
https://download.pytorch.org/whl/cpu` to the install for PyTorch's small CPU
build), or with conda: `conda env create -f environment.yml && conda activate
bncourse`.

Work in `notebooks/`, top to bottom: each exercise says what to write, and the
check after it says what is wrong when something is. `BNCOURSE_FAST=1` makes
every experiment short (a few seconds on a laptop CPU) when you only want to
see a notebook run.

## What is here

`notebooks/` (the lessons), `helpers/` (the course package the notebooks
import: data, checks, plots, the quiz), `data/` (the datasets and the
reference records the lessons quote). The license is in `LICENSE`.
"""


def requirements() -> str:
    pinned = [
        line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("torch==")
    ]
    return (
        "# Everything the lessons need: pip install -r requirements.txt\n"
        "# torch is pinned: the build the course is tested with.\n"
        + "\n".join(pinned)
        + "\n-e .[lab]\n"
    )


def environment() -> str:
    """environment.yml without the lines only the test suite needs."""
    kept = ["# The course for conda: conda env create -f environment.yml"]
    lines = (ROOT / "environment.yml").read_text().splitlines()
    while lines and lines[0].startswith("#"):  # the authors' header
        lines = lines[1:]
    for line in lines:
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        if line.lstrip().startswith("- ") and comment.startswith(TEST_ONLY):
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


GENERATED = {
    "README.md": readme,
    "requirements.txt": requirements,
    "environment.yml": environment,
}


# --------------------------------------------------------------------------
# what must not go in
# --------------------------------------------------------------------------


def _solution_cells(root: Path) -> set[str]:
    cells = set()
    for path in sorted((root / "solutions").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            source = cell.get("source", "").strip()
            if source and (
                contract.is_solution(cell) or any(m in source for m in MARKERS)
            ):
                cells.add(source)
    return cells


def leaks(release: Path, root: Path = ROOT) -> list[str]:
    """What of the answers a folder holds: [] for a clean release."""
    found = []
    for top in NEVER:
        if (release / top).exists():
            found.append(f"{top}/ is in the release")
    answers = _solution_cells(root)
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        rel = path.relative_to(release)
        if ".git" in rel.parts:
            continue
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            texts = [c.get("source", "") for c in nb.cells]
            for cell in nb.cells:
                if cell.get("source", "").strip() in answers:
                    found.append(f"{rel}: a cell equal to a solution cell")
                if contract.is_solution(cell) or contract.graded(cell):
                    if contract.is_solution(cell) and "NotImplementedError" not in (
                        cell.get("source", "")
                    ):
                        found.append(f"{rel}: a solution cell with its answer")
        elif path.suffix in (".py", ".md", ".txt", ".yml", ".toml", ".json", ".cfg"):
            texts = [path.read_text(errors="replace")]
        else:
            continue
        for text in texts:
            for line in text.splitlines():
                if any(contract.is_marker(line, m) for m in MARKERS):
                    found.append(f"{rel}: a marker line {line.strip()[:60]!r}")
    return found


# --------------------------------------------------------------------------
# writing it
# --------------------------------------------------------------------------


def stale_learner_copies() -> list[str]:
    """Learner copies that differ from what the generator writes now."""
    from tools import make_student

    return [
        str(path.relative_to(ROOT))
        for path, text in make_student.expected_files().items()
        if path.parent == make_student.NOTEBOOKS
        and (not path.exists() or path.read_text() != text)
    ]


def write(dest: Path, root: Path = ROOT, check_copies: bool = True) -> list[str]:
    """Write the release into ``dest`` (new or empty); the files written."""
    if check_copies:
        stale = stale_learner_copies()
        if stale:
            raise ReleaseError(
                "learner copies out of date (run `make notebooks` and commit): "
                + ", ".join(stale)
            )
    if dest.exists() and any(dest.iterdir()):
        raise ReleaseError(f"{dest} is not empty: give a new folder")
    staging = Path(tempfile.mkdtemp(prefix="bncourse-release-"))
    try:
        names = selected(root)
        for name in names:
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, target)
        for name, make in GENERATED.items():
            (staging / name).write_text(make())
        problems = leaks(staging, root)
        if problems:
            raise ReleaseError("the release would leak: " + "; ".join(problems[:10]))
        dest.mkdir(parents=True, exist_ok=True)
        for item in sorted(staging.iterdir()):
            shutil.move(str(item), dest / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted({*names, *GENERATED})


def _git(*args, env=None, cwd: Path = ROOT) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def commit_branch(folder: Path, branch: str, root: Path = ROOT) -> str:
    """Commit ``folder``'s files as the tip of ``branch`` in ``root``'s repository.

    A private index and ``--work-tree``: the checkout, its index and its
    current branch are left as they are.
    """
    _git("check-ref-format", "--branch", branch, cwd=root)
    index = Path(tempfile.mkdtemp(prefix="bncourse-index-")) / "index"
    env = dict(os.environ, GIT_INDEX_FILE=str(index))
    try:
        base = ["--work-tree", str(folder)]
        _git(*base, "add", "-A", "--force", ".", env=env, cwd=root)
        tree = _git("write-tree", env=env, cwd=root)
        parent = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
        source = _git("rev-parse", "--short", "HEAD", cwd=root)
        message = f"learner release of {source} (tools/make_release.py)"
        who = dict(os.environ)
        for role in ("AUTHOR", "COMMITTER"):  # a machine with no git identity
            known = subprocess.run(
                ["git", "config", "user.email"], cwd=root, capture_output=True
            ).stdout.strip()
            if not known and f"GIT_{role}_EMAIL" not in who:
                who[f"GIT_{role}_NAME"] = "make_release"
                who[f"GIT_{role}_EMAIL"] = "make_release@localhost"
        commit = _git(
            "commit-tree",
            tree,
            *(["-p", parent] if parent else []),
            "-m",
            message,
            env=who,
            cwd=root,
        )
        _git("update-ref", f"refs/heads/{branch}", commit, cwd=root)
    finally:
        shutil.rmtree(index.parent, ignore_errors=True)
    return commit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", nargs="?", type=Path, help="a new or empty folder")
    parser.add_argument("--branch", help="commit the release on this branch instead")
    args = parser.parse_args(argv)
    if (args.dest is None) == (args.branch is None):
        parser.error("give a folder DEST or --branch NAME (one of them)")
    try:
        if args.branch:
            with tempfile.TemporaryDirectory(prefix="bncourse-release-") as tmp:
                files = write(Path(tmp) / "release")
                commit = commit_branch(Path(tmp) / "release", args.branch)
            print(
                f"make_release: {len(files)} files committed on branch "
                f"{args.branch} ({commit[:10]}); push it to the public repository "
                f"({course.REPO_URL}, {course.RELEASE})"
            )
        else:
            files = write(args.dest)
            print(f"make_release: wrote {len(files)} files to {args.dest}")
    except ReleaseError as exc:
        print(f"make_release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
