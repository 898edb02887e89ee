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


def build(out: Path, root: Path = ROOT) -> list[str]:
    """Write the zip; return its names, the two scripts first."""
    names = list(SCRIPTS)
    out = out.resolve()
    with zipfile.ZipFile(out, "w") as archive:
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
    args = parser.parse_args(argv)
    names = build(args.out)
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
