"""Build the Gradescope autograder zip: the course with Gradescope's two scripts.

    python tools/gradescope/make_zip.py [--out autograder.zip]

Gradescope unpacks the zip *into* ``/autograder/source`` and runs
``/autograder/source/setup.sh`` once; so ``setup.sh``, ``run_autograder`` and
the course's files (``tools/grade.py``, ``solutions/``, ``helpers/`` ...) sit
at the zip's root, not in a folder inside it.  The course's files are those a
push would publish: git's tracked and untracked, not ignored, files (outside a
git checkout: every file but virtual environments, caches and ``.git``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SCRIPTS = ("setup.sh", "run_autograder")
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", "build", "node_modules"}
# a fixed date: the same checkout gives the same zip
STAMP = (2026, 1, 1, 0, 0, 0)


def course_files(root: Path = ROOT) -> list[str]:
    """The course's files, relative to ``root``, as a push would publish them."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = [
                d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
            ]
            listed += [str(Path(folder, f).relative_to(root)) for f in files]
    return sorted({p for p in listed if p and (root / p).is_file()})


def _add(archive: zipfile.ZipFile, path: Path, name: str) -> None:
    info = zipfile.ZipInfo(name, STAMP)
    info.compress_type = zipfile.ZIP_DEFLATED
    mode = 0o755 if os.access(path, os.X_OK) or name in SCRIPTS else 0o644
    info.external_attr = (0o100000 | mode) << 16  # a regular file and its mode
    archive.writestr(info, path.read_bytes())


def build(out: Path, root: Path = ROOT, lesson: str | None = None) -> list[str]:
    """Write the zip; return its names, the two scripts first.  ``lesson``
    pins the assignment's lesson (a file ``LESSON`` that run_autograder
    passes to grade.py's --lesson): a submission's name or metadata then
    cannot choose which lesson's tests it is graded by."""
    names = list(SCRIPTS)
    out = out.resolve()
    with zipfile.ZipFile(out, "w") as archive:
        if lesson:
            info = zipfile.ZipInfo("LESSON", STAMP)
            info.external_attr = (0o100000 | 0o644) << 16
            archive.writestr(info, lesson + "\n")
            names.append("LESSON")
        for script in SCRIPTS:
            _add(archive, HERE / script, script)
        for rel in course_files(root):
            if rel in SCRIPTS or (root / rel).resolve() == out:
                continue
            _add(archive, root / rel, rel)
            names.append(rel)
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("autograder.zip"))
    parser.add_argument(
        "--lesson",
        help="the assignment's lesson (NN): every submission is graded as it",
    )
    args = parser.parse_args(argv)
    lesson = None
    if args.lesson:
        sys.path.insert(0, str(ROOT))
        from helpers import course

        try:
            lesson = course.lesson(args.lesson).stem
        except KeyError:
            parser.error(f"no lesson {args.lesson!r}")
    else:
        print(
            "make_zip: no --lesson: a submission's file name (or metadata) chooses "
            "the lesson it is graded as; give --lesson NN for an assignment",
            file=sys.stderr,
        )
    names = build(args.out, lesson=lesson)
    size = args.out.stat().st_size / 1e6
    print(
        f"make_zip: wrote {args.out} ({len(names)} files, {size:.1f} MB): upload it "
        "as the assignment's autograder (Gradescope unpacks it into "
        "/autograder/source)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
